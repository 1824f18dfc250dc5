"""Names of the report formats (the --format choices), importable without loading the renderers;
render.RENDERERS has one entry per name (tested)."""

FORMATS = ("table", "json", "markdown", "junit", "github")
