"""Site dimensions: factorizing matrix sizes into cores and the bond dimensions that follow.

An MPO of a matrix ``W`` of shape ``(M, N)`` splits ``M = prod(row_dims)`` and
``N = prod(col_dims)`` over ``n`` cores. Core ``k`` has ``p_k = row_dims[k] * col_dims[k]``
physical entries, and the full (lossless) bond dimension after core ``k`` is

    d_k = min(p_1 * ... * p_k, p_{k+1} * ... * p_n),    d_0 = d_n = 1.

Examples
--------
>>> factorize(768, 5)
(3, 4, 4, 4, 4)
>>> factorize(97, 3)
(1, 1, 97)
>>> suggest_shape((768, 768), 5)
((3, 4, 4, 4, 4), (4, 4, 4, 4, 3))
>>> suggest_shape((3072, 768), 4, layout="chain")
((64, 1, 1, 48), (32, 1, 1, 24))
>>> full_bond_dims((3, 4, 4, 4, 4), (4, 4, 4, 4, 3))
(1, 12, 192, 192, 12, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .errors import MPOError

__all__ = ["factorize", "full_bond_dims", "n_params", "suggest_shape"]

Layout = Literal["balanced", "chain"]


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise MPOError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise MPOError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _prime_factors(n: int) -> list[int]:
    factors = []
    p = 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        factors.append(n)
    return factors


def factorize(n: int, n_factors: int) -> tuple[int, ...]:
    """Split ``n`` into exactly ``n_factors`` positive integers whose product is ``n``.

    The prime factors are spread so that the factors are as equal as possible (largest prime
    first into the currently smallest factor). Where ``n`` has fewer prime factors than
    ``n_factors`` the rest are 1, so every positive integer works: primes, 1, 30522, 50257.

    Parameters
    ----------
    n : int
        The size to split, ``n >= 1``.
    n_factors : int
        How many factors, ``n_factors >= 1``.

    Returns
    -------
    tuple of int
        ``n_factors`` factors in ascending order, product ``n``.

    Examples
    --------
    >>> factorize(30522, 3)
    (2, 3, 5087)
    >>> factorize(1, 2)
    (1, 1)
    """
    n = _check_positive_int(n, "n")
    n_factors = _check_positive_int(n_factors, "n_factors")
    bins = [1] * n_factors
    for p in sorted(_prime_factors(n), reverse=True):
        i = min(range(n_factors), key=lambda j: bins[j])
        bins[i] *= p
    return tuple(sorted(bins))


def _chain_pair(n: int) -> tuple[int, int]:
    """Split ``n = a * b``, ``a`` the smallest divisor ``>= sqrt(n)`` (768 -> 32 x 24)."""
    a = next(d for d in range(math.isqrt(n - 1) + 1 if n > 1 else 1, n + 1) if n % d == 0)
    return a, n // a


def suggest_shape(
    shape: Sequence[int], n_cores: int, layout: Layout = "balanced"
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Choose ``(row_dims, col_dims)`` for a matrix of shape ``(M, N)`` and ``n_cores`` cores.

    Parameters
    ----------
    shape : pair of int
        The dense shape ``(M, N)``.
    n_cores : int
        Number of cores, ``>= 1``.
    layout : {"balanced", "chain"}
        ``"balanced"``: rows and columns each split into near-equal factors, rows ascending and
        columns descending so every core has a similar size (MPOP's ``[3,4,4,4,4] x [4,4,4,4,3]``
        for 768 x 768). ``"chain"``: the OPF paper's ``[a, 1, ..., 1, b]`` with ``a * b = M``
        and ``a`` the smallest divisor ``>= sqrt(M)`` (768 -> 32 x 24, 3072 -> 64 x 48); the
        ``n_cores - 2`` middle cores have 1 x 1 legs and each adds ``d**2`` parameters.

    Returns
    -------
    row_dims, col_dims : tuple of int
        ``n_cores`` factors each, ``prod(row_dims) == M``, ``prod(col_dims) == N``.
    """
    if len(tuple(shape)) != 2:
        raise MPOError(f"shape must be a pair (M, N), got {shape!r}")
    m, n = (_check_positive_int(s, "shape entry") for s in shape)
    n_cores = _check_positive_int(n_cores, "n_cores")
    if layout == "balanced":
        rows = factorize(m, n_cores)
        cols = tuple(sorted(factorize(n, n_cores), reverse=True))
        return rows, cols
    if layout == "chain":
        if n_cores == 1:
            return (m,), (n,)
        (ra, rb), (ca, cb) = _chain_pair(m), _chain_pair(n)
        ones = (1,) * (n_cores - 2)
        return (ra, *ones, rb), (ca, *ones, cb)
    raise MPOError(f"layout must be 'balanced' or 'chain', got {layout!r}")


def full_bond_dims(row_dims: Sequence[int], col_dims: Sequence[int]) -> tuple[int, ...]:
    """Full (lossless) bond dimensions ``(1, d_1, ..., d_{n-1}, 1)``.

    ``d_k = min(prod_{l<=k} row_l col_l, prod_{l>k} row_l col_l)``.
    """
    p = [int(r) * int(c) for r, c in zip(row_dims, col_dims, strict=True)]
    total = math.prod(p)
    dims, prefix = [1], 1
    for pk in p[:-1]:
        prefix *= pk
        dims.append(min(prefix, total // prefix))
    dims.append(1)
    return tuple(dims)


def n_params(
    row_dims: Sequence[int], col_dims: Sequence[int], bond_dims: Sequence[int] | None = None
) -> int:
    """Number of entries of all cores: ``sum_k d_{k-1} row_k col_k d_k``.

    ``bond_dims`` defaults to :func:`full_bond_dims`.
    """
    bonds = full_bond_dims(row_dims, col_dims) if bond_dims is None else tuple(bond_dims)
    return sum(
        bonds[k] * int(r) * int(c) * bonds[k + 1]
        for k, (r, c) in enumerate(zip(row_dims, col_dims, strict=True))
    )
