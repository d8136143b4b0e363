"""Contraction plans: opt_einsum expressions built once from core shapes, run on any arrays.

A plan knows only shapes. It is built (path search included) the first time a shape combination
is seen and cached; calling it runs the contraction with whatever array library the operands
come from (numpy here, torch in :mod:`adapters.torch`, with autograd), through opt_einsum's
backend dispatch. The adapter therefore executes exactly this math; there is no second
implementation.

Two ways to apply an MPO to a batch ``x`` of shape ``(B, N)``:

``"dense"``
    contract the cores to ``W`` of shape ``(M, N)`` first, then one GEMM ``x @ W.T``.
    Cost: the dense contraction (independent of ``B``) plus ``2 B M N``.
``"through"``
    contract ``x`` through the cores in the order opt_einsum finds for the whole network.

:func:`plan_matvec` with ``strategy="auto"`` picks the one with fewer FLOPs for the actual
``B``; :attr:`MatvecPlan.strategy` and :meth:`MatvecPlan.describe` tell which and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import opt_einsum as oe

from .errors import MPOError

__all__ = ["DensePlan", "MatvecPlan", "plan_dense", "plan_matvec"]

Shapes = tuple[tuple[int, int, int, int], ...]
Strategy = Literal["auto", "dense", "through"]


def _normalize(core_shapes: Sequence[Sequence[int]]) -> Shapes:
    shapes = tuple(tuple(int(d) for d in s) for s in core_shapes)
    if not shapes or any(len(s) != 4 for s in shapes):
        raise MPOError(f"core shapes must be 4-tuples (r_left, row, col, r_right), got {shapes}")
    return shapes  # type: ignore[return-value]


def _symbols(n: int, with_batch: bool) -> tuple[list[str], list[str], list[str], str]:
    """Symbols for bonds (n + 1), rows (n), cols (n) and the batch axis."""
    sym = (oe.get_symbol(i) for i in range(4 * n + 2))
    bonds = [next(sym) for _ in range(n + 1)]
    rows = [next(sym) for _ in range(n)]
    cols = [next(sym) for _ in range(n)]
    batch = next(sym) if with_batch else ""
    return bonds, rows, cols, batch


def _core_terms(bonds: list[str], rows: list[str], cols: list[str]) -> list[str]:
    return [bonds[k] + rows[k] + cols[k] + bonds[k + 1] for k in range(len(rows))]


class DensePlan:
    """Contract cores to the dense matrix ``W`` of shape ``(M, N)``.

    Parameters
    ----------
    core_shapes : sequence of 4-tuples
        ``(r_{k-1}, row_k, col_k, r_k)`` per core.
    optimize : str or opt_einsum.paths.PathOptimizer
        Path search passed to opt_einsum (``"auto"``, ``"greedy"``, ``"optimal"``, ``"dp"``, ...).
    """

    def __init__(self, core_shapes: Sequence[Sequence[int]], optimize: Any = "auto"):
        self.core_shapes = _normalize(core_shapes)
        n = len(self.core_shapes)
        self.shape = (
            math.prod(s[1] for s in self.core_shapes),
            math.prod(s[2] for s in self.core_shapes),
        )
        bonds, rows, cols, _ = _symbols(n, with_batch=False)
        self.equation = (
            ",".join(_core_terms(bonds, rows, cols))
            + "->"
            + bonds[0]
            + "".join(rows)
            + "".join(cols)
            + bonds[-1]
        )
        path, self.path_info = oe.contract_path(
            self.equation, *self.core_shapes, shapes=True, optimize=optimize
        )
        self._expr = oe.contract_expression(self.equation, *self.core_shapes, optimize=path)

    @property
    def flops(self) -> int:
        """FLOPs of the contraction (opt_einsum's count: a multiply-add is 2)."""
        return int(self.path_info.opt_cost)

    def __call__(self, *cores: Any) -> Any:
        """Dense ``W`` of shape ``(M, N)``, same array type as the cores."""
        return self._expr(*cores).reshape(self.shape)

    def __repr__(self) -> str:
        n = len(self.core_shapes)
        return f"DensePlan(shape={self.shape}, n_cores={n}, flops={self.flops:.3e})"


class MatvecPlan:
    """Apply an MPO to a batch: ``x`` of shape ``(B, N)`` -> ``y`` of shape ``(B, M)``.

    ``y[b] = W @ x[b]`` (no conjugation). Build with :func:`plan_matvec`.

    Attributes
    ----------
    strategy : {"dense", "through"}
        The contraction order used (see module doc).
    flops : int
        FLOPs of the chosen strategy; ``candidates`` holds both.
    """

    def __init__(
        self,
        core_shapes: Sequence[Sequence[int]],
        batch_size: int,
        optimize: Any = "auto",
        strategy: Strategy = "auto",
    ):
        if strategy not in ("auto", "dense", "through"):
            raise MPOError(f"strategy must be 'auto', 'dense' or 'through', got {strategy!r}")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise MPOError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.core_shapes = _normalize(core_shapes)
        self.batch_size = int(batch_size)
        self.dense = plan_dense(self.core_shapes, optimize)
        m, n = self.dense.shape
        k = len(self.core_shapes)
        bonds, rows, cols, batch = _symbols(k, with_batch=True)
        self.equation = (
            batch
            + "".join(cols)
            + ","
            + ",".join(_core_terms(bonds, rows, cols))
            + "->"
            + batch
            + bonds[0]
            + "".join(rows)
            + bonds[-1]
        )
        x_shape = (self.batch_size, *(s[2] for s in self.core_shapes))
        self._x_shape = x_shape
        path, self.through_info = oe.contract_path(
            self.equation, x_shape, *self.core_shapes, shapes=True, optimize=optimize
        )
        self.candidates = {
            "dense": self.dense.flops + 2 * self.batch_size * m * n,
            "through": int(self.through_info.opt_cost),
        }
        if strategy == "auto":
            strategy = min(self.candidates, key=self.candidates.__getitem__)  # type: ignore[assignment]
        self.strategy: Literal["dense", "through"] = strategy  # type: ignore[assignment]
        self._expr = (
            oe.contract_expression(self.equation, x_shape, *self.core_shapes, optimize=path)
            if self.strategy == "through"
            else None
        )

    @property
    def flops(self) -> int:
        """FLOPs of the chosen strategy."""
        return self.candidates[self.strategy]

    def __call__(self, x: Any, *cores: Any) -> Any:
        """``x @ W.T`` for ``x`` of shape ``(B, N)``; returns ``(B, M)``, same array type."""
        if self._expr is None:
            return x @ self.dense(*cores).T
        return self._expr(x.reshape(self._x_shape), *cores).reshape(
            self.batch_size, self.dense.shape[0]
        )

    def describe(self) -> str:
        """Human-readable account of both strategies and the choice."""
        lines = [
            f"MatvecPlan: batch {self.batch_size}, W {self.dense.shape},"
            f" {len(self.core_shapes)} cores",
            f"  dense-first   {self.candidates['dense']:.3e} FLOPs",
            f"  through-cores {self.candidates['through']:.3e} FLOPs",
            f"  chosen: {self.strategy}",
            "",
            str(self.dense.path_info if self.strategy == "dense" else self.through_info),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"MatvecPlan(batch_size={self.batch_size}, shape={self.dense.shape},"
            f" strategy={self.strategy!r}, flops={self.flops:.3e})"
        )


def _hashable(optimize: Any) -> bool:
    try:
        hash(optimize)
    except TypeError:
        return False
    return True


@lru_cache(maxsize=256)
def _plan_dense_cached(core_shapes: Shapes, optimize: Any) -> DensePlan:
    return DensePlan(core_shapes, optimize)


@lru_cache(maxsize=1024)
def _plan_matvec_cached(
    core_shapes: Shapes, batch_size: int, optimize: Any, strategy: Strategy
) -> MatvecPlan:
    return MatvecPlan(core_shapes, batch_size, optimize, strategy)


def plan_dense(core_shapes: Sequence[Sequence[int]], optimize: Any = "auto") -> DensePlan:
    """Cached :class:`DensePlan` for these core shapes.

    Examples
    --------
    >>> import numpy as np
    >>> plan = plan_dense([(1, 2, 3, 4), (4, 5, 6, 1)])
    >>> plan.shape
    (10, 18)
    >>> plan(np.ones((1, 2, 3, 4)), np.ones((4, 5, 6, 1)))[0, 0]
    np.float64(4.0)
    """
    shapes = _normalize(core_shapes)
    if _hashable(optimize):
        return _plan_dense_cached(shapes, optimize)
    return DensePlan(shapes, optimize)


def plan_matvec(
    core_shapes: Sequence[Sequence[int]],
    batch_size: int,
    optimize: Any = "auto",
    strategy: Strategy = "auto",
) -> MatvecPlan:
    """Cached :class:`MatvecPlan` for these core shapes and batch size.

    Parameters
    ----------
    core_shapes : sequence of 4-tuples
        ``(r_{k-1}, row_k, col_k, r_k)`` per core.
    batch_size : int
        Number of vectors ``B`` in ``x`` of shape ``(B, N)``.
    optimize : str or PathOptimizer
        opt_einsum path search.
    strategy : {"auto", "dense", "through"}
        ``"auto"`` picks the cheaper by FLOPs.
    """
    shapes = _normalize(core_shapes)
    if _hashable(optimize):
        return _plan_matvec_cached(shapes, int(batch_size), optimize, strategy)
    return MatvecPlan(shapes, batch_size, optimize, strategy)
