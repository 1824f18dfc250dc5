"""`analyze --jobs N`: the oracle is the serial run. Same report byte for byte, same first
error, whatever the number of processes."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from siamdiag.cli.main import main
from siamdiag.errors import InputError, OutputError

from .test_readers import WRITERS


def _code(argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _logs(root):
    t = np.arange(600)
    for k in range(18):
        rng = np.random.default_rng(k)
        loss = 0.3 + 0.02 * rng.standard_normal(len(t)) + (1.5 * np.exp(-t / 300) if k % 3 == 0 else 0)
        (root / f"run{k:02d}.csv").write_text("step,loss\n" + "".join(f"{s},{v:.6f}\n" for s, v in zip(t, loss)))
    (root / "long.csv").write_text("run,step,loss\n" + "".join(
        f"{name},{s},{0.5 + 0.01 * ((s * 7 + r) % 11):.4f}\n" for r, name in enumerate("abc") for s in range(300)))
    for fmt in ("tensorboard", "mlflow", "jsonl", "dvclive"):
        sub = root / fmt
        sub.mkdir()
        WRITERS[fmt](sub)


def test_jobs_give_the_serial_report_byte_for_byte(tmp_path, capsys):
    _logs(tmp_path)
    reports = {}
    for jobs in ("1", "2", "3", "auto"):
        code = _code(["analyze", str(tmp_path), "--format", "json", "--jobs", jobs])
        reports[jobs] = (code, capsys.readouterr().out)
    assert reports["1"][1].count('"run":') == 18 + 3 + 4
    assert len({report for report in reports.values()}) == 1


def test_jobs_raise_the_serial_first_error(tmp_path, capsys):
    _logs(tmp_path)
    (tmp_path / "run07.csv").write_text("step,loss\n1,0.5\n2,oops\n")
    (tmp_path / "run12.csv").write_text("step,loss\n1,0.5,9\n")
    errors = set()
    for jobs in ("1", "2"):
        assert _code(["analyze", str(tmp_path), "--jobs", jobs]) == 2
        errors.add(capsys.readouterr().err)
    assert errors == {f"siamdiag: error: {tmp_path / 'run07.csv'}:3:3: column 'loss': 'oops' is not a number\n"}


def test_jobs_setting_is_checked(tmp_path, capsys, monkeypatch):
    _logs(tmp_path)
    for bad in ("0", "x", "1.5"):
        assert _code(["analyze", str(tmp_path), "--jobs", bad]) == 2
        assert capsys.readouterr().err == f"siamdiag: error: --jobs: {bad!r} is not allowed; expected 'auto' or a whole number >= 1\n"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.siamdiag]\njobs = "auto"\n')
    assert _code(["config", "show"]) == 0
    assert "jobs" in capsys.readouterr().out


def test_jobs_with_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "logs").mkdir()
    _logs(tmp_path / "logs")
    assert _code(["analyze", str(tmp_path / "logs" / "mlflow"), str(tmp_path / "logs" / "run00.csv"),
                  "--jobs", "2", "--plot", str(tmp_path / "plots")]) in (0, 1)
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2


def test_errors_cross_process_boundaries_intact():
    located = InputError("log.csv", "column 'loss': 'x' is not a number", 3, 7)
    again = pickle.loads(pickle.dumps(located))
    assert (str(again), again.source, again.line, again.column) == (str(located), "log.csv", 3, 7)
    full = OutputError("out.json", OSError(28, "No space left on device"))
    assert str(pickle.loads(pickle.dumps(full))) == "cannot write out.json: No space left on device"
