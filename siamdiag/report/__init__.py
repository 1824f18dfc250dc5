"""Stage 3, the report and its output: ``model`` (the report, the gate, the JSON document),
``render`` (one renderer per format), ``plot`` (PNG figures, the plot extra).

The format names live here, importable without loading the renderers, so the CLI can offer them
as choices cheaply; ``render.RENDERERS`` has one entry per name (tested)."""

FORMATS = ("table", "json", "markdown", "junit", "github", "gitlab")
