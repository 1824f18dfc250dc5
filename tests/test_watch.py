"""siamdiag watch: a writer appends a stationary log in pieces (partial lines included) while
watch follows it; the oracle is `siamdiag analyze` on the finished file."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from siamdiag.errors import UsageError
from siamdiag.cli.watch import LogFollower

from .conftest import SAMPLES, interruptible


def test_follower_counts_only_complete_rows(tmp_path):
    path = tmp_path / "live.csv"
    follower = LogFollower(str(path))
    assert follower.poll() == 0  # not there yet
    path.write_text("step,loss\n0,1.0\n1,0.")
    assert follower.poll() == 2
    with open(path, "a") as fh:
        fh.write("9\n2,0.8\n")
    assert follower.poll() == 2 and follower.rows == 4
    path.write_text("step,loss\n")  # rewritten from scratch
    assert follower.poll() == 1 and follower.rows == 1
    with pytest.raises(UsageError, match="not a directory"):
        LogFollower(str(tmp_path))


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; CI, schedulers, docker stop
def test_watch_follows_a_growing_log_and_stops_cleanly(tmp_path, stop_signal):
    path = tmp_path / "metrics.csv"
    rng = np.random.default_rng(3)
    rows = [f"{s},{0.5 + 0.05 * rng.standard_normal():.6f}\n" for s in range(1200)]
    path.write_text("step,loss\n")
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "siamdiag", "watch", str(path), "--every", "300",
                             "--interval", "0.05", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=interruptible)
    stderr_chunks: list[bytes] = []  # read as it comes: the live panel's last line has no newline yet
    reader = threading.Thread(target=lambda: stderr_chunks.extend(iter(lambda: os.read(proc.stderr.fileno(), 4096), b"")),
                              daemon=True)
    reader.start()
    try:
        for k in range(0, len(rows), 100):
            chunk = "".join(rows[k:k + 100])
            with open(path, "a") as fh:  # each chunk lands in two writes: a partial line in between
                fh.write(chunk[:-3])
                fh.flush()
                time.sleep(0.02)
                fh.write(chunk[-3:])
            time.sleep(0.05)
        # Interrupt once the watcher has judged the finished file (start-up takes seconds on a
        # busy machine; a fixed sleep would interrupt it while it is still importing).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and b"judged at row 1,2" not in b"".join(stderr_chunks):
            time.sleep(0.1)
        proc.send_signal(stop_signal)
        out = proc.stdout.read()
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        proc.kill()
    err = b"".join(stderr_chunks).decode()
    assert "judged at row" in err
    reference = subprocess.run([sys.executable, "-m", "siamdiag", "analyze", str(path), "--format", "json"],
                               capture_output=True, text=True)
    assert proc.returncode == reference.returncode
    watched, final = json.loads(out), json.loads(reference.stdout)
    assert watched["runs"][0]["verdict"] == final["runs"][0]["verdict"]
    assert watched["runs"][0]["points"] == final["runs"][0]["points"] == 1200


@pytest.mark.parametrize("sample, flag, code", [("stationary.csv", "--idle-timeout", 0),
                                                ("nonstationary.csv", "--timeout", 1)])
def test_a_timeout_stops_watch_off_a_terminal_with_one_report_and_whole_lines(tmp_path, sample, flag, code):
    # found: off a terminal the final panel went to stderr as well as stdout, stderr's last line
    # had no newline, and nothing but a signal stopped the watch (a CI step waited forever)
    path = tmp_path / "metrics.csv"
    path.write_bytes((Path(SAMPLES) / sample).read_bytes())
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "siamdiag", "watch", str(path), flag, "1", "--interval", "0.1"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, NO_COLOR="1"))
    assert done.returncode == code
    assert time.monotonic() - started < 30
    assert done.stdout.count("gate:") == 1 and "judged at row" not in done.stdout
    lines = done.stderr.splitlines(keepends=True)
    assert lines and all(line.endswith("\n") and line.startswith("siamdiag watch: ") for line in lines)
    assert "judged at row 2,001: " in lines[0] and f"({flag})" in lines[-1]
    assert not any(c in done.stderr for c in "┃│━─")  # no table on stderr


def test_a_log_that_stops_growing_is_judged_with_all_its_rows(tmp_path):
    # found: with --every 300, rows that arrived after the last judgement (the end of a run, a
    # pause) stayed unjudged until Ctrl-C; oracle: the rows written, counted by hand
    from siamdiag.cli.watch import follow

    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n" + "".join(f"{s},0.5\n" for s in range(100)))
    judged = []

    class Display:
        def judged(self, report, rows):
            judged.append(rows)

        def not_yet(self, rows, reason):
            raise AssertionError(reason)

    def judge():
        if not judged:   # the run logs 50 more rows after the first judgement, then stops
            with open(path, "a") as fh:
                fh.write("".join(f"{s},0.5\n" for s in range(100, 150)))
        return object()

    follower = LogFollower(str(path))
    follow(follower, judge, every=1000, interval=0.05, display=Display(), idle_timeout=4)
    assert judged == [101, 151]   # the header and 100 rows; then every row, once the log paused


def test_a_log_that_cannot_be_judged_yet_is_tried_again_only_when_it_grows(tmp_path):
    # found in review: a log that failed to judge was judged again at every look (every
    # --interval) while nothing changed; oracle: one attempt per state of the file
    from siamdiag.cli.watch import follow
    from siamdiag.errors import InputError

    path = tmp_path / "metrics.csv"
    path.write_text("step,loss\n0,abc\n")
    attempts, reasons = [], []

    class Display:
        def judged(self, report, rows):
            raise AssertionError("nothing here can be judged")

        def not_yet(self, rows, reason):
            reasons.append(reason)

    def judge():
        attempts.append(1)
        raise InputError(str(path), "'abc' is not a number")

    follow(LogFollower(str(path)), judge, every=1000, interval=0.02, display=Display(), idle_timeout=2.5)
    assert len(attempts) == 1 and len(reasons) == 1
