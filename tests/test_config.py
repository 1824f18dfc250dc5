"""Layered settings: defaults < [tool.siamdiag] in pyproject.toml < --config < SIAMDIAG_* < flags.
The oracle is the layer order itself: each test sets a key in several layers to different
values and checks which one wins, and that `config show` names that layer."""
import os

import pytest

from siamdiag.cli.main import main
from siamdiag.cli.settings import resolve
from siamdiag.errors import InputError

from .conftest import SAMPLES

INCONCLUSIVE = os.path.join(SAMPLES, "inconclusive.csv")


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory below a project whose pyproject.toml sets alpha and window."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.siamdiag]\nalpha = 0.02\n'
                                             'window = 0.25\nfail-on = ["diverged", "inconclusive"]\n')
    work = tmp_path / "sub" / "dir"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for var in [v for v in os.environ if v.startswith("SIAMDIAG_")]:
        monkeypatch.delenv(var)
    return tmp_path


def test_each_layer_overrides_the_one_below(project, monkeypatch, tmp_path):
    pyproject = str(project / "pyproject.toml")
    s = resolve({})
    assert (s["alpha"], s["window"], s["strict"]) == (0.02, 0.25, False)
    assert s.sources["alpha"] == f"{pyproject} [tool.siamdiag]" and s.sources["strict"] == "default"
    assert s["fail_on"] == ("diverged", "inconclusive")
    config = tmp_path / "ci.toml"
    config.write_text("alpha = 0.03\nwindow = 500\n")
    s = resolve({}, str(config))
    assert (s["alpha"], s["window"]) == (0.03, 500.0) and s.sources["alpha"] == f"--config {config}"
    monkeypatch.setenv("SIAMDIAG_ALPHA", "0.04")
    monkeypatch.setenv("SIAMDIAG_STRICT", "yes")
    s = resolve({}, str(config))
    assert (s["alpha"], s["strict"], s["window"]) == (0.04, True, 500.0)
    assert s.sources["alpha"] == "environment SIAMDIAG_ALPHA"
    s = resolve({"alpha": "0.05", "strict": False}, str(config))
    assert (s["alpha"], s["strict"]) == (0.05, False) and s.sources["alpha"] == "flag --alpha"


def test_config_show_prints_value_and_source(project, monkeypatch, capsys):
    monkeypatch.setenv("SIAMDIAG_FORMAT", "json")
    code, out, _ = run(["config", "show"], capsys)
    lines = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()}
    assert code == 0
    assert lines["alpha"] == ["0.02", f"{project / 'pyproject.toml'} [tool.siamdiag]"]
    assert lines["format"] == ["json", "environment SIAMDIAG_FORMAT"]
    assert lines["fail_on"][0] == "diverged,inconclusive" and lines["burn_in"] == ["auto", "default"]


def test_settings_change_the_gate(project, capsys):
    # inconclusive passes by default; the project's fail-on makes it fail; a flag restores it
    assert run(["analyze", INCONCLUSIVE, "--format", "json"], capsys)[1].count('"verdict": "inconclusive"') == 0
    (project / "pyproject.toml").write_text("[tool.siamdiag]\nfail_on = 'diverged,inconclusive'\n")
    assert run(["analyze", INCONCLUSIVE], capsys)[0] == 1
    assert run(["analyze", INCONCLUSIVE, "--fail-on", "diverged"], capsys)[0] == 0
    code, out, _ = run(["analyze", INCONCLUSIVE, "--fail-on", "diverged", "--format", "json"], capsys)
    assert '"alpha": 0.01' in out


@pytest.mark.parametrize("body,message", [
    ("[tool.siamdiag]\nalpah = 0.1\n", "unknown key 'alpah'; allowed keys: format, fail_on"),
    ("[tool.siamdiag]\nalpha = 0.9\n", "alpha = 0.9 is not allowed; expected a number in [1e-06, 0.5]"),
    ("[tool.siamdiag]\nformat = 'xml'\n", "expected one of table, json, markdown, junit, github"),
    ("[tool.siamdiag]\nfail_on = ['divergd']\n", "expected verdict names from stationary"),
    ("[tool.siamdiag]\nstrict = 'maybe'\n", "expected true or false"),
])
def test_bad_keys_and_values_name_file_key_and_allowed(project, capsys, body, message):
    (project / "pyproject.toml").write_text(body)
    code, _, err = run(["analyze", INCONCLUSIVE], capsys)
    assert code == 2 and str(project / "pyproject.toml") in err and message in err


def test_a_pyproject_without_our_table_is_not_parsed(project):
    """Another tool's pyproject.toml is no concern of ours: one that never mentions siamdiag is
    not even parsed (a broken one does not stop the gate); ours, broken or not UTF-8, is an error
    naming the file."""
    pyproject = project / "pyproject.toml"
    pyproject.write_text('[project]\nname = = "broken"\n')
    s = resolve({})
    assert (s["alpha"], s.sources["alpha"]) == (0.01, "default")
    pyproject.write_text('[project]\nname = = "broken"\n[tool.siamdiag]\nalpha = 0.02\n')
    with pytest.raises(InputError) as exc:
        resolve({})
    assert exc.value.source == str(pyproject) and exc.value.line == 2
    pyproject.write_bytes(b'[tool.siamdiag]\nalpha = 0.02\nname = "\xff"\n')
    with pytest.raises(InputError, match="not UTF-8") as exc:
        resolve({})
    assert (exc.value.line, exc.value.column) == (3, 9)


def test_bad_toml_and_bad_environment(project, monkeypatch, capsys):
    (project / "pyproject.toml").write_text("[tool.siamdiag]\nalpha = = 1\n")
    with pytest.raises(InputError) as exc:
        resolve({})
    assert exc.value.line == 2 and exc.value.column is not None
    (project / "pyproject.toml").write_text("")
    monkeypatch.setenv("SIAMDIAG_WINDOW", "half")
    code, _, err = run(["config", "show"], capsys)
    assert code == 2 and "SIAMDIAG_WINDOW: window = 'half' is not allowed" in err
    monkeypatch.delenv("SIAMDIAG_WINDOW")
    # a variable that names no setting (another tool's, or a typo) is ignored with a warning
    monkeypatch.setenv("SIAMDIAG_WINDOWS", "0.5")
    monkeypatch.setenv("SIAMDIAG_VERSION", "0.1")
    s = resolve({})
    assert s["window"] == 0.5 and s.sources["window"] == "default"
    assert s.warnings == ("ignored environment variable SIAMDIAG_VERSION: not a setting",
                          "ignored environment variable SIAMDIAG_WINDOWS: not a setting (did you mean SIAMDIAG_WINDOW?)")
    code, out, err = run(["analyze", INCONCLUSIVE, "--format", "json"], capsys)
    assert code == 0 and '"verdict": "inconclusive"' in out
    assert "siamdiag: warning: ignored environment variable SIAMDIAG_VERSION" in err


def test_settings_name_the_engine_verdicts_and_default_gate():
    # settings.py keeps its own copy of the verdict names so that `siamdiag --help` does not import
    # the engine; the copy must agree with the engine's enum and default failing set.
    from siamdiag.cli.settings import SETTINGS, VERDICT_NAMES
    from siamdiag.engine.decide import DEFAULT_FAILING, Verdict

    assert VERDICT_NAMES == tuple(v.value for v in Verdict)
    assert set(SETTINGS["fail_on"].default) == {v.value for v in DEFAULT_FAILING}
