"""Bad input raises mpo.MPOError (a ValueError) whose message names the offending value."""

from __future__ import annotations

import re

import numpy as np
import pytest

import mpo
from mpo import MPOError

W = np.random.default_rng(0).standard_normal((8, 6))
DIMS = ((2, 4), (3, 2))


def _nan_at(i, j, value=np.nan, dtype=np.float64):
    w = W.astype(dtype).copy()
    w[i, j] = value
    return w


def test_mpo_error_is_a_value_error():
    assert issubclass(MPOError, ValueError)
    assert issubclass(mpo.TruncationWarning, UserWarning)


@pytest.mark.parametrize(
    ("w", "match"),
    [
        (_nan_at(3, 2), r"finite.*nan.*\(3, 2\)"),
        (_nan_at(0, 5, np.inf), r"finite.*inf.*\(0, 5\)"),
        (_nan_at(7, 0, -np.inf, np.float32), r"finite.*-inf.*\(7, 0\)"),
        (_nan_at(1, 1, np.nan + 1j, np.complex128), r"finite.*nan.*\(1, 1\)"),
        (np.ones(6), r"2-D.*\(6,\)"),
        (np.ones((2, 3, 4)), r"2-D.*\(2, 3, 4\)"),
        (np.float64(1.0), r"2-D.*\(\)"),
        (np.ones((0, 6)), r"non-empty.*\(0, 6\)"),
        ([[1.0, 2.0], [3.0]], r"2-D"),
        (np.array([["a", "b"]]), r"dtype"),
    ],
    ids=["nan", "inf", "-inf-f32", "nan-complex", "1-D", "3-D", "0-D", "empty", "ragged", "str"],
)
def test_bad_matrices(w, match):
    with pytest.raises(MPOError, match=match):
        mpo.decompose(w, None)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        (((2, 2), (3, 2)), r"multiply to the matrix shape \(8, 6\).*\(2, 2\) give 4"),
        (((2, 4), (3, 3)), r"col_dims \(3, 3\) give 9"),
        (((2, 4), (6,)), r"same non-zero length, got 2 and 1"),
        (((), ()), r"same non-zero length, got 0 and 0"),
        (((8, 0), (6, 1)), r"dims must be >= 1.*\(8, 0\)"),
        (0, r"number of cores must be >= 1, got 0"),
        (-2, r"got -2"),
        ("abc", r"shape must be.*'abc'"),
        (((2, 4),), r"shape must be"),
    ],
)
def test_bad_shapes(shape, match):
    with pytest.raises(MPOError, match=match):
        mpo.decompose(W, shape)


@pytest.mark.parametrize(
    ("bond", "match"),
    [
        (0, r"bond must be >= 1, got 0"),
        (-3, r"got -3"),
        ([2], r"one value per inner bond \(2 for this MPO\), got 1 values: \[2\]"),
        ([2, 2, 2], r"got 3 values"),
        ([2, 0], r"every bond must be >= 1, got \[2, 0\]"),
        ("x", r"bond must be"),
    ],
)
def test_bad_bonds(bond, match):
    with pytest.raises(MPOError, match=match):
        mpo.decompose(W, ((2, 2, 2), (3, 1, 2)), bond=bond)
    m = mpo.decompose(W, ((2, 2, 2), (3, 1, 2)))
    with pytest.raises(MPOError, match=match):
        m.truncate(bond)


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [-1e-3, np.nan, np.inf, -np.inf])
def test_bad_tolerances(name, value):
    match = rf"{name} must be a finite number >= 0, got {re.escape(repr(value))}"
    with pytest.raises(MPOError, match=match):
        mpo.decompose(W, DIMS, **{name: value})
    with pytest.raises(MPOError, match=match):
        mpo.decompose(W, DIMS).truncate(**{name: value})


def test_unknown_options():
    m = mpo.decompose(W, DIMS)
    with pytest.raises(MPOError, match=r"form must be.*got 'mixed'"):
        mpo.decompose(W, DIMS, form="mixed")
    with pytest.raises(MPOError, match=r"form must be.*got 'Left'"):
        m.gauge("Left")
    for center, match in [
        ("centre", r"center must be .*got 'centre'"),
        (2, r"center must be in \[-2, 1\] for 2 cores, got 2"),
        (-3, r"got -3"),
        (1.0, r"center must be .*got 1.0"),
        (True, r"got True"),
    ]:
        with pytest.raises(MPOError, match=match):
            m.canonicalize(center)
    with pytest.raises(MPOError, match=r"layout must be 'balanced' or 'chain', got 'tt'"):
        mpo.suggest_shape((8, 6), 2, layout="tt")
    with pytest.raises(MPOError, match=r"strategy must be .*got 'fast'"):
        m.matvec(np.ones(6), strategy="fast")
    with pytest.raises(MPOError, match=r"strategy must be .*got 'fast'"):
        mpo.plan_matvec(m.core_shapes, 2, strategy="fast")
    with pytest.raises(MPOError, match=r"batch_size must be an int >= 1, got 0"):
        mpo.plan_matvec(m.core_shapes, 0)


def test_bad_sizes_for_factorize_and_suggest_shape():
    for args, match in [
        ((0, 2), r"n must be a positive int, got 0"),
        ((12, 0), r"n_factors must be a positive int, got 0"),
        ((12.0, 2), r"n must be a positive int, got 12.0 \(float\)"),
        ((True, 2), r"got True \(bool\)"),
    ]:
        with pytest.raises(MPOError, match=match):
            mpo.factorize(*args)
    with pytest.raises(MPOError, match=r"shape must be a pair \(M, N\), got \(8, 6, 2\)"):
        mpo.suggest_shape((8, 6, 2), 2)
    with pytest.raises(MPOError, match=r"shape entry must be a positive int, got -8"):
        mpo.suggest_shape((-8, 6), 2)


def test_bad_vectors():
    m = mpo.decompose(W, DIMS)
    with pytest.raises(MPOError, match=r"x must have shape \(\.\.\., 6\).*\(8, 6\), got \(5,\)"):
        m @ np.ones(5)
    with pytest.raises(MPOError, match=r"got \(\)"):
        m.matvec(np.float64(1.0))
    with pytest.raises(MPOError, match=r"x must have shape \(\.\.\., 8\).*got \(2, 6\)"):
        m.rmatvec(np.ones((2, 6)))
    with pytest.raises(MPOError, match=r"x must have shape \(\.\.\., 8\)"):
        np.ones(6) @ m


@pytest.mark.parametrize(
    ("cores", "match"),
    [
        ([], r"at least one core"),
        ([np.ones((1, 2, 2))], r"core 0 must be 4-D.*\(1, 2, 2\)"),
        ([np.ones((1, 2, 2, 3)), np.ones((3, 2, 2, 1, 1))], r"core 1 must be 4-D"),
        ([np.ones((1, 2, 2, 3)), np.ones((4, 2, 2, 1))], r"bond 1 mismatch.*3.*4"),
        ([np.ones((2, 2, 2, 3)), np.ones((3, 2, 2, 1))], r"boundary bonds must be 1.*2"),
        ([np.ones((1, 2, 2, 3)), np.ones((3, 2, 2, 2))], r"boundary.*right rank 2"),
        ([np.full((1, 2, 2, 1), np.nan)], r"core 0 has non-finite"),
        ([np.ones((1, 2, 2, 1)), np.full((1, 2, 2, 1), np.inf)], r"core 1 has non-finite"),
        ([np.ones((1, 2, 2, 1), dtype=int)], r"core 0 must be real or complex.*int"),
        ([np.ones((1, 0, 2, 1))], r"core 0 has an empty dimension"),
    ],
    ids=[
        "empty",
        "3-D",
        "5-D",
        "mismatch",
        "left-boundary",
        "right-boundary",
        "nan",
        "inf",
        "int",
        "empty-dim",
    ],
)
def test_bad_cores(cores, match):
    with pytest.raises(MPOError, match=match):
        mpo.MPO(cores)


def test_mpo_promotes_core_dtypes():
    m = mpo.MPO([np.ones((1, 2, 2, 3), np.float32), np.ones((3, 2, 2, 1), np.complex64)])
    assert {c.dtype for c in m.cores} == {np.dtype(np.complex64)} and m.dtype == np.complex64


@pytest.mark.parametrize("value", ["0.1", [0.1], True])
def test_tolerance_of_wrong_type_raises_mpoerror(value):
    W = np.ones((4, 4))
    with pytest.raises(mpo.MPOError, match="rtol must be a finite number"):
        mpo.decompose(W, 2, rtol=value)
