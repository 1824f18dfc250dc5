"""Plain-text training logs (stdout captured to a file): lines such as
``Epoch 3/10 ... Loss: 0.412``, ``[Epoch 1] train_loss=0.1397``, ``step 200 | loss 0.51 | grad_norm 3.2``
or a step line followed by a loss line. Built-in patterns find a step marker and the training
loss (never val_/test_/eval_ losses); ``--pattern`` replaces them with the user's regular
expression, whose named groups ``loss`` (required), ``step`` and ``grad_norm`` are read. The
built-in patterns run once per line shape, not once per line (``_SkeletonScan``)."""
from __future__ import annotations

import io
import re
from collections import Counter
from itertools import compress, repeat
from operator import itemgetter

import numpy as np
import pandas as pd

from ...errors import InputError, UsageError
from ..tables import Table, pandas_reads_exactly, to_float
from .lines import POSSESSIVE, first_lines, line_blocks, whole_lines

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


def _builtin_matches(line: str):
    """What the built-in patterns find in ``line``: the finest step marker, the loss and, on a
    line with a loss, the grad norm (each a match, or None)."""
    marker = STEP_MARKERS[0].search(line) or STEP_MARKERS[1].search(line)
    loss = LOSS.search(line)
    return marker, loss, loss and GRAD_NORM.search(line)


def _scan_builtin(lines: list[str], current: float | None):
    """(line offset, step, loss, grad norm, loss column) for each of ``lines`` that logs a loss,
    and the step in force after them: every line searched on its own, the reference the skeleton
    scan is tested against. A step marker on a line without a loss sets the step for the loss
    lines that follow it (``current`` comes from the lines before)."""
    found = []
    for offset, line in enumerate(lines):
        marker, m, g = _builtin_matches(line)
        if marker is not None:
            current = float(marker.group(1))
        if m is not None:
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


def _found_rows(found, first: int, number_of, source: str):
    """The loss lines a per-line scan ``found`` in the block whose first line is ``first``, as
    (line numbers, steps, losses, grad norms, how many lines had no step marker): NaN where a
    line had no step marker or no grad norm; a loss that is no number is an error at its line."""
    values = list(map(number_of, [loss for _o, _s, loss, _g, _c in found]))
    if None in values:
        offset, _step, loss, _grad, column = found[values.index(None)]
        raise InputError(source, f"{loss[:40]!r} is not a number", first + offset, column)
    marked = [step for _o, step, _l, _g, _c in found]
    grads = [np.nan if grad is None or (value := number_of(grad)) is None else value for _o, _s, _l, grad, _c in found]
    return (np.array([first + offset for offset, _s, _l, _g, _c in found], dtype=np.int64),
            np.array([np.nan if step is None else step for step in marked], dtype=np.float64),
            np.array(values, dtype=np.float64), np.array(grads, dtype=np.float64), marked.count(None))


def _searched_rows(block: str, first: int, current: float | None, source: str):
    """The built-in patterns' ``_found_rows`` of ``block`` (whose first line is ``first``),
    every line searched on its own, and the step in force after them."""
    found, current = _scan_builtin(block.split("\n"), current)
    return _found_rows(found, first, float, source), current   # the patterns match only what float() reads


_DIGIT_RUN = re.compile(r"[0-9]+")
_FOREIGN_DIGIT = re.compile(r"[^\D0-9]")   # a decimal digit other than 0-9 (\d matches those too)
_DIGITS = frozenset("0123456789")
# Lines are matched against at most MAX_TEMPLATES templates: with 16 that share a 40-character
# prefix, a line of the last is matched in half the time a line takes to search on its own.
MAX_TEMPLATES = 16
LEARN_SAMPLE = 1024     # lines no template matched whose skeletons are learnt at a time
LONGEST_TEMPLATE = 4096     # a longer line is searched on its own, never compiled into a template


def _column(found: list, number: int, groups: int):
    """Group ``number`` (from 0) of each entry of a findall with ``groups`` groups."""
    return iter(found) if groups == 1 else map(itemgetter(number), found)


def _literal(skeleton_part: str) -> str:
    """A regular expression for the text whose skeleton is ``skeleton_part``: '0' stands for a run of digits."""
    return "[0-9]+".join(map(re.escape, skeleton_part.split("0")))


def _template(skeleton: str) -> tuple[str, tuple[tuple[tuple[str, ...], dict | None], ...],
                                      tuple[bytes, bytes] | None] | None:
    """A regular expression matching exactly the lines whose skeleton is ``skeleton``, and what
    each of its groups captures: the names of the fields in it (of 'marker', 'loss', 'grad') and,
    when it holds several, a translation table to spaces for the characters between them. A
    group holds consecutive fields when the text between them has no digit and no character any
    of them can hold: a capture translated then splits at whitespace into its fields. Third, for
    a template of one group, how its lines translate whole into that capture translated
    (``_block_translation``; None when they do not). None if fields overlap, which one expression
    cannot capture (each field follows its own keyword and at most a separator, so they never do;
    such lines would be searched on their own)."""
    spans = sorted((m.span(1), name) for name, m in zip(("marker", "loss", "grad"), _builtin_matches(skeleton)) if m)
    if any(end > start for ((_s, end), _n), ((start, _e), _m) in zip(spans, spans[1:])):
        return None
    groups = []   # [start, end, names, texts between, characters the fields hold]
    for (start, end), name in spans:
        held = _DIGITS.union(skeleton[start:end])
        if groups:
            last = groups[-1]
            between = skeleton[last[1]:start]
            if between and not (held | last[4]).intersection(between + "".join(last[3])):
                last[1:] = [end, last[2] + (name,), last[3] + (between,), held | last[4]]
                continue
        groups.append([start, end, (name,), (), held])
    parts, at = [], 0
    for start, end, *_rest in groups:
        parts += [_literal(skeleton[at:start]), "(", _literal(skeleton[start:end]), ")"]
        at = end
    parts.append(_literal(skeleton[at:]))
    spaces = tuple(_separators(between) if between else None for _s, _e, _names, between, _held in groups)
    translation = _block_translation(skeleton[:groups[0][0]] + skeleton[groups[0][1]:], spaces[0], groups[0][4]) \
        if len(groups) == 1 else None
    return "".join(parts), tuple(zip((names for _s, _e, names, _b, _h in groups), spaces)), translation


def _block_translation(outside: str, spaces: dict | None, held: frozenset) -> tuple[bytes, bytes] | None:
    """For a template of one group: bytes.translate's table and deletions that make each of its
    lines what the group captures, translated by ``spaces``: the characters ``outside`` the group
    are deleted, which changes no field when none is a digit or a character a field holds (or
    the separator ``spaces`` makes a space of). So a block of such lines is read without
    capturing each line. None when that does not hold, or a character is not ASCII."""
    spaces = spaces or {}
    if not (outside + "".join(map(chr, spaces))).isascii() or held.intersection(outside) or \
            any(spaces.get(ord(char)) for char in outside):
        return None
    to_space = "".join(chr(code) for code, value in spaces.items() if value).encode()
    deleted = {chr(code) for code, value in spaces.items() if not value}.union(outside)
    return bytes.maketrans(to_space, b" " * len(to_space)), "".join(sorted(deleted)).encode()


def _separators(between: tuple[str, ...]) -> dict:
    """A translation table that makes a space of each text between a group's fields: where one
    character occurs once in each, that character becomes the space and the others go (the
    parser reads one space apart faster than runs of them); else each character is a space."""
    chars = "".join(between)
    for char in dict.fromkeys(chars):
        if all(text.count(char) == 1 for text in between):
            return str.maketrans({c: " " if c == char else None for c in chars})
    return str.maketrans(dict.fromkeys(chars, " "))


_PLAIN_NUMBERS = re.compile(rb"[0-9.+\- ]*")


def _numbers(text: bytes, width: int) -> np.ndarray:
    """The ``width`` numbers on each line of ``text`` (ASCII: fields one template captured,
    spaces between them), as float() reads them. Every line of a template has the skeleton of its
    first line, so the first tells: fields of digits, a point and signs alone are parsed by pandas'
    C parser from pandas 3.1 on, several times faster than numpy's loadtxt (faster still one space
    apart); others, spelling nan, inf or an exponent (which pandas reads otherwise: '-nan' loses
    its sign), and all under older pandas (whose one exact converter, round_trip, is slower than
    loadtxt), by loadtxt, which parses an ASCII field as float() does (PyOS_string_to_double)."""
    first = text[:text.find(b"\n") % (len(text) + 1)]   # the first line (the whole text when it is one)
    if pandas_reads_exactly() and _PLAIN_NUMBERS.fullmatch(first):
        sep = " " if len(first.split(b" ")) == width else r"\s+"
        try:
            return pd.read_csv(io.BytesIO(text), sep=sep, header=None, dtype=np.float64,
                               engine="c", na_filter=False).to_numpy()
        except (ValueError, OverflowError):   # pandas' parse errors: loadtxt says what is wrong
            pass
    return np.loadtxt(io.StringIO(text.decode("ascii")), dtype=np.float64, ndmin=2)


class _SkeletonScan:
    r"""The built-in patterns over a block of lines at C speed: training logs repeat a few lines
    that differ only in their digits.

    A line's skeleton is the line with every run of the digits 0-9 written as one '0'. Where no
    other decimal digit occurs (``\d`` matches those too), what the built-in patterns find depends
    only on the skeleton. No match starts on a digit (each starts with a keyword). Every digit they
    take is in a ``\d+`` or ``\d*`` that takes a run greedily and is closed by a non-digit,
    ``(?![\d.])`` or ``(?![\w.])``, so a group starts and ends at the edges of whole runs; one
    digit passes wherever a longer run does and the other way round (``\d+\.?\d*`` splits a
    run only to end where the whole run ends). The lookbehinds and keywords test one character,
    which is a digit in the line exactly where it is one in the skeleton. So the patterns run once
    per skeleton, and the skeleton becomes a template (``_template``) that matches exactly its
    lines and captures the text the patterns' groups capture. One findall of all templates gives
    every line of a block its fields; when some line matches none, a findall with a last
    alternative for any line finds them, their skeletons are learnt (up to MAX_TEMPLATES) and the
    block searched again, and what is still unmatched is searched line by line."""

    def __init__(self):
        self.sources: list[str] = []    # the templates, in the order they are tried
        self.groups: list[tuple] = []   # what each template's groups capture (see _template)
        self.known = self.any_line = None   # findall of the templates, and of them or any line
        self.whole_blocks = None   # the first template's, when it has one group: (fullmatch of its lines, translation)
        self.whole_misses = 0      # blocks in a row that the first template did not match whole
        self.all_known = True   # whether the templates matched every line of the last block
        self.enabled = True     # off once most lines of a block need searching on their own

    def _learn(self, lines) -> bool:
        """Add the templates of the most frequent skeletons of ``lines``, as many as MAX_TEMPLATES
        allows; False when none is added."""
        room = MAX_TEMPLATES - len(self.sources)
        short = [line for line in lines if len(line) <= LONGEST_TEMPLATE]
        skeletons = Counter(map(_DIGIT_RUN.sub, repeat("0"), short)).most_common(max(room, 0))
        learnt = [template for template in map(_template, (skeleton for skeleton, _count in skeletons)) if template]
        if not learnt:
            return False
        for source, groups, _translation in learnt:
            self.sources.append(source)
            self.groups.append(groups)
        first, translation = self.sources[0], learnt[0][2]
        if len(self.sources) == len(learnt) and translation is not None:   # the first skeletons learnt
            self.whole_blocks = (re.compile(f"{first}(?:\n{first})*" + "+" * POSSESSIVE).fullmatch, translation)
        templates = "|".join(self.sources)
        self.known = re.compile(f"^(?:{templates})$", re.M).findall
        self.any_line = re.compile(f"^(?:{templates}|(.*))$", re.M).findall
        return True

    def _search(self, block: str, count: int):
        """What the templates (some learnt already) capture in the ``count`` lines of ``block``,
        one entry a line, with the number of groups (an entry is a tuple of groups, or the one
        group's text), after learning the skeletons of lines no template matched; and (offset,
        line) for those still unmatched."""
        while True:
            width = sum(map(len, self.groups))
            if self.all_known or len(self.sources) < MAX_TEMPLATES:
                found = self.known(block)
                if len(found) == count:   # each match is one whole line: every line matched
                    self.all_known = True
                    return found, width, []
            found = self.any_line(block)
            unknown = [(offset, line) for offset, line in enumerate(_column(found, width, width + 1)) if line]
            self.all_known = not unknown
            if not unknown or not self._learn([line for _offset, line in unknown[:LEARN_SAMPLE]]):
                return found, width + 1, unknown

    def _fields(self, found: list, width: int, alone: list, count: int):
        """Each line's step marker, loss and grad norm (NaN where it has none) and whether it logs
        a loss, from what the templates captured (``found``, with ``width`` groups) and from
        searching the lines ``alone`` ((offset, line), which no template matched) on their own."""
        fields = {name: np.full(count, np.nan) for name in ("marker", "loss", "grad")}
        logs_loss = np.zeros(count, dtype=bool)
        number = 0
        for groups in self.groups:
            if not groups:
                continue
            everywhere = len(self.sources) == 1 and width == len(groups)   # one template, every line matched
            matched = np.ones(count, dtype=bool) if everywhere else \
                np.fromiter(map(bool, _column(found, number, width)), dtype=bool, count=count)
            rows = int(np.count_nonzero(matched))
            for names, spaces in groups:
                column = _column(found, number, width)
                number += 1
                if not rows:
                    continue
                if rows < count:
                    column = compress(column, matched)
                joined = "\n".join(column)
                values = _numbers((joined if spaces is None else joined.translate(spaces)).encode("ascii"), len(names))
                for name, value in zip(names, values.T):
                    fields[name][matched] = value
            if any("loss" in names for names, _spaces in groups):
                logs_loss |= matched
        for offset, line in alone:
            marker, loss, grad = _builtin_matches(line)
            if marker is not None:
                fields["marker"][offset] = float(marker.group(1))
            if loss is not None:
                logs_loss[offset] = True
                fields["loss"][offset] = float(loss.group(1))
                if grad is not None:
                    fields["grad"][offset] = float(grad.group(1))
        if 2 * len(alone) > count:
            self.enabled = False
        return fields["marker"], fields["loss"], fields["grad"], logs_loss

    def _whole_block(self, block: str, count: int):
        """``_fields`` of a block whose every line the first template (of one group) matches,
        read from the block translated whole: no line's capture is made (``_block_translation``);
        None for any other block. A line of another shape in two blocks in a row stops trying
        (each try may scan a block in vain)."""
        if self.whole_blocks is None or not block.isascii():
            return None
        if not self.whole_blocks[0](block):
            self.whole_misses += 1
            if self.whole_misses == 2:
                self.whole_blocks = None
            return None
        self.whole_misses, self.all_known = 0, True
        names = self.groups[0][0][0]
        values = _numbers(block.encode().translate(*self.whole_blocks[1]), len(names))
        fields = dict(zip(names, values.T))
        absent = np.full(count, np.nan)
        return (fields.get("marker", absent), fields.get("loss", absent), fields.get("grad", absent),
                np.full(count, "loss" in names))

    def rows(self, block: str, first: int, count: int, current: float | None, source: str):
        """The loss lines of ``block`` (whose first line is ``first``, ``count`` lines) as
        ``_found_rows`` gives them, and the step in force after them: what searching every line on
        its own gives."""
        if not self.enabled or (not block.isascii() and _FOREIGN_DIGIT.search(block)) or \
                (self.known is None and not self._learn(first_lines(block, LEARN_SAMPLE))):
            return _searched_rows(block, first, current, source)
        whole = self._whole_block(block, count)
        marker, loss, grad, logs_loss = whole if whole is not None else self._fields(*self._search(block, count), count)
        last_marker = np.where(np.isnan(marker), -1, np.arange(count))   # the line of the marker in force
        np.maximum.accumulate(last_marker, out=last_marker)
        step = np.where(last_marker >= 0, marker[last_marker], np.nan if current is None else current)
        if last_marker[-1] >= 0:
            current = float(marker[last_marker[-1]])
        offsets = np.flatnonzero(logs_loss)
        steps = step[offsets]
        return (first + offsets, steps, loss[offsets], grad[offsets], int(np.isnan(steps).sum())), current


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    """One column of the blocks' rows, its pieces let go as soon as they are joined (one column's
    pieces and its join at most live together, not all four columns twice)."""
    joined = np.concatenate(pieces)
    pieces.clear()
    return joined


def read_text(text: str, source: str, pattern: re.Pattern | None = None, *, by_skeleton: bool = True) -> Table:
    """One row per line that logs a training loss, searched a block of lines at a time into
    typed columns. When the step markers do not tell lines apart (several losses per epoch, or
    no marker at all), the order of the lines is the step. An unterminated last line is set
    aside with a note. ``by_skeleton=False`` searches every line on its own (the built-in
    patterns' reference; a user's pattern always is)."""
    body_end, set_aside = whole_lines(text)
    notes = list(set_aside)
    columns = ([np.zeros(0, np.int64)], [np.zeros(0)], [np.zeros(0)], [np.zeros(0)])   # each block's rows, joined once
    scan = _SkeletonScan() if pattern is None and by_skeleton else None
    current, unmarked = None, 0
    for first, block, count in line_blocks(text, body_end):
        if scan is not None:
            rows, current = scan.rows(block, first, count, current, source)
        elif pattern is None:
            rows, current = _searched_rows(block, first, current, source)
        else:
            rows = _found_rows(_scan_user(block.split("\n"), pattern), first, to_float, source)
        for column, values in zip(columns, rows):
            column.append(values)
        unmarked += rows[4]
    line_of, step_values, losses, grad_values = map(_joined, columns)
    if not len(losses):
        what = f"--pattern {pattern.pattern!r}" if pattern else "the built-in patterns (e.g. 'Epoch 3 ... loss: 0.41')"
        raise InputError(source, f"no line matches {what}; give --pattern REGEX with a (?P<loss>...) group")
    increasing = bool(np.all(step_values[1:] > step_values[:-1]))   # no step twice, without sorting
    if unmarked or (not increasing and len(np.unique(step_values)) < len(step_values)):
        if unmarked < len(step_values):
            notes.append("several losses share a step marker: the order of the loss lines is the step")
        step_values = np.arange(len(losses), dtype=np.float64)
    frame = pd.DataFrame({"step": step_values, "loss": losses})
    present = {"loss": np.ones(len(losses), bool)}
    if not np.all(np.isnan(grad_values)):
        frame["grad_norm"] = grad_values
    return Table(frame=frame, locate=lambda row, column: (int(line_of[row]), 1), notes=tuple(notes), present=present)
