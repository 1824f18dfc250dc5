"""The README's examples run as written: its Python blocks execute, and every shell example that
shows what it prints (a `$ command` line, then the output) prints that again, so that the README
cannot go stale. Only numbers may differ, by one unit of their last shown digit (floating point
across platforms); a line `...` stands for any number of lines, and a JSON example's
`"...": "..."` for fields left out."""
import json
import os
import re
import subprocess
import sys

import pytest

from .conftest import ROOT

FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
# An HTML comment naming the command whose output the next fenced block shows (used where the
# block's language, JSON, leaves no room for the command line).
OUTPUT_OF = re.compile(r"<!-- output of: (.*?) -->\s*$")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
BOX_RUNS = re.compile(r"([━─ ])\1+")


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


# An HTML comment naming the engine a Python block needs; tests/test_engines.py runs those blocks
# on a local Dask cluster, Spark session and Ray, and python_blocks leaves them out.
ENGINE_EXAMPLE = re.compile(r"<!-- engine example: (\w+) -->\s*$")


def python_blocks():
    return [body for lang, body in FENCE.findall(readme()) if lang == "python" and body not in engine_examples().values()]


def engine_examples() -> dict[str, str]:
    """Engine name -> the Python block after its ``<!-- engine example: NAME -->`` comment."""
    text = readme()
    found = {}
    for m in FENCE.finditer(text):
        marker = ENGINE_EXAMPLE.search(text[max(0, m.start() - 200):m.start()])
        if m.group(1) == "python" and marker:
            found[marker.group(1)] = m.group(2)
    return found


def shell_examples():
    """(command, shown output, pyproject.toml text or None) for each example that shows output.
    An example in the block right after a ``toml`` block runs in a directory holding that file."""
    text, examples, previous = readme(), [], None
    for m in FENCE.finditer(text):
        lang, body = m.group(1), m.group(2)
        marker = OUTPUT_OF.search(text[:m.start()].rstrip("\n"))
        toml = previous if previous and previous[0] == "toml" else None
        toml_text = toml[1] if toml else None
        if marker and text[marker.end():m.start()].strip() == "":
            examples.append((marker.group(1), body, toml_text))
        elif lang in ("", "console") and body.startswith("$ "):
            for chunk in re.split(r"(?m)^(?=\$ )", body):
                if chunk.strip():
                    command, _, shown = chunk[2:].partition("\n")
                    examples.append((command, shown, toml_text))
        previous = (lang, body)
    return examples


def run_example(command: str, toml: str | None, tmp_path) -> str:
    """What the command prints (stdout, then stderr), run by bash in a fresh directory that holds
    the samples (and the pyproject.toml shown before it), as a 120-column terminal without colour."""
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink(os.path.join(ROOT, "sample_runs"), repo / "sample_runs")
    if toml:
        (repo / "pyproject.toml").write_text(toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIAMDIAG_")}
    env.update(COLUMNS="120", NO_COLOR="1", PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    done = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    return (done.stdout + done.stderr).replace(str(repo), "/repo")


def last_digit_unit(shown: str) -> float:
    mantissa, _, exponent = shown.replace(",", "").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def same_line(shown: str, actual: str) -> bool:
    """Equal once box-drawing runs and spaces are collapsed, numbers within one unit of their
    last shown digit."""
    shown, actual = BOX_RUNS.sub(r"\1", shown.rstrip()), BOX_RUNS.sub(r"\1", actual.rstrip())
    if NUMBER.split(shown) != NUMBER.split(actual):
        return False
    return all(abs(float(a.replace(",", "")) - float(s.replace(",", ""))) <= last_digit_unit(s) * 1.0001
               for s, a in zip(NUMBER.findall(shown), NUMBER.findall(actual)))


def same_lines(shown: list[str], actual: list[str]) -> bool:
    if not shown:
        return not actual
    if shown[0].strip() == "...":
        return any(same_lines(shown[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and same_line(shown[0], actual[0]) and same_lines(shown[1:], actual[1:])


def same_json(shown, actual, where="$") -> None:
    """Asserts that the shown JSON is the actual one, abridged where it says "..."."""
    if isinstance(shown, dict):
        assert isinstance(actual, dict), where
        keys = set(shown) - {"..."}
        assert keys <= set(actual) and ("..." in shown or keys == set(actual)), (where, sorted(actual))
        for key in keys:
            same_json(shown[key], actual[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(actual, list) and len(shown) == len(actual), where
        for k, (s, a) in enumerate(zip(shown, actual)):
            same_json(s, a, f"{where}[{k}]")
    elif isinstance(shown, (int, float)) and not isinstance(shown, bool):
        assert isinstance(actual, (int, float)) and same_line(json.dumps(shown), json.dumps(actual)), (where, actual)
    else:
        assert shown == actual, (where, actual)


def test_readme_has_python_and_shell_examples():
    assert python_blocks() and len(EXAMPLES) >= 4


def test_readme_python_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    for block in python_blocks():
        exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})


EXAMPLES = shell_examples()


@pytest.mark.parametrize("command, shown, toml", EXAMPLES, ids=[command[:60] for command, _, _ in EXAMPLES])
def test_readme_shell_example_prints_what_it_shows(tmp_path, command, shown, toml):
    actual = run_example(command, toml, tmp_path)
    if shown.lstrip().startswith("{"):
        same_json(json.loads(shown), json.loads(actual))
    else:
        assert same_lines(shown.rstrip("\n").split("\n"), actual.rstrip("\n").split("\n")), actual


def test_the_comparison_allows_only_last_digit_noise():
    assert same_line("p=0.031, step 1,500 ━━━", "p=0.032, step 1,500 ━━━━━━")
    assert not same_line("p=0.031, step 1,500", "p=0.033, step 1,500")      # two units off
    assert not same_line("level shift near step 1,500", "level drop near step 1,500")
    assert same_lines(["a", "...", "z"], ["a", "b", "c", "z"]) and not same_lines(["a", "z"], ["a", "b", "z"])
    same_json({"a": 1.5, "...": "..."}, {"a": 1.54, "b": 2})
    with pytest.raises(AssertionError):
        same_json({"a": 1.5}, {"a": 1.5, "b": 2})   # a field left out without "..."
