"""From a trained ``nn.Linear`` / ``Conv1D`` weight to MPO cores: module types and decomposition.

Weights are decomposed in float64 on the CPU by ``mpo.decompose`` and verified against the dense
weight when the decomposition is lossless. Conv1D (GPT-2) stores its weight ``(in, out)``; its
transpose is decomposed so that rows are always ``out_features``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

import mpo

__all__ = [
    "CONV1D",
    "INITS",
    "LINEAR",
    "AdapterError",
    "decompose_module",
    "dense_weight",
    "module_kind",
]

#: Accepted ``init`` values (passed to ``mpo.decompose`` as ``form``).
INITS = ("symmetric", "left", "right", "balanced")
LINEAR = "torch.nn.Linear"
CONV1D = "transformers.pytorch_utils.Conv1D"


class AdapterError(mpo.MPOError):
    """Invalid input to the torch adapter (bad target, module type, shape, optimizer, file)."""


def _conv1d_cls() -> type | None:
    mod = sys.modules.get("transformers.pytorch_utils")  # no transformers import of our own
    return getattr(mod, "Conv1D", None)


def module_kind(module: nn.Module) -> str | None:
    """Return ``"torch.nn.Linear"``, ``"transformers.pytorch_utils.Conv1D"`` or ``None``.

    Only these exact types are supported (a subclass of ``nn.Linear`` may read its weight
    directly, e.g. ``nn.MultiheadAttention.out_proj``, so it is not replaced silently).
    """
    if type(module) is nn.Linear:
        return LINEAR
    conv1d = _conv1d_cls()
    if conv1d is not None and type(module) is conv1d:
        return CONV1D
    return None


def dense_weight(module: nn.Module) -> torch.Tensor:
    """Return a supported module's weight in ``(out_features, in_features)`` layout (a view)."""
    kind = module_kind(module)
    if kind == LINEAR:
        return module.weight
    if kind == CONV1D:
        return module.weight.T  # Conv1D stores (in, out)
    raise AdapterError(
        f"unsupported module type {type(module).__module__}.{type(module).__qualname__}; "
        f"expected {LINEAR} or {CONV1D}"
    )


_CHAIN_FORMS = ("symmetric", "left", "right")


def _chain_ends(shape: object) -> tuple[tuple[tuple[int, int], tuple[int, int]], int] | None:
    """``((a, b), (a', b')), n`` for chain dims ``[a, 1, ..., 1, b]`` (n >= 3), else None."""
    try:
        rows, cols = (tuple(int(d) for d in dims) for dims in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    n = len(rows)
    if n < 3 or len(cols) != n or any(rows[k] * cols[k] != 1 for k in range(1, n - 1)):
        return None
    return ((rows[0], rows[-1]), (cols[0], cols[-1])), n


def decompose_module(
    module: nn.Module,
    shape: int | tuple[Sequence[int], Sequence[int]] | None = None,
    bond: int | Sequence[int] | None = None,
    init: str = "symmetric",
    *,
    rtol: float | None = None,
    atol: float | None = None,
    check: bool = True,
) -> mpo.MPO:
    """Decompose a module's weight in float64 on the CPU (no torch state is changed).

    Parameters
    ----------
    module : nn.Linear or transformers Conv1D
        Weight ``(out, in)`` (Linear) or ``(in, out)`` (Conv1D, transposed first), any float dtype.
    shape, bond, rtol, atol
        Passed to ``mpo.decompose`` (``shape``: ``(out_dims, in_dims)``, ``n_cores`` or None).
    init : {"symmetric", "left", "right", "balanced"}
        Where the norm sits; passed as ``form``.
    check : bool
        For a lossless decomposition (no ``bond``/``rtol``/``atol``) verify that the float64
        contraction reproduces the weight to ``1e-10`` relative Frobenius error.

    Returns
    -------
    mpo.MPO
        float64 cores.
    """
    if init not in INITS:
        raise AdapterError(f"init must be one of {INITS}, got {init!r}")
    w = dense_weight(module).detach().to(device="cpu", dtype=torch.float64).numpy()
    if not np.isfinite(w).all():
        raise AdapterError(
            f"weight has {int((~np.isfinite(w)).sum())} NaN/Inf entries; expected finite"
        )
    lossless = bond is None and rtol is None and atol is None
    chain = _chain_ends(shape) if lossless and init in _CHAIN_FORMS else None
    if chain is not None:
        # OPF chain [a, 1, ..., 1, b]: one 2-core decomposition of the same matrix in the same
        # form, then d x d identity middle cores (identity is orthogonal, so the result is in
        # that form too, with the same bond spectrum on every bond). Exact; seconds instead of
        # minutes for BERT-size chains, because no sweep runs over the 1 x 1 cores.
        (rows2, cols2), n = chain
        m2 = mpo.decompose(w, (rows2, cols2), form=init)
        d = m2.bond_dims[1]
        eye = np.eye(d, dtype=m2.dtype).reshape(d, 1, 1, d)
        m = mpo.MPO([m2.cores[0], *([eye] * (n - 2)), m2.cores[1]])
        checked = m2
    else:
        m = mpo.decompose(w, shape, bond, rtol=rtol, atol=atol, form=init)
        checked = m
    if check and lossless:
        err = float(np.linalg.norm(checked.to_dense() - w))
        scale = max(float(np.linalg.norm(w)), np.finfo(np.float64).tiny)
        if err > 1e-10 * scale:
            raise AdapterError(
                f"lossless decomposition is off by {err / scale:.3e} (rel.); expected < 1e-10"
            )
    return m
