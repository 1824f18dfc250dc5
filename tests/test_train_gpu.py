"""GPU checks (opt-in: pytest -m gpu, on a CUDA machine): metrics stay on the device between
flushes, and the same seed on the same GPU logs the same numbers."""
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

from siamdiag.train.config import TrainConfig  # noqa: E402
from siamdiag.train.distributed import setup  # noqa: E402
from siamdiag.train.loop import Trainer  # noqa: E402


@pytest.mark.parametrize("loss", ["contrastive", "triplet", "cosine", "infonce"])
def test_recording_steps_never_synchronises_the_device(tmp_path, loss):
    """torch.cuda's sync debug mode raises on any synchronising call: none may happen while
    steps are trained and recorded; the drain that writes them is the one place that may."""
    trainer = Trainer(TrainConfig(loss=loss, device="cuda", steps=300), str(tmp_path), setup("cuda"))
    trainer.train_step(1)
    trainer.recorder.drain()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(2, 202):
            trainer.train_step(step)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    rows = trainer.recorder.drain()
    assert [r["step"] for r in rows] == list(range(2, 202))
    assert all(r["nonfinite"] == 0 and r["loss"] == r["loss"] for r in rows)


def test_same_seed_same_gpu_gives_identical_log(tmp_path):
    for name in ("a", "b"):
        Trainer(TrainConfig(device="cuda", steps=400), str(tmp_path / name), setup("cuda")).run()
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == (tmp_path / "b" / "metrics.csv").read_bytes()
