"""The claims siamdiag train makes, measured over seeds on the bundled digits.

1. The default run reaches `stationary`.
2. A learning rate high enough to make the loss blow up is caught (`diverged` / `nonstationary`), and
   one that freezes normalised embeddings (SGD at lr 5) is caught as `degenerate` (stalled).
3. Cosine loss: embedding-norm growth and steps to converge, without normalisation vs with
   --normalize --cut-init 3 (and the two factors apart).
4. Triplet loss: how far the easy-triplet fraction stays from its target (0.5) under a fixed,
   linear and adaptive margin.

    python benchmarks/train_figures.py                 # all, 10 seeds for (1), 5 for the rest
    python benchmarks/train_figures.py --only cosine --seeds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def train_and_judge(job: tuple[str, dict, int, str]) -> dict:
    """Train one configuration for one seed, judge it with the analyze pipeline, summarise its log."""
    import torch

    from siamdiag.pipeline import analyze_named_logs
    from siamdiag.train.config import TrainConfig
    from siamdiag.train.distributed import Placement
    from siamdiag.train.loop import Trainer

    torch.set_num_threads(1)
    name, changes, seed, workdir = job
    run_dir = os.path.join(workdir, f"{name}-{seed}")
    outcome = Trainer(TrainConfig(seed=seed, **changes).validate(), run_dir, Placement(torch.device("cpu"))).run()
    log = pd.read_csv(os.path.join(run_dir, "metrics.csv"))
    result = analyze_named_logs([(name, os.path.join(run_dir, "metrics.csv"))]).runs[0]
    return {"name": name, "seed": seed, "verdict": result.verdict.value, "stopped": outcome.stopped,
            "burn_in": result.window.burn_in_step if result.window else None, **summarise(log)}


def summarise(log: pd.DataFrame) -> dict:
    """Norm growth, steps to converge, and the easy-fraction distance from 0.5 in the second half."""
    loss = log["loss"].to_numpy()
    finite = np.isfinite(loss).all()
    out = {"norm_first": log["embedding_norm"].iloc[:50].mean(), "norm_last": log["embedding_norm"].iloc[-200:].mean()}
    if finite:
        smooth = pd.Series(loss).rolling(100, min_periods=100).mean().to_numpy()
        start, final = loss[:50].mean(), loss[-len(loss) // 10:].mean()
        reached = np.flatnonzero(smooth <= final + 0.05 * (start - final))
        out["converge_step"] = int(log["step"].iloc[reached[0]]) if len(reached) else None
    if log["easy_fraction"].notna().any():
        per_epoch = log.groupby("epoch")["easy_fraction"].mean()
        half = per_epoch.iloc[len(per_epoch) // 2:]
        out["easy_gap"] = float((half - 0.5).abs().mean())
        out["easy_mean"] = float(half.mean())
        out["margin_last"] = float(log["margin"].iloc[-1])
    return out


EXPERIMENTS = {
    "default": [("default", {})],
    "high_lr": [("lr=0.3 no-normalize", {"lr": 0.3, "normalize": False, "steps": 3000}),
                ("lr=1 no-normalize", {"lr": 1.0, "normalize": False, "steps": 3000}),
                ("lr=10 normalize", {"lr": 10.0, "steps": 3000}),
                ("lr=5 normalize (6,000 steps)", {"lr": 5.0})],
    "cosine": [(f"cosine {norm} c={c}{suffix}", {"loss": "cosine", "normalize": norm == "normalize", "cut_init": c,
                                                 "steps": 3000, **extra})
               for suffix, extra in (("", {}), (" wd=0", {"weight_decay": 0.0}), (" batch-norm", {"batch_norm": True}))
               for norm, c in (("no-normalize", 1.0), ("normalize", 3.0))],
    "margin": [(f"triplet {kind}", {"loss": "triplet", "margin_schedule": kind, "steps": 3000})
               for kind in ("fixed", "linear", "adaptive")],
}


def report(name: str, rows: list[dict]) -> None:
    verdicts = pd.Series([r["verdict"] for r in rows]).value_counts().to_dict()
    line = f"  {name:26s} verdicts {verdicts}"
    med = lambda key: statistics.median(r[key] for r in rows if r.get(key) is not None)  # noqa: E731
    if any(r.get("converge_step") for r in rows):
        line += (f" | embedding norm {med('norm_first'):.3g} -> {med('norm_last'):.3g} (x{med('norm_last') / med('norm_first'):.2f})"
                 f" | converged (within 5 % of the final loss) at step {med('converge_step'):.0f}")
    if any("easy_gap" in r for r in rows):
        line += (f" | easy fraction, 2nd half: mean {med('easy_mean'):.3f}, mean |easy - 0.5| {med('easy_gap'):.3f},"
                 f" final margin {med('margin_last'):.3f}")
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, help="seeds per configuration (default: 10 for default, 5 otherwise)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    chosen = [args.only] if args.only else list(EXPERIMENTS)
    with tempfile.TemporaryDirectory() as workdir:
        jobs = [(name, changes, seed, workdir) for exp in chosen for name, changes in EXPERIMENTS[exp]
                for seed in range(args.seeds or (10 if exp == "default" else 5))]
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(train_and_judge, jobs))
    for exp in chosen:
        print(exp)
        for name, _ in EXPERIMENTS[exp]:
            report(name, [r for r in results if r["name"] == name])


if __name__ == "__main__":
    main()
