"""Truncation bookkeeping: how a tolerance is split over bonds, and the report users read.

Guarantee. A left-to-right sweep of SVDs whose left factors are orthonormal (TT-SVD) commits
errors that are mutually orthogonal, so the total error obeys

    ||W - W_hat||_F**2 <= sum_k eps_k**2,      eps_k = ||discarded singular values at bond k||_2.

Given ``atol`` and ``rtol`` the total budget is ``delta = atol + rtol * ||W||_F``. Bonds are
visited left to right; bond ``k`` may discard up to ``eps_k**2 <= (delta**2 - spent) / m_k``
where ``spent`` is what earlier bonds discarded and ``m_k`` the number of bonds still to visit
that can truncate. Unused budget rolls over to later bonds, and the sum never exceeds
``delta**2``, so ``||W - W_hat||_F <= delta`` always holds. With no rollover this is the classic
``delta / sqrt(n - 1)`` per bond (Oseledets 2011, Thm. 2.2).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MPOError, TruncationWarning

__all__ = ["TruncationReport"]


@dataclass(frozen=True)
class TruncationReport:
    """What a decomposition or truncation kept and discarded.

    Attributes
    ----------
    bond_dims : tuple of int
        Bond dimensions of the result, boundary 1s included (``n_cores + 1`` entries).
    kept : tuple of ndarray
        Per inner bond, the singular values kept (float64, descending).
    discarded : tuple of ndarray
        Per inner bond, the singular values discarded (float64, descending; may be empty).
    bound : float
        Guaranteed bound ``sqrt(sum_k ||discarded_k||**2)`` on ``||W - W_hat||_F``.
    error : float
        The exact Frobenius error ``||W - W_hat||_F``, measured (float64).
    norm : float
        ``||W||_F`` of the input.
    tolerance : float or None
        The requested total tolerance ``atol + rtol * norm``; None when only ``bond`` was given.
    """

    bond_dims: tuple[int, ...]
    kept: tuple[np.ndarray, ...]
    discarded: tuple[np.ndarray, ...]
    bound: float
    error: float
    norm: float
    tolerance: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def relative_error(self) -> float:
        """``error / norm`` (0 for a zero matrix)."""
        return self.error / self.norm if self.norm > 0 else 0.0

    def __str__(self) -> str:
        tol = "none" if self.tolerance is None else f"{self.tolerance:.3e}"
        lines = [
            f"bond dims   {self.bond_dims}",
            f"||W||_F     {self.norm:.6e}",
            f"tolerance   {tol}",
            f"bound       {self.bound:.6e}",
            f"error       {self.error:.6e}  (relative {self.relative_error:.3e})",
            "per bond    kept / discarded / ||discarded||",
        ]
        for k, (kept, disc) in enumerate(zip(self.kept, self.discarded, strict=True), 1):
            lines.append(
                f"  bond {k:<3d} {kept.size:>6d} / {disc.size:<6d} {np.linalg.norm(disc):.3e}"
            )
        return "\n".join(lines)


def resolve_tolerance(rtol: float | None, atol: float | None, norm: float) -> float | None:
    """Total budget ``atol + rtol * norm`` or None when neither is given."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise MPOError(f"{name} must be a finite number >= 0, got {value!r}")
        if not np.isfinite(value) or value < 0:
            raise MPOError(f"{name} must be a finite number >= 0, got {value!r}")
    if rtol is None and atol is None:
        return None
    return float(atol or 0.0) + float(rtol or 0.0) * norm


def resolve_bond(bond: int | Sequence[int] | None, n_bonds: int) -> list[int | None]:
    """Per-inner-bond maximum ranks from ``bond`` (None, an int, or one int per inner bond)."""
    if bond is None:
        return [None] * n_bonds
    if isinstance(bond, int | np.integer) and not isinstance(bond, bool):
        if bond < 1:
            raise MPOError(f"bond must be >= 1, got {bond}")
        return [int(bond)] * n_bonds
    try:
        values = [int(b) for b in bond]  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise MPOError(f"bond must be None, an int or a sequence of ints, got {bond!r}") from exc
    if len(values) != n_bonds:
        raise MPOError(
            f"bond must give one value per inner bond ({n_bonds} for this MPO), got {len(values)}"
            f" values: {list(values)}"
        )
    if any(v < 1 for v in values):
        raise MPOError(f"every bond must be >= 1, got {list(values)}")
    return values


class Budget:
    """Hands out per-bond truncation budgets along a left-to-right sweep (see module doc)."""

    def __init__(self, tolerance: float | None, max_ranks: list[int | None], n_active: int):
        self.tolerance = tolerance
        self.max_ranks = max_ranks
        self.remaining = n_active
        self.spent = 0.0  # sum of squared discarded singular values
        self.kept: list[np.ndarray] = []
        self.discarded: list[np.ndarray] = []

    def choose(self, bond: int, s: np.ndarray, active: bool = True) -> int:
        """Rank to keep at inner bond ``bond`` (0-based) given descending singular values ``s``."""
        s64 = np.asarray(s, dtype=np.float64)
        tails = np.concatenate([np.cumsum((s64**2)[::-1])[::-1], [0.0]])  # tails[r] = sum s[r:]^2
        rank = s64.size
        if self.tolerance is not None and active:
            allowed = max(self.tolerance**2 - self.spent, 0.0) / max(self.remaining, 1)
            rank = int(np.argmax(tails <= allowed))  # first r whose tail fits
        cap = self.max_ranks[bond]
        if cap is not None:
            rank = min(rank, cap)
        rank = max(rank, 1)
        if active:
            self.remaining -= 1
        self.spent += float(tails[rank])
        self.kept.append(s64[:rank].copy())
        self.discarded.append(s64[rank:].copy())
        return rank

    def report(self, result: Any, exact: np.ndarray, bound: float, norm: float) -> TruncationReport:
        """Report for ``result`` (an MPO) approximating the dense ``exact``, error measured wide."""
        wide = np.complex128 if np.iscomplexobj(exact) or result.dtype.kind == "c" else np.float64
        error = float(np.linalg.norm(result.to_dense().astype(wide) - exact.astype(wide)))
        return TruncationReport(
            bond_dims=result.bond_dims,
            kept=tuple(self.kept),
            discarded=tuple(self.discarded),
            bound=bound,
            error=error,
            norm=norm,
            tolerance=self.tolerance,
        )

    def bound(self) -> float:
        """``sqrt(sum of squared discarded values)``; warns if it exceeds the tolerance."""
        bound = float(np.sqrt(self.spent))
        if self.tolerance is not None and bound > self.tolerance * (1 + 1e-12):
            warnings.warn(
                f"bond caps forced an error bound of {bound:.3e}, above the requested tolerance"
                f" {self.tolerance:.3e}; raise bond or loosen rtol/atol",
                TruncationWarning,
                stacklevel=3,
            )
        return bound
