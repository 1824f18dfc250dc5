"""The resolved training configuration: one frozen record that fully determines a run (with the
seed and the device), written to config.json and read back by --resume and --grid.

No torch import here: the CLI validates options before paying for torch.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import UsageError

LOSSES = ("contrastive", "triplet", "cosine", "infonce")
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("none", "cosine", "step", "warmup-cosine")
MARGIN_SCHEDULES = ("fixed", "linear", "adaptive")
MODELS = ("auto", "mlp", "cnn")
DEVICES = ("auto", "cpu", "cuda", "mps")

# Margins that suit each loss on l2-normalised embeddings (distances in [0, 2], cosines in [-1, 1]).
DEFAULT_MARGIN = {"contrastive": 1.0, "triplet": 0.2, "cosine": 0.0, "infonce": None}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a training run. ``margin=None`` means the loss's default margin; ``epochs``,
    when set, overrides ``steps`` once the dataset size is known."""

    data: str = "digits"
    label_col: str = "label"
    synthetic_dim: int = 16
    synthetic_classes: int = 10
    synthetic_samples: int = 2000
    synthetic_noise: float = 1.0
    imbalance: float = 1.0
    augment_noise: float = 0.5
    model: str = "auto"
    embedding_dim: int = 32
    hidden: int = 128
    batch_norm: bool = False
    activation: str = "relu"
    loss: str = "contrastive"
    margin: float | None = None
    temperature: float = 0.1
    margin_schedule: str = "fixed"
    margin_end: float | None = None
    easy_target: float = 0.5
    margin_gain: float = 1.0
    normalize: bool = True
    cut_init: float = 1.0
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "none"
    warmup_fraction: float = 0.05
    clip_grad: float | None = None
    steps: int = 6000
    epochs: int | None = None
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 1000

    @property
    def resolved_margin(self) -> float | None:
        return DEFAULT_MARGIN[self.loss] if self.margin is None else self.margin

    def validate(self) -> "TrainConfig":
        """Reject values that would fail later, deep inside torch, with a message naming the option."""
        choices = {"loss": LOSSES, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS,
                   "lr_schedule": LR_SCHEDULES, "margin_schedule": MARGIN_SCHEDULES, "model": MODELS,
                   "device": DEVICES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UsageError(f"--{option(name)}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        positive = ("embedding_dim", "hidden", "steps", "batch_size", "synthetic_dim", "synthetic_samples",
                    "checkpoint_every", "lr", "temperature", "cut_init", "imbalance")
        for name in positive:
            if not getattr(self, name) > 0:
                raise UsageError(f"--{option(name)}: must be > 0 (got {getattr(self, name)})")
        if self.synthetic_classes < 2:
            raise UsageError("--synthetic-classes: need at least 2 classes to form dissimilar pairs")
        if self.synthetic_samples < 2 * self.synthetic_classes:
            raise UsageError("--synthetic-samples: need at least two examples per class")
        if self.epochs is not None and self.epochs <= 0:
            raise UsageError(f"--epochs: must be > 0 (got {self.epochs})")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise UsageError(f"--clip-grad: must be > 0 (got {self.clip_grad})")
        if min(self.weight_decay, self.momentum, self.synthetic_noise, self.augment_noise) < 0:
            raise UsageError("--weight-decay, --momentum, --synthetic-noise and --augment-noise must be >= 0")
        if not 0 < self.easy_target < 1:
            raise UsageError(f"--easy-target: must be in (0, 1) (got {self.easy_target})")
        if not 0 <= self.warmup_fraction < 1:
            raise UsageError(f"--warmup-fraction: must be in [0, 1) (got {self.warmup_fraction})")
        if self.margin_schedule != "fixed" and self.loss != "triplet":
            raise UsageError(f"--margin-schedule {self.margin_schedule}: margin schedules apply to --loss triplet only")
        if self.margin is not None and self.loss == "infonce":
            raise UsageError("--margin: InfoNCE has no margin; use --temperature")
        if self.margin is not None and not math.isfinite(self.margin):
            raise UsageError(f"--margin: must be finite (got {self.margin})")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"{source}: unknown configuration key {unknown[0]!r}")
        return cls(**values).validate()


def option(field_name: str) -> str:
    return field_name.replace("_", "-")


def field_name(key: str) -> str:
    return key.strip().replace("-", "_")


def coerce(field_name_: str, text: str):
    """Parse one grid value to the field's type ('none' clears an optional number)."""
    default = getattr(TrainConfig(), field_name_)
    kind = {f.name: f.type for f in fields(TrainConfig)}[field_name_]
    if text.lower() == "none" and "None" in str(kind):
        return None
    try:
        if "bool" in str(kind):
            if text.lower() in ("true", "yes", "1", "on"):
                return True
            if text.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if "int" in str(kind) and not isinstance(default, float):
            return int(text)
        if "float" in str(kind):
            return float(text)
    except ValueError:
        raise UsageError(f"--grid {option(field_name_)}: {text!r} is not a valid {str(kind).split(' ')[0]}")
    return text


def parse_grid(specs: tuple[str, ...] | list[str]) -> list[tuple[str, list]]:
    """``KEY=V1,V2`` specs -> [(field, [values...])], in the order given."""
    known = {f.name for f in fields(TrainConfig)} - {"device"}
    axes: list[tuple[str, list]] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        name = field_name(key)
        if not sep or not values.strip():
            raise UsageError(f"--grid {spec!r}: expected KEY=V1,V2 (e.g. lr=0.001,0.01)")
        if name not in known:
            raise UsageError(f"--grid {spec!r}: unknown key {key!r}; keys are training option names, e.g. lr, loss, margin")
        if any(name == existing for existing, _ in axes):
            raise UsageError(f"--grid: key {key!r} given twice")
        axes.append((name, [coerce(name, v.strip()) for v in values.split(",") if v.strip()]))
    return axes


def expand_grid(base: TrainConfig, axes: list[tuple[str, list]]) -> list[tuple[str, TrainConfig]]:
    """Every combination of the grid values applied to ``base``, each with a label naming its values
    (used as the run's directory and its name in the verdict table)."""
    combos = []
    for values in itertools.product(*(vals for _, vals in axes)):
        changes = dict(zip((name for name, _ in axes), values))
        label = "-".join(f"{option(k)}={v}" for k, v in changes.items())
        combos.append((label, replace(base, **changes).validate()))
    return combos
