"""decompose: lossless round trip, full bond dims, parameter counts, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mpo


@given(data=st.data())
def test_full_bond_round_trip_is_exact(kit, data):
    case = data.draw(kit.cases())
    m = mpo.decompose(case.W, case.dims)
    assert m.dtype == case.dtype
    assert m.shape == case.W.shape
    assert (m.row_dims, m.col_dims) == case.dims
    norm = np.linalg.norm(kit.wide(case.W))
    err = np.linalg.norm(kit.wide(m.to_dense()) - kit.wide(case.W))
    tol = kit.roundoff(case.dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), norm)
    assert err <= tol, (err, tol, case.spectrum)


@given(data=st.data())
def test_bond_dims_and_n_params_follow_the_formula(kit, data):
    case = data.draw(kit.cases(dtypes=(np.float64,)))
    rows, cols = case.dims
    m = mpo.decompose(case.W, case.dims)
    p = [r * c for r, c in zip(rows, cols, strict=True)]
    expected = tuple(
        [1] + [min(math.prod(p[: k + 1]), math.prod(p[k + 1 :])) for k in range(len(p) - 1)] + [1]
    )
    assert m.bond_dims == expected == mpo.full_bond_dims(rows, cols)
    n_params = sum(expected[k] * p[k] * expected[k + 1] for k in range(len(p)))
    assert m.n_params == n_params == mpo.n_params(rows, cols)
    assert m.n_params == mpo.n_params(rows, cols, m.bond_dims)
    assert m.n_params == sum(c.size for c in m.cores)


@given(data=st.data())
def test_float16_is_computed_in_float32_and_cast_back(kit, data):
    case = data.draw(kit.cases(dtypes=(np.float16,), spectra=("random", "rank_deficient")))
    m = mpo.decompose(case.W, case.dims)
    assert m.dtype == np.float16
    ref = mpo.decompose(case.W.astype(np.float32), case.dims).astype(np.float16)
    for a, b in zip(m.cores, ref.cores, strict=True):
        np.testing.assert_array_equal(a, b)
    norm = np.linalg.norm(kit.wide(case.W))
    err = np.linalg.norm(kit.wide(m.astype(np.float64).to_dense()) - kit.wide(case.W))
    assert err <= kit.roundoff(np.float16, m.n_cores, kit.size_of(m.shape, m.bond_dims), norm)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_and_bool_input_give_float64(dtype):
    w = (np.arange(24).reshape(4, 6) % 3).astype(dtype)
    m = mpo.decompose(w, ((2, 2), (3, 2)))
    assert m.dtype == np.float64
    np.testing.assert_allclose(m.to_dense(), w.astype(np.float64), atol=1e-13)


@pytest.mark.parametrize("shape", [None, 1, 2, 3, 5])
def test_automatic_shapes(shape):
    w = np.random.default_rng(0).standard_normal((48, 30))
    m = mpo.decompose(w, shape)
    assert m.shape == (48, 30)
    if isinstance(shape, int):
        assert m.n_cores == shape
        assert (m.row_dims, m.col_dims) == mpo.suggest_shape((48, 30), shape)
    np.testing.assert_allclose(m.to_dense(), w, atol=1e-12)


def test_paper_chain_needs_no_svd_for_passive_cores():
    # OPF's [a, 1, ..., 1, b]: middle cores are identities, bonds min(4*4, 3*3) = 9.
    w = np.random.default_rng(1).standard_normal((12, 12))
    m = mpo.decompose(w, ((4, 1, 1, 3), (4, 1, 1, 3)))
    assert m.bond_dims == (1, 9, 9, 9, 1)
    for core in m.cores[1:3]:
        np.testing.assert_array_equal(core.reshape(9, 9), np.eye(9))
    np.testing.assert_allclose(m.to_dense(), w, atol=1e-12)


def test_one_core_and_one_by_one():
    w = np.array([[2.5]])
    m = mpo.decompose(w, ((1,), (1,)))
    assert m.bond_dims == (1, 1) and m.to_dense()[0, 0] == 2.5
    w = np.random.default_rng(2).standard_normal((3, 5))
    m = mpo.decompose(w, ((3,), (5,)))
    assert m.n_cores == 1 and m.bond_dims == (1, 1)
    np.testing.assert_array_equal(m.to_dense(), w)


def test_input_is_not_modified():
    w = np.random.default_rng(3).standard_normal((8, 8))
    before = w.copy()
    mpo.decompose(w, ((2, 4), (4, 2)), bond=2, form="balanced")
    np.testing.assert_array_equal(w, before)
