"""Keep optimizer-side machinery in step after parameters were added: LR schedulers and DDP.

A growth round (:class:`adapters.torch.dynamic.DynamicGrowth`) swaps dense weights for MPO cores
in the middle of training. ``overparameterize(..., optimizer=opt)`` moves the optimizer over, but
two other objects captured the old parameter set at construction: an LR scheduler's per-group
lists (``base_lrs``, ``lr_lambdas``) and ``DistributedDataParallel``'s gradient hooks.
:func:`extend_scheduler` and :func:`rewrap_ddp` bring them up to date.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from .layer import AdapterError

__all__ = ["extend_scheduler", "rewrap_ddp"]

_PER_GROUP_LISTS = ("base_lrs", "_last_lr", "lr_lambdas", "max_lrs", "min_lrs")


def _inner(obj: Any, attr: str) -> Any:
    """Look through accelerate's ``AcceleratedOptimizer`` / ``AcceleratedScheduler`` wrappers."""
    inner = getattr(obj, attr, None)
    return obj if inner is None else inner


def extend_scheduler(
    scheduler: Any,
    optimizer: torch.optim.Optimizer,
    before: list[dict[str, Any]],
    source: Mapping[int, int],
) -> None:
    """Realign a scheduler's per-group state after parameter groups were added or removed.

    Schedulers keep per-group lists (``base_lrs``; ``lr_lambdas`` for ``LambdaLR``, ...) that
    ``optimizer.add_param_group`` does not extend. Groups that existed before keep their entries;
    a new group copies the entries of the group its parameters came from (``source``), scaled by
    the ratio of its current learning rate to that group's, and gets the source group's other
    keys (``initial_lr``, ``max_lr`` ...) where it has none. A new group without a known source
    keeps its learning rate as base (and the first group's ``lr_lambda``).

    Parameters
    ----------
    scheduler : torch.optim.lr_scheduler.LRScheduler
        The scheduler (accelerate's wrapper, ``SequentialLR`` and ``ChainedScheduler`` are looked
        through).
    optimizer : torch.optim.Optimizer
        The optimizer after the change.
    before : list of dict
        ``list(optimizer.param_groups)`` taken before the change (the group dicts themselves).
    source : mapping of int to int
        ``id(parameter) -> index in before`` for the parameters of new groups.
    """
    old = {id(g): i for i, g in enumerate(before)}
    plan: list[tuple[int | None, float]] = []  # (index in `before` to copy, lr ratio) per group
    for group in optimizer.param_groups:
        if id(group) in old:
            plan.append((old[id(group)], 1.0))
            continue
        src = next((source[id(p)] for p in group["params"] if id(p) in source), None)
        ratio = 1.0
        if src is not None:
            src_lr = before[src]["lr"]
            ratio = group["lr"] / src_lr if src_lr else 1.0
            for key, value in before[src].items():
                group.setdefault(key, value)
            group["lr"] = src_lr * ratio
        plan.append((src, ratio))
    _realign(_inner(scheduler, "scheduler"), optimizer, plan, len(before))


def _realign(
    scheduler: Any, optimizer: torch.optim.Optimizer, plan: list[tuple[int | None, float]], n: int
) -> None:
    for attr in _PER_GROUP_LISTS:
        values = getattr(scheduler, attr, None)
        if not isinstance(values, list) or len(values) != n:
            continue
        new = []
        for group, (src, ratio) in zip(optimizer.param_groups, plan, strict=True):
            if src is None:
                new.append(values[0] if attr == "lr_lambdas" else group["lr"])
            elif attr != "lr_lambdas" and ratio != 1.0:
                new.append(values[src] * ratio)
            else:
                new.append(values[src])
        setattr(scheduler, attr, new)
        if attr == "base_lrs":
            for group, base in zip(optimizer.param_groups, new, strict=True):
                group["initial_lr"] = base
    for sub in getattr(scheduler, "_schedulers", None) or []:
        _realign(sub, optimizer, plan, n)


def rewrap_ddp(ddp: DistributedDataParallel, **overrides: Any) -> DistributedDataParallel:
    """Rebuild a ``DistributedDataParallel`` wrapper after its module's parameters changed.

    DDP registers gradient hooks on the parameters that exist when it is built, so after a growth
    round the new cores would not be all-reduced. This removes the old wrapper's hooks (so a stale
    reference cannot all-reduce twice) and wraps ``ddp.module`` again with the same settings; the
    new wrapper broadcasts rank 0's parameters and buffers. Collective: call on every rank.
    Communication hooks registered on the old wrapper are not carried over.

    Parameters
    ----------
    ddp : DistributedDataParallel
        The stale wrapper.
    **overrides
        Constructor arguments to change (e.g. ``find_unused_parameters=True``).

    Returns
    -------
    DistributedDataParallel
        A new wrapper of the same module.
    """
    if not isinstance(ddp, DistributedDataParallel):
        raise AdapterError(f"expected a DistributedDataParallel wrapper, got {type(ddp).__name__}")
    reducer = getattr(ddp, "reducer", None)
    if hasattr(reducer, "_remove_autograd_hooks"):
        reducer._remove_autograd_hooks()
    kwargs: dict[str, Any] = {
        "device_ids": ddp.device_ids,
        "output_device": ddp.output_device,
        "dim": ddp.dim,
        "broadcast_buffers": ddp.broadcast_buffers,
        "process_group": ddp.process_group,
        "bucket_cap_mb": ddp.bucket_bytes_cap / 1024**2,
        "find_unused_parameters": ddp.find_unused_parameters,
        "gradient_as_bucket_view": ddp.gradient_as_bucket_view,
        "static_graph": ddp.static_graph,
    }
    kwargs.update(overrides)
    return DistributedDataParallel(ddp.module, **kwargs)
