"""Turn a dense model into the over-parameterized model of a method, and build its optimizer.

This is the only module of :mod:`adapters.torch.finetune` that talks to the OPF adapter
(:func:`adapters.torch.overparameterize`, :func:`adapters.torch.selection.select_static`,
:class:`adapters.torch.dynamic.DynamicGrowth`); the training loop sees three calls:
:func:`prepare` before training, :class:`Growth` during it, :func:`build_optimizer`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .config import BERT_GROUPS, TrainConfig

__all__ = [
    "Growth",
    "build_optimizer",
    "count_parameters",
    "group_targets",
    "prepare",
    "set_lr",
]

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def group_targets(model: nn.Module, targets: str) -> dict[str, list[str]]:
    """Group the ``nn.Linear`` modules matching ``targets`` by module type across layers.

    Parameters
    ----------
    model : torch.nn.Module
        The (dense) model.
    targets : str
        Regex searched in each module name; ``|``-separated alternatives are the groups (a
        module goes to the first alternative it matches).

    Returns
    -------
    dict
        ``{alternative: [module names in model order]}``; empty groups are dropped.

    Raises
    ------
    ValueError
        If no ``nn.Linear`` matches (the message lists a few module names).
    """
    alternatives = _split_alternatives(targets)
    groups: dict[str, list[str]] = {alt: [] for alt in alternatives}
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    for name in linear:
        for alt in alternatives:
            if re.search(alt, name):
                groups[alt].append(name)
                break
    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        raise ValueError(
            f"--targets {targets!r} matches no nn.Linear of the model; expected a regex matching "
            f"names like {', '.join(linear[:4])}"
        )
    return groups


def _split_alternatives(pattern: str) -> list[str]:
    """Split a regex at top-level ``|`` (not inside groups or classes)."""
    parts, depth, cls, start = [], 0, False, 0
    escaped = False
    for i, ch in enumerate(pattern):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif cls:
            cls = ch != "]"
        elif ch == "[":
            cls = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    parts.append(pattern[start:])
    return [p for p in parts if p]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Return the number of (trainable) parameters, counting shared tensors once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _overparameterize(model: nn.Module, names: Sequence[str], cfg: TrainConfig) -> nn.Module:
    from adapters.torch import overparameterize

    if cfg.method == "opf-svd":
        return overparameterize(model, list(names), shape="opf-svd", n_cores=2)
    return overparameterize(model, list(names), shape=cfg.shape, n_cores=cfg.n_cores)


def prepare(
    model: nn.Module,
    cfg: TrainConfig,
    score_batches: Sequence[Any],
    loss_fn: LossFn,
    choose: Callable[[list[str]], list[str]] = lambda names: names,
) -> tuple[nn.Module, list[str]]:
    """Over-parameterize ``model`` before training as ``cfg.method`` prescribes.

    Parameters
    ----------
    model : torch.nn.Module
        The dense model (modified in place).
    cfg : TrainConfig
        Method and OPF knobs.
    score_batches : sequence
        Batches for the static selection (``opf-mpo-static``), identical on every process.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar loss``.
    choose : callable
        Applied to the selected names before decomposing; under ``torchrun`` it broadcasts
        rank 0's choice so that all processes decompose the same matrices.

    Returns
    -------
    model : torch.nn.Module
    decomposed : list of str
        Module names replaced by MPO layers (empty for ``dense`` and ``opf-mpo-dynamic``).
    """
    if cfg.method in ("dense", "opf-mpo-dynamic"):
        return model, []
    groups = group_targets(model, cfg.targets)
    if cfg.method == "opf-svd":
        names = [n for members in groups.values() for n in members]
    else:
        from adapters.torch.selection import select_static

        candidates = [n for members in groups.values() for n in members]
        names = select_static(
            model,
            candidates,
            list(score_batches),
            loss_fn,
            n_per_group=cfg.n_per_group,
            method=cfg.score,
        )
    names = choose(list(names))
    model = _overparameterize(model, names, cfg)
    return model, names


class Growth:
    """Dynamic OPF: every ``growth_interval`` steps decompose ``n_per_round`` more per group.

    Wraps :class:`adapters.torch.dynamic.DynamicGrowth` (until ``n_per_group`` per group). Call
    :meth:`observe` after each ``backward()`` (accumulates the importance score from the
    training gradients) and :meth:`maybe_grow` after each ``optimizer.step()``. Under
    ``torchrun`` both are collective: every process calls them at the same step and gets the
    same choice (scores are summed over processes).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        from adapters.torch.dynamic import DynamicGrowth

        names = [n for members in group_targets(model, cfg.targets).values() for n in members]
        self.helper = DynamicGrowth(
            model,
            names,
            n_per_round=cfg.n_per_round,
            max_per_group=cfg.n_per_group,
            interval=cfg.growth_interval,
            method=cfg.score,
            shape=cfg.shape,
            n_cores=cfg.n_cores,
        )

    def observe(self) -> None:
        """Accumulate importance scores from the current gradients."""
        self.helper.observe()

    def maybe_grow(self, optimizer: torch.optim.Optimizer) -> list[str]:
        """Decompose the next matrices if a round is due; move them into ``optimizer``.

        Returns
        -------
        list of str
            Names decomposed at this step (usually empty). New core groups carry
            ``mpo_module`` and get the core learning rate from :func:`set_lr`.
        """
        return list(self.helper.maybe_grow(optimizer))


def _is_core_group(group: dict) -> bool:
    return bool(group.get("n_cores") or group.get("mpo_module"))


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over :func:`adapters.torch.optim.param_groups`: dense at ``lr``, cores scaled.

    MPO cores get ``lr * cfg.effective_factor_lr_scale()``; :func:`set_lr` applies the schedule
    (and gives groups added later by dynamic growth the core learning rate).

    Parameters
    ----------
    model : torch.nn.Module
        Model whose trainable parameters are optimized.
    cfg : TrainConfig
        ``lr``, ``factor_lr_scale``, ``weight_decay``.

    Returns
    -------
    torch.optim.AdamW
    """
    from adapters.torch.optim import param_groups

    factor_lr = cfg.lr * cfg.effective_factor_lr_scale()
    groups = param_groups(model, cfg.lr, factor_lr=factor_lr)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int, total: int) -> float:
    """Set every group's LR for ``step`` (linear warm-up, then linear decay to 0 at ``total``).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Groups holding MPO cores (keys ``n_cores`` or ``mpo_module``, also those added by
        dynamic growth) peak at ``cfg.lr * cfg.effective_factor_lr_scale()``, others at ``cfg.lr``.
    cfg : TrainConfig
        ``lr``, ``warmup_ratio``, ``factor_lr_scale``.
    step, total : int
        Current step (0-based) and number of steps.

    Returns
    -------
    float
        The schedule factor in [0, 1].
    """
    warmup = round(cfg.warmup_ratio * total)
    if step < warmup:
        factor = (step + 1) / (warmup + 1)
    else:
        factor = max(0.0, (total - step) / max(1, total - warmup))
    core_lr = cfg.lr * cfg.effective_factor_lr_scale()
    for group in optimizer.param_groups:
        group["lr"] = (core_lr if _is_core_group(group) else cfg.lr) * factor
    return factor


__all__ += ["BERT_GROUPS"]
