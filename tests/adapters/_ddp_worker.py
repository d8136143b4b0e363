"""One rank of the DDP tests (``test_distributed.py``), also importable for the reference runs.

Usage: ``python _ddp_worker.py RANK WORLD_SIZE INIT_FILE OUT_DIR``. Joins a gloo process group
through a shared file (no port to pick), runs both scenarios and ``torch.save``s the results to
``OUT_DIR/rank{RANK}.pt``.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from _toy import MLP, TARGETS, mse
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from adapters.torch.dynamic import DynamicGrowth, rewrap_ddp
from adapters.torch.selection import score_modules
from adapters.torch.surgery import overparameterize

D, GLOBAL_BATCH, STEPS = 8, 8, 6


def global_batches(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(GLOBAL_BATCH, D, generator=g, dtype=torch.float64),
            torch.randn(GLOBAL_BATCH, generator=g, dtype=torch.float64),
        )
        for _ in range(STEPS)
    ]


def shard(batch: tuple[torch.Tensor, torch.Tensor], rank: int, world: int) -> tuple:
    """Rank ``rank``'s equal share of a global batch (the whole batch when ``world == 1``)."""
    n = GLOBAL_BATCH // world
    return tuple(t[rank * n : (rank + 1) * n] for t in batch)


def make_model() -> MLP:
    torch.manual_seed(0)
    return MLP().double()


def run_exact(rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Train an over-parameterized model; record every step's gradients and the final weights."""
    model = make_model()
    overparameterize(model, ["layers.0.up", "layers.2.down"], shape="opf-svd")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    net = DistributedDataParallel(model) if world > 1 else model
    grads = []
    for batch in global_batches():
        mse(net, shard(batch, rank, world)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        opt.step()
        opt.zero_grad()
    return {"grads": grads, "params": {n: p.detach().clone() for n, p in model.named_parameters()}}


def run_dynamic(rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Dynamic growth under DDP; check after every step that all ranks hold the same weights."""
    model = make_model()
    out: dict[str, Any] = {}
    local = score_modules(
        model,
        [f"layers.{i}.up" for i in range(3)],
        [shard(b, rank, world) for b in global_batches(1)],
        mse,
        "taylor",
        all_reduce=False,
    )
    summed = score_modules(
        model, list(local), [shard(b, rank, world) for b in global_batches(1)], mse, "taylor"
    )
    out["local_scores"], out["summed_scores"] = local, summed
    grower = DynamicGrowth(
        model, TARGETS, n_per_round=1, max_per_group=2, interval=2, shape="opf-svd"
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    net = DistributedDataParallel(model) if world > 1 else model
    stale = []  # keep old wrappers alive: their hooks must not fire any more
    history, in_sync = [], []
    for step, batch in enumerate(global_batches(), start=1):
        mse(net, shard(batch, rank, world)).backward()
        grower.observe()
        opt.step()
        sched.step()
        opt.zero_grad()
        grown = grower.maybe_grow(opt, sched)
        if grown:
            history.append((step, grown))
            if world > 1:
                stale.append(net)
                net = rewrap_ddp(net)
        if world > 1:
            in_sync.append(_same_on_all_ranks(model, grown, world))
    out["history"], out["in_sync"] = history, in_sync
    out["params"] = {n: p.detach().clone() for n, p in model.named_parameters()}
    out["lrs"] = [g["lr"] for g in opt.param_groups]
    return out


def _same_on_all_ranks(model: nn.Module, grown: list[str], world: int) -> bool:
    names = [None] * world
    dist.all_gather_object(names, (grown, [n for n, _ in model.named_parameters()]))
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    return all(n == names[0] for n in names) and all(torch.equal(g, flat) for g in gathered)


def main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    try:
        torch.set_num_threads(1)
        result = {"exact": run_exact(rank, world), "dynamic": run_dynamic(rank, world)}
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
