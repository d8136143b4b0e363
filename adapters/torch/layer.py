"""``MPOLinear``: a linear layer whose weight is a matrix product operator of trainable cores.

The layer stores the cores ``G_k`` of shape ``(r_{k-1}, out_k, in_k, r_k)`` (index convention of
``docs/design.md``: rows = ``out_features``, columns = ``in_features``) as plain
``nn.Parameter``s in an ``nn.ParameterList`` named ``cores``, so ``.to()``, ``state_dict`` and
DDP treat them like any other parameter. All contraction math comes from the core: the forward
pass runs ``mpo.plan_matvec`` (cached per flattened batch size; the plan picks dense-first or
input-through-cores by FLOP cost) and ``.weight`` runs ``mpo.plan_dense``.

Where the norm sits (``init``)
------------------------------
``"symmetric"`` (the OPF paper): each bond's singular values are split as ``sqrt(lambda)`` onto
both neighbouring cores. ``"left"``: left-canonical cores, the whole norm in the last core.
``"right"``: the mirror image. ``"balanced"``: all cores have equal Frobenius norm.

Learning rate
-------------
Every core receives its own optimizer step, and the steps compound on the contracted weight: with
Adam at the same learning rate the first-step change of ``W`` is about ``0.8 * n_cores`` times that
of dense fine-tuning (OPF digest §3.3: 1.6x for 2 cores, 4.7x for 6, 12.6x for 15). Scale the core
learning rate with :func:`adapters.torch.optim.factor_lr_scale` or
``param_groups(model, lr, factor_lr="scaled")``.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

import mpo

from .decomposition import (
    CONV1D,
    INITS,
    LINEAR,
    AdapterError,
    decompose_module,
    dense_weight,
    module_kind,
)

__all__ = ["INITS", "AdapterError", "MPOLinear", "decompose_module", "dense_weight", "module_kind"]

_MAX_PLANS = 64


class MPOLinear(nn.Module):
    """Linear map ``y = x W^T + b`` with ``W`` (``(out, in)``) held as an MPO of trainable cores.

    Parameters
    ----------
    core_shapes : sequence of 4-tuples
        ``(r_{k-1}, out_k, in_k, r_k)`` per core, ``r_0 = r_n = 1``. Cores start uninitialized
        (``torch.empty``); use :meth:`from_linear` to build from a trained layer.
    bias : bool
        Whether the layer has a bias of shape ``(out_features,)``.
    original_type : {"torch.nn.Linear", "transformers.pytorch_utils.Conv1D"}
        Module type :meth:`to_linear` rebuilds.
    init : str
        Recorded gauge of the cores (see module docstring).
    device, dtype
        Of the new parameters.

    Attributes
    ----------
    cores : nn.ParameterList
        ``n_cores`` parameters, core ``k`` of shape ``(r_{k-1}, out_k, in_k, r_k)``.
    bias : nn.Parameter or None
        ``(out_features,)``.
    row_dims, col_dims, bond_dims : tuple of int
        Output dims, input dims, bonds (``n_cores + 1`` entries including the boundary 1s).
    """

    def __init__(
        self,
        core_shapes: Sequence[Sequence[int]],
        bias: bool = True,
        *,
        original_type: str = LINEAR,
        init: str = "symmetric",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        shapes = tuple(tuple(int(d) for d in s) for s in core_shapes)
        ok = bool(shapes) and all(len(s) == 4 and min(s) >= 1 for s in shapes)
        ok = ok and shapes[0][0] == 1 and shapes[-1][3] == 1
        ok = ok and all(a[3] == b[0] for a, b in itertools.pairwise(shapes))
        if not ok:
            raise AdapterError(
                "core_shapes must chain as (1, o1, i1, r1), (r1, o2, i2, r2), ..., "
                f"(r, on, in, 1); got {shapes}"
            )
        if original_type not in (LINEAR, CONV1D):
            raise AdapterError(
                f"original_type must be {LINEAR!r} or {CONV1D!r}, got {original_type!r}"
            )
        kw = {"device": device, "dtype": dtype}
        self.cores = nn.ParameterList(nn.Parameter(torch.empty(s, **kw)) for s in shapes)
        if bias:
            self.bias = nn.Parameter(torch.empty(math.prod(s[1] for s in shapes), **kw))
        else:
            self.register_parameter("bias", None)
        self.core_shapes = shapes
        self.row_dims = tuple(s[1] for s in shapes)
        self.col_dims = tuple(s[2] for s in shapes)
        self.bond_dims = (1, *(s[3] for s in shapes))
        self.out_features = math.prod(self.row_dims)
        self.in_features = math.prod(self.col_dims)
        self.original_type = original_type
        self.init = init
        self._plans: OrderedDict[int, object] = OrderedDict()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_plans"] = OrderedDict()  # plans are rebuilt (and cached by the core) on demand
        return state

    @property
    def _dense_plan(self):
        return mpo.plan_dense(self.core_shapes)

    @property
    def n_cores(self) -> int:
        """Number of cores."""
        return len(self.core_shapes)

    @property
    def n_params(self) -> int:
        """Number of core parameters (bias excluded)."""
        return sum(math.prod(s) for s in self.core_shapes)

    @classmethod
    def from_mpo(cls, m: mpo.MPO, module: nn.Module, *, init: str = "symmetric") -> MPOLinear:
        """Wrap decomposed cores ``m`` for ``module``: cast to its dtype/device, reuse its bias.

        The bias ``nn.Parameter`` object is shared (not copied), so an optimizer that holds it
        keeps training it. Cores get the weight's ``requires_grad``.
        """
        w = dense_weight(module)
        if tuple(m.shape) != tuple(w.shape):
            raise AdapterError(
                f"MPO shape {tuple(m.shape)} != weight shape {tuple(w.shape)} (out, in)"
            )
        bias = getattr(module, "bias", None)
        layer = cls(
            [c.shape for c in m.cores],
            bias=False,
            original_type=module_kind(module),
            init=init,
            device="meta",
        )
        layer.cores = nn.ParameterList(
            nn.Parameter(
                torch.from_numpy(np.ascontiguousarray(c)).to(w.device, w.dtype), w.requires_grad
            )
            for c in m.cores
        )
        layer.bias = bias
        layer.train(module.training)
        return layer

    @classmethod
    def from_linear(
        cls,
        module: nn.Module,
        shape: int | tuple[Sequence[int], Sequence[int]] | None = None,
        bond: int | Sequence[int] | None = None,
        init: str = "symmetric",
        *,
        rtol: float | None = None,
        atol: float | None = None,
    ) -> MPOLinear:
        """Build from an ``nn.Linear`` or transformers ``Conv1D``; exact unless truncation is asked.

        Decomposes in float64 on the CPU (see :func:`decompose_module`), then casts the cores to
        the module's dtype and device. Right after this the layer's output equals the module's up
        to the module dtype's round-off.

        Parameters
        ----------
        module : nn.Linear or Conv1D
            Source layer; left unchanged.
        shape : (out_dims, in_dims), int or None
            Site dims (``prod(out_dims) == out_features``), a number of cores, or None (the
            core's default).
        bond : int, sequence of int or None
            Bond dimension cap (None: full, exact).
        init : {"symmetric", "left", "right", "balanced"}
            Where the norm sits (see the module docstring).
        rtol, atol : float, optional
            Truncation tolerances of ``mpo.decompose``.
        """
        m = decompose_module(module, shape, bond, init, rtol=rtol, atol=atol)
        return cls.from_mpo(m, module, init=init)

    def _matvec_plan(self, batch: int):
        plan = self._plans.get(batch)
        if plan is None:
            plan = mpo.plan_matvec(self.core_shapes, batch)
            self._plans[batch] = plan
            if len(self._plans) > _MAX_PLANS:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(batch)
        return plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to ``x`` ``(..., in_features)``; returns ``(..., out_features)``."""
        lead = x.shape[:-1]
        x2d = x.reshape(-1, self.in_features)
        if x2d.shape[0] == 0:
            y = x2d @ self.weight.T
        else:
            y = self._matvec_plan(x2d.shape[0])(x2d, *self.cores)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    @property
    def weight(self) -> torch.Tensor:
        """Dense weight ``(out_features, in_features)`` contracted from the cores (differentiable).

        Always the ``nn.Linear`` layout, also for a layer built from a ``Conv1D``.
        """
        return self._dense_plan(*self.cores)

    def merged_weight(self) -> torch.Tensor:
        """Dense weight contracted in float64 and cast to the core dtype (no autograd)."""
        with torch.no_grad():
            w64 = self._dense_plan(*(c.detach().to(torch.float64) for c in self.cores))
        return w64.to(self.cores[0].dtype)

    def to_linear(self) -> nn.Module:
        """Contract the cores into a module of the original type (``nn.Linear`` or ``Conv1D``).

        The weight is contracted in float64, cast to the core dtype, and stored in the original
        layout (``(out, in)`` for ``nn.Linear``, ``(in, out)`` for ``Conv1D``). The bias
        ``nn.Parameter`` is shared with this layer.
        """
        w = self.merged_weight()
        grad = self.cores[0].requires_grad
        if self.original_type == LINEAR:
            new = nn.Linear(self.in_features, self.out_features, bias=False, device="meta")
            new.weight = nn.Parameter(w, requires_grad=grad)
        else:
            from transformers.pytorch_utils import Conv1D

            new = Conv1D(self.out_features, self.in_features)
            new.weight = nn.Parameter(w.T.contiguous(), requires_grad=grad)
        if self.bias is not None:
            new.bias = self.bias
        elif self.original_type == CONV1D:
            new.bias = nn.Parameter(torch.zeros_like(w[:, 0]))
        new.train(self.training)
        return new

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"row_dims={self.row_dims}, col_dims={self.col_dims}, bond_dims={self.bond_dims}, "
            f"init={self.init!r}, bias={self.bias is not None}"
        )
