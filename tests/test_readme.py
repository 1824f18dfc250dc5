"""The README's Python examples run as written (from the repository root, as a reader would)."""
import os
import re

from .conftest import ROOT


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)


def test_readme_has_python_examples():
    assert python_blocks()


def test_readme_python_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    for block in python_blocks():
        exec(compile(block, "README.md", "exec"), {"__name__": "readme_example"})
