"""Process-group helpers for running ``mpo-finetune train`` under ``torchrun`` (gloo on CPU).

Under ``torchrun --nproc_per_node K`` each process trains on ``batch_size // K`` examples of every
global batch (``DistributedSampler``), gradients are averaged by
``torch.nn.parallel.DistributedDataParallel``, and rank 0 evaluates, merges, saves and prints.
Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "barrier", "broadcast_object", "cleanup", "setup", "wrap"]


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process (``enabled`` is False for a single process)."""

    rank: int = 0
    world_size: int = 1
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process prints, evaluates and saves."""
        return self.rank == 0


def setup() -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (gloo backend).

    Returns
    -------
    DistInfo
        ``DistInfo()`` when not started by ``torchrun`` (``WORLD_SIZE`` unset or 1).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), enabled=True)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (no-op for a single process)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for all processes (no-op for a single process)."""
    if info.enabled:
        dist.barrier()


def broadcast_object(info: DistInfo, obj: Any) -> Any:
    """Return rank 0's ``obj`` on every process (identity for a single process)."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` (returns ``model`` itself for one process).

    Call again after the set of parameters changed (dynamic growth): DDP registers its gradient
    hooks on the parameters that exist at construction time, and broadcasts rank 0's values.
    """
    if not info.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(model)
