"""Tokenize a :class:`~adapters.torch.finetune.data.TextDataset` once; batch it with padding."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from .data import TextDataset
from .distributed import DistInfo

__all__ = ["EncodedDataset", "make_loader"]


class EncodedDataset(Dataset):
    """Token ids of every text (truncated to ``max_length``) and the label ids.

    Parameters
    ----------
    ds : TextDataset
        Texts and labels.
    tokenizer : transformers.PreTrainedTokenizerBase
        Tokenizer of the model.
    max_length : int
        Token limit per text (special tokens included).
    """

    def __init__(self, ds: TextDataset, tokenizer: Any, max_length: int) -> None:
        enc = tokenizer(list(ds.texts), truncation=True, max_length=max_length)
        self.input_ids: list[list[int]] = enc["input_ids"]
        self.labels = list(ds.labels)
        self.pad_id = tokenizer.pad_token_id or 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.input_ids[i], self.labels[i]

    def collate(self, items: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        """Pad examples to the longest: ``input_ids``, ``attention_mask``, ``labels``."""
        width = max(len(ids) for ids, _ in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (seq, _) in enumerate(items):
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        labels = torch.tensor([y for _, y in items], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_loader(
    data: EncodedDataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    dist_info: DistInfo | None = None,
) -> DataLoader:
    """Return a DataLoader; under ``torchrun`` each process gets ``batch_size // world`` examples.

    Parameters
    ----------
    data : EncodedDataset
        Encoded examples.
    batch_size : int
        Global batch size.
    shuffle : bool
        Shuffle with a generator seeded by ``seed`` (training), else keep order (evaluation).
    seed : int
        Seed of the shuffle (``DistributedSampler`` uses it as well; call ``set_epoch``).
    dist_info : DistInfo, optional
        Shards the data over processes when ``dist_info.enabled``.

    Returns
    -------
    torch.utils.data.DataLoader
    """
    sampler: Any = None
    if dist_info is not None and dist_info.enabled:
        if batch_size % dist_info.world_size:
            raise ValueError(
                f"--batch-size {batch_size} is not divisible by the {dist_info.world_size} "
                "processes; expected a multiple of the world size"
            )
        batch_size //= dist_info.world_size
        sampler = DistributedSampler(
            data,
            num_replicas=dist_info.world_size,
            rank=dist_info.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=shuffle,
        )
    elif shuffle:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        data,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=data.collate,
        drop_last=False,
    )
