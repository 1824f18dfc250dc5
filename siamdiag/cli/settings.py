"""Settings and where each one comes from. Layers, lowest first: built-in defaults,
``[tool.siamdiag]`` in the nearest pyproject.toml (searched upward from the working directory),
the ``--config`` file, ``SIAMDIAG_<KEY>`` environment variables, command-line flags. Every
value is checked when it is read; a bad key or value names its file (or variable), the key and
what is allowed."""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Callable, Mapping

from ..cores import usable_cores
from ..errors import InputError, UsageError
from ..report import FORMATS
from ..logs import INPUT_FORMAT_ALIASES, INPUT_FORMATS

VERDICT_NAMES = ("stationary", "not_converged", "nonstationary", "diverged", "degenerate", "inconclusive",
                 "insufficient_data", "no_data")
ENV_PREFIX = "SIAMDIAG_"


def _choice(choices: tuple[str, ...]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value
    return parse


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a non-empty string")
    return value


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.strip().lower() in ("1", "true", "yes", "on")
    raise ValueError("true or false")


def _number(value: object) -> float | None:
    """A TOML number or a numeric string; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _alpha(value: object) -> float:
    alpha = _number(value)
    if alpha is None or not 1e-6 <= alpha <= 0.5:
        raise ValueError("a number in [1e-06, 0.5]")
    return alpha


def _window(value: object) -> float:
    from ..engine.prepare import parse_window

    return parse_window(value)


def _tolerance(value: object) -> str:
    from ..engine.prepare import parse_tolerance

    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    try:
        parse_tolerance(text)
    except ValueError:
        raise ValueError("a percentage of the loss level such as '0.5%', or a loss difference such as 0.001 "
                         "(>= 0)") from None
    return text


def _burn_in(value: object) -> float | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    step = _number(value)
    if step is None:
        raise ValueError("'auto' or a step number")
    return step


def _positive_int(value: object) -> int:
    number = _number(value)
    if number is None or number < 1 or not number.is_integer():
        raise ValueError("a whole number >= 1")
    return int(number)


def _seconds(value: object) -> float:
    number = _number(value)
    if number is None or not number > 0 or number == float("inf"):
        raise ValueError("a number of seconds > 0")
    return number


def _jobs(value: object) -> int:
    """'auto' (the cores this process may use) or a whole number of worker processes."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return usable_cores() or os.cpu_count() or 1
    try:
        return _positive_int(value)
    except ValueError:
        raise ValueError("'auto' or a whole number >= 1") from None


def _fail_on(value: object) -> tuple[str, ...]:
    names = value if isinstance(value, (list, tuple)) else str(value).split(",")
    names = tuple(str(n).strip() for n in names if str(n).strip())
    if not names or any(n not in VERDICT_NAMES for n in names):
        raise ValueError(f"verdict names from {', '.join(VERDICT_NAMES)} (a list or a comma-separated string)")
    return names


@dataclass(frozen=True)
class Setting:
    """A configurable value: its parser (raises ValueError naming what is allowed) and default."""

    parse: Callable[[object], object]
    default: object


SETTINGS: dict[str, Setting] = {
    "format": Setting(_choice(FORMATS), "table"),  # report format
    "fail_on": Setting(_fail_on, ("not_converged", "nonstationary", "diverged", "degenerate", "no_data")),  # failing verdicts
    "strict": Setting(_boolean, False),  # also fail inconclusive and insufficient_data
    "alpha": Setting(_alpha, 0.01),  # family-wise false-alarm rate per run
    "tolerance": Setting(_tolerance, "0"),  # changes within this pass: '0.5%' of the loss, or loss units
    "window": Setting(_window, 0.5),  # fraction of the step range, or a number of final steps
    "burn_in": Setting(_burn_in, None),  # first step to judge; None: automatic (MSER-5)
    "input_format": Setting(_choice(INPUT_FORMATS + tuple(INPUT_FORMAT_ALIASES)), "auto"),
    "step_col": Setting(_text, None),
    "loss_col": Setting(_text, None),  # a column, or a TensorBoard tag / MLflow metric
    "grad_norm_col": Setting(_text, None),
    "run_col": Setting(_text, None),  # column(s) naming the run in a long-format log
    "pattern": Setting(_text, None),  # regular expression for plain-text logs
    "mlflow": Setting(_text, None),  # an MLflow tracking URI whose runs are read too
    "experiment": Setting(_text, None),  # MLflow: only this experiment (name or id)
    "run_name": Setting(_text, None),  # MLflow: only runs whose name matches this glob
    "timeout": Setting(_seconds, 30.0),  # MLflow tracking server: seconds to wait for it, retries included
    "jobs": Setting(_jobs, 1),  # analyze: worker processes ('auto' = the cores available)
    "watch_every": Setting(_positive_int, 200),  # siamdiag watch: re-judge after this many new rows
}


@dataclass(frozen=True)
class Resolved:
    """The value of every setting and where it came from."""

    values: dict[str, object]
    sources: dict[str, str]
    warnings: tuple[str, ...] = ()   # SIAMDIAG_* variables that name no setting, ignored

    def __getitem__(self, key: str):
        return self.values[key]


def find_pyproject(start: str) -> str | None:
    """The nearest pyproject.toml at or above ``start``."""
    directory = os.path.abspath(start)
    while True:
        candidate = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _load_toml(path: str, only_ours: bool = False) -> dict:
    """The TOML document at ``path``; with ``only_ours``, {} for a file that never mentions
    siamdiag (a project's pyproject.toml without our table is not parsed: no parser to import)."""
    try:
        with open(path, "rb") as fh:
            content = fh.read()
    except OSError as exc:
        raise UsageError(f"--config {path}: cannot read: {exc.strerror}") from None
    if only_ours and b"siamdiag" not in content:
        return {}
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line_start = content.rfind(b"\n", 0, exc.start) + 1
        raise InputError(path, f"invalid TOML: not UTF-8 ({exc.reason})", content.count(b"\n", 0, exc.start) + 1,
                         exc.start - line_start + 1) from None
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise InputError(path, f"invalid TOML: {message}", *(map(int, where.groups()) if where else ())) from None


def _table(path: str, doc: dict, allow_top_level: bool) -> tuple[dict, str]:
    """The [tool.siamdiag] table of a TOML document (or its top level, for a --config file)."""
    table = doc.get("tool", {}).get("siamdiag") if isinstance(doc.get("tool"), dict) else None
    if table is not None:
        return table, "[tool.siamdiag]"
    return (doc, "") if allow_top_level else ({}, "")


def _checked(key: str, value: object, where: str) -> object:
    name = key.replace("-", "_")
    if name not in SETTINGS:
        raise UsageError(f"{where}: unknown key {key!r}; allowed keys: {', '.join(SETTINGS)}")
    try:
        return SETTINGS[name].parse(value)
    except ValueError as exc:
        shown = f"{where}:" if where.startswith("--") else f"{where}: {key} ="
        raise UsageError(f"{shown} {value!r} is not allowed; expected {exc}") from None


def resolve(flags: Mapping[str, object] | None = None, config_file: str | None = None, cwd: str | None = None,
            environ: Mapping[str, str] | None = None) -> Resolved:
    """Every setting, layered. ``flags`` holds only the values given on the command line (already
    raw); a missing or None entry means the flag was not given."""
    environ = os.environ if environ is None else environ
    values = {k: s.default for k, s in SETTINGS.items()}
    sources = {k: "default" for k in SETTINGS}
    layers: list[tuple[str, dict]] = []
    pyproject = find_pyproject(cwd or os.getcwd())
    if pyproject:
        table, name = _table(pyproject, _load_toml(pyproject, only_ours=True), allow_top_level=False)
        layers.append((f"{pyproject} {name}".strip(), table))
    if config_file:
        table, name = _table(config_file, _load_toml(config_file), allow_top_level=True)
        layers.append((f"--config {config_file} {name}".strip(), table))
    for where, table in layers:
        if not isinstance(table, dict):
            raise UsageError(f"{where}: expected a table of settings")
        for key, value in table.items():
            values[key.replace("-", "_")] = _checked(key, value, where)
            sources[key.replace("-", "_")] = where
    warnings = []
    for var in sorted(environ):
        if var.startswith(ENV_PREFIX):
            key = var[len(ENV_PREFIX):].lower()
            if key not in SETTINGS:   # another tool's variable, or a typo: say so, judge on
                warnings.append(unknown_variable(var, key))
                continue
            values[key] = _checked(key, environ[var], f"environment variable {var}")
            sources[key] = f"environment {var}"
    for key, value in (flags or {}).items():
        if value is not None:
            flag = "--" + key.replace("_", "-")
            values[key] = _checked(key, value, flag)
            sources[key] = f"flag {flag}"
    return Resolved(values=values, sources=sources, warnings=tuple(warnings))


def unknown_variable(var: str, key: str) -> str:
    """The warning for a SIAMDIAG_* variable that names no setting, with the nearest name."""
    import difflib

    near = difflib.get_close_matches(key, list(SETTINGS), n=1)
    hint = f" (did you mean {ENV_PREFIX}{near[0].upper()}?)" if near else ""
    return f"ignored environment variable {var}: not a setting{hint}"
