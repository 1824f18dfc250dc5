"""Reading messy logs: every case has a file whose right reading is known by construction."""
import gzip
import io

import numpy as np
import pytest

from siamdiag.logs.columns import ColumnOverrides, detect_columns
from siamdiag.errors import InputError, UsageError
from siamdiag.logs.ingest import ReadOptions, read_runs
from siamdiag.engine.prepare import order_run

from .conftest import write_csv


@pytest.mark.parametrize("columns,loss,step,grad", [
    (["step", "loss", "grad_norm"], "loss", "step", "grad_norm"),
    (["epoch", "global_step", "train_loss_step", "train_loss_epoch", "val_loss"], "train_loss_step", "global_step", None),
    (["iteration", "Train/Loss", "gradient_norm"], "Train/Loss", "iteration", "gradient_norm"),
    (["epoch", "train_loss", "val_loss"], "train_loss", "epoch", None),
    (["it", "my_contrastive_loss", "val_loss"], "my_contrastive_loss", "it", None),
    (["trainer/global_step", "loss", "grad_2.0_norm_total"], "loss", "trainer/global_step", "grad_2.0_norm_total"),
])
def test_column_detection(columns, loss, step, grad):
    cmap = detect_columns(columns, ColumnOverrides(), "f.csv")
    assert (cmap.loss, cmap.step, cmap.grad_norm) == (loss, step, grad)


def test_overrides_and_unknown_override():
    cmap = detect_columns(["a", "b", "c"], ColumnOverrides(loss="b", step="a"), "f.csv")
    assert (cmap.loss, cmap.step) == ("b", "a")
    with pytest.raises(UsageError, match="no column 'zz'.*columns are: a, b, c"):
        detect_columns(["a", "b", "c"], ColumnOverrides(loss="zz"), "f.csv")
    with pytest.raises(UsageError, match="--loss-col"):
        detect_columns(["a", "b"], ColumnOverrides(), "f.csv")


def test_lightning_sparse_rows_resumed_steps_bom_crlf(tmp_path):
    # Lightning writes train rows and validation rows separately; a resumed run re-logs steps.
    rows = []
    for s in range(0, 300):
        rows.append((0, s, f"{1.0 + s * 0.001}", ""))
        if s % 100 == 99:
            rows.append((0, s, "", "0.5"))
    for s in range(250, 400):  # resumed from a checkpoint at step 250: these values win
        rows.append((1, s, f"{2.0 + s * 0.001}", ""))
    path = tmp_path / "metrics.csv"
    text = "\r\n".join(["epoch,step,train_loss_step,val_loss"] + [",".join(map(str, r)) for r in rows]) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    [raw] = read_runs([str(path)])
    run = order_run(raw)
    assert len(run.steps) == 400 and np.all(np.diff(run.steps) == 1)
    assert run.loss[249] == pytest.approx(1.249) and run.loss[250] == pytest.approx(2.25)
    assert any("50 steps were logged more than once" in n for n in run.notes)


def test_truncated_last_line_is_set_aside(tmp_path):
    path = tmp_path / "live.csv"
    path.write_text("step,loss\n0,0.5\n1,0.4\n2,0.3\n3,0.")  # writer caught mid-number: still a number
    [raw] = read_runs([str(path)])
    assert raw.metrics["loss"].values.tolist() == [0.5, 0.4, 0.3]
    assert "unterminated last line 5 ('3,0.')" in raw.notes[0]
    path.write_text("step,loss,grad_norm\n0,0.5,1\n1,0.4,1\n2,0.3,1\n3,0.2")  # missing field
    [raw] = read_runs([str(path)])
    assert len(raw.metrics["loss"].values) == 3
    assert "unterminated last line 5" in raw.notes[0]


def test_gzip_tsv_and_long_format(tmp_path):
    lines = ["run_id\tstep\tloss"] + [f"{r}\t{s}\t{0.1 * s}" for r in ("a", "b") for s in range(5)]
    path = tmp_path / "runs.tsv.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    runs = read_runs([str(path)])
    assert [r.name for r in runs] == ["a", "b"]
    assert runs[1].metrics["loss"].values.tolist() == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])


def test_composite_run_key(tmp_path):
    rows = [(m, s, e, 0.1) for m in ("x", "y") for s in (1, 2) for e in range(3)]
    path = write_csv(tmp_path / "h.csv", ["method", "seed", "epoch", "train_loss"], rows)
    runs = read_runs([path], ReadOptions(overrides=ColumnOverrides(run="method,seed")))
    assert [r.name for r in runs] == ["x/1", "x/2", "y/1", "y/2"]


def test_explicit_nan_is_a_value_and_empty_is_missing(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("step,loss\n0,0.5\n1,\n2,nan\n3,inf\n4,-Infinity\n")
    [raw] = read_runs([str(path)])
    m = raw.metrics["loss"]
    assert m.steps.tolist() == [0, 2, 3, 4]
    assert np.isnan(m.values[1]) and m.values[2] == np.inf and m.values[3] == -np.inf


@pytest.mark.parametrize("content,line,column,message", [
    ("step,loss\n0,0.5\n1,abc\n", 3, 3, "'abc' is not a number"),
    ("step,loss\n0,0.5\n1,0.4,9\n2,0.3\n", 3, 7, "expected 2 fields, found 3"),
    ("step,loss\n\n0,0.5\n\n1,x1\n", 5, 3, "'x1' is not a number"),
])
def test_errors_name_file_line_and_column(tmp_path, content, line, column, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(InputError) as exc:
        read_runs([str(path)])
    assert (exc.value.line, exc.value.column) == (line, column)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_binary_and_empty_files(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"step,loss\n0,\xff\xfe\n")
    with pytest.raises(InputError, match=r"b.csv:2:3: not UTF-8"):
        read_runs([str(path)])
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        read_runs([str(path)])


def test_directories_globs_and_missing_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    write_csv(tmp_path / "a.csv", ["step", "loss"], [(0, 1)])
    write_csv(tmp_path / "sub" / "b.csv", ["step", "loss"], [(0, 1)])
    (tmp_path / "notes.txt").write_text("not a log")
    assert len(read_runs([str(tmp_path)])) == 2
    assert len(read_runs([str(tmp_path / "*.csv")])) == 1
    with pytest.raises(UsageError, match="no such file"):
        read_runs([str(tmp_path / "nope.csv")])
    with pytest.raises(UsageError, match="matches no file"):
        read_runs([str(tmp_path / "*.parquet")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no runs found"):
        read_runs([str(tmp_path / "empty")])


def test_stdin(monkeypatch):
    class FakeStdin:
        buffer = io.BytesIO(b"step,loss\n0,1\n1,2\n")

    monkeypatch.setattr("sys.stdin", FakeStdin)
    [raw] = read_runs(["-"])
    assert raw.name == "<stdin>" and raw.metrics["loss"].values.tolist() == [1, 2]
