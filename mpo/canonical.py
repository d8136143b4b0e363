"""Canonical forms and gauges: where the norm of an MPO sits, and SVD rounding.

All functions take and return lists of cores ``(r_{k-1}, row_k, col_k, r_k)`` and never change
the contracted matrix (up to round-off), except :func:`round_cores`, which truncates.

* Left-orthonormal core ``A``: ``A.reshape(-1, r_k)`` has orthonormal columns
  (``A^H A = I``). Right-orthonormal core ``B``: ``B.reshape(r_{k-1}, -1)`` has orthonormal rows.
* Canonical with centre ``c``: cores ``< c`` left-, cores ``> c`` right-orthonormal; then
  ``||W||_F == ||core_c||_F``.
* Symmetric (the OPF paper's "normalization", Vidal-like): each bond's singular values
  ``lambda`` are split as ``sqrt(lambda)`` onto both neighbouring cores. Built from a right
  sweep of SVDs with a pseudo-inverse of ``sqrt(lambda)`` that is exact even for zero singular
  values (no ``lambda**-1/2`` of zero, no NaN: the paper's code fails on rank-deficient input).
* Balanced: symmetric, then every core rescaled to the same Frobenius norm.
"""

from __future__ import annotations

import numpy as np

from ._linalg import qr, svd
from .report import Budget

Cores = list[np.ndarray]


def _absorb_right(matrix: np.ndarray, core: np.ndarray) -> np.ndarray:
    """``matrix (a, r) @ core (r, i, j, b)`` -> ``(a, i, j, b)``."""
    return np.tensordot(matrix, core, axes=(1, 0))


def _absorb_left(core: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``core (a, i, j, r) @ matrix (r, b)`` -> ``(a, i, j, b)``."""
    return np.tensordot(core, matrix, axes=(3, 0))


def move_center(cores: Cores, center: int, current: int | None) -> Cores:
    """Canonical form with the norm in core ``center``, by QR sweeps.

    ``current`` is the known centre (only cores between it and ``center`` are touched) or None
    (full sweeps from both ends).
    """
    cores = list(cores)
    n = len(cores)
    lo, hi = (0, n - 1) if current is None else (min(current, center), max(current, center))
    for k in range(lo, center):  # left-orthonormalize lo..center-1
        rl, i, j, rr = cores[k].shape
        q, r = qr(cores[k].reshape(rl * i * j, rr))
        cores[k] = q.reshape(rl, i, j, q.shape[1])
        cores[k + 1] = _absorb_right(r, cores[k + 1])
    for k in range(hi, center, -1):  # right-orthonormalize hi..center+1 (LQ via QR of A^H)
        rl, i, j, rr = cores[k].shape
        q, r = qr(cores[k].reshape(rl, i * j * rr).conj().T)
        cores[k] = q.conj().T.reshape(q.shape[1], i, j, rr)
        cores[k - 1] = _absorb_left(cores[k - 1], r.conj().T)
    return cores


def _sqrt_pinv(s: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``1 / sqrt(s)`` where ``s`` is numerically non-zero, else 0 (like ``pinv``'s cutoff)."""
    if s.size == 0 or s[0] == 0:
        return np.zeros_like(s)
    cutoff = s[0] * s.size * np.finfo(dtype).eps
    out = np.zeros_like(s)
    nz = s > cutoff
    out[nz] = 1.0 / np.sqrt(s[nz])
    return out


def _is_identity(q: np.ndarray) -> bool:
    """Whether a square matrix is exactly the identity (O(d**2), no tolerance)."""
    d = q.shape[0]
    return q.shape == (d, d) and np.count_nonzero(q) == d and bool(np.all(q.diagonal() == 1))


def symmetric(cores: Cores, current: int | None) -> Cores:
    """Symmetric gauge: ``sqrt`` of each bond's singular values on both sides (see module doc)."""
    n = len(cores)
    cores = move_center(cores, n - 1, current)  # left-canonical: cores 0..n-2 left-orthonormal
    if n == 1:
        return cores
    real = np.finfo(cores[0].dtype).dtype
    spectra: list[np.ndarray] = [np.ones(1, dtype=real)] * (n + 1)
    right: list[np.ndarray] = [cores[0]] * n
    u_carry = np.ones((1, 1), dtype=cores[0].dtype)  # bond matrix U diag(s) passed leftwards
    for k in range(n - 1, 0, -1):
        rl, i, j, rr = cores[k].shape
        if k < n - 1 and i * j == 1 and rl == rr:
            # Square left-orthonormal core with 1x1 legs is an orthogonal Q, and
            # svd(Q U diag(s)) = (Q U) diag(s) I: no SVD needed (OPF chains).
            s = spectra[k + 1]
            right[k] = np.eye(s.size, dtype=cores[k].dtype).reshape(s.size, 1, 1, s.size)
            spectra[k] = s
            q = cores[k].reshape(rl, rr)
            if not _is_identity(q):  # decompose leaves these exactly I: skip a d**3 product
                u_carry = q @ u_carry
            continue
        c = _absorb_left(cores[k], u_carry * spectra[k + 1].astype(u_carry.dtype))
        rl, i, j, rr = c.shape
        u, s, vh = svd(c.reshape(rl, i * j * rr))
        right[k] = vh.reshape(s.size, i, j, rr)
        spectra[k] = s.astype(real)
        u_carry = u
    first = _absorb_left(cores[0], u_carry * spectra[1].astype(u_carry.dtype))
    out = [first * _sqrt_pinv(spectra[1], real)]
    for k in range(1, n):
        left = np.sqrt(spectra[k])[:, None, None, None]
        out.append(left * right[k] * _sqrt_pinv(spectra[k + 1], real))
    return out


def balanced(cores: Cores, current: int | None) -> Cores:
    """Symmetric gauge, then every core scaled to the geometric mean of the core norms."""
    cores = symmetric(cores, current)
    norms = np.array([np.linalg.norm(c) for c in cores])
    if np.any(norms == 0):
        return cores
    target = np.exp(np.mean(np.log(norms)))
    return [c * (target / g).astype(c.real.dtype) for c, g in zip(cores, norms, strict=True)]


def round_cores(cores: Cores, current: int | None, budget: Budget) -> Cores:
    """SVD rounding: right-canonicalize, then truncate bonds left to right within ``budget``."""
    cores = move_center(cores, 0, current)
    for k in range(len(cores) - 1):
        rl, i, j, rr = cores[k].shape
        u, s, vh = svd(cores[k].reshape(rl * i * j, rr))
        rank = budget.choose(k, s)
        cores[k] = u[:, :rank].reshape(rl, i, j, rank)
        cores[k + 1] = _absorb_right(s[:rank, None].astype(vh.dtype) * vh[:rank], cores[k + 1])
    return cores
