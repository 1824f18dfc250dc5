"""The package layout is the flow: imports run one way, cli -> api/pipeline -> report -> engine ->
logs, and nothing imports the CLI. This test reads every module's imports (inside functions too)
with ``ast`` and fails on any import against that direction."""
from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "siamdiag"

# Which stage a module belongs to, by its path inside siamdiag/ (first match wins).
STAGE_OF_PATH = [
    ("__main__.py", "entry"), ("__init__.py", "entry"), ("cli/", "cli"), ("api.py", "api"),
    ("pipeline.py", "api"), ("report/", "report"), ("engine/", "engine"), ("logs/", "logs"),
    ("integrations/", "integrations"), ("lightning.py", "integrations"), ("train/", "train"),
    ("atomic.py", "base"), ("cores.py", "base"), ("errors.py", "base"), ("schemas/", "base"),
]
# The stages each stage may import (its own always allowed). The package root itself only
# holds __version__ and lazy public names, so importing it is allowed everywhere.
MAY_IMPORT = {
    "entry": {"cli", "api", "integrations", "base"},
    "cli": {"api", "report", "engine", "logs", "train", "base"},
    "api": {"report", "engine", "logs", "base"},
    "report": {"engine", "logs", "base"},
    "engine": {"logs", "base"},
    "logs": {"base"},
    "integrations": {"train", "engine", "logs", "base"},
    "train": {"logs", "base"},
    "base": set(),
}


def stage_of(relative_path: str) -> str:
    for prefix, stage in STAGE_OF_PATH:
        if relative_path == prefix or (prefix.endswith("/") and relative_path.startswith(prefix)):
            return stage
    raise AssertionError(f"siamdiag/{relative_path} belongs to no stage: add it to STAGE_OF_PATH")


def module_path(module: str) -> str | None:
    """The path inside siamdiag/ of an absolute module name (None for the package root)."""
    parts = module.split(".")[1:]
    if not parts:
        return None
    base = PACKAGE.joinpath(*parts)
    if base.with_suffix(".py").exists():
        return str(base.with_suffix(".py").relative_to(PACKAGE))
    if (base / "__init__.py").exists():
        return str((base / "__init__.py").relative_to(PACKAGE))
    raise AssertionError(f"import of {module}, which does not exist")


def imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
    """Absolute siamdiag modules imported by the file, with line numbers. ``from . import x``
    counts as importing x when x is a module, else the package."""
    relative = path.relative_to(PACKAGE)
    package = ["siamdiag", *relative.parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "siamdiag"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "siamdiag":
                continue
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                try:
                    found.append((node.lineno, candidate if module_path(candidate) else module))
                except AssertionError:
                    found.append((node.lineno, module))
    return found


def test_every_import_runs_with_the_flow():
    violations = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    for path in files:
        relative = str(path.relative_to(PACKAGE))
        stage = stage_of(relative)
        for line, module in imported_modules(path):
            target = module_path(module)
            if target is None:
                continue  # the package root: __version__
            target_stage = stage_of(target)
            if target_stage != stage and target_stage not in MAY_IMPORT[stage]:
                violations.append(f"siamdiag/{relative}:{line} ({stage}) imports {module} ({target_stage})")
    assert not violations, "imports against the flow:\n" + "\n".join(violations)


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """An engine module importing the CLI, or the report, is caught (the test can fail)."""
    fake = PACKAGE / "engine" / "prepare.py"
    source = "from ..cli.main import main\nfrom ..report import model\nfrom . import checks\n"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, *a, **k: source)
    modules = [m for _line, m in imported_modules(fake)]
    assert modules == ["siamdiag.cli.main", "siamdiag.report.model", "siamdiag.engine.checks"]
    stages = [stage_of(module_path(m)) for m in modules]
    assert [s in MAY_IMPORT["engine"] | {"engine"} for s in stages] == [False, False, True]
