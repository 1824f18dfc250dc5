"""siamdiag.judge_frame on a distributed engine, one real run on Dask's local cluster (worker
processes on this machine). The oracle is judge_frame on the whole table in this process; the
engine must give the same rows, with the fixed schema. Marked `engine` (opt out with
-m 'not engine'); skipped where dask.distributed is not installed (the dev extra installs it)."""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

import siamdiag
from siamdiag.errors import SiamdiagError

pytestmark = pytest.mark.engine


def _long_table(runs: int = 24, steps: int = 600) -> pd.DataFrame:
    t = np.arange(steps)
    parts = []
    for k in range(runs):
        rng = np.random.default_rng(k)
        loss = 0.3 + 0.02 * rng.standard_normal(steps) + (1.5 * np.exp(-t / 250) if k % 3 == 0 else 0.0)
        parts.append(pd.DataFrame({"run": f"seed-{k:02d}", "step": t, "loss": loss,
                                   "grad_norm": 1.0 + 0.1 * rng.standard_normal(steps)}))
    return pd.concat(parts, ignore_index=True)


def test_judge_frame_schema_and_group_names():
    table = _long_table(runs=4)
    whole = siamdiag.judge_frame(table)
    assert list(whole.columns) == list(siamdiag.JUDGE_FRAME_COLUMNS)
    assert {c: str(t) for c, t in whole.dtypes.items()} == siamdiag.JUDGE_FRAME_COLUMNS
    assert whole["run"].tolist() == [f"seed-{k:02d}" for k in range(4)]
    # pandas' groupby.apply hands each group without its key column, named by the key
    grouped = table.groupby("run", group_keys=False).apply(siamdiag.judge_frame).reset_index(drop=True)
    pd.testing.assert_frame_equal(grouped, whole)
    assert list(siamdiag.judge_frame_meta().columns) == list(whole.columns)
    with pytest.raises(SiamdiagError):
        siamdiag.judge_frame([0.1, 0.2])


def test_dask_local_cluster_gives_the_in_process_rows():
    dd = pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("dask.distributed")
    table = _long_table()
    expected = siamdiag.judge_frame(table, alpha=0.01).sort_values("run").reset_index(drop=True)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        frame = dd.from_pandas(table, npartitions=4)
        judged = frame.groupby("run").apply(functools.partial(siamdiag.judge_frame, alpha=0.01),
                                            meta=siamdiag.judge_frame_meta()).compute()
    judged = judged.reset_index(drop=True).sort_values("run").reset_index(drop=True)
    pd.testing.assert_frame_equal(judged, expected)
    assert set(judged["verdict"]) >= {"stationary"}


def test_spark_ddl_schema_names_the_same_columns_and_types():
    spark_types = {"string": "string", "long": "int64", "double": "float64"}
    declared = [field.strip().split(" ") for field in siamdiag.JUDGE_FRAME_SCHEMA.split(",")]
    assert {name: spark_types[kind] for name, kind in declared} == siamdiag.JUDGE_FRAME_COLUMNS
    assert [name for name, _kind in declared] == list(siamdiag.JUDGE_FRAME_COLUMNS)
