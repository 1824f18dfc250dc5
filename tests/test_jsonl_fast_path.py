"""JSON lines read as CSV (jsonlog._numbers_at_once, issue #20 item 3) give the table json.loads
gives. Oracle: read_jsonl with the fast path switched off, which decodes every line with json (the
path it falls back to for whatever it cannot prove): the same columns, dtypes and values bit for
bit, the same cells logged, line numbers, notes and errors. Inputs: generated logs (key sets,
orders and formatting drawn, numbers of every JSON shape, lines that break the pattern in every
way a line can), lines crafted against each step of the proof, real records re-serialised as JSON
lines, and clean logs that must take the fast path whole."""
import json
import os
import re
import struct
import sys
from contextlib import ExitStack
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siamdiag.errors import InputError
from siamdiag.logs.readers import jsonlog, lines

from .test_readers import REAL


def read(text: str, fast: bool = True, block_chars: int | None = None):
    """read_jsonl's table, or the InputError it raises; with ``fast`` False, as json decodes it."""
    with ExitStack() as stack:
        if not fast:
            stack.enter_context(mock.patch.object(jsonlog, "_numbers_at_once", lambda block, count: None))
        if block_chars:
            stack.enter_context(mock.patch.object(lines, "BLOCK_CHARS", block_chars))
        try:
            return jsonlog.read_jsonl(text, "log.jsonl")
        except InputError as exc:
            return exc


def _cell(value):
    """A cell compared exactly: its type, and a float by its bits (NaN, -0.0)."""
    return (type(value), struct.pack("<d", value) if isinstance(value, float) else value)


def assert_same(got, expected, text: str) -> None:
    if isinstance(expected, InputError):
        assert isinstance(got, InputError), f"expected {expected}, got a table"
        assert (str(got), got.line, got.column) == (str(expected), expected.line, expected.column)
        return
    assert not isinstance(got, InputError), f"unexpected {got}"
    assert list(got.frame.columns) == list(expected.frame.columns)
    assert got.frame.index.equals(expected.frame.index)
    for name in expected.frame.columns:
        a, b = got.frame[name].to_numpy(), expected.frame[name].to_numpy()
        assert a.dtype == b.dtype, name
        if a.dtype == object:
            assert list(map(_cell, a)) == list(map(_cell, b)), name
        else:
            assert a.tobytes() == b.tobytes(), name   # bit for bit: NaN payloads and -0.0 too
    assert got.present.keys() == expected.present.keys()
    for name in expected.present:
        np.testing.assert_array_equal(got.present[name], expected.present[name])
    assert got.notes == expected.notes
    rows = len(expected.frame)
    for row in sorted({0, rows - 1, *range(0, rows, max(1, rows // 40))}):   # locate scans the text: a sample
        for name in [None, *expected.frame.columns]:
            assert got.locate(row, name) == expected.locate(row, name)


def fast_blocks(text: str, block_chars: int | None = None) -> tuple[int, int]:
    """(blocks read by the fast path, blocks) for ``text``."""
    results = []

    def spy(block, count):
        results.append(numbers_at_once(block, count))
        return results[-1]

    numbers_at_once = jsonlog._numbers_at_once
    with mock.patch.object(jsonlog, "_numbers_at_once", spy):
        read(text, block_chars=block_chars)
    return sum(r is not None for r in results), len(results)


# Numbers as JSON writes them, and tokens a line may hold instead (most of them not JSON numbers).
INTS = st.one_of(st.integers(-1000, 10 ** 6), st.integers(-2 ** 70, 2 ** 70),
                 st.sampled_from([0, 2 ** 53, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, -2 ** 63, -2 ** 63 - 1, 2 ** 64,
                                  10 ** 400])).map(str)
FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: f"{v:.6f}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.17e}"),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda v: f"{v:.25E}"),
    st.tuples(st.text("0123456789", min_size=1, max_size=3).filter(lambda s: s == "0" or s[0] != "0"),
              st.text("0123456789", min_size=1, max_size=30), st.sampled_from(["", "e5", "E-3", "e+308", "e-330", "e400", "e-05"]),
              st.booleans()).map(lambda t: ("-" if t[3] else "") + t[0] + "." + t[1] + t[2]),
    st.sampled_from(["-0.0", "0.0", "-0e0", "1E5", "1e-400", "2.2250738585072011e-308", "4.9e-324",
                     "9223372036854775808.0", "1e400", "-1e400", "123456789012345678901234567890.5"]),
)
NOT_NUMBERS = ["+1", "01", "-01", "00", "1.", ".5", "-.5", "1.e5", "1e", "1e+", "--1", "-",
                                    "1.2.3", "1e5e5", "0x10", "1_000", "inf", "nan", "-0", "NaN", "Infinity",
                                    "-Infinity", "1 2", "1,2", '"1"', "true", "null", "[1]", "{}", "1\u00a0",
              "+.5", "+0", "00.5", "-00", "0e", "1.5.", ".", "+", "e5", "-e5", "1E", "0.", "1.e-5", "-", "0-1", "1e5.5",
              "1+1", "2.5e+"]   # "-0" is one
ODD_TOKENS = st.sampled_from(NOT_NUMBERS)
ODD_VALUES = st.sampled_from(["null", "NaN", "Infinity", "-Infinity", "true", "false", '"s"', '"\\u0001"', "[1, 2]",
                              '{"a": 1}', '""', '"a,b"'])
KEYS = ["step", "loss", "grad_norm", "lr", "e", "E", "1", "", "a b", "x,y", "x:y", "x}", "{", "é", "损失",
        "train/loss", "lo\\u0073s", "loss ", '\\"q'] + [f"k{i}" for i in range(30)]


@st.composite
def layouts(draw):
    """The whitespace of a line: at both ends, inside the braces, around each ':' and ','."""
    space = st.sampled_from(["", " ", "  ", "\t"])
    return {part: draw(space) for part in ("lead", "open", "colon", "value", "comma", "key", "close", "trail")}


def render(pairs: list[tuple[str, str]], layout: dict) -> str:
    members = f'{layout["comma"]},{layout["key"]}'.join(f'"{key}"{layout["colon"]}:{layout["value"]}{value}'
                                                        for key, value in pairs)
    return f'{layout["lead"]}{{{layout["open"]}{members}{layout["close"]}}}{layout["trail"]}'


@st.composite
def logs(draw):
    """A log of one line pattern (keys, their order and kinds, whitespace) with its numbers drawn
    line by line, and some lines that break it: keys reordered, missing, added or duplicated,
    other values, other whitespace, blank lines, JSON that is not numbers, text that is not JSON,
    an unterminated last line."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=6, unique=True)) \
        if draw(st.integers(0, 9)) else [f"k{i}" for i in range(draw(st.integers(27, 31)))]
    kinds = [draw(st.sampled_from([INTS, FLOATS, st.one_of(INTS, FLOATS), st.integers(0, 99).map(str)])) for _ in keys]
    layout = draw(layouts())
    breaks = draw(st.sampled_from([0, 0, 0.02, 0.2]))
    out = []
    for _ in range(draw(st.integers(1, 60))):
        pairs = [(key, draw(kind)) for key, kind in zip(keys, kinds)]
        line_layout = layout
        if draw(st.floats(0, 1)) < breaks:
            how = draw(st.integers(0, 6))
            if how == 0:
                pairs = draw(st.permutations(pairs))
            elif how == 1 and len(pairs) > 1:
                del pairs[draw(st.integers(0, len(pairs) - 1))]
            elif how == 2:
                pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(KEYS)), draw(FLOATS)))
            elif how == 3:
                i = draw(st.integers(0, len(pairs) - 1))
                pairs[i] = (pairs[i][0], draw(st.one_of(ODD_VALUES, ODD_TOKENS)))
            elif how == 4:
                line_layout = draw(layouts())
            elif how == 5:   # a line cut short, as a crash leaves it
                line = render(pairs, line_layout)
                out.append(line[:draw(st.integers(0, len(line) - 1))])
                continue
            else:
                out.append(draw(st.sampled_from(["", "  ", "\t", "\x1f", "[1]", "7", "{}", '{"step": 1} x', "{",
                                                 '{"step": 1\x01 2}', "\x01"])))
                continue
        out.append(render(pairs, line_layout))
    text = "\n".join(out) + "\n"
    if draw(st.integers(0, 4)) == 0:
        text += draw(st.sampled_from(['{"step": 3, "lo', render([(keys[0], "1")], layout)]))
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(logs(), st.sampled_from([None, 1, 60, 400]))
def test_generated_logs_read_as_json_reads_them(text, block_chars):
    assert_same(read(text, block_chars=block_chars), read(text, fast=False), text)


def _uniform(n: int, seed: int, sort_keys: bool = False) -> str:
    """n lines as loggers write them (json.dumps): ints, rounded and full-precision floats,
    exponents, negatives, keys with '/' and spaces."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        record = {"iteration": i, "total_loss": round(float(rng.random()), 6), "lr": float(1e-5 * rng.random()),
                  "fast_rcnn/cls accuracy": -float(rng.standard_normal()), "memory": int(rng.integers(1, 10 ** 12)),
                  "eta_seconds": float(rng.random() * 10.0 ** rng.integers(-30, 18))}
        out.append(json.dumps(record, sort_keys=sort_keys))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("block_chars", [None, 2000])
@pytest.mark.parametrize("sort_keys", [False, True])
def test_clean_logs_take_the_fast_path_whole(block_chars, sort_keys):
    text = _uniform(3000, 1, sort_keys)
    fast, blocks = fast_blocks(text, block_chars)
    assert fast == blocks and blocks >= (1 if block_chars is None else 10)
    assert_same(read(text, block_chars=block_chars), read(text, fast=False), text)


LINE = '{"step": %s, "loss": %s, "grad_norm": %s}'
CLEAN = "".join(LINE % (i, 1 / (i + 1), i * 0.5) + "\n" for i in range(20))
CRAFTED = {   # (log, whether the fast path may read it)
    "keys swapped in the middle, joints alike": (CLEAN + '{"step": 20, "grad_norm": 1.5, "loss": 0.25}\n', False),
    "a line that closes early": (CLEAN + '{"step": 20, "loss": 1}, "grad_norm": 3}\n', False),
    "a control character in a line": (CLEAN + '{"step": 20\x012, "grad_norm": 3}\n', False),
    "a control character between two numbers": ('{"a": 1, "b": 2}\n{"a": 3\x014}\n', False),
    "a control character in place of a key holding e": ('{"a": 1, "epoch": 2}\n{"a": 3\x014}\n', False),
    "keys holding number characters swapped": ('{"s": 1, "epoch": 2, "e2": 3}\n{"s": 4, "e2": 5, "epoch": 6}\n', False),
    "a key's e moved into a number": ('{"step": 1, "x": 2}\n{"stp": 1e, "x": 2}\n', False),
    "keys holding e, no exponent in the numbers": ("".join('{"step": %d, "epoch": %r}\n' % (i, i / 3) for i in range(9)),
                                                    True),
    "keys holding e, an exponent in one number": ("".join('{"step": %d, "epoch": %r}\n' % (i, i / 3) for i in range(9))
                                                   + '{"step": 9, "epoch": 1e-05}\n', True),
    "keys holding every number character": ("".join('{"e-1.5E+2": %d, "loss_0": %r, "x": -%d}\n' % (i, i / 3, i)
                                                    for i in range(9)), True),
    "keys holding points": ("".join('{"train.loss": %r, "v1.2": %d, "a.": 0.5}\n' % (i / 3, i) for i in range(9)), True),
    "a key holding a point beside a digit": ("".join('{"x.5": %r}\n' % (i / 3) for i in range(9)), False),
    "a key holding a colon and a digit": ("".join('{"a:1": %r, "b": %d}\n' % (i / 7, i) for i in range(9)), True),
    "the joint missing": (CLEAN.replace("}\n{", "}\n\n{", 1), False),
    "a blank last line": (CLEAN + "\n", False),
    "an unterminated last line": (CLEAN + '{"step": 20, "lo', True),
    "an unterminated complete line": (CLEAN + LINE % (20, 1, 2), True),
    "a line without its closing brace, the next without its opening": (
        CLEAN + '{"step": 20, "loss": 1, "grad_norm": 2\n21, "loss": 3, "grad_norm": 4}\n' + CLEAN, False),
    "a last line without its closing brace": (CLEAN + '{"step": 20, "loss": 1, "grad_norm": 35\n', False),
    "a line with a trailing comma": (CLEAN + '{"step": 20, "loss": 1, "grad_norm": 3,}\n', False),
    "a literal repeated inside a line": (CLEAN + '{"step": 20, "loss": 1, "loss": 2, "grad_norm": 3}\n', False),
    "duplicate keys in the first line": ('{"a": 1, "a": 2}\n{"a": 3, "a": 4}\n', False),
    "an int written -0 in an int column": (CLEAN + LINE % ("-0", 1, 2) + "\n", True),
    "an int written -0 in a float column": (CLEAN + LINE % (20, "-0", 2) + "\n", False),
    "-0.0": (CLEAN + LINE % (20, "-0.0", 2) + "\n", False),
    "ints through float64 (2^53 + 1)": (CLEAN + LINE % (2 ** 53 + 1, 1, 2) + "\n", True),
    "2^63 - 1, which float64 rounds up": (CLEAN + LINE % (2 ** 63 - 1, 1, 2) + "\n", True),
    "2^63 (unsigned)": (CLEAN + LINE % (2 ** 63, 1, 2) + "\n", False),
    "-1 and 2^63 in one column": (CLEAN + LINE % (-1, 1, 2) + "\n" + LINE % (2 ** 63, 1, 2) + "\n", False),
    "an int beyond 2^64 in a column of fractions": (CLEAN + LINE % (20, 10 ** 30, 2) + "\n", True),
    "ints beyond 2^64 written as floats": ("".join(LINE % (i, "1e%d" % (19 + i), 2) + "\n" for i in range(9)), False),
    "an exploding loss": ("".join(LINE % (i, 1.5 ** (i * 9), 2) + "\n" for i in range(90)), True),
    "an int beyond float range": (CLEAN + LINE % (20, 10 ** 400, 2) + "\n", False),
    "a float beyond float range": (CLEAN + LINE % (20, "1e400", 2) + "\n", False),
    "a float below the smallest": (CLEAN + LINE % (20, "1e-400", 2) + "\n", True),
    "floats with 40 digits": (CLEAN + LINE % (20, "0.1000000000000000055511151231257827021181", "7." + "9" * 40) + "\n",
                              True),
    "exponents of every shape": (CLEAN + LINE % (20, "1E5", "2e-05") + "\n" + LINE % (21, "1e+05", "-3.5E+300") + "\n",
                                 True),
    "tabs and no spaces": ("".join('\t{"step":%d,\t"loss" :\t%r }  \n' % (i, i / 3) for i in range(30)), True),
    "one key": ("".join('{"loss": %r}\n' % (i / 7) for i in range(30)), True),
    "28 keys": ("".join(json.dumps({f"k{j}": i * j for j in range(28)}) + "\n" for i in range(10)), True),
    "29 keys": ("".join(json.dumps({f"k{j}": i * j for j in range(29)}) + "\n" for i in range(10)), True),
    "30 keys": ("".join(json.dumps({f"k{j}": i * j for j in range(30)}) + "\n" for i in range(10)), True),
    "60 keys, each with a digit": ("".join(json.dumps({f"k{j}": i * j / 7 for j in range(60)}) + "\n"
                                           for i in range(10)), True),
    "40 keys that translate deletes": ("".join(json.dumps({f"k{chr(97 + j % 4)}{chr(102 + j // 4)}": i * j
                                                          for j in range(40)}) + "\n" for i in range(10)), True),
    "keys with commas, colons and braces": ("".join('{"x, y": %d, "x}": %d, ":{": 0.5}\n' % (i, i) for i in range(9)),
                                            True),
    "non-ASCII keys": ("".join('{"损失": %r, "é": %d}\n' % (i / 3, i) for i in range(9)), True),
    "an escaped key": ("".join('{"lo\\u0073s": %r}\n' % (i / 3) for i in range(9)), False),
    "NaN and Infinity": (CLEAN + LINE % (20, "NaN", "Infinity") + "\n" + LINE % (21, "-Infinity", 1) + "\n", False),
    "null": (CLEAN + LINE % (20, "null", 1) + "\n", False),
    "a string column": ("".join('{"step": %d, "loss": "%d"}\n' % (i, i) for i in range(9)), False),
    "a bool": (CLEAN + LINE % (20, "true", 1) + "\n", False),
    "not JSON after the record": (CLEAN + LINE % (20, 1, 2) + " 7\n", False),
    "a non-breaking space after the record": (CLEAN + LINE % (20, 1, 2) + "\u00a0\n", False),
    "a unit separator line (blank to str.strip)": (CLEAN + "\x1f\n" + CLEAN, False),
}


@pytest.mark.parametrize("name", CRAFTED)
@pytest.mark.parametrize("block_chars", [None, 120])
def test_crafted_lines_read_as_json_reads_them(name, block_chars):
    text, fast_allowed = CRAFTED[name]
    assert_same(read(text, block_chars=block_chars), read(text, fast=False), text)
    if block_chars is None:   # one block
        assert fast_blocks(text)[0] == int(fast_allowed)


@pytest.mark.parametrize("token", NOT_NUMBERS)
def test_a_token_json_does_not_read_as_a_number_among_numbers(token):
    for text in (CLEAN + LINE % (20, token, 2) + "\n", LINE % (token, 1, 2) + "\n" + CLEAN):
        assert_same(read(text), read(text, fast=False), text)


def test_an_int_that_float64_rounds_to_2_63_is_not_wrapped():
    # the columns hold numbers as float64: 2^63 - 1 rounds to 2^63, which int64 cannot hold (it
    # would wrap to -2^63); the column stays float64, positive, on both paths
    text = CLEAN + LINE % (2 ** 63 - 1, 1, 2) + "\n"
    for fast in (True, False):
        step = read(text, fast=fast).frame["step"].to_numpy()
        assert step.dtype == np.float64 and step[-1] == 2.0 ** 63 and step[:-1].tolist() == list(range(20))


def test_a_column_of_objects_stays_one_when_numbers_follow():
    # a block with a string makes "note" a column of objects; the numeric blocks after it must
    # add their ints as ints (the fast path leaves them to json), not as floats
    text = '{"step": 0, "note": "start"}\n' + "".join('{"step": %d, "note": %d}\n' % (i, i) for i in range(1, 400))
    table = read(text, block_chars=200)
    assert_same(table, read(text, fast=False), text)
    assert [type(v) for v in table.frame["note"][:3]] == [str, int, int]


def test_exact_number_patterns_agree_with_json():
    """Both spellings of _NUMBER (possessive on Python 3.11+) accept exactly what json.loads reads
    as an int or a float, NaN and Infinity aside."""
    if sys.version_info < (3, 11):
        pytest.skip("possessive quantifiers need Python 3.11")
    plain, possessive = re.compile(jsonlog._NUMBER_PLAIN), re.compile(jsonlog._NUMBER_POSSESSIVE)

    @settings(max_examples=1000, deadline=None)
    @given(st.one_of(st.text("0123456789.eE+-", max_size=8), INTS, FLOATS, ODD_TOKENS))
    def check(token):
        try:
            value = json.loads(token)
            is_number = type(value) in (int, float) and token not in ("NaN", "Infinity", "-Infinity") \
                and token.strip() == token
        except ValueError:
            is_number = False
        assert bool(plain.fullmatch(token)) == bool(possessive.fullmatch(token)) == is_number, token

    check()


@pytest.mark.skipif(not os.path.isdir(REAL), reason="../shared/real_logs not present")
def test_real_trainer_records_as_json_lines():
    # a real Hugging Face log_history (train and eval records interleaved, keys varying),
    # written one record per line as a JSON-lines logger writes it, then its train records alone
    with open(os.path.join(REAL, "Dheena731__tinyLlama-finetune__trainer_state.json")) as fh:
        records = json.load(fh)["log_history"]
    train = [r for r in records if "loss" in r]
    assert len(train) > 50 and len(train) < len(records)
    for chosen in (records, train):
        text = "".join(json.dumps(r) + "\n" for r in chosen)
        for block_chars in (None, 500):
            assert_same(read(text, block_chars=block_chars), read(text, fast=False), text)
    assert fast_blocks("".join(json.dumps(r) + "\n" for r in train))[0] == 1
