"""A table drawn as plain text (no colour) exactly as rich draws a ``rich.table.Table`` with its
defaults (heavy-head box, one space of padding each side, header on top, columns as narrow as
their longest line), for the column options the verdict table uses.

rich builds a Text, a Padding, Segments and two Measurements per cell and re-wraps through
several generic layers: 1,000 runs take about a second, in the parent, after every ``--jobs``
worker is done. Here each cell is measured once (its longest line, which is all rich's column
widths depend on) and wrapped once, with rich's own primitives for everything a terminal decides
(cell widths of wide and combining characters, where a line may break, how a long word folds),
so the text is the same byte for byte (tests/test_table_speed_paths.py checks it against rich).

Only the layouts where rich's usual rules apply are drawn: where the columns that may wrap can
shrink enough for the table to fit, each column keeping room for a character. Otherwise
(``draw_table`` returns None) rich has to squeeze every column, and the caller lets rich draw it."""
from __future__ import annotations

import re
from typing import NamedTuple

from rich.box import HEAVY_HEAD
from rich.cells import cell_len, set_cell_size

try:   # rich's private wrapping helpers: a release without them leaves every table to rich itself
    from rich._ratio import ratio_reduce
    from rich._wrap import divide_line
except ImportError:
    ratio_reduce = divide_line = None

# Each cell has one space of padding on each side; each column is bordered by one character.
PADDING = 2
TRAILING_WHITESPACE = re.compile(r"\s+$")


class TableColumn(NamedTuple):
    """The options of a column, as ``rich.table.Table.add_column`` takes them."""

    header: str
    justify: str = "left"          # "left" or "right"
    no_wrap: bool = False
    overflow: str = "ellipsis"     # "fold" breaks a word longer than the column, "ellipsis" cuts it with …
    max_width: int | None = None


def draw_table(columns: list[TableColumn], rows: list[tuple[str, ...]], width: int) -> str | None:
    """The table's lines (each ending in a newline) as rich draws them at ``width`` columns, or
    None when rich would have to squeeze columns that do not wrap, or lacks the helpers used here.
    Cells are plain text without tabs or control characters other than newlines (what
    render.visible leaves)."""
    if divide_line is None or ratio_reduce is None:
        return None
    if any(c.justify not in ("left", "right") for c in columns):
        raise ValueError("a column is justified left or right")
    cells = [[c.header] + [row[i] for row in rows] for i, c in enumerate(columns)]
    widths = column_widths(columns, [max(map(longest_line, texts)) for texts in cells], width - border_width(columns))
    if widths is None:
        return None
    box = HEAVY_HEAD   # its last row's characters (rich's "foot") are those of the middle rows
    lines = [box.get_top(widths)]
    for index, row in enumerate(zip(*cells)):
        wrapped = [wrap(text, w - PADDING, c) for text, w, c in zip(row, widths, columns)]
        height = max(map(len, wrapped))
        if index == 0:   # the header sits at the bottom of its row
            shaped = [[" " * w] * (height - len(cell)) + [f" {line} " for line in cell] for cell, w in zip(wrapped, widths)]
            lines += [box.head_left + box.head_vertical.join(parts) + box.head_right for parts in zip(*shaped)]
            lines.append(box.get_row(widths, "head"))
        else:            # a run's cells at the top of theirs
            shaped = [[f" {line} " for line in cell] + [" " * w] * (height - len(cell)) for cell, w in zip(wrapped, widths)]
            lines += [box.mid_left + box.mid_vertical.join(parts) + box.mid_right for parts in zip(*shaped)]
    lines.append(box.get_bottom(widths))
    return "\n".join(lines) + "\n"


def border_width(columns: list[TableColumn]) -> int:
    """The edges and the dividers between columns."""
    return len(columns) + 1


def longest_line(text: str) -> int:
    """The cells of the widest line: the most a column needs for this text (rich measures lines
    as ``str.splitlines`` cuts them)."""
    return max(map(cell_len, text.splitlines()), default=0)


def column_widths(columns: list[TableColumn], longest: list[int], available: int) -> list[int] | None:
    """Each column's width with its padding: its longest line, capped by its max_width and what
    is available; when the sum does not fit, the widest columns that wrap shrink towards the
    next widest until it does. None when that is not enough, or a column would hold no text."""
    widths = [fitted(n, available, c.max_width) for n, c in zip(longest, columns)]
    if sum(widths) > available:
        widths = shrink_wrapping_columns(widths, [not c.no_wrap for c in columns], available)
        if sum(widths) > available:
            return None
        widths = [fitted(n, w, c.max_width) for n, w, c in zip(longest, widths, columns)]
    return widths if min(widths) > PADDING else None


def fitted(longest: int, available: int, max_width: int | None) -> int:
    """A column's width for its longest line within ``available`` cells (at least 3, so that
    the padding leaves one)."""
    width = min(longest, available - PADDING) + PADDING
    return width if max_width is None else min(width, max_width + PADDING)


def shrink_wrapping_columns(widths: list[int], wrapping: list[bool], available: int) -> list[int]:
    """rich's collapse: the widest wrapping columns give up cells, never past the next widest
    wrapping column, until the table fits or they cannot shrink further."""
    excess = sum(widths) - available
    while excess > 0 and any(wrapping):
        widest = max(w for w, wraps in zip(widths, wrapping) if wraps)
        next_widest = max((w for w, wraps in zip(widths, wrapping) if wraps and w != widest), default=0)
        if widest == next_widest:
            break
        ratios = [int(wraps and w == widest) for w, wraps in zip(widths, wrapping)]
        widths = ratio_reduce(excess, ratios, [min(excess, widest - next_widest)] * len(widths), widths)
        excess = sum(widths) - available
    return widths


def wrap(text: str, width: int, column: TableColumn) -> list[str]:
    """The text's lines in a cell ``width`` cells wide, each exactly that wide: broken at
    newlines, then between words (a word too long for the column folded or cut, as the column
    says), unless the column does not wrap; justified, and cut where still too long."""
    lines = []
    for line in text.split("\n"):
        if column.no_wrap:
            pieces = [line]
        else:
            breaks = [0, *divide_line(line, width, fold=column.overflow == "fold"), len(line)]
            pieces = [strip_spaces_beyond(line[a:b], width) for a, b in zip(breaks, breaks[1:])]
        for piece in pieces:
            if column.justify == "left":
                piece = fit(piece, width, column.overflow, pad=True)
            else:
                piece = fit(piece.rstrip(), width, column.overflow)
                piece = " " * (width - cell_len(piece)) + piece
            lines.append(fit(piece, width, column.overflow))
    return lines


def strip_spaces_beyond(piece: str, width: int) -> str:
    """Trailing whitespace dropped where the piece has more characters than the width (rich
    counts characters here, not cells)."""
    excess = len(piece) - width
    if excess > 0:
        spaces = TRAILING_WHITESPACE.search(piece)
        if spaces:
            piece = piece[:-min(len(spaces.group()), excess)]
    return piece


def fit(piece: str, width: int, overflow: str, pad: bool = False) -> str:
    """Cut to ``width`` cells (the last one an ellipsis under "ellipsis"), or padded to it."""
    cells = cell_len(piece)
    if cells > width:
        piece = set_cell_size(piece, width - 1) + "…" if overflow == "ellipsis" else set_cell_size(piece, width)
    if pad and cells < width:
        piece += " " * (width - cells)
    return piece
