"""Datasets and the pair/triplet sampler.

A dataset is a float tensor of examples (vectors, or 1-channel images) and integer labels. The
sampler draws each step's batch as a pure function of (seed, step): a resumed run, a distributed
run and a single-process run see exactly the same global batch at the same step, and no sampler
state needs checkpointing.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import InputError, UsageError
from .config import TrainConfig

LABEL_KEYS = ("y", "label", "labels", "target")
FEATURE_KEYS = ("x", "X", "features", "data", "images")


@dataclass(frozen=True)
class Dataset:
    name: str
    x: torch.Tensor          # (N, D) vectors or (N, 1, H, W) images, float32
    y: torch.Tensor          # (N,) class ids 0..C-1, int64

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    @property
    def classes(self) -> int:
        return int(self.y.max()) + 1


def load_dataset(cfg: TrainConfig) -> Dataset:
    """The dataset named by ``--data``: the bundled digits, seeded Gaussian clusters, or a file."""
    if cfg.data == "digits":
        from sklearn.datasets import load_digits  # ships its data inside the package: no download

        digits = load_digits()
        x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
        return checked(Dataset("digits", x, torch.tensor(digits.target, dtype=torch.int64)), "digits")
    if cfg.data == "synthetic":
        return synthetic_clusters(cfg.synthetic_classes, cfg.synthetic_dim, cfg.synthetic_samples,
                                  cfg.synthetic_noise, cfg.seed)
    if cfg.data.lower().endswith(".npz"):
        return load_npz(cfg.data)
    if cfg.data.lower().endswith(".csv"):
        return load_csv(cfg.data, cfg.label_col)
    raise UsageError(f"--data {cfg.data!r}: expected 'digits', 'synthetic', or a .csv or .npz file")


def synthetic_clusters(classes: int, dim: int, samples: int, noise: float, seed: int) -> Dataset:
    """Gaussian clusters: class centres drawn N(0, 4 I), points at centre + noise * N(0, I); two
    centres differ by 2.8 per axis on average (sd), so ``noise`` near 2 makes classes overlap."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((classes, dim))
    y = np.arange(samples) % classes
    x = centres[y] + noise * rng.standard_normal((samples, dim))
    return checked(Dataset(f"synthetic({classes}x{dim}, noise={noise:g})",
                           torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)),
                   "synthetic")


def relabel(labels: np.ndarray) -> torch.Tensor:
    """Arbitrary label values (strings, sparse ints) -> dense class ids in sorted order."""
    _, codes = np.unique(labels, return_inverse=True)
    return torch.tensor(codes.reshape(-1), dtype=torch.int64)


def load_npz(path: str) -> Dataset:
    if not os.path.isfile(path):
        raise InputError(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable .npz archive ({exc})")
    xkey = next((k for k in FEATURE_KEYS if k in arrays), None)
    ykey = next((k for k in LABEL_KEYS if k in arrays), None)
    if xkey is None or ykey is None:
        raise InputError(path, f"needs a feature array ({'/'.join(FEATURE_KEYS)}) and a label array "
                               f"({'/'.join(LABEL_KEYS)}); found {', '.join(arrays) or 'none'}")
    x, y = arrays[xkey], arrays[ykey]
    if x.dtype.kind not in "biuf":
        raise InputError(path, f"array {xkey!r} is not numeric (dtype {x.dtype})")
    if len(x) != len(y):
        raise InputError(path, f"{xkey!r} has {len(x)} rows but {ykey!r} has {len(y)}")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 2:
        raise InputError(path, f"array {xkey!r} must be (N, D) vectors or (N, H, W) images; got shape {x.shape}")
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0][0])
        raise InputError(path, f"array {xkey!r} row {row} holds a non-finite value")
    return checked(Dataset(os.path.basename(path), torch.tensor(x, dtype=torch.float32), relabel(y)), path)


def load_csv(path: str, label_col: str) -> Dataset:
    """Feature columns plus one label column; every feature cell must be a finite number."""
    from ..logs.textfile import read_text
    from ..logs.readers.delimited import parse_delimited

    table = parse_delimited(read_text(path, path), path, ",")
    frame = table.frame
    if label_col not in frame.columns:
        raise InputError(path, f"no label column {label_col!r} (columns: {', '.join(map(str, frame.columns))}); "
                               "name it with --label-col", line=1)
    features = [c for c in frame.columns if c != label_col]
    if not features:
        raise InputError(path, "no feature columns besides the label", line=1)
    values = np.empty((len(frame), len(features)), dtype=np.float64)
    for j, col in enumerate(features):
        cells = frame[col].astype(str).str.strip()
        numbers = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            column = list(frame.columns).index(col) + 1
            raise InputError(path, f"column {col!r}: {cells.iloc[bad[0]]!r} is not a finite number",
                             line=int(bad[0]) + 2, column=column)
        values[:, j] = numbers
    labels = frame[label_col].astype(str).str.strip().to_numpy()
    return checked(Dataset(os.path.basename(path), torch.tensor(values, dtype=torch.float32), relabel(labels)), path)


def checked(ds: Dataset, source: str) -> Dataset:
    """Pairs need at least two classes and a class with two examples; every class id in
    0..C-1 must occur (negatives are drawn from the other classes)."""
    counts = torch.bincount(ds.y)
    if bool((counts == 0).any()):
        raise InputError(source, f"class {int(torch.nonzero(counts == 0)[0])} has no examples")
    if len(counts) < 2:
        raise InputError(source, "needs at least two classes to form dissimilar pairs")
    if int(counts.max()) < 2:
        raise InputError(source, "needs a class with at least two examples to form similar pairs")
    return ds


@dataclass(frozen=True)
class Batch:
    """One step's examples, as indices into the dataset. Pairs: (anchor, other, similar).
    Triplets: (anchor, positive, negative). InfoNCE: (anchor, positive), in-batch negatives.
    ``noise``: augmentation noise, (blocks, batch, *example_shape), blocks in the order
    anchor, other, negative."""

    anchor: torch.Tensor
    other: torch.Tensor
    negative: torch.Tensor | None = None
    similar: torch.Tensor | None = None  # float 1/0 per pair
    noise: torch.Tensor | None = None

    def shard(self, rank: int, world: int) -> "Batch":
        """This rank's contiguous share of the global batch (and of its noise), so that a sharded
        run sees exactly the examples and noise a single process would."""
        if world == 1:
            return self
        size = len(self.anchor) // world
        cut = slice(rank * size, (rank + 1) * size)
        pick = lambda t: None if t is None else t[cut]  # noqa: E731
        return Batch(self.anchor[cut], self.other[cut], pick(self.negative), pick(self.similar),
                     None if self.noise is None else self.noise[:, cut])


class PairSampler:
    """Draws the global batch of step ``s`` from a generator seeded by (seed, s), on the training
    device (no host-to-device copy, hence no stream synchronisation, per step).

    Anchors are uniform over the dataset (an epoch is ceil(N / batch) steps); a positive is another
    example of the anchor's class, a negative an example of a different class. For pair losses a
    fixed share ``R / (1 + R)`` of the pairs is similar (``--imbalance R``), in shuffled order.
    Only classes with at least two examples serve as anchors. The same seed gives the same batches
    on every machine with the same device type (CPU and CUDA generators differ).
    """

    def __init__(self, labels: torch.Tensor, kind: str, batch_size: int, imbalance: float, seed: int,
                 device: torch.device = torch.device("cpu"), noise_shape: tuple[int, ...] | None = None):
        self.kind, self.batch_size, self.seed, self.noise_shape = kind, batch_size, seed, noise_shape
        self.device = device
        n, classes = len(labels), int(labels.max()) + 1
        counts = torch.bincount(labels, minlength=classes)
        order = torch.argsort(labels, stable=True)
        class_start = torch.cumsum(counts, 0) - counts
        rank_in_class = torch.empty(n, dtype=torch.int64)
        rank_in_class[order] = torch.arange(n) - class_start[labels[order]]
        anchors = torch.nonzero(counts[labels] >= 2).flatten()
        self.anchor_count = len(anchors)
        self.labels, self.class_start, self.class_count, self.by_class, self.rank_in_class, self.anchors = (
            t.to(device) for t in (labels, class_start, counts, order, rank_in_class, anchors))
        self.classes = classes
        self.similar_pairs = round(batch_size * imbalance / (1 + imbalance))
        self.steps_per_epoch = math.ceil(n / batch_size)
        self.generator = torch.Generator(device=device)

    def batch(self, step: int) -> Batch:
        g = self.generator.manual_seed(self.seed * 1_000_003 + step)
        b, dev = self.batch_size, self.device
        anchor = self.anchors[torch.randint(self.anchor_count, (b,), generator=g, device=dev)]
        positive = self.other_of_same_class(anchor, torch.rand(b, generator=g, device=dev))
        negative = self.of_other_class(anchor, torch.rand(b, generator=g, device=dev),
                                       torch.rand(b, generator=g, device=dev))
        blocks = 3 if self.kind == "triplet" else 2
        noise = None if self.noise_shape is None else torch.randn((blocks, b) + self.noise_shape, generator=g,
                                                                  device=dev)
        if self.kind == "triplet":
            return Batch(anchor, positive, negative=negative, noise=noise)
        if self.kind == "infonce":
            return Batch(anchor, positive, noise=noise)
        similar = (torch.randperm(b, generator=g, device=dev) < self.similar_pairs).to(torch.float32)
        other = torch.where(similar.bool(), positive, negative)
        return Batch(anchor, other, similar=similar, noise=noise)

    def other_of_same_class(self, anchor: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        cls = self.labels[anchor]
        pick = (u * (self.class_count[cls] - 1)).long().clamp(max=self.class_count[cls] - 2)
        pick = pick + (pick >= self.rank_in_class[anchor]).long()  # skip the anchor itself
        return self.by_class[self.class_start[cls] + pick]

    def of_other_class(self, anchor: torch.Tensor, u_class: torch.Tensor, u_member: torch.Tensor) -> torch.Tensor:
        shift = 1 + (u_class * (self.classes - 1)).long().clamp(max=self.classes - 2)
        cls = (self.labels[anchor] + shift) % self.classes
        pick = (u_member * self.class_count[cls]).long().clamp(max=self.class_count[cls] - 1)
        return self.by_class[self.class_start[cls] + pick]
