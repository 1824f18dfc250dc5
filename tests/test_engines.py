"""siamdiag.judge_frame on distributed engines. The README's Dask, Spark and Ray examples run as
written, on a real local Dask cluster (worker processes), a real local Spark session (a JVM with
Python workers) and a real local Ray; each judges three runs of which the last ends in NaN, and
the divergence must survive the trip. The oracle is judge_frame on the same table in this process.
Marked `engine` (opt out with -m 'not engine'); a test is skipped, saying why, where its engine
(or Spark's Java) is missing: the dev extra installs all three."""
from __future__ import annotations

import functools
import inspect
import os
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

import siamdiag
from siamdiag.errors import SiamdiagError

from .test_readme import engine_examples

pytestmark = pytest.mark.engine


def _long_table(runs: int = 4, steps: int = 600) -> pd.DataFrame:
    t = np.arange(steps)
    parts = []
    for k in range(runs):
        rng = np.random.default_rng(k)
        loss = 0.3 + 0.02 * rng.standard_normal(steps) + (1.5 * np.exp(-t / 250) if k % 3 == 0 else 0.0)
        parts.append(pd.DataFrame({"run": f"seed-{k:02d}", "step": t, "loss": loss,
                                   "grad_norm": 1.0 + 0.1 * rng.standard_normal(steps)}))
    return pd.concat(parts, ignore_index=True)


def test_judge_frame_schema_and_group_names():
    table = _long_table()
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


def test_judge_frame_takes_one_positional_parameter_as_spark_wants():
    """Spark's applyInPandas calls a function of two positional parameters as f(key, pdf)
    (issue #18: 'expected a pandas DataFrame, got tuple'); options go by keyword."""
    assert inspect.getfullargspec(siamdiag.judge_frame).args == ["frame"]
    assert inspect.getfullargspec(functools.partial(siamdiag.judge_frame, alpha=0.01)).args == ["frame"]


def test_spark_ddl_schema_names_the_same_columns_and_types():
    spark_types = {"string": "string", "long": "int64", "double": "float64"}
    declared = [field.strip().split(" ") for field in siamdiag.JUDGE_FRAME_SCHEMA.split(",")]
    assert {name: spark_types[kind] for name, kind in declared} == siamdiag.JUDGE_FRAME_COLUMNS
    assert [name for name, _kind in declared] == list(siamdiag.JUDGE_FRAME_COLUMNS)


def _run_readme_example(engine: str) -> None:
    """Runs the README's example for ``engine`` as written, and checks what it judged against
    judge_frame on its table in this process: the same rows, ``run`` a column and not an index,
    and the run that ends in NaN diverged."""
    namespace = {"__name__": "readme_example"}
    exec(compile(engine_examples()[engine], f"README.md ({engine} example)", "exec"), namespace)
    judged, table = namespace["judged"], namespace["table"]
    assert "run" not in judged.index.names
    expected = siamdiag.judge_frame(table).sort_values("run").reset_index(drop=True)
    # each engine hands back its own dtypes (Arrow strings, nullable floats): compare values
    got = judged[list(siamdiag.JUDGE_FRAME_COLUMNS)].astype(siamdiag.JUDGE_FRAME_COLUMNS).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert got["verdict"].tolist() == ["stationary", "stationary", "diverged"]
    assert got["gate"].tolist() == ["pass", "pass", "fail"]


def test_readme_dask_example_on_a_local_cluster():
    pytest.importorskip("dask.dataframe")
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        _run_readme_example("dask")


def _java() -> str | None:
    """The java Spark will start: $JAVA_HOME/bin/java, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        return shutil.which(os.path.join(home, "bin", "java"))
    return shutil.which("java")


def test_readme_spark_example_on_a_local_session(monkeypatch):
    pytest.importorskip("pyspark")
    if _java() is None:
        pytest.skip("Spark needs Java (17): no java on PATH and none under $JAVA_HOME")
    from pyspark.sql import SparkSession

    # Spark's Python workers run this interpreter (the one siamdiag is installed in)
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (SparkSession.builder.master("local[2]").appName("siamdiag-test").config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2").getOrCreate())   # the example's getOrCreate() finds it
    try:
        _run_readme_example("spark")
    finally:
        spark.stop()


def test_readme_ray_example_on_a_local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        _run_readme_example("ray")
    finally:
        ray.shutdown()
