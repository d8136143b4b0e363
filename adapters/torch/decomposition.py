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
        For a lossless decomposition (no ``bond``/``rtol``/``atol``) verify on 8 random probe
        vectors that the float64 MPO reproduces ``probe @ W.T`` to ``1e-10`` relative error.

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
    # OPF chains [a, 1, ..., 1, b] cost one SVD here: the core skips 1 x 1 legs (identity cores).
    m = mpo.decompose(w, shape, bond, rtol=rtol, atol=atol, form=init)
    if check and lossless:
        # Probe with random vectors instead of contracting W: O(params * 8), not O(d**3 * n).
        probe = np.random.default_rng(0).standard_normal((8, w.shape[1]))
        expected = probe @ w.T
        err = float(np.linalg.norm(m.matvec(probe) - expected))
        scale = max(float(np.linalg.norm(expected)), np.finfo(np.float64).tiny)
        if err > 1e-10 * scale:
            raise AdapterError(
                f"lossless decomposition is off by {err / scale:.3e} (rel.); expected < 1e-10"
            )
    return m
