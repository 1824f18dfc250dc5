"""A corpus of malformed and extreme logs (issue #12): every one yields a verdict or a one-line
error naming the file (exit 0, 1 or 2; never a traceback, never exit 3), and no input file is
ever modified (hashed before and after)."""
import gzip
import hashlib
import json
import os

import numpy as np
import pytest

from siamdiag.cli import main as cli


def steps_and(values) -> str:
    return "step,loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values))


RNG = np.random.default_rng(0)
NOISE = [f"{0.3 + 0.02 * x:.6f}" for x in RNG.standard_normal(400)]

CORPUS = {
    "empty.csv": b"",
    "blank_lines.csv": b"\n\n\n",
    "header_only.csv": b"step,loss\n",
    "no_loss_column.csv": b"a,b\n1,2\n3,4\n",
    "text_in_loss.csv": b"step,loss\n0,0.1\n1,oops\n",
    "ragged_rows.csv": b"step,loss\n0,0.1\n1,0.2,9\n2,0.3\n",
    "binary.csv": bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)),
    "latin1.csv": "step,loss\n0,0.1\n1,0.2 \u00e9t\u00e9\n".encode("latin-1"),
    "nul_byte.csv": b"step,loss\n0,0.1\x00\n",
    "bom_crlf.csv": ("\ufeff" + steps_and(NOISE).replace("\n", "\r\n")).encode(),
    "one_row.csv": b"step,loss\n0,0.5\n",
    "all_nan.csv": steps_and(["nan"] * 300).encode(),
    "all_inf.csv": steps_and(["inf"] * 300).encode(),
    "huge_alternating.csv": steps_and(["1e308", "-1e308"] * 150).encode(),
    "near_float_max.csv": steps_and([f"{v:.6e}" for v in 3e307 * np.clip(RNG.standard_normal(600), -4, 4)]).encode(),
    "subnormal.csv": steps_and([f"{v:.3e}" for v in 1e-310 * (1 + RNG.random(300))]).encode(),
    "constant_zero.csv": steps_and(["0"] * 300).encode(),
    "negative_steps.csv": "step,loss\n".join(["", ""]).encode() + "".join(
        f"{-i},{v}\n" for i, v in enumerate(NOISE)).encode(),
    "same_step.csv": "step,loss\n".encode() + "".join(f"7,{v}\n" for v in NOISE).encode(),
    "text_step.csv": b"step,loss\nx,0.1\ny,0.2\n",
    "float_steps.csv": "step,loss\n".encode() + "".join(f"{i / 3:.4f},{v}\n" for i, v in enumerate(NOISE)).encode(),
    "nan_steps.csv": "step,loss\n".encode() + "".join(
        f"{'nan' if i % 7 == 0 else i},{v}\n" for i, v in enumerate(NOISE)).encode(),
    "quoted_cells.csv": b'"step","loss","note"\n0,0.1,"a, b"\n1,0.2,"say ""hi"""\n',
    "long_cell.csv": b"step,loss,blob\n0,0.1," + b"x" * 200_000 + b"\n",
    "unterminated_quote.csv": b'step,loss\n0,"0.1\n1,0.2\n',
    "bad.json": b'{"loss": [0.1, 0.2',
    "numbers.json": b"[1, 2, 3]",
    "strings.json": b'{"loss": ["a", "b"]}',
    "nested.json": b'{"loss": {"deep": [1, 2]}}',
    "bad_line.jsonl": b'{"step": 0, "loss": 0.1}\n{"step": 1, "loss": }\n',
    "scalars.jsonl": b"1\n2\n3\n",
    "trainer_state.json": b'{"log_history": "not a list"}',
    "corrupt.csv.gz": b"\x1f\x8b\x08\x00garbage",
    "empty.csv.gz": gzip.compress(b""),
    "events.out.tfevents.1.host": bytes(RNG.integers(0, 256, 2048, dtype=np.uint8)),
    "nothing.log": b"hello world\nno numbers here\n",
    "tab_and_comma.tsv": b"step\tloss,x\n0\t0.1,2\n",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    for name, data in CORPUS.items():
        (root / name).write_bytes(data)
    return root


def digests(root) -> dict:
    return {p: hashlib.sha256(open(os.path.join(root, p), "rb").read()).hexdigest() for p in sorted(os.listdir(root))}


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.mark.parametrize("fmt", ["json", "table"])
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_every_bad_input_gets_a_verdict_or_one_line_error(corpus, capsys, name, fmt):
    before = digests(corpus)
    path = str(corpus / name)
    code, out, err = run_cli(["analyze", path, "--format", fmt], capsys)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err and "internal error" not in err
    if code == 2:
        assert out == "" and err.count("\n") == 1 and err.startswith("siamdiag: error: ") and name in err, err
    else:
        assert json.loads(out)["runs"] if fmt == "json" else "gate: " in out
    assert digests(corpus) == before


def test_the_whole_corpus_as_a_directory_never_crashes_or_writes(corpus, capsys, tmp_path):
    before = digests(corpus)
    code, out, err = run_cli(["analyze", str(corpus), "-o", str(tmp_path / "report.json"), "--format", "json"],
                             capsys)
    assert code in (1, 2) and "Traceback" not in err
    assert digests(corpus) == before
    assert os.listdir(tmp_path) == (["report.json"] if code == 1 else [])
