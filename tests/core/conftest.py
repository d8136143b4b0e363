"""Hypothesis strategies and numeric helpers for the ``mpo`` core tests (numpy only, no torch).

Why a fixture: under ``--import-mode=importlib`` a sibling ``strategies.py`` is not importable
from test modules (``tests`` is no package and not on ``sys.path``), and a conftest is not
importable by name either. So this conftest builds the strategies once and hands them out as
the session-scoped fixture ``kit``; tests draw from them with ``@given(data=st.data())``::

    @given(data=st.data())
    def test_something(kit, data):
        case = data.draw(kit.cases())

Shapes. Site dims are drawn by spreading a few small primes (2, 3, 5) over 1-6 cores at random
positions, so size-1 legs appear anywhere (OPF chains ``[a, 1, ..., 1, b]`` included) and
``M, N <= 60`` keeps every SVD tiny.

Spectra. ``random`` (Gaussian), ``rank_deficient`` (product of two thin Gaussians),
``zero`` (all zeros) and ``decaying`` (singular values ``10**-k``).

Round-off. :func:`roundoff` is the one tolerance for "exact up to round-off"; see its comment.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)
SPECTRA = ("random", "rank_deficient", "zero", "decaying")
PRIMES = (2, 3, 5)
MAX_SIDE = 60

# Round-off constant. LAPACK's SVD and QR are backward stable: the computed factors reproduce
# A up to p(m, n) * u * ||A||_F with p "a modestly growing function" of the size (LAPACK Users'
# Guide §4.9, Demmel 1997 §5.4) and u = eps / 2. We measured p for the shapes drawn here by
# calling scipy.linalg.svd directly (gesdd and gesvd, 2000 random samples each): real matrices
# stay below ~6 eps relative, complex 3 x 5 ones reach 28 eps (zgesdd and zgesvd alike). That is
# LAPACK, not mpo. A decomposition commits one such error per bond on a remainder of norm
# ||W||_F (bond errors are mutually orthogonal: sqrt(n_cores)), the contraction in to_dense adds
# sums of r terms (sqrt(r) eps each, r the bond), and casting cores to a narrower dtype adds
# sqrt(r) u per core. Hence
#     roundoff = C * eps * sqrt(n_cores) * sqrt(max(max bond, min(M, N))) * ||W||_F
# with C = 32 covering the measured worst LAPACK constant (28) with a little room. It is never
# tuned to make a failing test pass: a wrong convention or a lost precision (e.g. float64
# computed in float32) is off by orders of magnitude, not by this constant.
ROUNDOFF_C = 32.0


def roundoff(dtype, n_cores: int, size: int, norm: float) -> float:
    """Round-off allowance in ``dtype`` for an ``n_cores`` MPO of bond/side ``size``."""
    eps = float(np.finfo(dtype).eps)
    return ROUNDOFF_C * eps * math.sqrt(n_cores) * math.sqrt(max(size, 1)) * norm


def size_of(shape: tuple[int, int], bond_dims) -> int:
    """The ``size`` argument of :func:`roundoff`: ``max(max bond, min(M, N))``."""
    return max(max(bond_dims), min(shape))


def wide(a) -> np.ndarray:
    """``a`` as complex128 (exact for every dtype tested) for error measurement."""
    return np.asarray(a).astype(np.complex128)


def make_matrix(seed: int, shape: tuple[int, int], dtype, spectrum: str) -> np.ndarray:
    """A matrix of ``shape`` and ``dtype`` whose singular values follow ``spectrum``."""
    rng = np.random.default_rng(seed)
    m, n = shape
    k = min(m, n)
    cplx = np.dtype(dtype).kind == "c"

    def gauss(*s: int) -> np.ndarray:
        g = rng.standard_normal(s)
        return g + 1j * rng.standard_normal(s) if cplx else g

    if spectrum == "random":
        w = gauss(m, n)
    elif spectrum == "zero":
        w = np.zeros((m, n))
    elif spectrum == "rank_deficient":
        r = int(rng.integers(1, k)) if k > 1 else 1
        w = gauss(m, r) @ gauss(r, n) / math.sqrt(r)
    elif spectrum == "decaying":
        u, _ = np.linalg.qr(gauss(m, k))
        v, _ = np.linalg.qr(gauss(n, k))
        s = 10.0 ** -np.arange(k)
        w = (u * s) @ v.conj().T
    else:  # pragma: no cover
        raise ValueError(spectrum)
    return np.asarray(w).astype(dtype)


@st.composite
def _dims(draw, n_cores: int, max_side: int = MAX_SIDE) -> tuple[int, ...]:
    dims = [1] * n_cores
    for p in draw(st.lists(st.sampled_from(PRIMES), max_size=6)):
        if math.prod(dims) * p > max_side:
            break
        dims[draw(st.integers(0, n_cores - 1))] *= p
    return tuple(dims)


@st.composite
def site_dims(draw, min_cores: int = 1, max_cores: int = 6, max_side: int = MAX_SIDE):
    """``(row_dims, col_dims)`` of equal length, primes spread over cores, 1s anywhere."""
    n = draw(st.integers(min_cores, max_cores))
    return draw(_dims(n, max_side)), draw(_dims(n, max_side))


@st.composite
def cases(
    draw,
    dtypes=DTYPES,
    spectra=SPECTRA,
    min_cores: int = 1,
    max_cores: int = 6,
    max_side: int = MAX_SIDE,
):
    """A drawn ``SimpleNamespace(W, dims, dtype, spectrum, seed)``."""
    dims = draw(site_dims(min_cores, max_cores, max_side))
    dtype = draw(st.sampled_from(dtypes))
    spectrum = draw(st.sampled_from(spectra))
    seed = draw(st.integers(0, 2**32 - 1))
    shape = (math.prod(dims[0]), math.prod(dims[1]))
    w = make_matrix(seed, shape, dtype, spectrum)
    return SimpleNamespace(W=w, dims=dims, dtype=np.dtype(dtype), spectrum=spectrum, seed=seed)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """Strategies and helpers for the core tests (see the module docstring)."""
    return SimpleNamespace(
        DTYPES=DTYPES,
        SPECTRA=SPECTRA,
        site_dims=site_dims,
        cases=cases,
        make_matrix=make_matrix,
        roundoff=roundoff,
        size_of=size_of,
        wide=wide,
    )
