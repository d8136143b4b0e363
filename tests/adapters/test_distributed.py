"""Over-parameterized models under a real ``torch.distributed`` process group (gloo, 2 CPU ranks).

The two ranks are separate processes started with ``subprocess`` (as ``torchrun`` would), joined
through a rendezvous file, bounded by a timeout. Each runs ``_ddp_worker.py``; the single-process
references run here, in float64, on the same global batches.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from adapters.torch.dynamic import rewrap_ddp
from adapters.torch.selection import select_top
from mpo.errors import MPOError

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
WORLD = 2
TIMEOUT_S = 180
EPS = torch.finfo(torch.float64).eps

_spec = importlib.util.spec_from_file_location("_ddp_worker", HERE / "_ddp_worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    tmp = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(HERE / "_ddp_worker.py")]
    procs = [
        subprocess.Popen(
            [*cmd, str(r), str(WORLD), str(tmp / "rendezvous"), str(tmp)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(WORLD)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for r, (p, log) in enumerate(zip(procs, logs, strict=False)):
        assert p.returncode == 0, f"rank {r} failed:\n{log}"
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def tol(ref: torch.Tensor) -> float:
    """Round-off allowance: a few hundred float64 ulps of the tensor's scale.

    Two ranks sum the same terms as one process in a different order (half-batch means, then
    DDP's average), and Adam's division by ``sqrt(v)`` passes relative errors through unchanged;
    this is ~1e-13 relative, eight orders of magnitude below float32's eps.
    """
    return 256 * EPS * max(1.0, float(ref.abs().max()))


def assert_close(got: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    err = float((got - ref).abs().max())
    assert err <= tol(ref), f"{what}: max error {err:.3e} > {tol(ref):.3e}"


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 60)
def test_ddp_matches_single_process(ranks: list[dict[str, Any]]) -> None:
    ref = worker.run_exact()
    assert any("cores" in n for n in ref["params"])
    for r, result in enumerate(ranks):
        got = result["exact"]
        for step, (g_ref, g) in enumerate(zip(ref["grads"], got["grads"], strict=True)):
            assert g.keys() == g_ref.keys()
            for name in g_ref:
                assert_close(g[name], g_ref[name], f"rank {r} step {step} grad {name}")
        for name, p in ref["params"].items():
            assert_close(got["params"][name], p, f"rank {r} param {name}")
            # and the ranks agree bit for bit (DDP broadcasts, then applies identical updates)
            assert torch.equal(got["params"][name], ranks[0]["exact"]["params"][name])


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 60)
def test_dynamic_growth_same_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    d0, d1 = (r["dynamic"] for r in ranks)
    # local scores differ (different data halves); the reduced scores are their sum, on all ranks
    assert d0["local_scores"] != d1["local_scores"]
    assert d0["summed_scores"] == d1["summed_scores"]
    for name, s in d0["summed_scores"].items():
        expected = d0["local_scores"][name] + d1["local_scores"][name]
        assert s == pytest.approx(expected, rel=1e-12)
    assert select_top(d0["summed_scores"], 1) == select_top(d1["summed_scores"], 1)
    # growth: same rounds, same names, every rank in sync after every step (incl. growth steps)
    assert [s for s, _ in d0["history"]] == [2, 4]
    assert d0["history"] == d1["history"]
    assert all(d0["in_sync"]) and all(d1["in_sync"]) and len(d0["in_sync"]) == worker.STEPS
    # and the DDP run equals the single-process run on the full batches
    ref = worker.run_dynamic()
    assert ref["history"] == d0["history"]
    assert d0["params"].keys() == ref["params"].keys()
    for name, p in ref["params"].items():
        assert_close(d0["params"][name], p, f"dynamic param {name}")
    assert d0["lrs"] == pytest.approx(ref["lrs"], rel=1e-15)


def test_rewrap_ddp_rejects_plain_module() -> None:
    with pytest.raises(MPOError, match="DistributedDataParallel"):
        rewrap_ddp(nn.Linear(2, 2))  # type: ignore[arg-type]
