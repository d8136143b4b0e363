"""Which weight matrices to over-parameterize: importance scores and per-group top-N selection.

OPF (Gao et al., ACL 2023, §4.3) groups the matrices by *module kind* (all ``L`` query matrices
form one group) and over-parameterizes the ``N`` most important of every group. A module's group
is its name with the layer indices replaced by ``*`` (:func:`default_group`), so
``layer.3.attention.output.dense`` and ``layer.3.output.dense`` stay apart (the released code's
substring match conflated them).

Scores (``method``) of a candidate matrix ``W``, higher = more important:

* ``"taylor"``: ``Σ_batches |Σ_elements ∂L/∂W ⊙ W|`` — abs of the per-batch sum over the
  matrix (the first-order estimate of zeroing ``W``), summed over batches: the paper's "absolute
  gradients accumulated" (dynamic strategy).
* ``"zeroing"``: ``|mean_batches (L(W=0) − L(W))|``, bias kept (the paper's static strategy).
* ``"fisher"``: ``Σ_batches mean(grad²)`` (the released code; without its per-tensor clipping).

Scoring never changes weights or writes ``.grad`` and restores ``requires_grad``, the train/eval
mode and the RNG state, also on error. Under ``torch.distributed`` the accumulators are summed
over ranks, so every rank selects the same matrices. Guide: ``docs/selection.md``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .layer import AdapterError, module_kind
from .targets import TargetSpec, match_targets

__all__ = [
    "METHODS",
    "default_group",
    "find_candidates",
    "group_modules",
    "score_modules",
    "select_static",
    "select_top",
]

METHODS = ("taylor", "zeroing", "fisher")
LossFn = Callable[[nn.Module, Any], torch.Tensor]
GroupFn = Callable[[str], str]

_INDEX = re.compile(r"(?<![^.])\d+(?![^.])")


def default_group(name: str) -> str:
    """Group key of a module: its name with every all-digit component replaced by ``*``.

    Parameters
    ----------
    name : str
        Dotted module name, as in ``model.named_modules()``.

    Returns
    -------
    str
        The name with layer indices removed.

    Examples
    --------
    >>> default_group("bert.encoder.layer.3.attention.output.dense")
    'bert.encoder.layer.*.attention.output.dense'
    >>> default_group("bert.encoder.layer.11.output.dense")
    'bert.encoder.layer.*.output.dense'
    """
    return _INDEX.sub("*", name)


def _unwrap(model: nn.Module) -> nn.Module:
    """Return the module inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def find_candidates(
    model: nn.Module, targets: TargetSpec = "all-linear", *, exclude: TargetSpec | None = None
) -> list[str]:
    """Names of the still-dense ``nn.Linear`` / HF ``Conv1D`` modules selected by ``targets``.

    Parameters
    ----------
    model : nn.Module
        The model (a ``DistributedDataParallel`` wrapper is looked through).
    targets, exclude : str or sequence of str
        The rules of ``overparameterize`` (:mod:`adapters.torch.targets`): ``"all-linear"``
        (every dense linear module except the output head), a regex that must ``re.fullmatch``
        the module name, or a list of exact names / dotted-name suffixes (``"query"``).

    Returns
    -------
    list of str
        Module names in ``named_modules()`` order.

    Raises
    ------
    AdapterError
        If an entry matches nothing, or no dense linear module is left.
    """
    model = _unwrap(model)
    modules = dict(model.named_modules())
    names = [n for n in match_targets(model, targets, exclude) if module_kind(modules[n])]
    if not names:
        raise AdapterError(
            f"targets={targets!r} (exclude={exclude!r}) selects no dense nn.Linear / Conv1D "
            "module; e.g. targets=['query', 'value']"
        )
    return names


def group_modules(names: Iterable[str], group_fn: GroupFn | None = None) -> dict[str, list[str]]:
    """Partition module names into groups (order of first appearance is kept).

    Parameters
    ----------
    names : iterable of str
        Module names.
    group_fn : callable, optional
        ``name -> group key``; default :func:`default_group`.

    Returns
    -------
    dict of str to list of str
        Group key -> member names.
    """
    fn = group_fn or default_group
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(fn(name), []).append(name)
    return groups


def _weights(model: nn.Module, names: Sequence[str]) -> list[nn.Parameter]:
    if not names:
        raise AdapterError("candidates is empty; expected at least one module name")
    modules = dict(model.named_modules())
    out = []
    for name in names:
        w = getattr(modules.get(name), "weight", None)
        if not isinstance(w, nn.Parameter):
            raise AdapterError(f"candidate {name!r} is not a module with a `weight` Parameter")
        out.append(w)
    return out


def score_modules(
    model: nn.Module,
    candidates: Sequence[str],
    batches: Iterable[Any],
    loss_fn: LossFn,
    method: str = "taylor",
    *,
    max_batches: int | None = None,
    train_mode: bool = False,
    all_reduce: bool = True,
) -> dict[str, float]:
    """Score the importance of every candidate matrix (higher = more important).

    Parameters
    ----------
    model : nn.Module
        The model; a ``DistributedDataParallel`` wrapper is looked through (scoring runs on the
        inner module, so it adds no DDP communication except the final score reduction).
    candidates : sequence of str
        Module names (see :func:`find_candidates`); each must own a ``weight`` Parameter.
    batches : iterable
        Batches (e.g. a ``DataLoader``); each is passed to ``loss_fn`` as is.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar loss tensor``, e.g. ``lambda m, b: m(**b).loss``.
    method : {"taylor", "zeroing", "fisher"}
        Score, see the module docstring.
    max_batches : int, optional
        Use at most this many batches.
    train_mode : bool
        Score in ``train()`` mode (dropout on, as the released code did) instead of ``eval()``.
        With ``"zeroing"`` every forward of one batch then uses the same dropout mask.
    all_reduce : bool
        When ``torch.distributed`` is initialized, sum the raw accumulators over ranks (and
        broadcast rank 0's result) so that all ranks return identical scores.

    Returns
    -------
    dict of str to float
        Candidate name -> score, in the order of ``candidates``.

    Raises
    ------
    AdapterError
        For an unknown ``method``, an empty candidate list, a name without a weight, or no batch.
    """
    if method not in METHODS:
        raise AdapterError(f"method={method!r} is not one of {METHODS}; e.g. method='taylor'")
    model = _unwrap(model)
    weights = _weights(model, candidates)
    dev = weights[0].device
    acc = torch.zeros(len(weights), dtype=torch.float64, device=dev)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    cuda = sorted({w.device.index or 0 for w in weights if w.is_cuda})
    n = 0
    try:
        model.train(train_mode)
        with torch.random.fork_rng(devices=cuda):
            for n, batch in enumerate(itertools.islice(batches, max_batches), start=1):
                if method == "zeroing":
                    acc += _zeroing_batch(model, weights, batch, loss_fn, seed=n)
                else:
                    acc += _grad_batch(model, weights, batch, loss_fn, method)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    if n == 0:
        raise AdapterError("batches is empty (or max_batches=0); need at least one batch to score")
    total = torch.tensor([float(n)], dtype=torch.float64, device=dev)
    if all_reduce and torch.distributed.is_available() and torch.distributed.is_initialized():
        buf = torch.cat([acc, total])
        torch.distributed.all_reduce(buf)
        torch.distributed.broadcast(buf, src=0)
        acc, total = buf[:-1], buf[-1:]
    if method == "zeroing":
        acc = acc.abs() / total
    return dict(zip(candidates, acc.tolist(), strict=True))


def _grad_batch(
    model: nn.Module, weights: list[nn.Parameter], batch: Any, loss_fn: LossFn, method: str
) -> torch.Tensor:
    """Per-candidate Taylor or Fisher term of one batch (no ``.grad`` is written)."""
    for p in model.parameters():
        p.requires_grad_(False)
    for w in weights:
        w.requires_grad_(True)
    loss = loss_fn(model, batch)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return torch.stack([_grad_term(g, w, method) for g, w in zip(grads, weights, strict=True)])


def _grad_term(g: torch.Tensor | None, w: torch.Tensor, method: str) -> torch.Tensor:
    if g is None:
        return torch.zeros((), dtype=torch.float64, device=w.device)
    g = g.detach().double()
    if method == "taylor":
        return (g * w.detach().double()).sum().abs()
    return g.square().mean()


@torch.no_grad()
def _zeroing_batch(
    model: nn.Module, weights: list[nn.Parameter], batch: Any, loss_fn: LossFn, seed: int
) -> torch.Tensor:
    """Signed loss change ``L(W=0) − L(W)`` of one batch for every candidate."""
    torch.manual_seed(seed)
    base = float(loss_fn(model, batch))
    out = torch.zeros(len(weights), dtype=torch.float64, device=weights[0].device)
    for i, w in enumerate(weights):
        saved = w.detach().clone()
        try:
            w.zero_()
            torch.manual_seed(seed)
            out[i] = float(loss_fn(model, batch)) - base
        finally:
            w.copy_(saved)
    return out


def select_top(
    scores: dict[str, float], n_per_group: int, group_fn: GroupFn | None = None
) -> list[str]:
    """Pick the ``n_per_group`` highest-scoring names of every group.

    Parameters
    ----------
    scores : dict of str to float
        Name -> score (e.g. from :func:`score_modules`).
    n_per_group : int
        How many to take per group (a group with fewer members gives all of them).
    group_fn : callable, optional
        ``name -> group key``; default :func:`default_group`.

    Returns
    -------
    list of str
        Selected names in the order of ``scores``. Ties go to the earlier name.

    Examples
    --------
    >>> s = {"l.0.q": 1.0, "l.1.q": 3.0, "l.0.k": 2.0, "l.1.k": 0.5}
    >>> select_top(s, 1)
    ['l.1.q', 'l.0.k']
    """
    if isinstance(n_per_group, bool) or not isinstance(n_per_group, int) or n_per_group < 0:
        raise AdapterError(f"n_per_group must be an int >= 0, got {n_per_group!r}; e.g. 2")
    order = {name: i for i, name in enumerate(scores)}
    chosen: set[str] = set()
    for members in group_modules(scores, group_fn).values():
        ranked = sorted(members, key=lambda m: (-scores[m], order[m]))
        chosen.update(ranked[:n_per_group])
    return [name for name in scores if name in chosen]


def select_static(
    model: nn.Module,
    targets: TargetSpec,
    batches: Iterable[Any],
    loss_fn: LossFn,
    n_per_group: int,
    method: str = "zeroing",
    *,
    group_fn: GroupFn | None = None,
    exclude: TargetSpec | None = None,
    max_batches: int | None = None,
    train_mode: bool = False,
) -> list[str]:
    """OPF's static strategy: score all candidates once, keep the top ``n_per_group`` per group.

    Pass the result to ``overparameterize(model, names, ...)`` (a list of exact names).

    Parameters
    ----------
    model, batches, loss_fn, method, max_batches, train_mode
        As in :func:`score_modules` (``method`` defaults to the paper's ``"zeroing"``).
    targets, exclude
        As in :func:`find_candidates`.
    n_per_group : int
        ``N`` of the paper.
    group_fn : callable, optional
        ``name -> group key``; default :func:`default_group`.

    Returns
    -------
    list of str
        Selected module names in model order.
    """
    names = find_candidates(model, targets, exclude=exclude)
    scores = score_modules(
        model, names, batches, loss_fn, method, max_batches=max_batches, train_mode=train_mode
    )
    return select_top(scores, n_per_group, group_fn)
