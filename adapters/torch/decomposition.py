"""From a trained ``nn.Linear`` / ``Conv1D`` weight to MPO cores: module types and decomposition.

Weights are decomposed in float64 on the CPU by ``mpo.decompose`` and verified against the dense
weight when the decomposition is lossless. Conv1D (GPT-2) stores its weight ``(in, out)``; its
transpose is decomposed so that rows are always ``out_features``.
"""

from __future__ import annotations

import functools
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
        For a lossless decomposition (no ``bond``/``rtol``/``atol``) verify with 8 random
        Kronecker-product probes ``u^T W v`` that the float64 MPO reproduces the weight to
        ``1e-10`` relative error (see :func:`_probe_error`; no dense contraction).

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
        rel = _probe_error(m, w)
        if rel > 1e-10:
            raise AdapterError(
                f"lossless decomposition is off by {rel:.3e} (rel.); expected < 1e-10"
            )
    return m


def _probe_error(m: mpo.MPO, w: np.ndarray, n_probes: int = 8) -> float:
    """Relative error of ``u^T W v`` over random Kronecker-product probes ``u, v``.

    With ``u = u_1 kron ... kron u_n`` (and ``v`` likewise) the MPO side is a product of small
    matrices ``sum_ij u_k[i] G_k[:, i, j, :] v_k[j]``: O(n_params) work, where contracting the
    chain (or applying it to vectors) costs O(n d^3). For Gaussian probes the expected squared
    value is ``||W||_F**2`` and any error ``E != 0`` shows up almost surely, with expected size
    ``||E||_F``, so the ratio estimates the relative Frobenius error.
    """
    rng = np.random.default_rng(0)
    us = [rng.standard_normal((n_probes, r)) for r in m.row_dims]
    vs = [rng.standard_normal((n_probes, c)) for c in m.col_dims]
    carry = np.ones((n_probes, 1))
    for core, u, v in zip(m.cores, us, vs, strict=True):
        a, i, j, b = core.shape
        t = (carry @ core.reshape(a, -1)).reshape(n_probes, i, j, b)  # no copy of the core
        carry = np.einsum("kijb,ki,kj->kb", t, u, v)
    values = np.array(
        [
            functools.reduce(np.kron, [u[k] for u in us])
            @ w
            @ functools.reduce(np.kron, [v[k] for v in vs])
            for k in range(n_probes)
        ]
    )
    errors = carry[:, 0] - values
    return float(np.linalg.norm(errors) / max(np.linalg.norm(values), np.finfo(float).tiny))
