"""Accuracy on a held-out split, logits of a probe batch, inference latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["accuracy", "latency_ms", "logits"]


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


@torch.no_grad()
def logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Return the model's logits for ``batch`` in eval mode (no labels passed).

    Parameters
    ----------
    model : torch.nn.Module
        A sequence-classification model.
    batch : dict
        ``input_ids``, ``attention_mask`` (``labels`` is ignored).

    Returns
    -------
    torch.Tensor
        Shape ``(batch, num_labels)``, float32.
    """
    was_training = model.training
    model.eval()
    out = model(**_inputs(batch)).logits.float()
    model.train(was_training)
    return out


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> float:
    """Return the fraction of correctly classified examples over ``batches`` (eval mode)."""
    correct = total = 0
    for batch in batches:
        pred = logits(model, batch).argmax(dim=-1)
        correct += int((pred == batch["labels"]).sum())
        total += len(pred)
    return correct / max(1, total)


@torch.no_grad()
def latency_ms(model: nn.Module, batch: dict[str, torch.Tensor], repeats: int = 5) -> float:
    """Return the median wall time in milliseconds of one eval forward pass on ``batch``.

    One warm-up call precedes the ``repeats`` timed calls.
    """
    logits(model, batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        logits(model, batch)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
