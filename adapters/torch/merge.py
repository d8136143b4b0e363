"""``merge``: contract every ``MPOLinear`` back into its original module type, with a check.

After merging, the model has the original architecture: its ``state_dict`` keys and shapes are
those of the model before ``overparameterize``, so ``save_pretrained`` output loads with plain
transformers. Weights are contracted in float64 and cast to the layer dtype once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .layer import AdapterError, MPOLinear

__all__ = ["MergeReport", "merge", "merge_and_unload"]


@dataclass
class MergeReport:
    """Outcome of :func:`merge`.

    Attributes
    ----------
    n_modules : int
        Number of ``MPOLinear`` layers merged.
    max_abs, max_rel : float
        Largest absolute difference between outputs before and after merging, and that divided
        by the largest absolute output (NaN when not checked).
    tolerance : float
        Relative tolerance the check used.
    per_module : dict
        ``{name: (max_abs, max_rel)}`` for per-module random probes (empty with a user probe).
    """

    n_modules: int
    max_abs: float = math.nan
    max_rel: float = math.nan
    tolerance: float = math.nan
    per_module: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"merged {self.n_modules} MPOLinear: max abs diff {self.max_abs:.3e}, "
            f"max rel diff {self.max_rel:.3e} (tolerance {self.tolerance:.1e})"
        )


def _tolerance(layers: list[MPOLinear]) -> float:
    """Relative tolerance from the dtype's eps, the chain length and the summation length."""
    if not layers:
        return 0.0
    eps = max(torch.finfo(m.cores[0].dtype).eps for m in layers)
    n = max(m.n_cores for m in layers)
    k = max(m.in_features for m in layers)
    return 8.0 * eps * n * math.sqrt(k)


def _tensors(out: Any) -> list[torch.Tensor]:
    """All floating tensors in a (nested) model output, in a fixed order."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, Mapping):
        return [t for k in out for t in _tensors(out[k])]
    if isinstance(out, list | tuple):
        return [t for o in out for t in _tensors(o)]
    return []


def _diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> tuple[float, float]:
    if len(a) != len(b) or not a:
        raise AdapterError(f"probe outputs differ in structure ({len(a)} vs {len(b)} tensors)")
    abs_ = max(float((x.double() - y.double()).abs().max()) for x, y in zip(a, b, strict=True))
    scale = max(float(x.double().abs().max()) for x in a)
    return abs_, abs_ / scale if scale > 0 else abs_


def _run(model: nn.Module, probe: Any) -> list[torch.Tensor]:
    if isinstance(probe, Mapping):
        return _tensors(model(**probe))
    if isinstance(probe, tuple):
        return _tensors(model(*probe))
    return _tensors(model(probe))


def _swap(model: nn.Module, modules: Mapping[str, nn.Module]) -> None:
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, module)


def merge(
    model: nn.Module,
    probe: Any = None,
    *,
    check: bool = True,
    rtol: float | None = None,
    verbose: bool = True,
    return_report: bool = False,
) -> nn.Module | tuple[nn.Module, MergeReport]:
    """Replace every ``MPOLinear`` of ``model`` by its contracted original module, in place.

    Parameters
    ----------
    model : nn.Module
        Over-parameterized model (a bare ``MPOLinear`` is returned as its merged module).
    probe : tensor, tuple or dict, optional
        Model inputs (``model(probe)``, ``model(*probe)`` or ``model(**probe)``). With a probe
        the whole model's outputs before and after merging are compared (in ``eval()`` mode,
        without gradients). Without one, each layer is checked on 8 random inputs.
    check : bool
        Compare outputs; if the largest difference exceeds ``rtol`` (relative to the largest
        output), raise :class:`AdapterError` and leave the model unmerged.
    rtol : float, optional
        Default ``8 * eps * n_cores * sqrt(in_features)`` of the layer dtype (worst layer).
    verbose : bool
        Print the :class:`MergeReport` line.
    return_report : bool
        Also return the report.

    Returns
    -------
    nn.Module or (nn.Module, MergeReport)
        The same model object, with plain ``nn.Linear`` / ``Conv1D`` layers.
    """
    if isinstance(model, MPOLinear):  # a bare layer: merge it inside a container
        box = nn.ModuleDict({"layer": model})
        _, rep = merge(box, None, check=check, rtol=rtol, verbose=verbose, return_report=True)
        return (box["layer"], rep) if return_report else box["layer"]
    layers = {n: m for n, m in model.named_modules() if isinstance(m, MPOLinear)}
    report = MergeReport(len(layers))
    merged = {n: m.to_linear() for n, m in layers.items()}
    report.tolerance = _tolerance(list(layers.values())) if rtol is None else float(rtol)
    if check and layers and probe is None:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, layer in layers.items():
                ref = layer.cores[0]
                x = torch.randn(8, layer.in_features, generator=gen, dtype=torch.float64)
                x = x.to(ref.device, ref.dtype)
                report.per_module[name] = _diff([layer(x)], [merged[name](x)])
        report.max_abs = max(a for a, _ in report.per_module.values())
        report.max_rel = max(r for _, r in report.per_module.values())
    elif check and layers:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                before = _run(model, probe)
                _swap(model, merged)
                after = _run(model, probe)
        except Exception:
            _swap(model, layers)
            raise
        finally:
            model.train(was_training)
        report.max_abs, report.max_rel = _diff(before, after)
        if report.max_rel > report.tolerance:
            _swap(model, layers)
    if check and layers and report.max_rel > report.tolerance:
        raise AdapterError(f"merge check failed, model left unmerged: {report}")
    _swap(model, merged)
    if verbose and layers:
        print(report)
    return (model, report) if return_report else model


#: PEFT's name for :func:`merge`.
merge_and_unload = merge
