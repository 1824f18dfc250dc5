"""Nothing lost, nothing crashes (issue #12): output targets that are not files, outputs that are
inputs, environment errors, interrupts, unreadable paths, terminal escapes, colour conventions.
Every test names the failure it guards against; each fails on the code before the fix."""
import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from siamdiag.cli import main as cli
from siamdiag.cli import terminal

from .conftest import SAMPLES, interruptible, write_csv

STATIONARY = os.path.join(SAMPLES, "stationary.csv")


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def digest(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def one_line_error(err: str) -> bool:
    return err.count("\n") == 1 and err.startswith("siamdiag: error: ") and "Traceback" not in err


# ------------------------------------------------------------------ output targets that are not files

def device_node(directory, name: str, minor: int):
    """A character device of the memory driver (major 1: 3 is null, 7 is full) made in
    ``directory``, so that a regression replaces a node there, never one under /dev."""
    node = directory / name
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except OSError:
        pytest.skip("this system refuses to create a device node here")
    return node


def test_a_character_device_is_written_through_not_replaced(tmp_path, capsys):
    # found: as root, `analyze -o /dev/null` renamed a regular file over the device node
    node = device_node(tmp_path, "null", 3)
    code, _, err = run_cli(["analyze", STATIONARY, "-o", str(node)], capsys)
    assert code == 0 and err == "" and stat.S_ISCHR(os.stat(node).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null"]   # no temporary left beside it


def test_a_fifo_target_feeds_its_reader(tmp_path, capsys):
    # found: the report went to a temporary file renamed over the FIFO, and the reader hung
    fifo = tmp_path / "report.pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, encoding="utf-8").read()), daemon=True)
    reader.start()
    code, _, _ = run_cli(["analyze", STATIONARY, "-o", str(fifo), "--format", "json"], capsys)
    reader.join(timeout=30)
    assert code == 0 and received and '"verdict": "stationary"' in received[0]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dev_stdout_writes_into_the_callers_stream(tmp_path):
    # /dev/stdout resolves to the file the shell redirected to: renaming over it would detach it
    out = tmp_path / "captured.txt"
    out.write_text("")
    before = os.stat(out).st_ino
    with open(out, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "siamdiag", "analyze", STATIONARY, "-o", "/dev/stdout"],
                              stdout=fh, stderr=subprocess.PIPE, text=True)
    assert proc.returncode == 0 and os.stat(out).st_ino == before and "gate: PASS" in out.read_text()


def test_targets_that_are_neither_files_nor_streams_are_refused(tmp_path, capsys):
    import socket

    code, out, err = run_cli(["analyze", STATIONARY, "-o", str(tmp_path)], capsys)
    assert code == 2 and out == "" and "is a directory" in err
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        code, out, err = run_cli(["analyze", STATIONARY, "-o", str(path)], capsys)
    assert code == 2 and one_line_error(err) and "is a socket, not a file" in err
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_a_full_disk_is_one_line_and_exit_2(tmp_path, capsys):
    # a "full" device node answers every write with ENOSPC, as a full disk does
    full = device_node(tmp_path, "full", 7)
    code, _, err = run_cli(["analyze", STATIONARY, "-o", str(full)], capsys)
    assert code == 2 and one_line_error(err) and str(full) in err and "No space left on device" in err
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_permission_denied_on_output_is_one_line_and_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    # as root a chmod cannot refuse a write, so the system's refusal is injected at the rename
    target = tmp_path / "report.txt"
    target.write_text("old report\n")

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", refuse)
    code, _, err = run_cli(["analyze", STATIONARY, "-o", str(target)], capsys)
    assert code == 2 and one_line_error(err) and f"cannot write {target}: Permission denied" in err
    assert target.read_text() == "old report\n" and os.listdir(tmp_path) == ["report.txt"]


def test_permission_denied_on_a_plot_directory_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    real_makedirs = os.makedirs

    def refuse(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_makedirs(path, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", refuse)
    code, _, err = run_cli(["analyze", STATIONARY, "--plot", str(tmp_path / "plots")], capsys)
    assert code == 2 and one_line_error(err) and "Permission denied" in err


def test_train_without_torch_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)   # `import torch` now fails as if not installed
    code, _, err = run_cli(["train", "--out", str(tmp_path / "run"), "--steps", "10"], capsys)
    assert code == 2 and one_line_error(err) and "pip install 'siamdiag[train]'" in err


# ------------------------------------------------------------------ outputs that are inputs

def test_output_onto_a_log_found_inside_a_directory_is_refused(tmp_path, capsys):
    # found: `analyze t -o t/d/inner.csv` overwrote the log (exit 0)
    inner = tmp_path / "d" / "inner.csv"
    inner.parent.mkdir()
    with open(STATIONARY, "rb") as src:
        inner.write_bytes(src.read())
    before = digest(inner)
    code, _, err = run_cli(["analyze", str(tmp_path), "-o", str(inner)], capsys)
    assert code == 2 and "one of the input logs" in err and digest(inner) == before


@pytest.mark.parametrize("command", ["analyze", "plot"])
def test_output_onto_a_hard_link_of_an_input_is_refused(tmp_path, capsys, command):
    log = tmp_path / "run.csv"
    with open(STATIONARY, "rb") as src:
        log.write_bytes(src.read())
    link = tmp_path / "link.png"
    os.link(log, link)
    before = digest(log)
    code, _, err = run_cli([command, str(log), "-o", str(link)], capsys)
    assert code == 2 and "one of the input logs" in err and digest(log) == before


# ------------------------------------------------------------------ interrupts

def wait_until_sleeping_on_read(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the child has imported everything and blocks reading its stdin."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/wchan") as fh:
                waiting = fh.read()
            with open(f"/proc/{proc.pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            waiting, state = "", ""
        if state == "S" and waiting not in ("", "0") and "futex" not in waiting:
            time.sleep(0.3)
            return
        time.sleep(0.1)


@pytest.mark.skipif(not os.path.exists("/proc/self/wchan"), reason="needs /proc to see the child wait")
def test_ctrl_c_during_analyze_exits_130():
    # found: exit 2 ("aborted"); a shell reports Ctrl-C as 128 + SIGINT
    proc = subprocess.Popen([sys.executable, "-m", "siamdiag", "analyze", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        proc.stdin.write("step,loss\n0,0.5\n")
        proc.stdin.flush()
        wait_until_sleeping_on_read(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err


def test_ctrl_c_during_train_start_up_exits_130(tmp_path, capsys, monkeypatch):
    # found: exit 2 ("aborted") when Ctrl-C came before training began (loading torch, data)
    pytest.importorskip("torch")
    from siamdiag.cli import train_command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "train_single", interrupted)
    code, out, err = run_cli(["train", "--out", str(tmp_path / "run"), "--steps", "10"], capsys)
    assert code == 130 and out == "" and "interrupted" in err


# ------------------------------------------------------------------ paths that cannot be read

def test_a_symlink_loop_is_named_as_one(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    os.symlink(b, a)
    os.symlink(a, b)
    code, _, err = run_cli(["analyze", str(a)], capsys)
    assert code == 2 and one_line_error(err) and f"{a}: symlink loop" in err


def test_a_broken_symlink_says_where_it_points(tmp_path, capsys):
    link = tmp_path / "run.csv"
    os.symlink(tmp_path / "gone.csv", link)
    code, _, err = run_cli(["analyze", str(link)], capsys)
    assert code == 2 and "broken symlink" in err and "gone.csv" in err


def test_an_unreadable_directory_is_permission_denied_not_no_runs(tmp_path, capsys, monkeypatch):
    # found: "no runs found". As root nothing is unreadable, so the refusal is injected
    locked = tmp_path / "locked"
    locked.mkdir()
    write_csv(locked / "run.csv", ["step", "loss"], [(0, 0.1)])
    real_scandir = os.scandir

    def refuse(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    code, _, err = run_cli(["analyze", str(tmp_path)], capsys)
    assert code == 2 and one_line_error(err) and f"{locked}: cannot list directory: Permission denied" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_an_unreadable_directory_for_real(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    write_csv(locked / "run.csv", ["step", "loss"], [(0, 0.1)])
    locked.chmod(0)
    try:
        code, _, err = run_cli(["analyze", str(tmp_path)], capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2 and "Permission denied" in err


# ------------------------------------------------------------------ what reaches a terminal

def test_run_names_are_shown_literally_in_the_table(tmp_path, monkeypatch, stationary_rows):
    # found: `exp[fold1].csv` showed as `exp.csv` (rich markup), ESC reached the terminal
    import re

    from siamdiag import analyze
    from siamdiag.report.render import render_table

    monkeypatch.chdir(tmp_path)   # short relative names: the table does not fold them
    write_csv(tmp_path / "exp[fold1].csv", ["step", "loss"], stationary_rows)
    write_csv(tmp_path / "e\x1b]0;x\x07.csv", ["step", "loss"], stationary_rows)
    report = analyze(["exp[fold1].csv", "e\x1b]0;x\x07.csv"])
    for colour in (False, True):
        text = re.sub(r"\x1b\[[0-9;]*m", "", render_table(report, colour))  # the table's own colours
        assert "exp[fold1].csv" in text and "e\\x1b]0;x\\x07.csv" in text
        assert "\x1b" not in text and "\x07" not in text


@pytest.mark.parametrize("env, tty, expected", [
    ({}, True, True), ({"NO_COLOR": ""}, True, True), ({"NO_COLOR": "1"}, True, False),
    ({"TERM": "dumb"}, True, False), ({}, False, False)])
def test_colour_follows_no_color_and_term(monkeypatch, env, tty, expected):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Stream:
        def isatty(self):
            return tty

    assert terminal.colour_for(Stream()) is expected
    assert terminal.stderr_console().no_color is not terminal.colour_allowed()


# ------------------------------------------------------------------ messy tables

def test_several_seeds_in_one_file_suggest_run_col(tmp_path, capsys):
    # found: merged into one run with only "a resumed run?"
    rng = np.random.default_rng(0)
    rows = [(m, seed, s, f"{0.3 + 0.02 * rng.standard_normal():.5f}")
            for m in ("contrastive", "triplet") for seed in (0, 1) for s in range(300)]
    path = write_csv(tmp_path / "sweep.csv", ["method", "seed", "step", "loss"], rows)
    from siamdiag import analyze

    [run] = analyze(path).runs
    hint = next(n for n in run.notes if "--run-col" in n)
    assert "start over 3 times" in hint and hint.endswith("--run-col method,seed")
    # a resumed run (the steps start over, nothing else changes) gets no such hint
    resumed = [(s, f"{0.3 + 0.02 * rng.standard_normal():.5f}") for s in [*range(200), *range(150, 400)]]
    [run] = analyze(write_csv(tmp_path / "resumed.csv", ["step", "loss"], resumed)).runs
    assert not any("--run-col" in n for n in run.notes) and any("resumed run" in n for n in run.notes)


def test_duplicate_column_names_get_a_note(tmp_path, stationary_rows):
    path = write_csv(tmp_path / "dup.csv", ["step", "loss", "loss"], [(s, v, v) for s, v in stationary_rows])
    from siamdiag import analyze

    [run] = analyze(path).runs
    assert any("names column 'loss' 2 times" in n and "'loss.1'" in n for n in run.notes)


@pytest.mark.parametrize("data", [["a", "b"], [[1.0, 2.0], [3.0]], {"loss": [1.0, 2.0], "step": [1.0]}, object()])
def test_the_api_raises_siamdiag_errors_for_malformed_input(data):
    from siamdiag import analyze
    from siamdiag.errors import SiamdiagError

    with pytest.raises(SiamdiagError):
        analyze(data)
