"""Contraction: m @ x, matvec, rmatvec, x @ m and to_dense against dense products, every path."""

from __future__ import annotations

import math

import numpy as np
import opt_einsum as oe
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mpo

STRATEGIES = ("auto", "dense", "through")
OPTIMIZE = ("auto", "greedy", "optimal", "dp", "branch-2")


def _batch_shapes():
    # () is a single vector; a 0 anywhere is an empty batch
    return st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


def _random(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def _close(kit, got, ref, dtype, m, scale):
    assert got.shape == ref.shape
    err = float(np.linalg.norm(kit.wide(got) - kit.wide(ref)))
    tol = kit.roundoff(dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), scale)
    assert err <= tol, (err, tol)


@given(data=st.data())
def test_products_equal_dense_products(kit, data):
    case = data.draw(kit.cases(spectra=("random", "rank_deficient")))
    m = mpo.decompose(case.W, case.dims, form=data.draw(st.sampled_from(["left", "symmetric"])))
    w = kit.wide(m.to_dense())
    big, small = m.shape
    batch = data.draw(_batch_shapes())
    strategy = data.draw(st.sampled_from(STRATEGIES))
    optimize = data.draw(st.sampled_from(OPTIMIZE))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = _random(rng, (*batch, small), case.dtype)
    xr = _random(rng, (*batch, big), case.dtype)
    scale = float(np.linalg.norm(w)) * max(float(np.linalg.norm(kit.wide(x))), 1.0)
    scale_r = float(np.linalg.norm(w)) * max(float(np.linalg.norm(kit.wide(xr))), 1.0)

    y = m.matvec(x, optimize=optimize, strategy=strategy)
    assert y.dtype == case.dtype
    _close(kit, y, kit.wide(x) @ w.T, case.dtype, m, scale)
    _close(kit, m @ x, kit.wide(x) @ w.T, case.dtype, m, scale)
    # rmatvec is the conjugate transpose: W^H x, i.e. x @ conj(W) on row vectors
    yr = m.rmatvec(xr, optimize=optimize, strategy=strategy)
    _close(kit, yr, kit.wide(xr) @ w.conj(), case.dtype, m, scale_r)
    # x @ m is x @ W (no conjugation)
    _close(kit, xr @ m, kit.wide(xr) @ w, case.dtype, m, scale_r)
    # to_dense with every path search
    _close(kit, m.to_dense(optimize=optimize), w, case.dtype, m, float(np.linalg.norm(w)))


@pytest.mark.parametrize(
    "batch", [(), (0,), (3, 0), (0, 2), (1,), (2, 3), (1, 1, 1), (5,)], ids=str
)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_batch_shapes(batch, strategy):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 10)) + 1j * rng.standard_normal((12, 10))
    m = mpo.decompose(w, ((3, 2, 2), (5, 1, 2)))
    x = rng.standard_normal((*batch, 10))
    y = m.matvec(x, strategy=strategy)
    assert y.shape == (*batch, 12)
    assert y.dtype == np.complex128
    np.testing.assert_allclose(y, x @ w.T, atol=1e-12)
    xr = rng.standard_normal((*batch, 12))
    np.testing.assert_allclose(m.rmatvec(xr, strategy=strategy), xr @ w.conj(), atol=1e-12)
    np.testing.assert_allclose(xr @ m, xr @ w, atol=1e-12)


def test_mixed_dtypes_promote():
    w = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    m = mpo.decompose(w, ((2, 3), (2, 2)))
    assert m.matvec(np.ones(4, dtype=np.float64)).dtype == np.float64
    assert m.matvec(np.ones(4, dtype=np.complex64)).dtype == np.complex64
    assert m.matvec(np.ones(4, dtype=np.float32)).dtype == np.float32
    assert np.asarray(m).shape == (6, 4)
    assert np.asarray(m, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    "shapes",
    [
        [(1, 4, 4, 16), (16, 4, 4, 16), (16, 4, 4, 1)],
        [(1, 32, 32, 3), (3, 1, 1, 3), (3, 24, 24, 1)],
        [(1, 2, 3, 4), (4, 5, 6, 1)],
        [(1, 8, 8, 64), (64, 8, 8, 1)],
    ],
    ids=["mid", "lowrank-chain", "tiny", "fullrank"],
)
@pytest.mark.parametrize("batch_size", [1, 4, 64, 4096])
@pytest.mark.parametrize("optimize", ["auto", "greedy", "dp"])
def test_plan_picks_the_cheaper_candidate(shapes, batch_size, optimize):
    plan = mpo.plan_matvec(shapes, batch_size, optimize)
    assert set(plan.candidates) == {"dense", "through"}
    assert plan.candidates[plan.strategy] == min(plan.candidates.values())
    assert plan.flops == plan.candidates[plan.strategy]
    m, n = math.prod(s[1] for s in shapes), math.prod(s[2] for s in shapes)
    dense = mpo.plan_dense(shapes, optimize)
    assert plan.candidates["dense"] == dense.flops + 2 * batch_size * m * n
    assert plan.strategy in plan.describe() and "chosen" in plan.describe()
    for forced in ("dense", "through"):
        p = mpo.plan_matvec(shapes, batch_size, optimize, forced)
        assert p.strategy == forced and p.candidates == plan.candidates


def test_plans_are_cached_and_run_the_contraction():
    shapes = [(1, 2, 3, 4), (4, 5, 6, 1)]
    assert mpo.plan_dense(shapes) is mpo.plan_dense(tuple(map(tuple, shapes)))
    assert mpo.plan_matvec(shapes, 3) is mpo.plan_matvec(shapes, 3)
    rng = np.random.default_rng(2)
    cores = [rng.standard_normal(s) for s in shapes]
    w = mpo.MPO(cores).to_dense()
    x = rng.standard_normal((3, 18))
    for strategy in ("dense", "through"):
        plan = mpo.plan_matvec(shapes, 3, strategy=strategy)
        np.testing.assert_allclose(plan(x, *cores), x @ w.T, atol=1e-12)
    # an unhashable / custom path optimizer works too (not cached)
    opt = oe.DynamicProgramming(minimize="size")
    np.testing.assert_allclose(mpo.plan_dense(shapes, opt)(*cores), w, atol=1e-12)


def test_to_dense_index_convention():
    # W[(i1, i2), (j1, j2)] = G1[:, i1, j1, :] @ G2[:, i2, j2, :], big-endian row/col split
    rng = np.random.default_rng(3)
    g1, g2 = rng.standard_normal((1, 2, 3, 4)), rng.standard_normal((4, 5, 6, 1))
    w = mpo.MPO([g1, g2]).to_dense()
    for i1, i2, j1, j2 in [(0, 0, 0, 0), (1, 4, 2, 5), (1, 2, 0, 3), (0, 3, 2, 1)]:
        ref = (g1[:, i1, j1, :] @ g2[:, i2, j2, :])[0, 0]
        assert w[i1 * 5 + i2, j1 * 6 + j2] == pytest.approx(ref, abs=1e-12)


def test_ndarray_at_mpo_does_not_densify(monkeypatch):
    # Regression: without __array_ufunc__ = None numpy handled ``x @ m`` itself by converting m
    # through __array__ (a dense contraction), so __rmatmul__ and its plans were never used.
    rng = np.random.default_rng(4)
    w = rng.standard_normal((8, 6))
    m = mpo.decompose(w, ((2, 4), (3, 2)))
    x = rng.standard_normal((3, 8))

    def refuse(*args, **kwargs):
        raise AssertionError("densified through __array__")

    monkeypatch.setattr(mpo.MPO, "__array__", refuse)
    np.testing.assert_allclose(x @ m, x @ w, atol=1e-12)
