"""The numbers of a plain-text log's template fields are parsed by pandas' C parser (issue #20) as
float() parses them, bit for bit: the oracle is float() on each field, over seeded random fields
(long and short digit runs, leading zeros, signs, a point first or last, negative zero) and fields
that spell nan, inf or an exponent (which go to numpy's loadtxt)."""
from __future__ import annotations

import numpy as np
import pytest

from siamdiag.logs.readers import text


def _field(rng: np.random.Generator, letters: bool) -> str:
    if letters and rng.random() < 0.3:
        return str(rng.choice(["nan", "NaN", "-nan", "inf", "-Infinity", "+inf", "1e5", "-2.5E-3", "7e+300", ".5e1"]))
    digits = "".join(rng.choice(list("0123456789"), int(rng.choice([1, 2, 6, 15, 16, 17, 25]))))
    point = int(rng.integers(-1, len(digits) + 1))   # -1: none; 0: '.5'; len: '5.'
    number = digits if point < 0 else digits[:point] + "." + digits[point:]
    return str(rng.choice(["", "-", "+"])) + number


@pytest.mark.parametrize("letters", [False, True], ids=["digits", "nan, inf, exponents"])
@pytest.mark.parametrize("seed", range(12))
def test_template_fields_parse_as_float_does(seed, letters, monkeypatch):
    rng = np.random.default_rng(seed)
    if not letters and text.pandas_reads_exactly():   # pandas' parse is the one tested
        monkeypatch.setattr(text.np, "loadtxt", lambda *args, **kwargs: pytest.fail("parsed by loadtxt"))
    width, rows = int(rng.integers(1, 5)), int(rng.integers(1, 3000))
    lines = [[_field(rng, letters and k == 0) for _ in range(width)] for k in range(rows)]   # a template's first line
    spaces = " " * int(rng.integers(1, 12))
    got = text._numbers("\n".join(spaces.join(line) for line in lines).encode(), width)
    expected = np.array([[float(field) for field in line] for line in lines], dtype=np.float64).reshape(rows, width)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got.view(np.int64), expected.view(np.int64))   # bit for bit: -0.0, NaN signs


def test_negative_zero_and_the_longest_fields():
    fields = ["-0", "-0.0", "+0.", "-.0", "0.1000000000000000055511151231257827", "9007199254740993",
              "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207"
              "096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764"
              "47575" + "0" * 200]
    got = text._numbers("\n".join(fields).encode(), 1)
    np.testing.assert_array_equal(got.ravel().view(np.int64), np.array([float(f) for f in fields]).view(np.int64))
