"""Stage 3, the report and its output: ``model`` (the report, the gate, the JSON document),
``render`` (one renderer per format), ``html`` (the self-contained HTML page), ``series`` (what a
chart shows of a run), ``plot`` (matplotlib figures, the plot extra).

The format names live here, importable without loading the renderers, so the CLI can offer them
as choices cheaply; ``render.RENDERERS`` has one entry per name (tested)."""

FORMATS = ("table", "json", "markdown", "junit", "github", "gitlab", "html")


def __getattr__(name: str):
    """``siamdiag.report.render`` (and ``model``, ``html``, ``series``, ``plot``) without an
    explicit import: loaded on first use, so that importing the format names stays cheap."""
    if name in ("model", "render", "html", "series", "plot"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
