"""The composite GitHub Action (action.yml at the repository root), run the way the runner runs
it: its step's script in bash, with the inputs substituted and GitHub's environment files. The
oracle is siamdiag analyze itself on the same logs."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT, SAMPLES

ACTION = os.path.join(ROOT, "action.yml")


def _run_action(tmp_path, inputs: dict[str, str]) -> tuple[int, str, dict[str, str], str]:
    with open(ACTION, encoding="utf-8") as fh:
        action = yaml.safe_load(fh)
    assert action["runs"]["using"] == "composite"
    [step] = action["runs"]["steps"]
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    assert set(inputs) <= set(values), "unknown input"
    values.update(inputs)
    missing = [n for n, spec in action["inputs"].items() if spec.get("required") and not values[n]]
    assert not missing, missing

    def expand(text: str) -> str:
        text = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: values[m.group(1)], text)
        return re.sub(r"\$\{\{\s*github\.action_path\s*\}\}", ROOT, text)

    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    summary.touch()
    outputs.touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIAMDIAG_")}
    env.update({k: expand(str(v)) for k, v in step["env"].items()})
    env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs),
               PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    assert step["shell"] == "bash"
    done = subprocess.run(["bash", "-c", step["run"]], env=env, cwd=tmp_path, capture_output=True, text=True)
    values_out = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return done.returncode, done.stdout, values_out, summary.read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash, as the runner's shell")
def test_action_gates_and_sets_outputs(tmp_path):
    code, stdout, outputs, summary = _run_action(tmp_path, {"paths": SAMPLES, "install": "false"})
    expected = subprocess.run([sys.executable, "-m", "siamdiag", "analyze", SAMPLES, "--format", "github",
                               "--no-github-summary"], capture_output=True, text=True)
    assert (code, stdout) == (expected.returncode, expected.stdout) == (1, expected.stdout)
    assert outputs["gate"] == "fail" and int(outputs["runs"]) == sum(line.startswith("::") for line in stdout.splitlines())
    assert summary.startswith("### siamdiag: ❌ gate FAILED")
    stationary = os.path.join(SAMPLES, "stationary.csv")
    diverged = os.path.join(SAMPLES, "diverged.csv")
    (tmp_path / "second").mkdir()
    code, _out, outputs, _summary = _run_action(tmp_path / "second", {"paths": f"{stationary}\n{diverged}\n", "fail-on": "degenerate",
                                                 "alpha": "0.05", "args": "--strict", "install": "false",
                                                 "format": "json"})
    assert code == 0 and outputs == {**outputs, "gate": "pass", "runs": "2", "failing": "0", "diverged": "1"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash, as the runner's shell")
def test_action_takes_one_path_per_line_spaces_and_all(tmp_path):
    """issue #18: a `paths: |` block of two lines judged only its first line, and a path with a space
    could not be given at all. Each line is one path, as GitHub's own actions read such blocks."""
    spaced = tmp_path / "my runs"
    spaced.mkdir()
    shutil.copy(os.path.join(SAMPLES, "diverged.csv"), spaced / "last seed.csv")
    stationary = os.path.join(SAMPLES, "stationary.csv")
    workflow = (f"with:\n  paths: |\n    {stationary}\n\n    {spaced}/last seed.csv   \r\n"
                f"  install: 'false'\n  format: json\n")
    inputs = yaml.safe_load(workflow)["with"]   # what the runner hands the action
    assert inputs["paths"].count("\n") == 3
    code, stdout, outputs, _summary = _run_action(tmp_path, inputs)
    assert code == 1 and (outputs["runs"], outputs["diverged"], outputs["failing"]) == ("2", "1", "1")
    assert [r["source"] for r in json.loads(stdout)["runs"]] == [stationary, f"{spaced}/last seed.csv"]
    code, stdout, _outputs, _summary = _run_action(tmp_path, {"paths": "\n  \n", "install": "false"})
    assert code == 2 and "the paths input names no log" in stdout
