"""Writes tests/data/mlflow_store with MLflow itself (run in a venv with `pip install mlflow-skinny`):
two runs of one experiment. Each run logs train/loss (with a NaN at step 7 in the second run),
grad_norm and a validation loss, so the reader's oracle is the values below."""
import math
import os
import shutil

os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 keeps the file store behind this switch
import mlflow  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STORE = os.path.join(HERE, "mlflow_store")


def loss_at(run: int, step: int) -> float:
    if run == 1 and step == 7:
        return math.nan
    return 1.0 / (1 + step) + 0.01 * run


if __name__ == "__main__":
    shutil.rmtree(STORE, ignore_errors=True)
    mlflow.set_tracking_uri("file://" + STORE)
    mlflow.set_experiment("siamese")
    for run in range(2):
        with mlflow.start_run(run_name=f"seed-{run}"):
            for step in range(12):
                mlflow.log_metric("train/loss", loss_at(run, step), step=step)
                mlflow.log_metric("grad_norm", 2.0 + step, step=step)
                if step % 4 == 3:
                    mlflow.log_metric("val_loss", 0.5, step=step)
