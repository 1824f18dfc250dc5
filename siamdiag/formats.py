"""Names of the report formats (--format) and input formats (--input-format), importable without
loading the renderers or readers; render.RENDERERS and the readers registry have one entry per
name (tested)."""

FORMATS = ("table", "json", "markdown", "junit", "github")

# Input formats for --input-format ("auto" detects from name and content); the readers
# registry (siamdiag.readers) has one entry per name after "auto".
INPUT_FORMATS = ("auto", "csv", "tsv", "wandb", "json", "jsonl", "text", "tensorboard", "mlflow")
# Names users know their logs by, mapped to the format that reads them.
INPUT_FORMAT_ALIASES = {"lightning": "csv", "keras": "csv", "hf": "json", "trainer_state": "json",
                        "ndjson": "jsonl", "tb": "tensorboard", "tfevents": "tensorboard", "txt": "text"}
