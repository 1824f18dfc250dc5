"""Where this process runs: device, and its rank in a torchrun job (gloo on CPU, nccl on GPU).
torchrun's environment variables (RANK, WORLD_SIZE, LOCAL_RANK) are the only configuration."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UsageError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_int(self, value: int) -> int:
        """Rank 0's value on every rank (used for decisions rank 0 takes on wall-clock time)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.broadcast(t, src=0)
        return int(t.item())


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available")
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise UsageError("--device mps: MPS is not available on this machine")
        return torch.device("mps")
    return torch.device("cpu")


def setup(device_name: str) -> Placement:
    """Single process, or join the torchrun job described by the environment. On CUDA, asks for
    deterministic kernels so that the same seed on the same device logs the same numbers."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Placement(resolve_device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "mps":
        raise UsageError("distributed training on MPS is not supported; use --device cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Placement(device, dist.get_rank(), dist.get_world_size())


def teardown(placement: Placement) -> None:
    """Leave the job together: a rank that destroys its process group while another is still in
    it can abort at exit ('terminate called without an active exception', seen with gloo)."""
    if placement.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
