"""`analyze --jobs N`: the oracle is the serial run. Same report byte for byte, same first
error, whatever the number of processes."""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from siamdiag import pipeline
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


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, from /proc."""
    children = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.isdigit() and int(fields[1]) == pid:
            children.add(int(entry))
    return children


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")
def test_sigterm_ends_the_workers_and_writes_nothing(tmp_path):
    # found: SIGTERM killed the parent alone; its two workers lived on as orphans, holding the
    # output pipes open (the caller never saw the end), and the exit was silent
    logs = tmp_path / "logs"
    logs.mkdir()
    rng = np.random.default_rng(0)
    text = "step,loss\n" + "".join(f"{s},{0.3 + 0.02 * v:.5f}\n" for s, v in enumerate(rng.standard_normal(20000)))
    for k in range(300):  # seconds of judging for two workers
        (logs / f"run{k:03d}.csv").write_text(text)
    proc = subprocess.Popen([sys.executable, "-m", "siamdiag", "analyze", str(logs), "--jobs", "2",
                             "-o", str(tmp_path / "report.txt"), "--report", f"json={tmp_path / 'report.json'}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) == 2, "the pool never started"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)  # a worker left running would hold the pipes open
    assert proc.returncode == 143
    assert (out, err) == ("", "siamdiag: terminated by SIGTERM\n")
    time.sleep(0.2)
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]
    assert sorted(os.listdir(tmp_path)) == ["logs"]  # no report, no temporary file


def _never_done(*_args):
    time.sleep(600)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers run the patched task")
def test_an_interruption_ends_the_workers_at_once(tmp_path, monkeypatch):
    # waiting for the workers to finish their inputs would keep a cancelled job busy (a large log
    # takes minutes), and a kill that follows would leave them behind
    _logs(tmp_path)
    monkeypatch.setattr(pipeline, "_judge_batch", _never_done)
    previous = signal.signal(signal.SIGALRM, _interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.judge_paths([str(tmp_path)], jobs=2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert multiprocessing.active_children() == []


def test_short_logs_are_read_in_batches_in_input_order(tmp_path, monkeypatch):
    """Files join the batch before them up to BATCH_INPUTS inputs and BATCH_BYTES bytes; a large
    file, a directory and a path that does not exist each make a batch of their own."""
    from siamdiag.logs.ingest import LogInput

    monkeypatch.setattr(pipeline, "BATCH_INPUTS", 3)
    monkeypatch.setattr(pipeline, "BATCH_BYTES", 100)
    sizes = {"empty": 0, "a": 10, "b": 10, "c": 10, "d": 10, "e": 60, "f": 50, "big": 101, "g": 1, "empty2": 0}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
    (tmp_path / "dir").mkdir()
    names = ["empty", "a", "b", "c", "d", "e", "f", "big", "empty2", "g", "dir", "missing", "h"]
    (tmp_path / "h").write_bytes(b"x")
    batches = pipeline._batches([LogInput(str(tmp_path / name)) for name in names])
    assert [[os.path.basename(log.path) for log in batch] for batch in batches] == [
        ["empty", "a", "b"],  # three inputs: full (an empty file is a file, of no bytes)
        ["c", "d", "e"],      # 80 bytes: f's 50 would pass 100
        ["f"], ["big"],       # over BATCH_BYTES: alone
        ["empty2", "g"], ["dir"], ["missing"], ["h"]]


def _threads_in_this_process() -> tuple[int, int]:
    from siamdiag.engine import numerics
    from siamdiag.logs import textfile

    return textfile.PARSE_THREADS, numerics.SORT_THREADS


def test_workers_parse_and_sort_on_one_thread():
    """`--jobs` workers already share the cores: in one, a long CSV is parsed in one piece and a
    long window sorted in one call, whatever the parent does."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=pipeline._context(), initializer=pipeline._start_worker) as pool:
        assert pool.submit(_threads_in_this_process).result() == (1, 1)
