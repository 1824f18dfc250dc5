"""The CLI contract: exit codes, output files, formats, gate options."""
import gc
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from siamdiag.cli import main as cli

from .conftest import SAMPLES, write_csv


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_exit_0_on_a_stationary_run(capsys):
    code, out, err = run_cli(["analyze", os.path.join(SAMPLES, "stationary.csv")], capsys)
    assert code == 0 and "stationary" in out and "gate: PASS" in out and err == ""


def test_exit_1_on_a_failing_run(capsys):
    code, out, _ = run_cli(["analyze", os.path.join(SAMPLES, "nonstationary.csv")], capsys)
    assert code == 1 and "gate: FAIL" in out


def test_exit_2_on_bad_input_with_location_and_no_traceback(tmp_path, capsys):
    path = write_csv(tmp_path / "bad.csv", ["step", "loss"], [(0, 0.1), (1, "oops")])
    code, out, err = run_cli(["analyze", path], capsys)
    assert code == 2 and out == ""
    assert f"{path}:3:3:" in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["analyze", "/nonexistent/x.csv"], ["analyze"], ["analyze", SAMPLES, "--window", "2.5"],
                                  ["analyze", SAMPLES, "--fail-on", "bogus"], ["analyze", SAMPLES, "--format", "xml"],
                                  ["analyze", SAMPLES, "--burn-in", "soon"]])
def test_exit_2_on_usage_errors(args, capsys):
    assert run_cli(args, capsys)[0] == 2


def test_exit_3_on_internal_error(monkeypatch, capsys):
    import siamdiag.pipeline

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(siamdiag.pipeline, "judge_paths", boom)
    code, _, err = run_cli(["analyze", SAMPLES], capsys)
    assert code == 3 and "internal error" in err


def test_strict_and_fail_on(capsys):
    path = os.path.join(SAMPLES, "inconclusive.csv")
    assert run_cli(["analyze", path], capsys)[0] == 0
    assert run_cli(["analyze", path, "--strict"], capsys)[0] == 1
    assert run_cli(["analyze", os.path.join(SAMPLES, "not_converged.csv"), "--fail-on", "diverged"], capsys)[0] == 0
    assert run_cli(["analyze", os.path.join(SAMPLES, "stationary.csv"), "--fail-on", "stationary"], capsys)[0] == 1


@pytest.mark.parametrize("text, extra", [
    ("step,loss\n", []),                                       # a header only: crashed before its first log
    ("step,loss\n1,\n2,\n3,\n", []),                            # every loss cell empty
    ("step,loss\n" + "".join(f"{i},{0.3 + 0.01 * (i % 7)}\n" for i in range(200)), ["--burn-in", "500"]),
])
def test_a_run_with_nothing_to_judge_fails_the_gate(tmp_path, capsys, text, extra):
    # issue #19: these were insufficient_data, "pass", exit 0: a job that crashed before logging passed CI
    path = tmp_path / "run.csv"
    path.write_text(text)
    code, out, _ = run_cli(["analyze", str(path), "--format", "json", *extra], capsys)
    [run] = json.loads(out)["runs"]
    assert code == 1 and run["verdict"] == "no_data" and run["gate"] == "fail"
    assert "nothing" in run["reasons"][0]
    # a short but real log still passes, and --fail-on without no_data lets an empty one pass
    assert run_cli(["analyze", os.path.join(SAMPLES, "insufficient_data.csv")], capsys)[0] == 0
    assert run_cli(["analyze", str(path), "--fail-on", "diverged", *extra], capsys)[0] == 0


def test_json_schema(capsys):
    code, out, _ = run_cli(["analyze", SAMPLES, "--format", "json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["gate"] == "fail" and doc["schema_version"] == 3 and doc["siamdiag_version"]
    verdicts = {r["verdict"] for r in doc["runs"]}
    assert verdicts == {"stationary", "not_converged", "nonstationary", "diverged", "degenerate",
                        "inconclusive", "insufficient_data", "no_data"}
    for r in doc["runs"]:
        assert {"run", "verdict", "gate", "reasons", "window", "adf", "kpss", "drift", "level_shift",
                "variance", "end_change", "move", "grad_norm"} <= set(r)
        assert r["reasons"]
    stationary = next(r for r in doc["runs"] if r["run"].endswith("stationary.csv") and r["verdict"] == "stationary")
    assert stationary["grad_norm"]["coupled"] is True
    assert stationary["window"]["first_step"] == 1000


def test_output_is_atomic_and_never_overwrites_an_input(tmp_path, capsys):
    src = os.path.join(SAMPLES, "stationary.csv")
    out_path = tmp_path / "report.json"
    code, out, _ = run_cli(["analyze", src, "--format", "json", "-o", str(out_path)], capsys)
    assert code == 0 and out == "" and json.loads(out_path.read_text())["gate"] == "pass"
    log = write_csv(tmp_path / "log.csv", ["step", "loss"], [(i, 0.1) for i in range(5)])
    before = open(log).read()
    code, _, err = run_cli(["analyze", log, "-o", log], capsys)
    assert code == 2 and "refusing to overwrite" in err and open(log).read() == before
    # a failed analysis leaves an existing report untouched and no temporary file behind
    bad = write_csv(tmp_path / "bad.csv", ["step", "loss"], [(0, "x")])
    code, _, _ = run_cli(["analyze", bad, "-o", str(out_path)], capsys)
    assert code == 2 and json.loads(out_path.read_text())["gate"] == "pass"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".siamdiag-")]


@pytest.mark.parametrize("nan_steps, verdict", [
    ({900}, "stationary"),                        # one skipped step the run recovered from
    ({300}, "stationary"),                        # the same before the window
    (set(range(900, 905)), "diverged"),           # five in a row: more than a skipped step
    ({999}, "diverged"),                          # the run ends on it
])
def test_explicit_nan_counts_the_same_inside_and_before_the_window(tmp_path, capsys, nan_steps, verdict):
    rng = np.random.default_rng(0)
    rows = [(i, "nan" if i in nan_steps else f"{0.3 + 0.01 * rng.standard_normal():.5f}") for i in range(1000)]
    code, out, _ = run_cli(["analyze", write_csv(tmp_path / "n.csv", ["step", "loss"], rows), "--format", "json"],
                           capsys)
    [run] = json.loads(out)["runs"]
    assert run["verdict"] == verdict and code == (0 if verdict == "stationary" else 1)
    if verdict == "stationary":
        assert "recovered" in run["notes"][0]


def test_module_entry_point_and_no_torch_import():
    code = ("import sys, runpy; sys.argv=['siamdiag','analyze','" + os.path.join(SAMPLES, "stationary.csv") + "'];"
            "\ntry:\n    runpy.run_module('siamdiag', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert e.code == 0, e.code\nassert 'torch' not in sys.modules\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.stdout.strip().endswith("ok"), res.stderr


def test_the_executable_freezes_its_objects_before_exit_and_main_in_process_never_does(capsys):
    """The `siamdiag` script and `python -m siamdiag` run console(): once analyze has written its
    report, the objects alive are frozen so that the interpreter's last collections skip them.
    main() called in-process (a test, a notebook) never freezes: frozen objects are never
    collected. The report is main's, byte for byte, and so is the exit code (a failing gate here)."""
    from importlib.metadata import entry_points

    [script] = entry_points(group="console_scripts", name="siamdiag")
    assert script.value == "siamdiag.cli.main:console"
    path = os.path.join(SAMPLES, "nonstationary.csv")
    frozen = gc.get_freeze_count()
    code, expected, _ = run_cli(["analyze", path, "--format", "json"], capsys)
    assert code == 1 and gc.get_freeze_count() == frozen
    program = ("import gc, sys\nsys.argv = ['siamdiag', 'analyze', " + repr(path) + ", '--format', 'json']\n"
               "try:\n    import runpy; runpy.run_module('siamdiag', run_name='__main__')\n"
               "except SystemExit as e:\n    sys.stderr.write(f'EXIT {e.code} FROZEN {gc.get_freeze_count()}')")
    res = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    exit_code, frozen_count = res.stderr.rsplit("EXIT ", 1)[1].split(" FROZEN ")
    assert res.stdout == expected and exit_code == "1" and int(frozen_count) > 1000, res.stderr


def test_judging_a_csv_loads_only_what_it_uses(tmp_path):
    """Imports are most of a short log's time: judging a CSV (no grad norm, no pyproject.toml
    of ours) loads neither the text, JSON nor TensorBoard reader, nor a TOML parser, difflib,
    statistics, sqlite3 or rich (the JSON report)."""
    log = tmp_path / "run.csv"
    log.write_text("step,loss\n" + "".join(f"{s},{0.3 + 0.01 * ((s * 7) % 5)}\n" for s in range(400)))
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    unwanted = ("siamdiag.logs.readers.text", "siamdiag.logs.readers.jsonlog", "siamdiag.logs.readers.tensorboard",
                "tomllib", "difflib", "statistics", "sqlite3", "rich")
    code = ("import sys; from siamdiag.cli.main import main\ntry:\n    main(['analyze', 'run.csv', '--format', 'json'])\n"
            f"except SystemExit:\n    pass\nprint('LOADED=' + ','.join(m for m in {unwanted!r} if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert res.stdout.rsplit("LOADED=", 1)[1].strip() == "", res.stderr


def test_window_and_burn_in_options_choose_the_judged_steps(capsys):
    path = os.path.join(SAMPLES, "stationary.csv")  # steps 0..1999
    doc = json.loads(run_cli(["analyze", path, "--format", "json", "--window", "400"], capsys)[1])
    assert doc["runs"][0]["window"]["first_step"] == 1599 and doc["runs"][0]["window"]["points"] == 401
    doc = json.loads(run_cli(["analyze", path, "--format", "json", "--window", "0.25"], capsys)[1])
    assert doc["runs"][0]["window"]["first_step"] == 1500  # 1999 - 0.25 * 1999 = 1499.25 -> first step 1500
    doc = json.loads(run_cli(["analyze", path, "--format", "json", "--burn-in", "700"], capsys)[1])
    window = doc["runs"][0]["window"]
    assert (window["first_step"], window["burn_in_step"], window["burn_in_method"]) == (700, 700, "fixed")


def test_judging_the_whole_run_includes_the_transient(capsys):
    # stationary.csv is 0.35 + 1.5 exp(-t/80) + noise: the whole run still holds the transient,
    # the run after step 700 (exp(-700/80) < 2e-4) does not. A window asked for the whole run is
    # moved past the transient (and says so); a burn-in of 0 judges it as given.
    path = os.path.join(SAMPLES, "stationary.csv")
    code, out, _ = run_cli(["analyze", path, "--burn-in", "0"], capsys)
    assert code == 1 and "0–1,999" in out
    code, out, _ = run_cli(["analyze", path, "--window", "1.0", "--format", "json"], capsys)
    [run] = json.loads(out)["runs"]
    assert code == 0 and any("reaches into the learning transient" in note for note in run["notes"])
    code, out, _ = run_cli(["analyze", path, "--burn-in", "700"], capsys)
    assert code == 0 and "stationary" in out


@pytest.mark.parametrize("command", [[], ["analyze"], ["plot"], ["watch"], ["train"], ["config"], ["config", "show"]])
def test_every_help_ends_with_the_exit_codes(command):
    # issue #19: exit codes are an API, and appeared in no --help; the table is the one in main's contract
    from click.testing import CliRunner

    from siamdiag.cli.exit_codes import EXIT_CODES
    from siamdiag.cli.main import EXIT_FAIL, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PASS, EXIT_USAGE, cli

    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    section = result.output.split("Exit codes:")[1]
    for code, meaning in EXIT_CODES:
        assert code in section and meaning.split()[0] in section
    assert {int(code) for code, _ in EXIT_CODES} >= {EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED}
