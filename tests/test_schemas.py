"""The published JSON Schemas (siamdiag/schemas) against what siamdiag really writes and reads:
every report of every synthetic process and training shape (each verdict, every optional block
filled somewhere) validates against report.schema.json; config.schema.json names exactly the
settings, accepts only what the settings parser accepts, and rejects what it rejects."""
from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from siamdiag.cli.main import main
from siamdiag.cli.settings import SETTINGS, _checked
from siamdiag.engine.analysis import analyze_run
from siamdiag.engine.prepare import Options, order_run
from siamdiag.engine.synthetic import PROCESSES, TRAINING_SHAPES, SyntheticRun, ar1_pair, as_raw_run
from siamdiag.report.model import GatePolicy, Report, report_to_dict
from siamdiag.schemas import load_schema

from .conftest import SAMPLES


def _validator(name):
    schema = load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_report_validates_against_the_report_schema(capsys):
    validator = _validator("report")
    runs = []
    for name, process in {**PROCESSES, **TRAINING_SHAPES}.items():
        for seed in range(2):
            made = process.make(2000, np.random.default_rng([seed, 3]))
            runs.append(analyze_run(order_run(as_raw_run(made, name)), Options(tolerance_relative=0.001 * seed)))
    loss, grad = ar1_pair(2000, np.random.default_rng(5), 0.5, 0.8)   # a grad norm that tracks the loss
    runs.append(analyze_run(order_run(as_raw_run(SyntheticRun(loss, extras={"grad_norm": grad}), "coupled")), Options()))
    doc = report_to_dict(Report(runs=tuple(runs), policy=GatePolicy(), alpha=0.01))
    validator.validate(doc)
    every = lambda key: [r[key] for r in doc["runs"] if r[key]]  # noqa: E731
    # the optional blocks are filled somewhere, so their shapes were checked too
    assert every("grad_norm") and every("findings") and every("move") and every("adf")
    assert [w for w in every("window") if w["lr_change"]] and [w for w in every("window") if w["interval_change"]]
    assert {r["verdict"] for r in doc["runs"]} >= {"stationary", "not_converged", "nonstationary", "diverged",
                                                    "degenerate", "inconclusive"}
    with pytest.raises(SystemExit):
        main(["analyze", SAMPLES, "--format", "json", "--no-github-summary"])
    validator.validate(json.loads(capsys.readouterr().out))   # as the CLI writes it (insufficient_data too)
    broken = json.loads(json.dumps(doc))
    broken["runs"][0]["verdict"] = "fine"
    broken["runs"][1]["surprise"] = 1
    assert len(list(validator.iter_errors(broken))) == 2


def test_config_schema_names_exactly_the_settings():
    assert set(load_schema("config")["properties"]) == set(SETTINGS)


VALID = {"format": ["json", "gitlab"], "fail_on": [["diverged"], "diverged,degenerate"], "strict": [True],
         "alpha": [0.05, 1e-6], "tolerance": ["0.5%", 0.001, "0"], "window": [0.5, 1.0, "50%", 20000],
         "burn_in": ["auto", 1500], "input_format": ["tb", "dvclive"], "step_col": ["global_step"],
         "loss_col": ["train/loss"], "grad_norm_col": ["gn"], "run_col": ["method,seed"], "pattern": [r"loss=(?P<loss>\S+)"],
         "mlflow": ["sqlite:///mlflow.db"], "experiment": ["siamese"], "run_name": ["seed-*"], "jobs": ["auto", 4],
         "watch_every": [50], "timeout": [30, 2.5]}
INVALID = {"format": ["yaml"], "fail_on": [["fine"], "diverged,fine", []], "alpha": [0.9, 0], "tolerance": ["-1", "abc"],
           "window": [0, 1.5, -3, "1", "half"], "burn_in": ["soon"], "input_format": ["xls"], "step_col": [""],
           "jobs": [0, "many"], "watch_every": [0], "timeout": [0, -1, "soon"]}


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_config_schema_agrees_with_the_settings_parser(key):
    validator = _validator("config")
    for value in VALID[key]:
        assert validator.is_valid({key: value}), (key, value)
        _checked(key, value, "pyproject.toml [tool.siamdiag]")   # the parser takes it too
    for value in INVALID.get(key, []):
        assert not validator.is_valid({key: value}), (key, value)
        with pytest.raises(Exception):
            _checked(key, value, "pyproject.toml [tool.siamdiag]")
    assert not validator.is_valid({"no_such_key": 1})
