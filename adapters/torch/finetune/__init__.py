"""Fine-tune Hugging Face classifiers densely or with OPF, merge back, evaluate, save.

Command line: ``mpo-finetune train|demo`` (or ``python -m adapters.torch.finetune``); see
``docs/howto-finetune.md``. Python: build a :class:`TrainConfig` and call :func:`run`.
"""

from .config import METHODS, SCORES, TrainConfig
from .data import DataError, TextDataset, load_rotten_tomatoes, load_table, split_dataset
from .train import run

__all__ = [
    "METHODS",
    "SCORES",
    "DataError",
    "TextDataset",
    "TrainConfig",
    "load_rotten_tomatoes",
    "load_table",
    "run",
    "split_dataset",
]
