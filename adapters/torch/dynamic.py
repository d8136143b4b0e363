"""OPF's dynamic strategy: grow the over-parameterized set during training.

Every ``interval`` optimizer steps, score the still-dense candidate matrices and over-parameterize
the ``n_per_round`` best of every group, until every group holds ``max_per_group`` (the paper's
``t``, ``n`` and ``N``). Scores are accumulated from the gradients of the normal training step —
no extra forward or backward pass — with the paper's first-order Taylor score ``|Σ ∂L/∂W ⊙ W|``
(per step, summed over steps) or the released code's Fisher score ``mean(grad²)``.

The optimizer gets the new cores and loses the replaced dense weights in the same call
(``overparameterize(..., optimizer=...)``), which fixes the released code's bug where the new
factors were never trained. An LR scheduler is extended to the new parameter groups
(:func:`extend_scheduler`), so they follow the same schedule as the weights they replace.

Plain PyTorch loop::

    grower = DynamicGrowth(model, ["query", "value"], n_per_round=1, max_per_group=2, interval=100)
    for batch in loader:
        loss_fn(model, batch).backward()
        grower.observe()                          # after backward, before step / zero_grad
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        if grower.maybe_grow(optimizer, scheduler) and isinstance(ddp, DistributedDataParallel):
            ddp = rewrap_ddp(ddp)                 # DDP registered the old parameters

``transformers.Trainer``: ``Trainer(..., callbacks=[OPFGrowthCallback(grower)])``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .layer import AdapterError, module_kind
from .optim import find_group
from .resync import _inner, extend_scheduler, rewrap_ddp
from .selection import GroupFn, _unwrap, find_candidates, group_modules
from .surgery import overparameterize
from .targets import TargetSpec

__all__ = ["DynamicGrowth", "OPFGrowthCallback", "extend_scheduler", "rewrap_ddp"]  # re-exported


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AdapterError(f"{name} must be an int >= 1, got {value!r}; e.g. {name}=2")
    return value


class DynamicGrowth:
    """Grow the set of over-parameterized matrices every ``interval`` steps (OPF, dynamic).

    Parameters
    ----------
    model : nn.Module
        The model (a ``DistributedDataParallel`` wrapper is looked through).
    targets, exclude : str or sequence of str
        Candidate matrices, see :func:`adapters.torch.selection.find_candidates`.
    n_per_round : int
        Matrices added per group and round (the paper's ``n``).
    max_per_group : int
        Stop once a group holds this many (``N``).
    interval : int
        Optimizer steps between rounds (``t``); the first round happens after ``interval`` steps.
    method : {"taylor", "fisher"}
        Score accumulated by :meth:`observe`. For ``"zeroing"`` (which needs extra forward passes)
        compute scores with :func:`~adapters.torch.selection.score_modules` and pass them to
        :meth:`grow`.
    group_fn : callable, optional
        ``name -> group key``; default :func:`~adapters.torch.selection.default_group`.
    reset_scores : bool
        Start every round's accumulation from zero (default) instead of over the whole run.
    **mpo_kwargs
        Passed to ``overparameterize`` (``shape``, ``n_cores``, ``bond``, ``init``, ...).

    Attributes
    ----------
    selected : list of str
        Names over-parameterized so far, in order.
    steps : int
        Calls of :meth:`maybe_grow` so far.
    """

    def __init__(
        self,
        model: nn.Module,
        targets: TargetSpec = "all-linear",
        *,
        n_per_round: int,
        max_per_group: int,
        interval: int,
        method: str = "taylor",
        group_fn: GroupFn | None = None,
        exclude: TargetSpec | None = None,
        reset_scores: bool = True,
        **mpo_kwargs: Any,
    ) -> None:
        if method not in ("taylor", "fisher"):
            raise AdapterError(
                f"method={method!r} cannot be accumulated from training gradients; use 'taylor' or "
                "'fisher', or pass score_modules(..., method='zeroing') results to grow(scores=...)"
            )
        if "optimizer" in mpo_kwargs or "dry_run" in mpo_kwargs:
            raise AdapterError("pass the optimizer to maybe_grow()/grow(), not to DynamicGrowth()")
        self.model = _unwrap(model)
        self.n_per_round = _positive_int("n_per_round", n_per_round)
        self.max_per_group = _positive_int("max_per_group", max_per_group)
        self.interval = _positive_int("interval", interval)
        self.method = method
        self.reset_scores = reset_scores
        self.mpo_kwargs = mpo_kwargs
        self.groups = group_modules(find_candidates(self.model, targets, exclude=exclude), group_fn)
        self.selected: list[str] = []
        self.steps = 0
        self._scores: dict[str, torch.Tensor] = {}

    def _quota(self, members: list[str]) -> int:
        return min(self.n_per_round, self.max_per_group - sum(m in self.selected for m in members))

    @property
    def remaining(self) -> list[str]:
        """Still-dense candidates in groups that have room left."""
        modules = dict(self.model.named_modules())
        return [
            m
            for members in self.groups.values()
            if self._quota(members) > 0
            for m in members
            if m not in self.selected and module_kind(modules[m])
        ]

    @property
    def done(self) -> bool:
        """Whether no group can grow any more."""
        return not self.remaining

    @torch.no_grad()
    def observe(self) -> None:
        """Accumulate scores from the current ``.grad`` of the remaining candidates.

        Call once per optimizer step, after ``backward()`` (after unscaling, with AMP) and before
        ``optimizer.zero_grad()``. Candidates without a gradient contribute nothing.
        """
        modules = dict(self.model.named_modules())
        for name in self.remaining:
            w = modules[name].weight
            if w.grad is None:
                continue
            g = w.grad.detach().double()
            term = (
                (g * w.detach().double()).sum().abs()
                if self.method == "taylor"
                else g.square().mean()
            )
            self._scores[name] = self._scores.get(name, 0) + term

    def scores(self) -> dict[str, float]:
        """Return the accumulated scores of the remaining candidates, summed over ranks.

        Under ``torch.distributed`` this is a collective call: every rank must call it (and
        :meth:`maybe_grow`, which calls it) at the same step.
        """
        names = self.remaining
        if not names:
            return {}
        dev = next(self.model.parameters()).device
        zero = torch.zeros((), dtype=torch.float64, device=dev)
        buf = torch.stack([self._scores.get(n, zero).to(dev) for n in names])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(buf)
            torch.distributed.broadcast(buf, src=0)
        return dict(zip(names, buf.tolist(), strict=True))

    def maybe_grow(
        self, optimizer: torch.optim.Optimizer | None, scheduler: Any = None
    ) -> list[str]:
        """Count one optimizer step; every ``interval`` steps run :meth:`grow`.

        Returns
        -------
        list of str
            The names grown at this step (empty on most steps). When non-empty, a DDP wrapper is
            stale: rebuild it with :func:`rewrap_ddp`.
        """
        self.steps += 1
        if self.steps % self.interval or self.done:
            return []
        return self.grow(optimizer, scheduler)

    def grow(
        self,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        scores: Mapping[str, float] | None = None,
    ) -> list[str]:
        """Over-parameterize the top ``n_per_round`` remaining candidates of every group now.

        Parameters
        ----------
        optimizer : torch.optim.Optimizer, optional
            Receives the new cores and loses the replaced dense weights in the same call.
        scheduler : LR scheduler, optional
            Extended to the new parameter groups (:func:`extend_scheduler`).
        scores : mapping of str to float, optional
            Use these scores instead of the accumulated ones (e.g. from ``score_modules``; they
            must be identical on every rank). Missing names score ``-inf``.

        Returns
        -------
        list of str
            The names over-parameterized, in model order.
        """
        scored = self.scores() if scores is None else dict(scores)
        remaining = set(self.remaining)
        names: list[str] = []
        for members in self.groups.values():
            left = [m for m in members if m in remaining]
            left.sort(key=lambda m: (-scored.get(m, float("-inf")), members.index(m)))
            names += left[: max(self._quota(members), 0)]
        order = {m: i for i, m in enumerate(n for g in self.groups.values() for n in g)}
        names.sort(key=order.__getitem__)
        if names:
            opt = None if optimizer is None else _inner(optimizer, "optimizer")
            before = [] if opt is None else list(opt.param_groups)
            modules = dict(self.model.named_modules())
            src = {n: find_group(opt, modules[n].weight) for n in names} if opt is not None else {}
            overparameterize(self.model, names, optimizer=opt, **self.mpo_kwargs)
            if scheduler is not None and opt is not None:
                grown = dict(self.model.named_modules())
                source = {
                    id(p): i for n, i in src.items() if i is not None for p in grown[n].parameters()
                }
                extend_scheduler(scheduler, opt, before, source)
            self.selected += names
        if self.reset_scores:
            self._scores.clear()
        return names


class OPFGrowthCallback:
    """Run a :class:`DynamicGrowth` inside ``transformers.Trainer``.

    Scores are accumulated in ``on_pre_optimizer_step`` (gradients after clipping), growth runs in
    ``on_step_end`` on the Trainer's own optimizer and LR scheduler (which the Trainer creates
    lazily; the callback receives them as keyword arguments). Single-process only: under DDP the
    Trainer's wrapper is not rebuilt. Instances are ``transformers.TrainerCallback``s; transformers
    is imported when the first one is created, not with this module.

    Parameters
    ----------
    grower : DynamicGrowth
        Built on the model given to the Trainer.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> OPFGrowthCallback:
        """Create an instance of the ``TrainerCallback`` subclass (imports transformers)."""
        if cls is OPFGrowthCallback:
            cls = _trainer_callback_class()
        return super().__new__(cls)

    def __init__(self, grower: DynamicGrowth) -> None:
        self.grower = grower
        self.history: list[tuple[int, list[str]]] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Accumulate this step's scores."""
        self.grower.observe()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Grow every ``interval`` steps; ``history`` records ``(global_step, names)``."""
        model = kwargs.get("model")
        if model is not None and _unwrap(model) is not self.grower.model:
            raise AdapterError("OPFGrowthCallback: the Trainer's model is not the grower's model")
        grown = self.grower.maybe_grow(kwargs["optimizer"], kwargs.get("lr_scheduler"))
        if grown:
            self.history.append((state.global_step, grown))


@functools.cache
def _trainer_callback_class() -> type[OPFGrowthCallback]:
    """``OPFGrowthCallback`` mixed into ``transformers.TrainerCallback`` (imported only now)."""
    try:
        from transformers import TrainerCallback
    except ImportError as exc:  # pragma: no cover - transformers is the optional `hf` extra
        raise AdapterError("OPFGrowthCallback needs transformers ('mpo-toolkit[hf]')") from exc
    attrs = {"__module__": __name__, "__doc__": OPFGrowthCallback.__doc__}
    return type("OPFGrowthCallback", (OPFGrowthCallback, TrainerCallback), attrs)
