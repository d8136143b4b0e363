"""Truncation: tolerances met, the reported bound and error honest, bond caps honoured, warnings."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpo
from mpo import TruncationWarning

RTOLS = (0.0, 1e-6, 1e-3, 0.05, 0.3, 0.9)
ATOL_FRACTIONS = (0.0, 1e-4, 0.1, 0.5)


def _measured(kit, approx, exact) -> float:
    return float(np.linalg.norm(kit.wide(approx) - kit.wide(exact)))


def _check_report(kit, report, m, w, dtype, tolerance):
    """The report's fields agree with the result and the data; returns the round-off slack."""
    norm = float(np.linalg.norm(kit.wide(w)))
    err = _measured(kit, m.to_dense(), w)
    slack = kit.roundoff(dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), norm)
    assert report.bond_dims == m.bond_dims
    assert len(report.kept) == len(report.discarded) == m.n_cores - 1
    assert tuple(k.size for k in report.kept) == m.bond_dims[1:-1]
    assert all(np.all(np.diff(k) <= 0) for k in report.kept + report.discarded)
    disc = np.concatenate([np.zeros(0), *report.discarded])
    assert report.bound == pytest.approx(float(np.sqrt(np.sum(disc**2))), rel=1e-12, abs=1e-300)
    assert report.norm == pytest.approx(norm, rel=1e-5 if dtype.itemsize <= 8 else 1e-12)
    # the reported exact error is the measured one (both in float64 from the same arrays)
    assert report.error == pytest.approx(err, rel=1e-9, abs=1e-12 * norm + 1e-300)
    # the measured error never exceeds the guaranteed bound, up to round-off
    assert err <= report.bound + slack, (err, report.bound, slack)
    if tolerance is not None:
        assert report.tolerance == pytest.approx(tolerance, rel=1e-5)
        assert err <= tolerance + slack, (err, tolerance, slack)
        assert report.bound <= tolerance * (1 + 1e-12) + slack
    return slack


@given(data=st.data())
def test_tolerance_is_met_and_reported(kit, data):
    case = data.draw(kit.cases(min_cores=2))
    rtol = data.draw(st.sampled_from(RTOLS))
    atol_frac = data.draw(st.sampled_from(ATOL_FRACTIONS))
    norm = float(np.linalg.norm(kit.wide(case.W)))
    atol = atol_frac * norm
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)  # no caps: must never warn
        m, report = mpo.decompose(case.W, case.dims, rtol=rtol, atol=atol, return_report=True)
    assert m.dtype == case.dtype
    full = mpo.full_bond_dims(*case.dims)
    assert all(b <= f for b, f in zip(m.bond_dims, full, strict=True))
    _check_report(kit, report, m, case.W, case.dtype, atol + rtol * norm)


@given(data=st.data())
def test_bond_caps_alone(kit, data):
    case = data.draw(kit.cases(min_cores=2))
    n_bonds = len(case.dims[0]) - 1
    caps = data.draw(st.lists(st.integers(1, 12), min_size=n_bonds, max_size=n_bonds))
    bond = caps if data.draw(st.booleans()) else caps[0]
    per_bond = caps if isinstance(bond, list) else [bond] * n_bonds
    m, report = mpo.decompose(case.W, case.dims, bond=bond, return_report=True)
    full = mpo.full_bond_dims(*case.dims)
    for got, cap, f in zip(m.bond_dims[1:-1], per_bond, full[1:-1], strict=True):
        assert got <= min(cap, f)
    assert report.tolerance is None
    _check_report(kit, report, m, case.W, case.dtype, None)


@settings(max_examples=25)
@given(data=st.data())
def test_error_non_increasing_in_bond(kit, data):
    case = data.draw(kit.cases(min_cores=2, spectra=("random", "rank_deficient", "decaying")))
    norm = float(np.linalg.norm(kit.wide(case.W)))
    full = max(mpo.full_bond_dims(*case.dims))
    errors, bounds = [], []
    for b in range(1, full + 1):
        m, report = mpo.decompose(case.W, case.dims, bond=b, return_report=True)
        errors.append(_measured(kit, m.to_dense(), case.W))
        bounds.append(report.bound)
    slack = kit.roundoff(case.dtype, len(case.dims[0]), full, norm)
    assert all(e2 <= e1 + slack for e1, e2 in itertools.pairwise(errors)), errors
    assert all(b2 <= b1 + slack for b1, b2 in itertools.pairwise(bounds)), bounds
    assert errors[-1] <= slack  # the full bond is lossless


def test_per_bond_sequence_is_honoured():
    w = np.random.default_rng(0).standard_normal((64, 64))
    m = mpo.decompose(w, ((4, 4, 4), (4, 4, 4)), bond=[3, 7])
    assert m.bond_dims == (1, 3, 7, 1)
    m = mpo.decompose(w, ((4, 4, 4), (4, 4, 4)), bond=(16, 2))
    assert m.bond_dims == (1, 16, 2, 1)
    m = mpo.decompose(w, ((4, 4, 4), (4, 4, 4)), bond=np.array([1000, 5]))
    assert m.bond_dims == (1, 16, 5, 1)


@pytest.mark.parametrize("return_report", [True, False])
def test_warning_when_caps_break_the_tolerance(return_report):
    w = np.random.default_rng(1).standard_normal((16, 16))
    with pytest.warns(TruncationWarning, match="above the requested tolerance"):
        mpo.decompose(w, ((4, 4), (4, 4)), bond=1, rtol=1e-6, return_report=return_report)


@pytest.mark.parametrize("return_report", [True, False])
def test_truncate_warns_when_caps_break_the_tolerance(return_report):
    m = mpo.decompose(np.random.default_rng(2).standard_normal((16, 16)), ((4, 4), (4, 4)))
    with pytest.warns(TruncationWarning, match="above the requested tolerance"):
        m.truncate(bond=1, rtol=1e-6, return_report=return_report)


def test_no_warning_when_caps_are_loose():
    w = np.random.default_rng(3).standard_normal((16, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mpo.decompose(w, ((4, 4), (4, 4)), bond=16, rtol=1e-6, return_report=True)
        mpo.decompose(w, ((4, 4), (4, 4)), bond=1, rtol=1.0)


def test_zero_matrix_with_tolerance():
    m, report = mpo.decompose(np.zeros((8, 8)), ((2, 4), (4, 2)), rtol=0.1, return_report=True)
    assert m.bond_dims == (1, 1, 1)
    assert report.error == 0.0 and report.bound == 0.0 and report.relative_error == 0.0
    assert not np.isnan(m.to_dense()).any()
    assert "bond dims" in str(report)


@given(data=st.data())
def test_mpo_truncate(kit, data):
    case = data.draw(kit.cases(min_cores=2))
    start = mpo.decompose(case.W, case.dims, form=data.draw(st.sampled_from(["left", "right"])))
    w = start.to_dense()
    norm = float(np.linalg.norm(kit.wide(w)))
    if data.draw(st.booleans()):
        rtol = data.draw(st.sampled_from(RTOLS))
        atol = data.draw(st.sampled_from(ATOL_FRACTIONS)) * norm
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncationWarning)
            m, report = start.truncate(rtol=rtol, atol=atol, return_report=True)
        tolerance = atol + rtol * norm
    else:
        m, report = start.truncate(bond=data.draw(st.integers(1, 6)), return_report=True)
        tolerance = None
        assert max(m.bond_dims) <= 6
    assert m.dtype == start.dtype
    assert m.center == m.n_cores - 1  # left-canonical result
    _check_report(kit, report, m, w, case.dtype, tolerance)


def test_truncate_removes_redundant_bonds():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((1, 3, 3, 2))
    b = rng.standard_normal((2, 3, 3, 1))
    # pad the bond with zeros: same matrix, bond 5 instead of 2
    pa = np.concatenate([a, np.zeros((1, 3, 3, 3))], axis=3)
    pb = np.concatenate([b, np.zeros((3, 3, 3, 1))], axis=0)
    padded = mpo.MPO([pa, pb])
    assert padded.bond_dims == (1, 5, 1)
    m = padded.truncate(rtol=1e-12)
    assert m.bond_dims == (1, 2, 1)
    np.testing.assert_allclose(m.to_dense(), mpo.MPO([a, b]).to_dense(), atol=1e-12)
