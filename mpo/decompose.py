"""Dense matrix -> MPO by sequential SVD (TT-SVD), exact by default, truncated on request.

Algorithm. ``W`` of shape ``(M, N)`` is reshaped to ``(row_1..row_n, col_1..col_n)`` and its axes
interleaved to ``(row_1, col_1, ..., row_n, col_n)``. Sweeping left to right, the remainder is
unfolded as ``(r_{k-1} * row_k * col_k, rest)`` and split by a thin SVD ``U S V^H``; ``U``
becomes core ``k`` (left-orthonormal) and ``S V^H`` the next remainder. Without truncation the
thin SVD yields exactly the full bond ``d_k = min(prod_{l<=k} p_l, prod_{l>k} p_l)``, so the
factorization is lossless; zero singular values are kept, nothing is inverted, and rank-deficient
or zero matrices never produce NaN.

Cores with 1 x 1 legs (the OPF paper's ``[a, 1, ..., 1, b]`` chains) need no SVD: their
unfolding equals the previous one, so the core is the identity and the remainder passes through.
A 15-core BERT chain therefore costs one SVD, not fourteen.

Truncation: see :mod:`mpo.report` for how ``rtol``/``atol`` are split over bonds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, overload

import numpy as np

from ._linalg import as_matrix, result_dtype, svd
from .errors import MPOError
from .operator import MPO
from .report import Budget, TruncationReport, resolve_bond, resolve_tolerance
from .shapes import suggest_shape

__all__ = ["decompose"]

Form = Literal["left", "right", "symmetric", "balanced"]
ShapeArg = tuple[Sequence[int], Sequence[int]] | int | None


def _resolve_shape(shape: ShapeArg, m: int, n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if shape is None:
        n_cores = max(2, round(math.log(min(m, n), 4))) if min(m, n) > 1 else 2
        return suggest_shape((m, n), n_cores)
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        if shape < 1:
            raise MPOError(f"shape as a number of cores must be >= 1, got {shape}")
        return suggest_shape((m, n), int(shape))
    try:
        rows, cols = shape  # type: ignore[misc]
        rows, cols = tuple(int(r) for r in rows), tuple(int(c) for c in cols)
    except (TypeError, ValueError) as exc:
        raise MPOError(
            "shape must be (row_dims, col_dims), an int number of cores, or None;"
            f" got {shape!r}. Example for a 768 x 3072 matrix: ((3, 4, 4, 4, 4), (4, 4, 8, 6, 4))"
        ) from exc
    if len(rows) != len(cols) or not rows:
        raise MPOError(
            f"row_dims and col_dims must have the same non-zero length, got {len(rows)} and"
            f" {len(cols)}: {rows} x {cols}; pad with 1s, e.g. (32, 1, 24) x (32, 1, 24)"
        )
    if any(d < 1 for d in rows + cols):
        raise MPOError(f"dims must be >= 1, got row_dims={rows}, col_dims={cols}")
    if math.prod(rows) != m or math.prod(cols) != n:
        raise MPOError(
            f"dims must multiply to the matrix shape {(m, n)}: row_dims {rows} give"
            f" {math.prod(rows)}, col_dims {cols} give {math.prod(cols)}"
        )
    return rows, cols


@overload
def decompose(
    W: np.ndarray,
    shape: ShapeArg = ...,
    bond: int | Sequence[int] | None = ...,
    *,
    rtol: float | None = ...,
    atol: float | None = ...,
    form: Form = ...,
    return_report: Literal[False] = ...,
) -> MPO: ...
@overload
def decompose(
    W: np.ndarray,
    shape: ShapeArg = ...,
    bond: int | Sequence[int] | None = ...,
    *,
    rtol: float | None = ...,
    atol: float | None = ...,
    form: Form = ...,
    return_report: Literal[True],
) -> tuple[MPO, TruncationReport]: ...
def decompose(
    W: np.ndarray,
    shape: ShapeArg = None,
    bond: int | Sequence[int] | None = None,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    form: Form = "left",
    return_report: bool = False,
) -> MPO | tuple[MPO, TruncationReport]:
    """Decompose a dense matrix into an MPO (tensor-train matrix).

    Parameters
    ----------
    W : array_like, shape (M, N)
        Finite real or complex matrix. float32/float64/complex64/complex128 are computed as they
        are; float16 and bfloat16-like inputs in float32 and cast back; integers give float64.
    shape : (row_dims, col_dims) or int or None
        Site dims with ``prod(row_dims) == M`` and ``prod(col_dims) == N`` (size-1 factors
        allowed anywhere, e.g. ``((32, 1, 1, 24), (32, 1, 1, 24))``); or a number of cores,
        dims chosen by :func:`mpo.suggest_shape` (balanced); or None, about ``log4(min(M, N))``
        balanced cores.
    bond : int or sequence of int or None
        Maximum bond dimension, for all inner bonds or one per inner bond (``n_cores - 1``
        values). None (default) keeps the full bond
        ``d_k = min(prod_{l<=k} row_l col_l, prod_{l>k} row_l col_l)``: lossless.
    rtol, atol : float, optional
        Truncate to the smallest ranks such that
        ``||W - W_hat||_F <= atol + rtol * ||W||_F`` for the whole MPO (up to round-off in the
        working dtype). The budget is split over bonds as described in :mod:`mpo.report`.
        Combined with ``bond``, the caps win and a :class:`mpo.TruncationWarning` says so if
        the bound then exceeds the tolerance.
    form : {"left", "right", "symmetric", "balanced"}
        Where the norm sits (see :meth:`MPO.gauge`). ``"left"`` (default, cheapest): cores
        ``0..n-2`` left-orthonormal, norm in the last core.
    return_report : bool
        Also return a :class:`TruncationReport` (kept/discarded singular values per bond, the
        guaranteed bound and the exact error, measured in float64).

    Returns
    -------
    MPO
        Cores of shape ``(r_{k-1}, row_k, col_k, r_k)`` in the input's dtype.
    TruncationReport
        Only if ``return_report``.

    Raises
    ------
    MPOError
        Non-2-D, empty or non-finite ``W``; dims that do not multiply to ``W.shape``; bond < 1;
        negative tolerances; an unknown ``form``.

    Examples
    --------
    >>> import numpy as np, mpo
    >>> W = np.random.default_rng(0).standard_normal((768, 768))
    >>> m = mpo.decompose(W, ((32, 1, 1, 24), (32, 1, 1, 24)))
    >>> m.bond_dims
    (1, 576, 576, 576, 1)
    >>> bool(np.allclose(m.to_dense(), W))
    True
    >>> m8, report = mpo.decompose(W, 3, bond=8, return_report=True)
    >>> report.error <= report.bound * (1 + 1e-12)
    True
    """
    if form not in ("left", "right", "symmetric", "balanced"):
        raise MPOError(f"form must be 'left', 'right', 'symmetric' or 'balanced', got {form!r}")
    a = as_matrix(W)  # validates first: ragged input raises MPOError, not numpy's ValueError
    out_dtype = result_dtype(np.asarray(W).dtype)
    m, n = a.shape
    rows, cols = _resolve_shape(shape, m, n)
    n_cores = len(rows)
    norm = float(np.linalg.norm(a))
    budget = Budget(
        resolve_tolerance(rtol, atol, norm),
        resolve_bond(bond, n_cores - 1),
        n_active=sum(r * c > 1 for r, c in zip(rows[:-1], cols[:-1], strict=True)),
    )
    cores = _sweep(a, rows, cols, budget, norm)
    result = MPO._trusted(cores, n_cores - 1)
    if form != "left":
        result = result.gauge(form)
    if result.dtype != out_dtype:
        result = result.astype(out_dtype)
    bound = budget.bound()  # warns (TruncationWarning) if bond caps broke the tolerance
    if not return_report:
        return result
    return result, budget.report(result, a, bound, norm)


def _sweep(
    a: np.ndarray, rows: tuple[int, ...], cols: tuple[int, ...], budget: Budget, norm: float
) -> list[np.ndarray]:
    """Left-to-right TT-SVD. The remainder is kept as ``diag(s) @ vh`` when known (s not None)."""
    n = len(rows)
    t = a.reshape(rows + cols).transpose([ax for k in range(n) for ax in (k, n + k)])
    remainder = t.reshape(1, -1)  # (r_{k-1}, rest)
    s_prev: np.ndarray | None = None  # remainder == diag(s_prev) @ vh when s_prev is not None
    cores = []
    for k in range(n - 1):
        r = remainder.shape[0]
        p = rows[k] * cols[k]
        cap = budget.max_ranks[k]
        if p == 1 and (cap is None or cap >= r):
            # Passive 1x1 leg: same unfolding as the previous bond; identity core, no SVD.
            cores.append(np.eye(r, dtype=a.dtype).reshape(r, 1, 1, r))
            kept = s_prev if s_prev is not None else np.array([norm])
            budget.kept.append(np.asarray(kept, dtype=np.float64).copy())
            budget.discarded.append(np.zeros(0))
            continue
        if s_prev is not None:
            remainder = s_prev[:, None].astype(a.dtype) * remainder
        u, s, vh = svd(remainder.reshape(r * p, -1))
        rank = budget.choose(k, s, active=p > 1)
        cores.append(u[:, :rank].reshape(r, rows[k], cols[k], rank))
        s_prev, remainder = s[:rank], vh[:rank]
    if s_prev is not None:
        remainder = s_prev[:, None].astype(a.dtype) * remainder
    cores.append(remainder.reshape(remainder.shape[0], rows[-1], cols[-1], 1))
    return cores
