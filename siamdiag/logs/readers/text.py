"""Plain-text training logs (stdout captured to a file): lines such as
``Epoch 3/10 ... Loss: 0.412``, ``[Epoch 1] train_loss=0.1397``, ``step 200 | loss 0.51 | grad_norm 3.2``
or a step line followed by a loss line. Built-in patterns find a step marker and the training
loss (never val_/test_/eval_ losses); ``--pattern`` replaces them with the user's regular
expression, whose named groups ``loss`` (required), ``step`` and ``grad_norm`` are read."""
from __future__ import annotations

import re
from array import array

import numpy as np
import pandas as pd

from ...errors import InputError, UsageError
from ..tables import Table, to_float
from .lines import numbered_lines, unterminated_note

NUMBER = r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|NaN|inf|Inf|infinity|Infinity)"
# The finest step marker on a line wins: a step/iteration counter over an epoch counter.
STEP_MARKERS = (
    re.compile(r"(?i)(?<![a-z0-9_])(?:global[_ ]step|step|iteration|iter|it|batch)(?:\s+number)?\s*[:=#\[]?\s*(\d+)(?![\d.])"),
    re.compile(r"(?i)(?<![a-z0-9_])epoch(?:\s+number)?\s*[:=#\[]?\s*(\d+)(?![\d.])"),
)
LOSS = re.compile(r"(?i)(?<![a-z0-9_./-])(?:(?:train(?:ing)?|trn)[_ /-]?|current[ ]|avg[_ ]|mean[_ ]|total[_ ])?loss"
                  r"(?![a-z0-9_])\s*(?:[:=]|is)?\s*(" + NUMBER + r")(?![\w.])")
GRAD_NORM = re.compile(r"(?i)(?<![a-z0-9_])(?:grad(?:ient)?[_ ]?norm)\s*[:=]?\s*(" + NUMBER + r")(?![\w.])")


def compile_pattern(pattern: str) -> re.Pattern:
    """A user's --pattern, checked: it compiles and names a 'loss' group."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--pattern {pattern!r}: not a valid regular expression ({exc})") from None
    if "loss" not in compiled.groupindex:
        raise UsageError(f"--pattern {pattern!r}: name the loss with a group (?P<loss>...); "
                         "optional groups: step, grad_norm")
    return compiled


def _scan_builtin(lines):
    """(line number, step marker or None, loss, grad norm, loss column) per line that logs a loss.
    A step marker on a line without a loss sets the step for the loss lines that follow it."""
    current = None
    for number, line in lines:
        marker = None
        for pattern in STEP_MARKERS:
            m = pattern.search(line)
            if m:
                marker = float(m.group(1))
                break
        if marker is not None:
            current = marker
        m = LOSS.search(line)
        if not m:
            continue
        g = GRAD_NORM.search(line)
        yield number, current, m.group(1), g.group(1) if g else None, m.start(1) + 1


def _scan_user(lines, pattern: re.Pattern):
    groups = pattern.groupindex
    for number, line in lines:
        m = pattern.search(line)
        if not m or m.group("loss") is None:
            continue
        step = m.group("step") if "step" in groups else None
        grad = m.group("grad_norm") if "grad_norm" in groups else None
        yield number, step, m.group("loss"), grad, m.start("loss") + 1


def read_text(text: str, source: str, pattern: re.Pattern | None = None) -> Table:
    """One row per line that logs a training loss, read a line at a time into typed columns.
    When the step markers do not tell lines apart (several losses per epoch, or no marker at
    all), the order of the lines is the step."""
    notes = []

    def terminated_lines():
        for number, line, terminated in numbered_lines(text):
            if terminated:
                yield number, line
            elif line.strip():
                notes.append(unterminated_note(number, line))

    lines = terminated_lines()
    steps, losses, grads, line_of = array("d"), array("d"), array("d"), array("q")
    unmarked = 0
    for number, step, loss, grad, column in (_scan_user(lines, pattern) if pattern else _scan_builtin(lines)):
        value = to_float(loss)
        if value is None:
            raise InputError(source, f"{loss[:40]!r} is not a number", number, column)
        losses.append(value)
        marker = None if step is None else to_float(str(step))
        unmarked += marker is None
        steps.append(np.nan if marker is None else marker)
        gradient = None if grad is None else to_float(grad)
        grads.append(np.nan if gradient is None else gradient)
        line_of.append(number)
    if not losses:
        what = f"--pattern {pattern.pattern!r}" if pattern else "the built-in patterns (e.g. 'Epoch 3 ... loss: 0.41')"
        raise InputError(source, f"no line matches {what}; give --pattern REGEX with a (?P<loss>...) group")
    step_values = np.frombuffer(steps, dtype=np.float64)
    if unmarked or len(np.unique(step_values)) < len(step_values):
        if unmarked < len(step_values):
            notes.append("several losses share a step marker: the order of the loss lines is the step")
        step_values = np.arange(len(losses), dtype=np.float64)
    frame = pd.DataFrame({"step": step_values, "loss": np.frombuffer(losses, dtype=np.float64)})
    present = {"loss": np.ones(len(losses), bool)}
    grad_values = np.frombuffer(grads, dtype=np.float64)
    if not np.all(np.isnan(grad_values)):
        frame["grad_norm"] = grad_values
    return Table(frame=frame, locate=lambda row, column: (line_of[row], 1), notes=tuple(notes), present=present)
