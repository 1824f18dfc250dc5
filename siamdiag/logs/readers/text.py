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
from .lines import line_blocks, whole_lines

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


def _scan_builtin(lines: list[str], current: float | None):
    """(line offset, step, loss, grad norm, loss column) for each of ``lines`` that logs a loss,
    and the step in force after them. A step marker on a line without a loss sets the step for
    the loss lines that follow it (``current`` comes from the lines before); the epoch marker
    is looked for only where no finer marker is. (A match is dropped as soon as it is read:
    lists of match objects cost more in allocation than the loop saves.)"""
    step_search, epoch_search = STEP_MARKERS[0].search, STEP_MARKERS[1].search
    loss_search, grad_search = LOSS.search, GRAD_NORM.search
    found = []
    for offset, line in enumerate(lines):
        marker = step_search(line) or epoch_search(line)
        if marker is not None:
            current = float(marker.group(1))
        m = loss_search(line)
        if m is not None:
            g = grad_search(line)
            found.append((offset, current, m.group(1), g and g.group(1), m.start(1) + 1))
    return found, current


def _scan_user(lines: list[str], pattern: re.Pattern):
    groups = pattern.groupindex
    found = []
    for offset, line in enumerate(lines):
        m = pattern.search(line)
        if m is None or m.group("loss") is None:
            continue
        step = m.group("step") if "step" in groups else None
        grad = m.group("grad_norm") if "grad_norm" in groups else None
        found.append((offset, None if step is None else to_float(str(step)), m.group("loss"), grad, m.start("loss") + 1))
    return found


def read_text(text: str, source: str, pattern: re.Pattern | None = None) -> Table:
    """One row per line that logs a training loss, searched a block of lines at a time into
    typed columns. When the step markers do not tell lines apart (several losses per epoch, or
    no marker at all), the order of the lines is the step. An unterminated last line is set
    aside with a note."""
    body_end, set_aside = whole_lines(text)
    notes = list(set_aside)
    steps, losses, grads, line_of = array("d"), array("d"), array("d"), array("q")
    number_of = float if pattern is None else to_float   # the built-in patterns only match what float() reads
    current, unmarked = None, 0
    for first, block in line_blocks(text, body_end):
        lines = block.split("\n")
        if pattern is None:
            found, current = _scan_builtin(lines, current)
        else:
            found = _scan_user(lines, pattern)
        values = list(map(number_of, [loss for _o, _s, loss, _g, _c in found]))
        if None in values:
            offset, _step, loss, _grad, column = found[values.index(None)]
            raise InputError(source, f"{loss[:40]!r} is not a number", first + offset, column)
        losses.extend(values)
        marked = [step for _o, step, _l, _g, _c in found]
        unmarked += marked.count(None)
        steps.extend([np.nan if step is None else step for step in marked])
        grads.extend([np.nan if grad is None or (value := number_of(grad)) is None else value
                      for _o, _s, _l, grad, _c in found])
        line_of.extend([first + offset for offset, _s, _l, _g, _c in found])
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
