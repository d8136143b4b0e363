"""Toy residual MLP shared by the selection, dynamic-growth and DDP tests.

Importable as ``_toy``: pytest puts ``tests/adapters`` on ``sys.path`` (``pythonpath`` in
pyproject.toml), and ``_ddp_worker.py``, run as a script, has its own folder there.
"""

from __future__ import annotations

import torch
from torch import nn

#: The six target Linear layers of ``MLP()`` (the head is not a target).
TARGETS = r"layers\.\d+\.(up|down)"


class Block(nn.Module):
    """``x + down(dropout(tanh(up(x))))``; ``Dropout(0)`` is the identity (draws no randomness)."""

    def __init__(self, d: int, p: float = 0.0) -> None:
        super().__init__()
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.drop(torch.tanh(self.up(x))))


class MLP(nn.Module):
    """``n_layers`` blocks of width ``d`` and a scalar head; input ``(B, d)``, output ``(B,)``."""

    def __init__(self, d: int = 8, n_layers: int = 3, p: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(d, p) for _ in range(n_layers))
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.head(x).squeeze(-1)


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean squared error of ``model(x)`` against ``y`` for ``batch = (x, y)``."""
    x, y = batch
    return (model(x) - y).pow(2).mean()
