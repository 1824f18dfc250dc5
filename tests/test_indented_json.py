"""report.indented_json writes what ``json.dumps(value, indent=2, allow_nan=False)`` writes, byte
for byte (the oracle), and raises where it raises: generated JSON values of every shape, the
values it leaves to json.dumps (keys that are not strings, subclasses, NaN, a circular reference),
and the JSON report of real runs."""
from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siamdiag.engine.prepare import Options
from siamdiag.pipeline import analyze_paths
from siamdiag.report import indented_json
from siamdiag.report.model import report_to_dict
from siamdiag.report.render import render_json

from .conftest import SAMPLES

SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_generated_values_are_written_as_json_dumps_writes_them(value):
    assert indented_json.dumps(value) == json.dumps(value, indent=2, allow_nan=False)


class Level(enum.IntEnum):
    LOW = 1


class Name(str):
    pass


@pytest.mark.parametrize("value", [
    {1: "a", "b": [2.5, -0.0]}, {True: None, None: 1.0, 2.5: "x"},   # keys json.dumps turns into strings
    [Level.LOW, {"level": Level.LOW}], {"name": Name("seed-0")}, [1e-320, 5e-324, 1.7976931348623157e308],
    "caf\u00e9 \u2603 \ud83d\ude00 \"quoted\" \\ \n\t\x00", {"": [[], {}, [[]], {"a": {}}]}, (), 7, None,
])
def test_values_left_to_json_dumps_and_edge_values_come_out_the_same(value):
    assert indented_json.dumps(value) == json.dumps(value, indent=2, allow_nan=False)


@pytest.mark.parametrize("value", [math.nan, [1.0, math.inf], {"a": {"b": -math.inf}}])
def test_non_finite_numbers_raise_json_dumps_error(value):
    with pytest.raises(ValueError, match="Out of range float values"):
        indented_json.dumps(value)


def test_a_circular_reference_raises_json_dumps_error():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        indented_json.dumps(loop)


def test_the_json_report_is_json_dumps_indented_text():
    report = analyze_paths([SAMPLES], Options())
    assert render_json(report) == json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n"
