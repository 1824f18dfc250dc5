"""Encoders shared by both branches of the Siamese network: an MLP for vectors, a small CNN for
1-channel images. One network embeds every example of a batch, so weights are shared by design."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from .config import TrainConfig

ACTIVATION = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def build_encoder(cfg: TrainConfig, example_shape: tuple[int, ...]) -> nn.Module:
    """MLP for (D,) vectors, CNN for (1, H, W) images (``--model auto``), then cut-initialisation."""
    kind = cfg.model
    if kind == "auto":
        kind = "cnn" if len(example_shape) == 3 else "mlp"
    act = ACTIVATION[cfg.activation]
    if kind == "cnn":
        if len(example_shape) != 3:
            raise UsageError("--model cnn: needs image data, (N, H, W) arrays in a .npz; use --model mlp for vectors")
        encoder = conv_encoder(example_shape, cfg.hidden, cfg.embedding_dim, act, cfg.batch_norm)
    else:
        width = 1
        for d in example_shape:
            width *= d
        encoder = mlp_encoder(width, cfg.hidden, cfg.embedding_dim, act, cfg.batch_norm)
    cut_initialisation(encoder, cfg.cut_init)
    return encoder


def mlp_encoder(width: int, hidden: int, out: int, act, batch_norm: bool) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    for inp in (width, hidden):
        layers += [nn.Linear(inp, hidden)] + ([nn.BatchNorm1d(hidden)] if batch_norm else []) + [act()]
    layers.append(nn.Linear(hidden, out))
    return nn.Sequential(*layers)


def conv_encoder(shape: tuple[int, ...], hidden: int, out: int, act, batch_norm: bool) -> nn.Module:
    channels, height, width = shape
    layers: list[nn.Module] = []
    for inp, outc in ((channels, 8), (8, 16)):
        layers += [nn.Conv2d(inp, outc, 3, padding=1)] + ([nn.BatchNorm2d(outc)] if batch_norm else []) + [act()]
    layers += [nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * (height // 2) * (width // 2), hidden), act(),
               nn.Linear(hidden, out)]
    return nn.Sequential(*layers)


@torch.no_grad()
def cut_initialisation(model: nn.Module, c: float) -> None:
    """Divide the initial weights of every linear and convolutional layer by ``c`` (Draganov et al.:
    smaller initial embeddings keep cosine-loss gradients, which scale as 1/||z||, large)."""
    if c == 1.0:
        return
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            module.weight.div_(c)
