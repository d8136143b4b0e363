"""``overparameterize``: replace target linear layers by exact ``MPOLinear`` layers, in place.

Everything is validated, and every weight decomposed, before the model (or the optimizer) is
touched: after an error the model is exactly as it was.

Shape presets (``shape=``)
--------------------------
``"chain"`` (default, the OPF paper's released config)
    ``[a, 1, ..., 1, b]`` rows and columns, ``n_cores`` default 15 (768 -> 32 x 24; each of the
    13 middle cores is a ``d x d`` matrix, 8.875x the dense parameters for BERT-base).
``"opf-svd"``
    The chain with 2 cores (paper's OPF-SVD; 1.5625x for BERT-base).
``"balanced"``
    Near-equal factors (MPOP's ``[3,4,4,4,4] x [4,4,4,4,3]``), ``n_cores`` default 5.
``(out_dims, in_dims)``
    Explicit site dims; ``prod(out_dims) == out_features`` and ``prod(in_dims) == in_features``.

``overrides={name_or_regex: spec}`` sets another spec per module; ``spec`` is a preset, a dims
pair, or a dict with keys ``shape``, ``n_cores``, ``bond``, ``init``. A key is tried as an exact
name or suffix, then as a full-match regex; the first key (in dict order) that matches wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

import mpo

from .layer import INITS, AdapterError, MPOLinear, decompose_module, dense_weight, module_kind
from .optim import find_group, replace_in_optimizer
from .report import PlanEntry, format_plan
from .targets import TargetSpec, match_name, match_targets

__all__ = ["PRESETS", "OverparameterizePlan", "overparameterize", "resolve_shape"]

#: preset -> (layout for ``mpo.suggest_shape``, default ``n_cores``)
PRESETS = {"chain": ("chain", 15), "opf-svd": ("chain", 2), "balanced": ("balanced", 5)}


class OverparameterizePlan(list):
    """List of :class:`PlanEntry` returned by ``dry_run=True``; ``str()`` gives the table."""

    def __str__(self) -> str:
        return format_plan(self)


def _dims(value: object) -> tuple[int, ...] | None:
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        if all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value):
            return tuple(value)
    return None


def resolve_shape(
    shape: object, n_cores: int | None, out_in: tuple[int, int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Turn a preset or explicit dims into ``(out_dims, in_dims)`` for a weight ``(out, in)``.

    Raises
    ------
    AdapterError
        Unknown preset, malformed dims, or dims whose products differ from ``(out, in)``.
    """
    if isinstance(shape, str):
        if shape not in PRESETS:
            raise AdapterError(
                f"shape preset {shape!r} unknown; expected one of {sorted(PRESETS)} or "
                "(out_dims, in_dims), e.g. ((32, 1, 24), (32, 1, 24))"
            )
        layout, default_n = PRESETS[shape]
        n = default_n if n_cores is None else n_cores
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise AdapterError(f"n_cores must be an int >= 1, got {n!r}")
        return mpo.suggest_shape(out_in, n, layout=layout)
    pair = shape if isinstance(shape, Sequence) and len(shape) == 2 else None
    rows, cols = (_dims(pair[0]), _dims(pair[1])) if pair is not None else (None, None)
    if rows is None or cols is None or len(rows) != len(cols):
        raise AdapterError(
            f"shape must be a preset {sorted(PRESETS)} or (out_dims, in_dims) of equal length "
            f"with positive ints, got {shape!r}"
        )
    if (math.prod(rows), math.prod(cols)) != out_in:
        raise AdapterError(
            f"shape {shape!r} multiplies out to {(math.prod(rows), math.prod(cols))}, expected "
            f"(out_features, in_features) = {out_in}"
        )
    if n_cores is not None and n_cores != len(rows):
        raise AdapterError(f"n_cores={n_cores} contradicts shape {shape!r} ({len(rows)} cores)")
    return rows, cols


def _bond_dims(rows: tuple[int, ...], cols: tuple[int, ...], bond: Any) -> tuple[int, ...]:
    """Bond dims the decomposition will have (full bonds, capped by ``bond``), for the plan."""
    full = mpo.full_bond_dims(rows, cols)
    if bond is None:
        return full
    n_bonds = len(rows) - 1
    caps = [bond] * n_bonds if isinstance(bond, int) else list(bond)
    if len(caps) != n_bonds or not all(isinstance(c, int) and c >= 1 for c in caps):
        raise AdapterError(
            f"bond must be an int >= 1 or {n_bonds} of them (one per bond), got {bond!r}"
        )
    return (1, *(min(f, c) for f, c in zip(full[1:-1], caps, strict=True)), 1)


def _spec_for(name: str, default: dict, overrides: Mapping[str, Any] | None, used: set) -> dict:
    spec = dict(default)
    for key, value in (overrides or {}).items():
        try:
            hit = match_name(name, key, regex=False) or match_name(name, key, regex=True)
        except (re.error, TypeError) as exc:
            raise AdapterError(f"overrides key {key!r} is not a name or regex: {exc}") from None
        if hit:
            used.add(key)
            if isinstance(value, Mapping):
                unknown = set(value) - {"shape", "n_cores", "bond", "init"}
                if unknown:
                    raise AdapterError(f"overrides[{key!r}] has unknown keys {sorted(unknown)}")
                spec.update(value)
                if "shape" in value and "n_cores" not in value:
                    spec["n_cores"] = None
            else:
                spec.update(shape=value, n_cores=None)
            break
    return spec


def _validate(model, names, default, overrides, optimizer) -> list[tuple[str, nn.Module, dict]]:
    modules = dict(model.named_modules())
    used: set[str] = set()
    jobs = []
    for name in names:
        module = modules[name]
        where = f"module {name!r}"
        if isinstance(module, MPOLinear):
            raise AdapterError(
                f"{where} is already an MPOLinear (model already over-parameterized)"
            )
        kind = module_kind(module)
        if kind is None:
            raise AdapterError(
                f"{where} has unsupported type {type(module).__module__}."
                f"{type(module).__qualname__}; expected torch.nn.Linear or transformers Conv1D"
            )
        spec = _spec_for(name, default, overrides, used)
        if spec["init"] not in INITS:
            raise AdapterError(f"{where}: init must be one of {INITS}, got {spec['init']!r}")
        w = dense_weight(module)
        try:
            rows, cols = resolve_shape(spec["shape"], spec["n_cores"], tuple(w.shape))
            bonds = _bond_dims(rows, cols, spec["bond"])
        except mpo.MPOError as exc:
            raise AdapterError(f"{where}: {exc}") from None
        if not torch.isfinite(w).all():
            bad = int((~torch.isfinite(w)).sum())
            raise AdapterError(f"{where}: weight has {bad} NaN/Inf entries; expected finite values")
        if optimizer is not None and find_group(optimizer, module.weight) is None:
            raise AdapterError(
                f"{where}: its weight is not in the optimizer; pass an optimizer holding every "
                "target weight, or build the optimizer after overparameterize"
            )
        spec.update(rows=rows, cols=cols, bond_dims=bonds, kind=kind, shape_out_in=tuple(w.shape))
        jobs.append((name, module, spec))
    unused = [k for k in (overrides or {}) if k not in used]
    if unused:
        raise AdapterError(f"overrides keys {unused} match no target module")
    return jobs


def overparameterize(
    model: nn.Module,
    targets: TargetSpec = "all-linear",
    *,
    shape: str | tuple[Sequence[int], Sequence[int]] = "chain",
    n_cores: int | None = None,
    bond: int | Sequence[int] | None = None,
    init: str = "symmetric",
    overrides: Mapping[str, Any] | None = None,
    exclude: TargetSpec | None = None,
    dry_run: bool = False,
    optimizer: torch.optim.Optimizer | None = None,
) -> nn.Module | OverparameterizePlan:
    """Replace target ``nn.Linear``/``Conv1D`` modules of ``model`` by ``MPOLinear``, in place.

    Parameters
    ----------
    model : nn.Module
        E.g. a transformers model; modified in place and returned.
    targets : str or list of str
        ``"all-linear"`` (default), a full-match regex, or exact names/suffixes
        (see :mod:`adapters.torch.targets`). Entries matching nothing raise.
    shape : {"chain", "opf-svd", "balanced"} or (out_dims, in_dims)
        Site dims preset or explicit dims (see module docstring).
    n_cores : int, optional
        Number of cores for a preset (defaults: chain 15, opf-svd 2, balanced 5).
    bond : int or sequence of int, optional
        Bond cap; None keeps full bonds (exact).
    init : {"symmetric", "left", "right", "balanced"}
        Where the norm sits (``mpo.decompose(form=...)``); "symmetric" is the paper's.
    overrides : dict, optional
        Per-module ``{name_or_regex: preset | dims | {"shape", "n_cores", "bond", "init"}}``.
    exclude : str or list of str, optional
        Modules to leave dense (same rules as ``targets``).
    dry_run : bool
        Validate, print and return the plan table; change nothing.
    optimizer : torch.optim.Optimizer, optional
        Updated in the same call: each replaced weight leaves its group (state dropped) and its
        cores join a new group with the same hyperparameters and fresh state (the OPF code
        built its optimizer before the swap, so its factors never trained).

    Returns
    -------
    nn.Module or OverparameterizePlan
        ``model`` (same object), or the plan when ``dry_run``.

    Raises
    ------
    AdapterError
        (a ``mpo.MPOError``/``ValueError``) before any change, naming the offending value.
    """
    if not isinstance(model, nn.Module):
        raise AdapterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise AdapterError(f"overrides must be a dict {{name_or_regex: shape}}, got {overrides!r}")
    default = {"shape": shape, "n_cores": n_cores, "bond": bond, "init": init}
    jobs = _validate(model, match_targets(model, targets, exclude), default, overrides, optimizer)
    plan = OverparameterizePlan(
        PlanEntry(
            name,
            spec["kind"],
            spec["shape_out_in"],
            spec["rows"],
            spec["cols"],
            spec["bond_dims"],
            math.prod(spec["shape_out_in"]),
            mpo.n_params(spec["rows"], spec["cols"], spec["bond_dims"]),
        )
        for name, _, spec in jobs
    )
    if dry_run:
        print(plan)
        return plan
    new_layers = []
    for name, module, spec in jobs:  # decompose everything first: no mutation yet
        try:
            m = decompose_module(module, (spec["rows"], spec["cols"]), spec["bond"], spec["init"])
        except mpo.MPOError as exc:
            raise AdapterError(f"module {name!r}: {exc}") from None
        new_layers.append(MPOLinear.from_mpo(m, module, init=spec["init"]))
    if optimizer is not None:
        replace_in_optimizer(
            optimizer,
            [(n, mod.weight, new.cores) for (n, mod, _), new in zip(jobs, new_layers, strict=True)],
        )
    for (name, _, _), new in zip(jobs, new_layers, strict=True):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
    return model
