"""Stage 1, finding and reading logs into runs: ``ingest`` finds the inputs and picks a reader,
``readers/`` has one module per log format, ``tables`` turns a read table into runs, ``columns``
says which column is which.

The input format names live here, importable without loading any reader, so the CLI can offer
them as choices cheaply; the readers registry has one entry per name after "auto" (tested)."""

INPUT_FORMATS = ("auto", "csv", "tsv", "wandb", "json", "jsonl", "text", "tensorboard", "mlflow", "dvclive")
# Names users know their logs by, mapped to the format that reads them.
INPUT_FORMAT_ALIASES = {"lightning": "csv", "keras": "csv", "hf": "json", "trainer_state": "json",
                        "ndjson": "jsonl", "tb": "tensorboard", "tfevents": "tensorboard", "txt": "text"}
