"""One fine-tuning run: data → (over-parameterized) model → training → merge → eval → save.

:func:`run` is what ``mpo-finetune train`` calls. It returns (and writes to
``<output_dir>/metrics.json``) the accuracy on the held-out split, parameter counts during
training and at inference, time per step, the merge check and the inference latency; the merged
model is saved with ``save_pretrained`` in ``<output_dir>/model`` and loads with plain
``transformers``.
"""

from __future__ import annotations

import math
import os
import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed as D
from .config import METHODS, SCORES, TrainConfig
from .data import TextDataset, load_rotten_tomatoes, load_table, split_dataset, subsample
from .evaluate import accuracy, latency_ms, logits
from .loader import EncodedDataset, make_loader
from .methods import Growth, build_optimizer, count_parameters, prepare, set_lr
from .report import command_line, git_revision, write_json

__all__ = ["load_data", "run", "validate"]


def validate(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` naming the option if ``cfg`` is inconsistent.

    Parameters
    ----------
    cfg : TrainConfig
        Options of a run.
    """
    checks = [
        (cfg.method in METHODS, f"--method {cfg.method!r}; expected one of {', '.join(METHODS)}"),
        (cfg.score in SCORES, f"--score {cfg.score!r}; expected one of {', '.join(SCORES)}"),
        (
            not (cfg.method == "opf-mpo-dynamic" and cfg.score == "zeroing"),
            "--score zeroing with --method opf-mpo-dynamic; the dynamic strategy accumulates "
            "scores from training gradients, expected --score taylor or fisher",
        ),
        (cfg.n_cores >= 2, f"--n-cores {cfg.n_cores}; expected an integer >= 2"),
        (cfg.n_per_group >= 1, f"--n-per-group {cfg.n_per_group}; expected >= 1"),
        (
            1 <= cfg.n_per_round <= cfg.n_per_group,
            f"--n-per-round {cfg.n_per_round}; expected 1..n-per-group ({cfg.n_per_group})",
        ),
        (cfg.growth_interval >= 1, f"--growth-interval {cfg.growth_interval}; expected >= 1"),
        (cfg.lr > 0, f"--lr {cfg.lr}; expected a positive learning rate such as 5e-5"),
        (
            cfg.factor_lr_scale is None or cfg.factor_lr_scale > 0,
            f"--factor-lr-scale {cfg.factor_lr_scale}; expected a positive number",
        ),
        (cfg.epochs > 0, f"--epochs {cfg.epochs}; expected > 0"),
        (cfg.max_steps is None or cfg.max_steps >= 1, f"--max-steps {cfg.max_steps}; want >= 1"),
        (cfg.batch_size >= 1, f"--batch-size {cfg.batch_size}; expected >= 1"),
        (cfg.eval_batch_size >= 1, f"--eval-batch-size {cfg.eval_batch_size}; expected >= 1"),
        (cfg.max_length >= 4, f"--max-length {cfg.max_length}; expected >= 4 tokens"),
        (
            0 < cfg.held_out_fraction < 1,
            f"--held-out-fraction {cfg.held_out_fraction}; expected a number in (0, 1)",
        ),
        (cfg.train_size is None or cfg.train_size >= 2, "--train-size; expected >= 2"),
        (cfg.eval_size is None or cfg.eval_size >= 2, "--eval-size; expected >= 2"),
        (0 <= cfg.warmup_ratio < 1, f"--warmup-ratio {cfg.warmup_ratio}; expected in [0, 1)"),
        (bool(cfg.model), "--model is empty; expected a local Hugging Face model directory"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"invalid {message}")
    if not (Path(cfg.model) / "config.json").is_file():
        raise ValueError(
            f"--model {cfg.model!r} is not a local Hugging Face model directory (no config.json); "
            "expected e.g. the folder written by save_pretrained"
        )


def load_data(cfg: TrainConfig) -> tuple[TextDataset, TextDataset]:
    """Return the (subsampled) train and held-out splits that ``cfg`` describes."""
    if cfg.data is None:
        full = load_rotten_tomatoes()
    else:
        full = load_table(cfg.data, cfg.text_column, cfg.label_column)
    train, held_out = split_dataset(full, cfg.held_out_fraction, seed=cfg.seed)
    return subsample(train, cfg.train_size, cfg.seed), subsample(held_out, cfg.eval_size, cfg.seed)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _load_model(cfg: TrainConfig, labels: Sequence[str]) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars show progress
    tokenizer = AutoTokenizer.from_pretrained(cfg.model)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            cfg.model,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def _loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss


def _mean_loss(loss: torch.Tensor, info: D.DistInfo) -> float:
    value = loss.detach().clone()
    if info.enabled:
        torch.distributed.all_reduce(value)
        value /= info.world_size
    return float(value)


def run(cfg: TrainConfig, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate, merge and save one model.

    Parameters
    ----------
    cfg : TrainConfig
        Options (see :class:`~adapters.torch.finetune.config.TrainConfig`).
    argv : sequence of str, optional
        Command line recorded in the metrics (default ``sys.argv``).

    Returns
    -------
    dict
        The metrics written to ``<output_dir>/metrics.json`` (an empty dict on ranks other
        than 0 under ``torchrun``).
    """
    validate(cfg)
    info = D.setup()
    try:
        return _run(cfg, info, argv)
    finally:
        D.cleanup(info)


def _run(cfg: TrainConfig, info: D.DistInfo, argv: Sequence[str] | None) -> dict[str, Any]:
    wall_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_ds, eval_ds = load_data(cfg)
    _seed_everything(cfg.seed)
    model, tokenizer = _load_model(cfg, train_ds.label_names)
    train_enc = EncodedDataset(train_ds, tokenizer, cfg.max_length)
    eval_enc = EncodedDataset(eval_ds, tokenizer, cfg.max_length)
    train_loader = make_loader(
        train_enc, cfg.batch_size, shuffle=True, seed=cfg.seed, dist_info=info
    )
    eval_loader = make_loader(eval_enc, cfg.eval_batch_size, shuffle=False, seed=cfg.seed)
    steps_per_epoch = len(train_loader)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    # Scoring batches: global batches, identical on every process.
    score_loader = make_loader(train_enc, cfg.batch_size, shuffle=True, seed=cfg.seed + 1)
    score_batches = [b for _, b in zip(range(cfg.score_batches), score_loader, strict=False)]

    params_dense = count_parameters(model)
    prep_start = time.perf_counter()
    model, decomposed = prepare(
        model, cfg, score_batches, _loss, choose=lambda names: D.broadcast_object(info, names)
    )
    prepare_s = time.perf_counter() - prep_start
    growth = Growth(model, cfg) if cfg.method == "opf-mpo-dynamic" else None
    model.train()
    optimizer = build_optimizer(model, cfg)
    ddp = D.wrap(model, info)
    params_train = count_parameters(model, trainable_only=True)

    history: list[dict[str, float]] = []
    step_times: list[float] = []
    growth_log: list[dict[str, Any]] = []
    bar = tqdm(
        total=total,
        desc=f"train {cfg.method}",
        unit="step",
        disable=not (cfg.progress and info.is_main),
        dynamic_ncols=True,
    )
    step, epoch, running = 0, 0, []
    train_start = time.perf_counter()
    while step < total:
        sampler = train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for batch in train_loader:
            t0 = time.perf_counter()
            set_lr(optimizer, cfg, step, total)
            loss = ddp(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if growth is not None:
                growth.observe()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            if growth is not None:
                grow_start = time.perf_counter()
                new = growth.maybe_grow(optimizer)
                if new:
                    decomposed += new
                    growth_log.append(
                        {"step": step, "names": new, "seconds": time.perf_counter() - grow_start}
                    )
                    ddp = D.wrap(model, info)
                    params_train = max(params_train, count_parameters(model, trainable_only=True))
            step_times.append(time.perf_counter() - t0)
            running.append(_mean_loss(loss, info))
            if step % cfg.log_every == 0 or step == total:
                history.append({"step": step, "loss": sum(running) / len(running)})
                running = []
            bar.set_postfix(
                loss=f"{history[-1]['loss'] if history else running[-1]:.4f}",
                ex_s=f"{cfg.batch_size / step_times[-1]:.1f}",
                refresh=False,
            )
            bar.update()
            if step >= total:
                break
        epoch += 1
    bar.close()
    train_s = time.perf_counter() - train_start

    metrics: dict[str, Any] = {}
    if info.is_main:
        metrics = _finish(
            cfg, model, tokenizer, eval_loader, train_ds, eval_ds, argv, info,
            {
                "decomposed": decomposed,
                "growth_rounds": growth_log,
                "history": history,
                "step_times": step_times,
                "params_dense": params_dense,
                "params_train": params_train,
                "prepare_s": prepare_s,
                "train_s": train_s,
                "steps": step,
                "steps_per_epoch": steps_per_epoch,
                "wall_start": wall_start,
            },
        )  # fmt: skip
    D.barrier(info)
    return metrics


def _finish(
    cfg: TrainConfig,
    model: nn.Module,
    tokenizer: Any,
    eval_loader: Any,
    train_ds: TextDataset,
    eval_ds: TextDataset,
    argv: Sequence[str] | None,
    info: D.DistInfo,
    state: dict[str, Any],
) -> dict[str, Any]:
    """Merge, check, evaluate, time and save on rank 0; return the metrics dict."""
    model.eval()
    probe = next(iter(eval_loader))
    before = logits(model, probe)
    merge_s = 0.0
    if cfg.method != "dense":
        from adapters.torch import merge

        merge_start = time.perf_counter()
        inputs = {k: v for k, v in probe.items() if k != "labels"}
        model = merge(model, inputs, check=True, verbose=cfg.progress)
        merge_s = time.perf_counter() - merge_start
    after = logits(model, probe)
    diff = float((after - before).abs().max())
    eval_bar = tqdm(eval_loader, desc="evaluate", unit="batch", disable=not cfg.progress)
    acc = accuracy(model, eval_bar)
    latency = latency_ms(model, probe)
    check_texts = list(eval_ds.texts[:4])
    enc = tokenizer(check_texts, truncation=True, max_length=cfg.max_length, padding=True,
                    return_tensors="pt")  # fmt: skip
    check_logits = logits(model, dict(enc)).tolist()
    out = Path(cfg.output_dir)
    model_dir = out / "model"
    if cfg.save_model:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
    times = state["step_times"]
    steady = times[1:] if len(times) > 1 else times
    import transformers

    metrics = {
        "method": cfg.method,
        "accuracy": acc,
        "n_train": len(train_ds),
        "n_eval": len(eval_ds),
        "label_names": list(train_ds.label_names),
        "params_dense": state["params_dense"],
        "params_train": state["params_train"],
        "params_inference": count_parameters(model),
        "decomposed": state["decomposed"],
        "growth_rounds": state["growth_rounds"],
        "steps": state["steps"],
        "steps_per_epoch": state["steps_per_epoch"],
        "time_per_step_s": sum(steady) / len(steady),
        "train_s": state["train_s"],
        "prepare_s": state["prepare_s"],
        "merge_s": merge_s,
        "merge_max_abs_diff": diff,
        "latency_ms": latency,
        "latency_batch_size": len(probe["labels"]),
        "wall_s": time.perf_counter() - state["wall_start"],
        "history": state["history"],
        "check": {"texts": check_texts, "logits": check_logits, "max_length": cfg.max_length},
        "world_size": info.world_size,
        "model_dir": str(model_dir) if cfg.save_model else None,
        "config": cfg.to_dict(),
        "command": command_line(argv),
        "git_revision": git_revision(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    write_json(out / "metrics.json", metrics)
    return metrics
