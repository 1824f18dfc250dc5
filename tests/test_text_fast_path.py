"""Plain-text logs read by skeleton (text._SkeletonScan, issue #20 item 3) give the table that
searching every line on its own gives. Oracle: ``read_text(..., by_skeleton=False)``, the per-line
scan (also the fallback the fast path takes for what it cannot prove): the same steps, losses and
grad norms bit for bit, line numbers, notes and errors, on generated logs (interleaved line
shapes whose digits vary, step and epoch lines alone, keywords with tricky neighbours, numbers
glued to words, signs, exponents, nan/inf, non-ASCII text and digits, blank and unterminated
lines, blocks cut anywhere, few templates allowed) and on every text file of the real logs."""
import os
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siamdiag.errors import InputError
from siamdiag.logs import textfile
from siamdiag.logs.readers import lines as shared_lines
from siamdiag.logs.readers import text

from .test_readers import REAL

SEARCH = text._builtin_matches   # the patterns searched on one line (tests count its calls)

MARKER_WORDS = ["step", "Step", "STEP", "global_step", "global step", "Iteration", "iter", "it", "batch", "Batch",
                "Epoch", "epoch", "Epoch number", "epoch  Number", "xstep", "steps", "_step", "it/s"]
LOSS_WORDS = ["loss", "Loss", "LOSS", "train_loss", "training loss", "trn-loss", "train/loss", "val_loss", "test_loss",
              "eval_loss", "loss_fn", "avg loss", "mean_loss", "total loss", "current loss", "Current Loss", "losses",
              "xloss", "train loss", "'loss'"]
GRAD_WORDS = ["grad_norm", "gradient norm", "Grad Norm", "gradnorm", "grad", "gradient_norm", "grad-norm"]
LINKS = ["", " ", ": ", "=", " is ", "#", "[", " :  ", "/", "\t", " = ", "': "]
SEPARATORS = [" ", "  ", ", ", " | ", "|", "]", "(", ")", "-", "_", ".", "{", "\r", "\x0b", "; ", "\t"]
WORDS = ["abc", "e", "E", "x", "lr", "acc", "number", "é", "損失", "█▌", "K", "ſtep", "1.2.3", "٣", "１", "nan", "NaN",
         "-inf", "Infinity", "INF", "+nan", "infinity"]   # '٣', '１': decimal digits other than 0-9
# Number shapes: '#' is a run of digits whose length varies from line to line.
SHAPES = ["#", "#.#", "#e-#", "#.#E+#", ".#", "#.", "-#.#", "+#", "-0.0", "#e#", ".#e-#", "#.#.#", "#:#:#"]
HOLE = "\0"
NUMBERS = st.one_of(st.sampled_from(SHAPES).map(lambda shape: HOLE + shape), st.sampled_from(WORDS[-7:]))
FILLER = st.lists(st.one_of(st.sampled_from(SEPARATORS), st.sampled_from(WORDS), NUMBERS,
                            st.sampled_from(MARKER_WORDS + LOSS_WORDS + GRAD_WORDS)), max_size=3)


def field(words):
    return st.tuples(st.sampled_from(words), st.sampled_from(LINKS), NUMBERS).map(list)


@st.composite
def pieces(draw):
    """A line's shape: a step marker, a loss and a grad norm, each maybe, in some order, with
    other text around them (separators, words, numbers, keywords); a number is HOLE + its shape."""
    fields = [draw(field(words)) for words in (MARKER_WORDS, LOSS_WORDS, GRAD_WORDS) if draw(st.booleans())]
    shape = draw(FILLER)
    for piece in draw(st.permutations(fields)):
        shape += [draw(st.sampled_from(SEPARATORS))] + piece + draw(FILLER)
    return shape


def render(shape: list[str], draw) -> str:
    """One line of ``shape``, each digit run of each number drawn afresh (1 to 5 digits)."""
    out = []
    for piece in shape:
        if piece.startswith(HOLE):
            piece = "".join(draw(st.text("0123456789", min_size=1, max_size=5)) if c == "#" else c for c in piece[1:])
        out.append(piece)
    return "".join(out)


@st.composite
def logs(draw):
    """A log of a few line shapes interleaved (and some blank or one-off lines), ending with or
    without a newline."""
    shapes = draw(st.lists(pieces(), min_size=1, max_size=6))
    choices = st.one_of(st.integers(0, len(shapes) - 1), st.just("blank"), st.just("one-off"))
    lines = []
    for choice in draw(st.lists(choices, min_size=1, max_size=60)):
        if choice == "blank":
            lines.append("")
        else:
            lines.append(render(draw(pieces()) if choice == "one-off" else shapes[choice], draw))
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


def outcome(log: str, **options):
    """What read_text gives: the table cell for cell (floats as their bits), notes and every
    row's line; or the error with its line and column."""
    try:
        table = text.read_text(log, "train.log", **options)
    except InputError as exc:
        return "error", str(exc), exc.line, exc.column
    frame = table.frame
    return ("table", list(frame.columns), [frame[c].to_numpy().dtype for c in frame.columns],
            [frame[c].to_numpy().view(np.int64).tolist() for c in frame.columns], table.notes,
            [table.locate(row, "loss") for row in range(len(frame))])


@settings(max_examples=400, deadline=None)
@given(log=logs(), block_chars=st.sampled_from([16, 90, 1 << 20]), max_templates=st.sampled_from([1, 3, 16]),
       longest=st.sampled_from([20, 4096]))
def test_generated_logs_read_as_every_line_searched(log, block_chars, max_templates, longest):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(shared_lines, "BLOCK_CHARS", block_chars)
        patch.setattr(text, "MAX_TEMPLATES", max_templates)
        patch.setattr(text, "LONGEST_TEMPLATE", longest)
        assert outcome(log) == outcome(log, by_skeleton=False)


def random_log(rng: random.Random) -> str:
    """A longer log than the property above draws: 2 to 8 line shapes, most with a marker, a loss
    and a grad norm in some order, interleaved over 50 to 400 lines with blank and one-off lines."""
    def shape():
        fields = [[rng.choice(words), rng.choice(LINKS), number()] for words in (MARKER_WORDS, LOSS_WORDS, GRAD_WORDS)
                  if rng.random() < 0.7]
        rng.shuffle(fields)
        return filler() + [piece for f in fields for piece in [rng.choice(SEPARATORS)] + f + filler()]

    def number():
        return HOLE + rng.choice(SHAPES) if rng.random() < 0.9 else rng.choice(WORDS[-7:])

    def filler():
        return [rng.choice([rng.choice(SEPARATORS), rng.choice(WORDS), number(), rng.choice(MARKER_WORDS)])
                for _ in range(rng.choice([0, 0, 0, 1, 2]))]

    def line(pieces):
        out = []
        for piece in pieces:
            if piece.startswith(HOLE):
                piece = "".join("".join(rng.choices("0123456789", k=rng.randint(1, 6))) if c == "#" else c
                                for c in piece[1:])
            out.append(piece)
        return "".join(out)

    shapes = [shape() for _ in range(rng.randint(2, 8))]
    weights = [rng.random() ** 2 for _ in shapes]
    lines = ["" if rng.random() < 0.03 else line(shape() if rng.random() < 0.03 else rng.choices(shapes, weights)[0])
             for _ in range(rng.randint(50, 400))]
    return "\n".join(lines) + rng.choice(["\n", ""])


@pytest.mark.parametrize("seed", range(8))
def test_random_logs_read_as_every_line_searched(seed, monkeypatch):
    rng = random.Random(seed)
    tables = 0
    for _ in range(25):
        log = random_log(rng)
        monkeypatch.setattr(shared_lines, "BLOCK_CHARS", rng.choice([300, 3000, 1 << 20]))
        monkeypatch.setattr(text, "MAX_TEMPLATES", rng.choice([2, 16]))
        monkeypatch.setattr(text, "LONGEST_TEMPLATE", rng.choice([30, 4096]))
        expected = outcome(log, by_skeleton=False)
        assert outcome(log) == expected
        tables += expected[0] == "table"
    assert tables >= 15   # most logs log losses: the comparison is not between two errors


@settings(max_examples=400, deadline=None)
@given(data=st.data(), shape=pieces())
def test_a_template_captures_what_the_patterns_capture(data, shape):
    # The skeleton argument line by line: the template of a line's skeleton matches the line (and
    # no line of another skeleton) and captures exactly the text of the built-in patterns' groups.
    line = render(shape, data.draw)
    if re.search(r"[^\D0-9]", line) or "\n" in line:
        return   # foreign digits are read line by line; a line has no newline
    skeleton = text._DIGIT_RUN.sub("0", line)
    template = text._template(skeleton)
    assert template is not None   # the patterns' fields never overlap
    source, groups, translation = template
    match = re.fullmatch(source, line)
    assert match is not None
    for other in (text._DIGIT_RUN.sub("", line, count=1), line.replace("0", "0x", 1), line + "7"):
        # a line of another skeleton: a digit run gone, a run cut in two, one added
        assert (re.fullmatch(source, other) is None) == (text._DIGIT_RUN.sub("0", other) != skeleton)
    spans = sorted((m.span(1), name) for name, m in zip(("marker", "loss", "grad"), text._builtin_matches(line)) if m)
    captured = []
    for capture, (names, spaces) in zip(match.groups(), groups):
        fields = [capture] if spaces is None else capture.translate(spaces).split()
        assert len(fields) == len(names)
        captured += zip(names, fields)
    assert captured == [(name, line[start:end]) for (start, end), name in spans]
    if translation is not None:   # a template of one group: the line translated whole is its capture translated
        (capture,), ((_names, spaces),) = match.groups(), groups
        assert line.encode().translate(*translation) == (capture if spaces is None else capture.translate(spaces)).encode()


def test_blocks_of_one_line_shape_are_read_whole(monkeypatch):
    # 3,000 lines of one shape, as a training script prints them, in blocks of about 4,000
    # characters: each block is translated whole (no findall of its lines) and the table is the
    # per-line scan's. A block with a line of another shape is read by findall, and the blocks
    # after it whole again; lines of other shapes in two blocks in a row stop the trying.
    line = "step {i} | loss: {loss:.6f} | grad_norm: {grad:.6f}\n"
    lines = [line.format(i=i, loss=1 / (i + 1), grad=i % 7 + 0.5) for i in range(3000)]
    log = "".join(lines)
    once = "".join(lines[:1500]) + "Epoch 2 done\n" + "".join(lines[1500:])
    often = "".join(f"eval {i} acc 0.5\n" * (i % 50 == 0) + text for i, text in enumerate(lines))
    monkeypatch.setattr(shared_lines, "BLOCK_CHARS", 4000)
    tries = []
    scan = text._SkeletonScan._whole_block

    def spy(self, block, count):   # a try is a block met while the first template is being tried
        trying = self.whole_blocks is not None
        fields = scan(self, block, count)
        if trying:
            tries.append(fields is not None)
        return fields

    monkeypatch.setattr(text._SkeletonScan, "_whole_block", spy)
    for log, expected in ((log, lambda t: len(t) > 20 and all(t)),
                          (once, lambda t: t.count(False) == 1 and t.count(True) > 20),
                          (often, lambda t: t == [False, False])):
        tries.clear()
        assert outcome(log) == outcome(log, by_skeleton=False)
        assert expected(tries), tries


def test_lines_differing_only_in_digits_are_searched_once(monkeypatch):
    # 3,000 lines of three shapes (steps alone, then losses with and without a grad norm): the
    # patterns search one line of each shape, and the table is the per-line scan's.
    log = "".join(f"Epoch {e}/30\n[{e}] train/loss is nonsense\n  iter {i}: loss={0.5 / (i + 1):.6g}"
                  + (f", grad_norm: {i * 1e-3:.3e}\n" if i % 2 else "\n") for e in range(30) for i in range(34))
    reference = outcome(log, by_skeleton=False)
    searched = []
    monkeypatch.setattr(text, "_builtin_matches", lambda line: searched.append(line) or SEARCH(line))
    assert outcome(log) == reference
    assert len(reference[3][0]) == 30 * 34 and len(set(searched)) == len(searched) <= 12


def test_fields_holding_characters_of_the_text_between_them_are_captured_apart():
    # 'nan' holds the 'n' and 'a' of ' | grad_norm: '; '1.500e-05' the 'e' of ' e grad_norm ', and
    # '2.50e+00' that of ' e loss ' before the loss: one group for such fields would split them
    # wrongly. Oracle by construction, and the per-line scan.
    shapes = ["step {i} | loss: {loss} | grad_norm: {grad}", "iter {i} loss {loss:.3e} e grad_norm {grad}",
              "step {i} e loss {loss} | grad_norm {grad:.2e}"]
    lines, losses, grads = [], [], []
    for i in range(300):
        loss, grad = (float("nan"), i / 8) if i % 4 == 0 else (i * 1e-5, i / 4)
        lines.append(shapes[i % 3].format(i=i, loss=loss, grad=grad))
        losses.append(float(f"{loss:.3e}") if i % 3 == 1 else loss)
        grads.append(float(f"{grad:.2e}") if i % 3 == 2 else grad)
    log = "\n".join(lines) + "\n"
    table = text.read_text(log, "train.log")
    np.testing.assert_array_equal(table.frame["loss"], losses)
    np.testing.assert_array_equal(table.frame["grad_norm"], grads)
    assert table.frame["step"].tolist() == list(range(300))
    assert outcome(log) == outcome(log, by_skeleton=False)


def test_foreign_digits_and_too_many_shapes_fall_back_to_searching_each_line(monkeypatch):
    # \d also matches '٣': a block holding one is searched line by line; so are lines beyond
    # MAX_TEMPLATES shapes, and once they are most of a block, the blocks after it.
    foreign = "step 1 loss 0.5\nstep ٣ loss 0.25 grad_norm=2\n" * 50
    varied = "".join(f"step {i} {'x' * (i % 40)} loss {i / 7} grad norm {i % 9}\n" for i in range(400))
    for log in (foreign, varied):
        reference = outcome(log, by_skeleton=False)
        searched = []
        monkeypatch.setattr(text, "_builtin_matches", lambda line: searched.append(line) or SEARCH(line))
        monkeypatch.setattr(shared_lines, "BLOCK_CHARS", 1000)
        assert outcome(log) == reference and len(reference[3][0]) == log.count("\n") and len(reference[1]) == 3
        assert len(searched) > log.count("\n") / 2
        monkeypatch.undo()


def test_steps_carry_across_blocks_and_step_lines_alone(monkeypatch):
    # oracle by construction: each loss line takes the last marker above it, a step marker over an epoch one
    log = "no marker loss 1.5\n" + "".join(f"epoch {e}\n" + "".join(f"step {10 * e + i} batch stuff\nloss: {e}.{i}\n"
                                                                  for i in range(3)) for e in range(1, 40))
    monkeypatch.setattr(shared_lines, "BLOCK_CHARS", 50)
    table = text.read_text(log, "train.log")
    expected = [1.5] + [float(f"{e}.{i}") for e in range(1, 40) for i in range(3)]
    assert table.frame["loss"].tolist() == expected
    assert table.frame["step"].tolist() == list(range(len(expected)))   # one line without a marker: order is the step
    assert outcome(log) == outcome(log, by_skeleton=False)
    marked = log.split("\n", 1)[1]
    assert text.read_text(marked, "train.log").frame["step"].tolist() == [10 * e + i for e in range(1, 40) for i in range(3)]


def _text_files():
    roots = [REAL, os.path.join(os.path.dirname(__file__), "data")]
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in sorted(names):
                path = os.path.join(folder, name)
                try:
                    yield pytest.param(textfile.read_text(path, name), id=name[-60:])
                except InputError:   # binary: not a text log
                    continue


@pytest.mark.parametrize("log", list(_text_files()))
@pytest.mark.parametrize("block_chars", [64, 1 << 20])
def test_real_files_read_as_every_line_searched(log, block_chars, monkeypatch):
    monkeypatch.setattr(shared_lines, "BLOCK_CHARS", block_chars)
    assert outcome(log) == outcome(log, by_skeleton=False)
