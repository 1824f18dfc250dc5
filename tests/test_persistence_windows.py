"""Issue #17, items 3 and 7: the running-mean detector is corroborated before it undoes a log,
and a window that reaches into the learning transient is judged from where the transient ends.

Every series is built here with its truth by construction; rates are over SEEDS seeds (the
benchmark's 100-seed figures for the matching cells are in BENCHMARKS.md)."""
import json
import os

import click
import numpy as np
import pytest
from click.testing import CliRunner

import siamdiag
from siamdiag.cli import main as cli_main
from siamdiag.engine import running_mean
from siamdiag.engine.analysis import analyze_arrays, analyze_run
from siamdiag.engine.decide import DEFAULT_FAILING, Verdict
from siamdiag.engine.prepare import Options, order_run, parse_window
from siamdiag.engine.synthetic import SyntheticRun, as_raw_run
from siamdiag.errors import UsageError

from .conftest import SAMPLES, write_csv

SEEDS = 50
PASSING = {Verdict.STATIONARY, Verdict.INCONCLUSIVE}
UNDONE = "running means since each epoch start"
AS_WRITTEN = "but was judged as written"
MOVED = "reaches into the learning transient"


def lightning_log(n, rng, epoch_column=True):
    """Lightning's CSVLogger every 50 steps, 3 rows an epoch: the loss drops from 0.05 within a
    few rows, then decays as 1/t to 1e-5 (its window mean halves), with 30 % multiplicative batch
    noise. Truth: still learning. Its sharp first drop makes the detector read running means."""
    t = np.arange(n, dtype=float)
    late = 1e-5 * (n - 1 + n / 100) / (t + n / 100)
    loss = 0.05 * 0.3 ** t * np.exp(0.02 * rng.standard_normal(n)) + late * np.exp(0.3 * rng.standard_normal(n))
    return SyntheticRun(loss, steps=49.0 + 50.0 * t, extras={"epoch": t // 3} if epoch_column else {})


def keras_log(n, rng, epoch=100, start=30):
    """A settled per-batch loss (0.3 +- 0.02) and its Keras-style log: the running mean since each
    epoch start, the log beginning ``start`` batches into an epoch."""
    epochs = -(-(n + start) // epoch)
    batches = 0.3 + 0.02 * rng.standard_normal(epochs * epoch)
    means = (np.cumsum(batches.reshape(epochs, epoch), axis=1) / np.arange(1, epoch + 1)).ravel()
    return batches[start: start + n], means[start: start + n]


def settled_after_warm_up(n, rng, span=1 / 20):
    """Learns (0.8 -> 0.3, time constant ``span`` of the run) and settles; noise 0.02."""
    t = np.arange(n, dtype=float)
    return 0.3 + 0.5 * np.exp(-t / (span * n)) + 0.02 * rng.standard_normal(n)


def judge(made, **options):
    return analyze_run(order_run(as_raw_run(made)), Options(**options))


# ---- item 3: corroborate running means before undoing them ----------------------------------

@pytest.mark.parametrize("n", [500, 1000])
def test_a_plain_lightning_log_is_not_undone_and_fails_the_gate(n):
    logs = [lightning_log(n, np.random.default_rng([seed, n])) for seed in range(SEEDS)]
    fired = [running_mean.epoch_length(log.loss) is not None for log in logs]
    assert np.mean(fired) >= 0.9   # the reported case: the detector reads it as running means
    for log, detected in zip(logs, fired):
        result = judge(log)
        assert result.verdict in DEFAULT_FAILING, result.reasons
        assert not any(UNDONE in note for note in result.notes)
        if detected:
            assert any(AS_WRITTEN in note and "epoch column has 3 rows per epoch" in note for note in result.notes)


def test_without_an_epoch_column_the_recovered_values_give_a_plain_log_away():
    results = [judge(lightning_log(1000, np.random.default_rng([seed, 3]), epoch_column=False))
               for seed in range(SEEDS)]
    assert all(r.verdict in DEFAULT_FAILING for r in results)
    assert not any(UNDONE in note for r in results for note in r.notes)
    assert sum(any(AS_WRITTEN in note and "negative" in note for note in r.notes) for r in results) >= 0.9 * SEEDS


@pytest.mark.parametrize("epoch_column", [None, "whole", "fractional"])
def test_a_keras_running_mean_log_is_still_undone(epoch_column):
    position = np.arange(1000) + 30   # batches since the start of training: 100 per epoch
    extras = {None: {}, "whole": {"epoch": position // 100}, "fractional": {"epoch": position / 100.0}}[epoch_column]
    for seed in range(SEEDS):
        batches, logged = keras_log(1000, np.random.default_rng([seed, 4]))
        assert running_mean.epoch_length(logged) == (100, 70)
        recovered = running_mean.undo_running_mean(logged, 100, 70)
        assert running_mean.doubt(logged, recovered, 100, 70, extras.get("epoch")) is None
        np.testing.assert_allclose(recovered[70:], batches[70:], rtol=1e-9)
        result = judge(SyntheticRun(logged, extras=extras))
        assert result.verdict in PASSING and any(UNDONE in note for note in result.notes)


def test_recovered_negative_batch_losses_speak_against_running_means():
    plain = lightning_log(1000, np.random.default_rng(5), epoch_column=False).loss
    period, offset = running_mean.epoch_length(plain)
    recovered = running_mean.undo_running_mean(plain, period, offset)
    assert plain.min() > 0 and recovered.min() < 0
    assert "would be negative" in running_mean.recovered_negative(plain, recovered, period, offset)


def test_rounding_alone_does_not_count_as_negative_batch_losses():
    # a triplet loss that is exactly 0 on half the batches, logged as running means to 4 decimals:
    # the recovered zeros land on either side of 0 by up to the rounding times 2·position
    rng = np.random.default_rng(6)
    batches = np.where(rng.random(2000) < 0.5, 0.0, rng.exponential(0.05, 2000))
    logged = np.round((np.cumsum(batches.reshape(20, 100), axis=1) / np.arange(1, 101)).ravel(), 4)
    recovered = running_mean.undo_running_mean(logged, 100, 0)
    assert recovered.min() < 0
    assert running_mean.recovered_negative(logged, recovered, 100, 0) is None
    # a loss that may be negative (a GAN's) is not held to it
    assert running_mean.recovered_negative(logged - 1.0, recovered - 1.0, 100, 0) is None


def test_recovered_values_far_noisier_late_in_the_epoch_speak_against_running_means():
    for seed in range(SEEDS):
        rng = np.random.default_rng([seed, 7])
        plain = 0.3 + 0.02 * rng.standard_normal(2000)
        told = running_mean.recovered_noisier_late(running_mean.undo_running_mean(plain, 8, 0), 8, 0)
        assert "as spread as those at its start" in told
        _, logged = keras_log(2000, rng, epoch=8, start=0)
        assert running_mean.recovered_noisier_late(running_mean.undo_running_mean(logged, 8, 0), 8, 0) is None


def test_an_epoch_column_must_agree_with_the_detected_epoch_length():
    rows = np.arange(900, dtype=float)
    assert running_mean.epoch_column_disagrees(rows // 100, 100) is None
    assert running_mean.epoch_column_disagrees(rows / 100, 100) is None        # fractional, as HF logs it
    assert running_mean.epoch_column_disagrees(rows // 103, 100) is None       # within 3 % and a row
    assert running_mean.epoch_column_disagrees(None, 100) is None
    assert "3 rows per epoch, not 7" in running_mean.epoch_column_disagrees(rows // 3, 7)
    gappy = np.where(rows % 10 == 0, np.nan, rows // 3)                         # not logged on some rows
    assert "3 rows per epoch, not 7" in running_mean.epoch_column_disagrees(gappy, 7)
    assert "900 rows per epoch" in running_mean.epoch_column_disagrees(np.zeros(900), 100)   # one epoch


# ---- item 7: a window that reaches into the warm-up --------------------------------------------

@pytest.mark.parametrize("window, asked", [(0.99, 20.0), (100000.0, 0.0)])
def test_a_window_reaching_into_the_warm_up_is_judged_from_its_end(window, asked):
    runs = [analyze_arrays(settled_after_warm_up(2000, np.random.default_rng([seed, 8])),
                           options=Options(window=window)) for seed in range(SEEDS)]
    assert sum(r.verdict not in PASSING for r in runs) <= 1
    for r in runs:
        assert 100 < r.window.first_step <= 1000   # past the transient (time constant 100), never past the second half
        assert any(MOVED in note and f"--burn-in {asked:g} judges from the step asked for" in note for note in r.notes)


def test_a_fixed_burn_in_is_honoured_as_given():
    for seed in range(SEEDS):
        r = analyze_arrays(settled_after_warm_up(2000, np.random.default_rng([seed, 8])), options=Options(burn_in=0.0))
        assert r.verdict in DEFAULT_FAILING and r.window.first_step == 0 and r.window.burn_in_method == "fixed"
        assert not any(MOVED in note for note in r.notes)


def test_a_transient_lasting_into_the_second_half_still_fails_a_wide_window():
    for seed in range(SEEDS):
        loss = settled_after_warm_up(2000, np.random.default_rng([seed, 9]), span=1 / 3)
        r = analyze_arrays(loss, options=Options(window=0.99))
        assert r.verdict is Verdict.NOT_CONVERGED and r.window.first_step <= 1000
        assert any("the transient still reaches" in note for note in r.notes)


def test_the_default_window_is_not_moved():
    r = analyze_arrays(settled_after_warm_up(2000, np.random.default_rng(10)))
    assert r.window.first_step == 1000 and not any(MOVED in note for note in r.notes)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def entry_point(args):
    """The console entry point, exit codes included, under click's test runner."""
    cli_main.main(list(args))


def invoke(args, env=None):
    return CliRunner().invoke(entry_point, args, env={"NO_COLOR": "1", **(env or {})})


def first_step(result):
    return json.loads(result.stdout)["runs"][0]["window"]["first_step"]


def test_window_1_is_refused_naming_both_spellings():
    path = os.path.join(SAMPLES, "stationary.csv")
    result = invoke(["analyze", path, "--window", "1"])
    assert result.exit_code == 2 and result.stdout == ""
    assert "--window: '1' is not allowed" in result.stderr and "1.0 or 100% for the whole run" in result.stderr
    assert "whole number >= 2 of final steps" in result.stderr
    assert invoke(["analyze", path], env={"SIAMDIAG_WINDOW": "1"}).exit_code == 2


def test_window_spellings_of_the_whole_run_and_of_fractions_agree():
    path = os.path.join(SAMPLES, "stationary.csv")   # steps 0..1999, a transient of time constant 80
    whole = [invoke(["analyze", path, "--format", "json", "--window", w]) for w in ("1.0", "100%")]
    assert [r.exit_code for r in whole] == [0, 0] and first_step(whole[0]) == first_step(whole[1]) > 0
    assert MOVED in whole[0].stdout
    half = [first_step(invoke(["analyze", path, "--format", "json", "--window", w])) for w in ("0.5", "50%")]
    assert half == [1000, 1000]
    assert invoke(["analyze", path, "--window", "150%"]).exit_code == 2


def test_a_config_window_longer_than_the_run(tmp_path):
    # the case: window = 20000 in a config file, a 6,000-step run that settled early
    loss = settled_after_warm_up(6000, np.random.default_rng(11))
    path = write_csv(tmp_path / "run.csv", ["step", "loss"], [(i, f"{v:.6f}") for i, v in enumerate(loss)])
    config = tmp_path / "ci.toml"
    config.write_text("window = 20000\n")
    result = invoke(["analyze", path, "--config", str(config), "--format", "json"])
    run = json.loads(result.stdout)["runs"][0]
    assert result.exit_code == 0 and run["verdict"] == "stationary" and any(MOVED in n for n in run["notes"])
    config.write_text("window = 1\n")
    result = invoke(["analyze", path, "--config", str(config)])
    assert result.exit_code == 2 and str(config) in result.stderr and "a bare 1 is ambiguous" in result.stderr


def test_parse_window_spellings():
    assert [parse_window(v) for v in ("0.5", "50%", " 1.0 ", 1.0, "100%", 20000, "20000")] == \
        [0.5, 0.5, 1.0, 1.0, 1.0, 20000.0, 20000.0]
    for bad in ("1", 1, True, "0", "0%", "150%", "2.5", "half", float("nan")):
        with pytest.raises(ValueError):
            parse_window(bad)
    with pytest.raises(UsageError, match="a bare 1 is ambiguous"):
        siamdiag.analyze([0.3] * 200, window=1)
