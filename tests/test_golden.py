"""Golden sample runs (made by sample_runs/make_samples.py, each file named after the verdict
it was built to produce) and a real Lightning log."""
import json
import math
import os

import pytest

from siamdiag.pipeline import analyze_paths
from siamdiag.report.model import report_to_dict

from .conftest import DATA, SAMPLES

CASES = sorted(f for f in os.listdir(SAMPLES) if f.endswith((".csv", ".csv.gz")))


def assert_close(actual, expected, path="$"):
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for k in expected:
            assert_close(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("name", CASES)
def test_sample_matches_its_construction_and_its_golden_json(name, monkeypatch):
    monkeypatch.chdir(SAMPLES)
    doc = report_to_dict(analyze_paths([name]))
    stem = name.split(".")[0]
    truth = "stationary" if stem == "sweep" else stem
    assert {r["verdict"] for r in doc["runs"]} == {truth}
    with open(os.path.join(SAMPLES, "expected", stem + ".json")) as fh:
        expected = json.load(fh)
    expected["siamdiag_version"] = doc["siamdiag_version"]
    assert_close(doc, expected)


def test_real_lightning_log_settled_run():
    # The run's second half (steps 7,339-14,669) is a BYOL loss around 0.35 with no trend.
    doc = report_to_dict(analyze_paths([os.path.join(DATA, "lightning_byol_version_18_metrics.csv")]))
    [run] = doc["runs"]
    assert run["verdict"] == "stationary" and doc["gate"] == "pass"
    assert run["points"] == 1467 and run["window"]["last_step"] == 14669
