"""The :class:`MPO` container: cores plus cached contraction plans."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from . import canonical
from .errors import MPOError
from .plans import plan_dense, plan_matvec
from .report import Budget, TruncationReport, resolve_bond, resolve_tolerance

__all__ = ["MPO"]

Center = int | Literal["left", "right", "middle"]
Form = Literal["left", "right", "symmetric", "balanced"]


class MPO:
    """A matrix ``W`` of shape ``(M, N)`` stored as a chain of 4-index cores.

    Core ``k`` has shape ``(r_{k-1}, row_k, col_k, r_k)`` with ``r_0 = r_n = 1``, and

    ``W[(i_1..i_n), (j_1..j_n)] = G_1[:, i_1, j_1, :] @ ... @ G_n[:, i_n, j_n, :]``

    with row and column indices split big-endian (C order). See ``docs/concepts.md``.

    Parameters
    ----------
    cores : sequence of array_like
        The cores. They must be 4-D, finite, agree on shared bonds and have boundary ranks 1.
        They are promoted to one common dtype. Treat them as immutable: methods return new MPOs.

    Raises
    ------
    MPOError
        Empty list, a core that is not 4-D, mismatched or non-unit boundary bonds, non-finite
        entries.

    Examples
    --------
    >>> import numpy as np
    >>> from mpo import MPO
    >>> m = MPO([np.ones((1, 2, 3, 4)), np.ones((4, 5, 6, 1))])
    >>> m.shape, m.bond_dims, m.n_params
    ((10, 18), (1, 4, 1), 144)
    >>> m.to_dense()[0, 0]
    np.float64(4.0)
    """

    __slots__ = ("_center", "_cores")
    # numpy must defer ``ndarray @ MPO`` to __rmatmul__ instead of densifying via __array__
    __array_ufunc__ = None

    def __init__(self, cores: Sequence[Any]):
        arrays = [np.asarray(c) for c in cores]
        if not arrays:
            raise MPOError("an MPO needs at least one core, got an empty sequence")
        for k, c in enumerate(arrays):
            if c.ndim != 4:
                raise MPOError(
                    f"core {k} must be 4-D (r_left, row, col, r_right), got shape {c.shape}"
                )
            if c.dtype.kind not in "fc":
                raise MPOError(f"core {k} must be real or complex floating, got dtype {c.dtype}")
            if not np.isfinite(c).all():
                raise MPOError(f"core {k} has non-finite entries (NaN or Inf)")
            if min(c.shape) < 1:
                raise MPOError(f"core {k} has an empty dimension: shape {c.shape}")
        if arrays[0].shape[0] != 1 or arrays[-1].shape[3] != 1:
            raise MPOError(
                "boundary bonds must be 1: got first core left rank"
                f" {arrays[0].shape[0]} and last core right rank {arrays[-1].shape[3]}"
            )
        for k in range(len(arrays) - 1):
            if arrays[k].shape[3] != arrays[k + 1].shape[0]:
                raise MPOError(
                    f"bond {k + 1} mismatch: core {k} has right rank {arrays[k].shape[3]},"
                    f" core {k + 1} has left rank {arrays[k + 1].shape[0]}"
                )
        dtype = np.result_type(*arrays)
        self._cores = tuple(c.astype(dtype, copy=False) for c in arrays)
        self._center: int | None = None

    @classmethod
    def _trusted(cls, cores: Sequence[np.ndarray], center: int | None) -> MPO:
        """Build without validation from cores made by this package (known canonical centre)."""
        obj = cls.__new__(cls)
        obj._cores = tuple(cores)
        obj._center = center
        return obj

    # ---------------------------------------------------------------- shape facts
    @property
    def cores(self) -> tuple[np.ndarray, ...]:
        """The cores, each of shape ``(r_{k-1}, row_k, col_k, r_k)``."""
        return self._cores

    @property
    def n_cores(self) -> int:
        """Number of cores ``n``."""
        return len(self._cores)

    @property
    def row_dims(self) -> tuple[int, ...]:
        """Row (output) dim of each core; their product is ``M``."""
        return tuple(c.shape[1] for c in self._cores)

    @property
    def col_dims(self) -> tuple[int, ...]:
        """Column (input) dim of each core; their product is ``N``."""
        return tuple(c.shape[2] for c in self._cores)

    @property
    def bond_dims(self) -> tuple[int, ...]:
        """Bond dims ``(1, r_1, ..., r_{n-1}, 1)``, boundary 1s included."""
        return (1, *(c.shape[3] for c in self._cores))

    @property
    def shape(self) -> tuple[int, int]:
        """Dense shape ``(M, N)``."""
        return math.prod(self.row_dims), math.prod(self.col_dims)

    @property
    def dtype(self) -> np.dtype:
        """The dtype of the cores."""
        return self._cores[0].dtype

    @property
    def n_params(self) -> int:
        """Total number of core entries ``sum_k r_{k-1} row_k col_k r_k``."""
        return sum(c.size for c in self._cores)

    @property
    def center(self) -> int | None:
        """Index of the canonical centre if known (orthonormal cores around it), else None."""
        return self._center

    @property
    def core_shapes(self) -> tuple[tuple[int, int, int, int], ...]:
        """Shapes of the cores (what contraction plans are built from)."""
        return tuple(c.shape for c in self._cores)  # type: ignore[misc]

    def __repr__(self) -> str:
        return (
            f"MPO(shape={self.shape}, row_dims={self.row_dims}, col_dims={self.col_dims},"
            f" bond_dims={self.bond_dims}, dtype={self.dtype}, n_params={self.n_params})"
        )

    # ---------------------------------------------------------------- contraction
    def to_dense(self, optimize: Any = "auto") -> np.ndarray:
        """Contract to the dense matrix, shape ``(M, N)``, dtype :attr:`dtype`."""
        return plan_dense(self.core_shapes, optimize)(*self._cores)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        dense = self.to_dense()
        return dense if dtype is None else dense.astype(dtype)

    def matvec(self, x: Any, *, optimize: Any = "auto", strategy: str = "auto") -> np.ndarray:
        """Apply ``W`` to the last axis: ``x`` of shape ``(..., N)`` -> ``(..., M)``.

        The contraction order (dense-first or through the cores) is chosen by FLOP cost for the
        actual batch; see :func:`mpo.plan_matvec`.
        """
        x = np.asarray(x)
        m, n = self.shape
        if x.ndim == 0 or x.shape[-1] != n:
            raise MPOError(
                f"x must have shape (..., {n}) for an MPO of shape {self.shape}, got {x.shape}"
            )
        batch = x.shape[:-1]
        x2 = x.reshape(-1, n)
        if x2.shape[0] == 0:
            return np.zeros((*batch, m), dtype=np.result_type(x, self.dtype))
        dtype = np.result_type(x2, self.dtype)
        cores = [c.astype(dtype, copy=False) for c in self._cores]
        plan = plan_matvec(self.core_shapes, x2.shape[0], optimize, strategy)  # type: ignore[arg-type]
        return plan(x2.astype(dtype, copy=False), *cores).reshape(*batch, m)

    def rmatvec(self, x: Any, **kwargs: Any) -> np.ndarray:
        """Apply the conjugate transpose: ``x`` of shape ``(..., M)`` -> ``W^H x``, ``(..., N)``."""
        return self.H.matvec(x, **kwargs)

    def __matmul__(self, x: Any) -> np.ndarray:
        """``m @ x`` is :meth:`matvec`: applies ``W`` to the last axis of ``x`` (``(..., N)``)."""
        return self.matvec(x)

    def __rmatmul__(self, x: Any) -> np.ndarray:
        """``x @ m`` is ``x @ W`` for row vectors ``x`` of shape ``(..., M)``."""
        return self.T.matvec(x)

    @property
    def T(self) -> MPO:
        """Transpose ``W^T`` (rows and columns of every core swapped)."""
        return MPO._trusted([c.transpose(0, 2, 1, 3) for c in self._cores], self._center)

    @property
    def H(self) -> MPO:
        """Conjugate transpose ``W^H``."""
        return MPO._trusted([c.transpose(0, 2, 1, 3).conj() for c in self._cores], self._center)

    def norm(self) -> float:
        """Frobenius norm ``||W||_F`` (from the centre core; no dense contraction)."""
        center = self._center if self._center is not None else 0
        mpo = self if self._center is not None else self.canonicalize(center)
        return float(np.linalg.norm(mpo.cores[center]))

    def astype(self, dtype: Any) -> MPO:
        """Cores cast to ``dtype``."""
        return MPO._trusted([c.astype(dtype) for c in self._cores], self._center)

    # ---------------------------------------------------------------- forms
    def _cast_back(self, cores: list[np.ndarray]) -> list[np.ndarray]:
        """Cores in :attr:`dtype` (LAPACK computes float16 in float32; no mixed dtypes)."""
        return [c.astype(self.dtype, copy=False) for c in cores]

    def _center_index(self, center: Center) -> int:
        n = self.n_cores
        named = {"left": n - 1, "right": 0, "middle": (n - 1) // 2}
        if isinstance(center, str):
            if center not in named:
                raise MPOError(f"center must be an int or one of {list(named)}, got {center!r}")
            return named[center]
        if isinstance(center, bool) or not isinstance(center, int | np.integer):
            raise MPOError(f"center must be an int or one of {list(named)}, got {center!r}")
        if not -n <= center < n:
            raise MPOError(f"center must be in [{-n}, {n - 1}] for {n} cores, got {center}")
        return int(center) % n

    def canonicalize(self, center: Center = "left") -> MPO:
        """Canonical form with the norm in core ``center``.

        Parameters
        ----------
        center : int or {"left", "right", "middle"}
            ``"left"`` = left-canonical (cores ``0..n-2`` left-orthonormal, norm in the last
            core), ``"right"`` = right-canonical (norm in core 0), ``"middle"`` = the central
            core ``(n - 1) // 2`` as in MPOP/OPF; an int (negative counts from the end) gives a
            mixed-canonical form. Bonds larger than needed shrink to the rank that QR reveals.

        Returns
        -------
        MPO
            Same matrix; :attr:`center` set.
        """
        c = self._center_index(center)
        cores = canonical.move_center(list(self._cores), c, self._center)
        return MPO._trusted(self._cast_back(cores), c)

    def gauge(self, form: Form) -> MPO:
        """Same matrix with the norm placed as ``form`` says.

        Parameters
        ----------
        form : {"left", "right", "symmetric", "balanced"}
            ``"left"``/``"right"``: canonical forms (norm in the last / first core).
            ``"symmetric"``: the OPF paper's split: every bond's singular values ``lambda``
            shared as ``sqrt(lambda)`` by both neighbours (the first core's column norms squared
            equal the first bond's singular values). ``"balanced"``: symmetric, then all cores
            rescaled to equal Frobenius norm. The choice changes how optimizers (Adam) move the
            factors, not the matrix.
        """
        if form in ("left", "right"):
            return self.canonicalize(form)
        if form == "symmetric":
            cores = canonical.symmetric(list(self._cores), self._center)
            return MPO._trusted(self._cast_back(cores), None)
        if form == "balanced":
            cores = canonical.balanced(list(self._cores), self._center)
            return MPO._trusted(self._cast_back(cores), None)
        raise MPOError(f"form must be 'left', 'right', 'symmetric' or 'balanced', got {form!r}")

    def truncate(
        self,
        bond: int | Sequence[int] | None = None,
        *,
        rtol: float | None = None,
        atol: float | None = None,
        return_report: bool = False,
    ) -> MPO | tuple[MPO, TruncationReport]:
        """Re-compress by SVD rounding, with the same guarantee as :func:`mpo.decompose`.

        ``||W - W_hat||_F <= atol + rtol * ||W||_F`` (up to round-off); ``bond`` caps ranks.
        The result is left-canonical. With ``return_report`` the exact error is measured on
        dense matrices (costs two dense contractions).
        """
        n = self.n_cores
        right = canonical.move_center(list(self._cores), 0, self._center)
        norm = float(np.linalg.norm(right[0]))
        budget = Budget(resolve_tolerance(rtol, atol, norm), resolve_bond(bond, n - 1), n - 1)
        cores = canonical.round_cores(right, 0, budget)
        result = MPO._trusted(self._cast_back(cores), n - 1)
        bound = budget.bound()  # warns (TruncationWarning) if bond caps broke the tolerance
        if not return_report:
            return result
        return result, budget.report(result, self.to_dense(), bound, norm)
