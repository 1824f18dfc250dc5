"""JSON Schemas of what siamdiag writes and reads: ``report.schema.json`` (``--format json``,
schema_version 3) and ``config.schema.json`` (``[tool.siamdiag]``). Both are validated in the
tests against real reports and against the settings parser."""
from __future__ import annotations

import json
from importlib import resources

SCHEMAS = ("report", "config")


def load_schema(name: str) -> dict:
    """The schema ``name`` ('report' or 'config') as a dict."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}; one of {', '.join(SCHEMAS)}")
    return json.loads(resources.files(__package__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))
