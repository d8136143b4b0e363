"""Forms, gauges and canonical centres: same matrix, orthonormal cores, norm in the centre."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpo

FORMS = ("left", "right", "symmetric", "balanced")


def _assert_same_matrix(kit, m, w, dtype):
    norm = float(np.linalg.norm(kit.wide(w)))
    err = float(np.linalg.norm(kit.wide(m.to_dense()) - kit.wide(w)))
    tol = kit.roundoff(dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), norm)
    assert err <= tol, (err, tol)
    assert not np.isnan(m.to_dense()).any()


def _orthonormal_error(a: np.ndarray) -> float:
    a = a.astype(np.complex128)
    return float(np.linalg.norm(a.conj().T @ a - np.eye(a.shape[1])))


def _assert_canonical(kit, m, center, dtype):
    """Cores left of ``center``: A^H A = I on (r*row*col, r'); right of it: B B^H = I."""
    for k, core in enumerate(m.cores):
        rl, i, j, rr = core.shape
        if k < center:
            err, size = _orthonormal_error(core.reshape(rl * i * j, rr)), rr
        elif k > center:
            err, size = _orthonormal_error(core.reshape(rl, i * j * rr).T), rl
        else:
            continue
        assert err <= kit.roundoff(dtype, 1, size, np.sqrt(size)), (k, center, err)
    # the norm sits in the centre core
    norm = float(np.linalg.norm(kit.wide(m.to_dense())))
    slack = kit.roundoff(dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), norm)
    assert abs(float(np.linalg.norm(m.cores[center])) - norm) <= slack
    assert abs(m.norm() - norm) <= slack


@given(data=st.data())
def test_every_form_gives_the_same_matrix(kit, data):
    case = data.draw(kit.cases())
    form = data.draw(st.sampled_from(FORMS))
    m = mpo.decompose(case.W, case.dims, form=form)
    assert m.dtype == case.dtype
    _assert_same_matrix(kit, m, case.W, case.dtype)
    again = mpo.decompose(case.W, case.dims).gauge(data.draw(st.sampled_from(FORMS)))
    assert again.dtype == case.dtype
    _assert_same_matrix(kit, again, case.W, case.dtype)
    if form == "left":
        _assert_canonical(kit, m, m.n_cores - 1, case.dtype)
    if form == "right":
        _assert_canonical(kit, m, 0, case.dtype)


@given(data=st.data())
def test_canonicalize_every_center(kit, data):
    case = data.draw(kit.cases())
    n = len(case.dims[0])
    center = data.draw(st.sampled_from([*range(-n, n), "left", "right", "middle"]))
    expected = {"left": n - 1, "right": 0, "middle": (n - 1) // 2}.get(center, center)
    expected = expected % n if isinstance(expected, int) else expected
    # start from a known centre (decompose's left form) and from an unknown one (fresh MPO)
    start = mpo.decompose(case.W, case.dims, form=data.draw(st.sampled_from(FORMS)))
    if data.draw(st.booleans()):
        start = mpo.MPO(start.cores)
        assert start.center is None
    m = start.canonicalize(center)
    assert m.center == expected
    assert m.dtype == case.dtype
    _assert_same_matrix(kit, m, case.W, case.dtype)
    _assert_canonical(kit, m, expected, case.dtype)
    # moving again from the known centre is still canonical
    other = data.draw(st.integers(0, n - 1))
    m2 = m.canonicalize(other)
    _assert_same_matrix(kit, m2, case.W, case.dtype)
    _assert_canonical(kit, m2, other, case.dtype)


@given(data=st.data())
def test_symmetric_first_core_column_norms_are_the_first_bond_spectrum(kit, data):
    case = data.draw(kit.cases(min_cores=2))
    m, report = mpo.decompose(case.W, case.dims, form="symmetric", return_report=True)
    first = m.cores[0].reshape(-1, m.bond_dims[1]).astype(np.complex128)
    col_norms2 = np.sum(np.abs(first) ** 2, axis=0)
    spectrum = report.kept[0]
    assert col_norms2.shape == spectrum.shape
    scale = float(spectrum[0]) if spectrum.size else 0.0
    tol = kit.roundoff(case.dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), scale)
    np.testing.assert_allclose(col_norms2, spectrum, rtol=0, atol=tol)


@settings(max_examples=20)
@given(data=st.data())
def test_balanced_cores_have_equal_norms(kit, data):
    case = data.draw(kit.cases(min_cores=2, spectra=("random", "decaying"), dtypes=(np.float64,)))
    m = mpo.decompose(case.W, case.dims, form="balanced")
    norms = [float(np.linalg.norm(c)) for c in m.cores]
    np.testing.assert_allclose(norms, norms[0], rtol=1e-10)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bond", [None, 8])
def test_opf_nan_regression_zero_rows(form, bond):
    # The OPF reference code divides by sqrt(singular values) and yields NaN on rank-deficient
    # input; this is the shape it failed on: 256 x 64 with 64 zero rows, [4,4,4,4] x [4,4,2,2].
    w = np.random.default_rng(0).standard_normal((256, 64))
    w[:64] = 0.0
    m = mpo.decompose(w, ((4, 4, 4, 4), (4, 4, 2, 2)), bond=bond, form=form)
    for core in m.cores:
        assert np.isfinite(core).all()
    dense = m.to_dense()
    assert np.isfinite(dense).all()
    if bond is None:
        np.testing.assert_allclose(dense, w, atol=1e-11)
        np.testing.assert_array_equal(np.abs(dense[:64]) < 1e-12, True)


@pytest.mark.parametrize("form", FORMS)
def test_zero_matrix_every_form(form):
    m = mpo.decompose(np.zeros((256, 64)), ((4, 4, 4, 4), (4, 4, 2, 2)), form=form)
    assert all(np.isfinite(c).all() for c in m.cores)
    np.testing.assert_array_equal(m.to_dense(), 0.0)
    assert m.norm() == 0.0
    for center in ("left", "right", "middle", 1):
        np.testing.assert_array_equal(m.canonicalize(center).to_dense(), 0.0)


@pytest.mark.parametrize("center", [0, 1, -1, "middle"])
@pytest.mark.parametrize("op", ["canonicalize", "gauge", "truncate"])
def test_float16_mpo_methods_keep_the_dtype(center, op):
    # Regression: LAPACK returns float32 for float16 input; methods must cast back (and
    # canonicalize from a known centre must not leave a mix of float16 and float32 cores).
    w = np.random.default_rng(5).standard_normal((16, 12)).astype(np.float16)
    m = mpo.decompose(w, ((4, 2, 2), (3, 2, 2)))
    m = m.canonicalize(center)  # known centre anywhere
    if op == "canonicalize":
        outs = [m.canonicalize(c) for c in (0, 1, 2, "left", "right")]
    elif op == "gauge":
        outs = [m.gauge(form) for form in FORMS]
    else:
        outs = [m.truncate(bond=2), m.truncate(rtol=0.1)]
    for out in outs:
        assert {c.dtype for c in out.cores} == {np.dtype(np.float16)}
        assert out.dtype == np.float16


def test_canonicalize_shrinks_oversized_bonds():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((1, 2, 2, 9))  # bond 9 > 4 = row*col of the first core
    b = rng.standard_normal((9, 2, 2, 1))
    m = mpo.MPO([a, b])
    c = m.canonicalize("left")
    assert c.bond_dims == (1, 4, 1)
    np.testing.assert_allclose(c.to_dense(), m.to_dense(), atol=1e-12)


def test_transpose_and_adjoint_keep_the_centre():
    w = np.random.default_rng(7).standard_normal((8, 6)) + 1j
    m = mpo.decompose(w, ((2, 4), (3, 2)), form="right")
    np.testing.assert_allclose(m.T.to_dense(), w.T, atol=1e-12)
    np.testing.assert_allclose(m.H.to_dense(), w.conj().T, atol=1e-12)
    assert m.H.center == m.center == 0
    np.testing.assert_allclose(m.H.norm(), np.linalg.norm(w), rtol=1e-12)
