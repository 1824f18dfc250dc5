"""siamdiag.analyze: in-memory inputs give exactly the report the same data gives from a file."""
import numpy as np
import pandas as pd
import pytest

import siamdiag
from siamdiag.errors import InputError, UsageError
from siamdiag.report.model import report_to_dict

from .conftest import SAMPLES


def strip_sources(doc):
    for r in doc["runs"]:
        r.pop("source")
    return doc


@pytest.mark.parametrize("sample", ["stationary.csv", "nonstationary.csv", "degenerate.csv", "diverged.csv"])
def test_dataframe_gives_the_same_report_as_the_file(sample):
    path = f"{SAMPLES}/{sample}"
    from_file = report_to_dict(siamdiag.analyze(path))
    # cells as text, as in the file: pandas' float parsing would turn 'nan' (a NaN loss) into NaN (missing)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    from_frame = report_to_dict(siamdiag.analyze(frame))
    from_file["runs"][0]["run"] = from_frame["runs"][0]["run"]
    assert strip_sources(from_frame) == strip_sources(from_file)


def test_long_format_frame_and_mapping_split_runs():
    rng = np.random.default_rng(1)
    n = 1500
    frame = pd.DataFrame({"run": np.repeat(["a", "b"], n), "step": np.tile(np.arange(n), 2),
                          "loss": np.r_[0.3 + 0.02 * rng.standard_normal(n), 0.3 + 0.02 * rng.standard_normal(n).cumsum()]})
    report = siamdiag.analyze(frame)
    assert [r.run for r in report.runs] == ["a", "b"]
    assert report.runs[0].verdict.value == "stationary" and report.runs[1].verdict.value != "stationary"
    mapping = siamdiag.analyze({"step": frame.step[:n], "loss": frame.loss[:n]})
    assert mapping.runs[0].verdict == report.runs[0].verdict


def test_array_input_matches_analyze_arrays():
    from siamdiag.engine.analysis import analyze_arrays

    loss = 0.5 + 0.01 * np.random.default_rng(2).standard_normal(2000)
    assert siamdiag.analyze(list(loss)).runs[0] == analyze_arrays(loss, name="run")


def test_bad_inputs_raise_the_cli_errors():
    with pytest.raises(InputError, match=r"<DataFrame>:3:3: column 'loss'"):
        siamdiag.analyze(pd.DataFrame({"step": [1, 2, 3], "loss": ["0.1", "x", "0.3"]}))
    with pytest.raises(UsageError):
        siamdiag.analyze(np.zeros((3, 3)))
    with pytest.raises(UsageError):
        siamdiag.analyze([0.1] * 200, window=1.5)
    with pytest.raises(UsageError, match="no runs|no such|not found|does not exist"):
        siamdiag.analyze("no/such/file.csv")


def test_a_nan_loss_in_a_frame_is_divergence_and_a_left_out_row_is_not_logged():
    """issue #18: pandas, and Spark's and Ray's Arrow, hand over a NaN loss and a loss not logged as
    the same NaN; reading it as "not logged" let a run that blew up pass. Every row's loss counts
    as logged (NaN, inf, null: non-finite); a step not logged is a row left out, or, in a text
    column, an empty or None cell as in a CSV file."""
    loss = 0.3 + 0.02 * np.random.default_rng(3).standard_normal(1500)
    for end in (np.nan, np.inf, -np.inf):
        blown = loss.copy()
        blown[-5:] = end
        run = siamdiag.analyze(pd.DataFrame({"loss": blown})).runs[0]
        assert run.verdict.value == "diverged", end
        assert any("dropna(subset=['loss'])" in n for n in run.notes) == np.isnan(end)
    nullable = pd.DataFrame({"loss": pd.array(list(loss[:-3]) + [None] * 3, dtype="Float64")})
    assert siamdiag.analyze(nullable).runs[0].verdict.value == "diverged"
    every_tenth_left_out = pd.DataFrame({"step": np.arange(1500), "loss": loss})[np.arange(1500) % 10 != 0]
    kept = siamdiag.analyze(every_tenth_left_out).runs[0]
    assert (kept.verdict.value, kept.points) == ("stationary", 1350)
    text = pd.Series([str(v) for v in loss], dtype=object)
    text[::10] = None
    text[5::10] = ""
    assert siamdiag.analyze(pd.DataFrame({"loss": text})).runs[0].points == 1200


def test_a_frame_that_names_the_loss_twice_is_judged_on_the_first_loss_column():
    """A DataFrame may repeat a column name (a CSV cannot: pandas reads the second as 'loss.1');
    the first is the loss, as a CSV's duplicate-column note says. Oracle: the frame without the
    second column. Here the second blows up, so judging it would say diverged."""
    rng = np.random.default_rng(5)
    settled = 0.3 + 0.02 * rng.standard_normal(1500)
    blown = settled * np.exp(np.linspace(0.0, 30.0, 1500))
    both = pd.DataFrame(np.column_stack([np.arange(1500), settled, blown]), columns=["step", "loss", "loss"])
    first_only = pd.DataFrame({"step": np.arange(1500.0), "loss": settled})
    judged, expected = siamdiag.analyze(both).runs[0], siamdiag.analyze(first_only).runs[0]
    assert judged.verdict.value == "stationary"
    assert judged == expected
    assert siamdiag.analyze(pd.DataFrame({"step": np.arange(1500.0), "loss": blown})).runs[0].verdict.value == "diverged"


def test_a_run_logged_every_k_steps_too_short_to_judge_says_to_log_every_step():
    """issue #18: insufficient_data passes; a log written every k steps is told how to get k times
    the points (in the logger's words for a trainer_state.json or a Lightning CSVLogger file,
    tests/test_callbacks.py)."""
    loss = 0.3 + 0.02 * np.random.default_rng(4).standard_normal(40)
    every_10 = siamdiag.analyze(pd.DataFrame({"step": np.arange(10, 410, 10), "loss": loss})).runs[0]
    assert every_10.verdict.value == "insufficient_data"
    assert every_10.reasons[0].endswith("; the loss was logged every 10 steps: log it at every step")
    every_step = siamdiag.analyze(pd.DataFrame({"step": np.arange(40), "loss": loss})).runs[0]
    assert every_step.verdict.value == "insufficient_data" and "logged every" not in every_step.reasons[0]


def test_the_modules_the_readme_names_are_reachable_after_a_plain_import():
    # issue #19: siamdiag.schemas.load_schema and siamdiag.report.render.RENDERERS raised
    # AttributeError after `import siamdiag`; a fresh interpreter, as a user's script starts
    import subprocess
    import sys

    code = ("import siamdiag, sys\n"
            "assert 'numpy' not in sys.modules\n"   # the plain import stays light
            "schema = siamdiag.schemas.load_schema('report')\n"
            "assert schema['properties']['schema_version']['const'] == 3\n"
            "from siamdiag.report import FORMATS\n"
            "assert sorted(siamdiag.report.render.RENDERERS) == sorted(FORMATS)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
