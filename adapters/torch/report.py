"""Parameter counts of an over-parameterized model, and the plan table of ``overparameterize``.

Examples
--------
>>> from torch import nn
>>> counts = trainable_parameters(nn.Linear(4, 3))
>>> counts.total, counts.trainable, counts.mpo_cores, counts.dense_equivalent
(15, 15, 0, 15)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from .layer import MPOLinear

__all__ = [
    "ParameterCounts",
    "PlanEntry",
    "format_plan",
    "print_trainable_parameters",
    "trainable_parameters",
]


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts of a model (shared/tied parameters counted once).

    Attributes
    ----------
    total : int
        All parameters now (training time).
    trainable : int
        Parameters with ``requires_grad``.
    mpo_cores : int
        Parameters held in ``MPOLinear`` cores.
    dense_equivalent : int
        Parameters after :func:`adapters.torch.merge` (= at inference): cores replaced by the
        ``out * in`` dense weights they contract to.
    """

    total: int
    trainable: int
    mpo_cores: int
    dense_equivalent: int

    @property
    def trainable_percent(self) -> float:
        """``100 * trainable / total``."""
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"trainable params: {self.trainable:,} || all params: {self.total:,} || "
            f"trainable%: {self.trainable_percent:.4f} || in MPO cores: {self.mpo_cores:,} || "
            f"at inference (merged): {self.dense_equivalent:,}"
        )


def trainable_parameters(model: nn.Module) -> ParameterCounts:
    """Count parameters: total, trainable, in MPO cores, and dense-equivalent (after merge).

    Parameters
    ----------
    model : nn.Module
        Any model; ``MPOLinear`` layers are found by type.

    Returns
    -------
    ParameterCounts
    """
    params = list(model.parameters())  # de-duplicated by identity (tied weights count once)
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    layers = [m for m in model.modules() if isinstance(m, MPOLinear)]
    cores = sum(c.numel() for m in layers for c in m.cores)
    dense = sum(m.in_features * m.out_features for m in layers)
    return ParameterCounts(total, trainable, cores, total - cores + dense)


def print_trainable_parameters(model: nn.Module) -> ParameterCounts:
    """Print :func:`trainable_parameters` in PEFT's one-line format and return the counts."""
    counts = trainable_parameters(model)
    print(counts)
    return counts


@dataclass(frozen=True)
class PlanEntry:
    """One row of the ``overparameterize`` plan.

    Attributes
    ----------
    name : str
        Dotted module name.
    module_type : str
        ``"torch.nn.Linear"`` or ``"transformers.pytorch_utils.Conv1D"``.
    shape : (int, int)
        Dense ``(out_features, in_features)``.
    row_dims, col_dims : tuple of int
        Output and input site dims.
    bond_dims : tuple of int
        Bond dims with the boundary 1s (upper bounds where truncation is requested).
    params_before, params_after : int
        Weight parameters dense (``out * in``) and in the cores.
    """

    name: str
    module_type: str
    shape: tuple[int, int]
    row_dims: tuple[int, ...]
    col_dims: tuple[int, ...]
    bond_dims: tuple[int, ...]
    params_before: int
    params_after: int


def _short(dims: tuple[int, ...]) -> str:
    """``(32, 1, 1, 1, 24)`` -> ``"32,1x3,24"`` (keeps the table narrow for long chains)."""
    out: list[str] = []
    for d in dims:
        if out and out[-1].split("x")[0] == str(d):
            base, _, k = out[-1].partition("x")
            out[-1] = f"{base}x{int(k or 1) + 1}"
        else:
            out.append(str(d))
    return ",".join(out)


def format_plan(entries: Iterable[PlanEntry]) -> str:
    """Render plan entries as a fixed-width table with a totals line."""
    entries = list(entries)
    head = ("module", "type", "out x in", "out dims", "in dims", "bond dims", "before", "after")
    rows = [
        (
            e.name,
            e.module_type.rsplit(".", 1)[-1],
            f"{e.shape[0]}x{e.shape[1]}",
            _short(e.row_dims),
            _short(e.col_dims),
            _short(e.bond_dims),
            f"{e.params_before:,}",
            f"{e.params_after:,}",
        )
        for e in entries
    ]
    before = sum(e.params_before for e in entries)
    after = sum(e.params_after for e in entries)
    ratio = f"x{after / before:.3f}" if before else ""
    rows.append(
        (f"total ({len(entries)} modules)", "", "", "", "", ratio, f"{before:,}", f"{after:,}")
    )
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'>' if i >= 6 else '<'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)
