"""``make demo``: dense fine-tuning vs OPF on Rotten Tomatoes with the packaged MiniLM.

The quick demo (default) trains each method for one pass over a 3,072-example stratified subset
(96 steps of 32 examples, texts cut at 48 tokens, lr 2e-4: at 1e-4 the dense baseline is still
under-trained after so few steps, which flatters OPF; see docs/howto-finetune.md section 5) and
evaluates on 500 held-out examples, so that all methods finish in well under 15 minutes on 2 CPU
cores. ``--full`` uses the whole training
split (10,201 texts), 3 epochs, 64 tokens and the whole held-out split (2,551 texts); that takes
hours on a CPU.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import TrainConfig
from .report import command_line, format_table, git_revision, write_json

__all__ = ["DEMO_METHODS", "demo_configs", "run_demo"]

DEMO_METHODS = ("dense", "opf-svd", "opf-mpo-static", "opf-mpo-dynamic")

QUICK = {
    "train_size": 3072,
    "eval_size": 500,
    "max_length": 48,
    "epochs": 1.0,
    "batch_size": 32,
    "lr": 2e-4,
    "warmup_ratio": 0.1,
    "n_cores": 5,
    "n_per_group": 3,
    "n_per_round": 1,
    "growth_interval": 24,
    "score_batches": 2,
}
FULL = {
    "train_size": None,
    "eval_size": None,
    "max_length": 64,
    "epochs": 3.0,
    "batch_size": 32,
    "lr": 5e-5,
    "warmup_ratio": 0.06,
    "n_cores": 5,
    "n_per_group": 3,
    "n_per_round": 1,
    "growth_interval": 200,
    "score_batches": 8,
}


def demo_configs(
    full: bool = False,
    methods: Sequence[str] | None = None,
    output_dir: str = "runs/demo",
    seed: int = 0,
    progress: bool = True,
) -> list[TrainConfig]:
    """Return the run configurations of the demo, one per method.

    Parameters
    ----------
    full : bool
        Full data and epochs instead of the quick subset.
    methods : sequence of str, optional
        Default :data:`DEMO_METHODS`.
    output_dir : str
        Each run writes to ``<output_dir>/<method>``.
    seed : int
        Seed of every run (same split, subset, head init and data order for all methods).
    progress : bool
        Show tqdm bars.

    Returns
    -------
    list of TrainConfig
    """
    knobs = FULL if full else QUICK
    return [
        TrainConfig(
            method=method,
            output_dir=str(Path(output_dir) / method),
            seed=seed,
            progress=progress,
            log_every=2,
            **knobs,  # type: ignore[arg-type]
        )
        for method in (methods or DEMO_METHODS)
    ]


def _header(configs: list[TrainConfig], full: bool) -> str:
    c = configs[0]
    size = "all" if c.train_size is None else f"{c.train_size:,}"
    held = "all" if c.eval_size is None else f"{c.eval_size:,}"
    return "\n".join(
        [
            "=" * 78,
            "mpo-toolkit demo: dense fine-tuning vs OPF (over-parameterized fine-tuning via MPO)",
            "=" * 78,
            f"model : all-MiniLM-L6-v2 (22.7M params, packaged) -> 2-way classifier ({c.model})",
            "data  : Rotten Tomatoes polarity snippets (Pang & Lee 2004), fresh vs rotten",
            f"train : {size} training texts, {c.epochs:g} epoch(s), batch {c.batch_size}, "
            f"max {c.max_length} tokens, lr {c.lr:g}, seed {c.seed}",
            f"eval  : accuracy on {held} held-out texts (deduplicated, stratified split)",
            "methods:",
            "  dense           - plain fine-tuning of all weights",
            "  opf-svd         - every Q/K/V/O/FFN matrix split exactly into 2 factors",
            f"  opf-mpo-static  - top {c.n_per_group} matrices per group (Taylor score before "
            f"training) as exact {c.n_cores}-core MPOs",
            f"  opf-mpo-dynamic - {c.n_per_round} more per group every {c.growth_interval} steps "
            f"up to {c.n_per_group} (Taylor score accumulated while training)",
            "each OPF model is merged back into plain nn.Linear layers before evaluation, so it",
            "has the dense parameter count and latency at inference.",
            "mode  : " + ("FULL (hours on a CPU)" if full else "quick (--full for the real run)"),
            "=" * 78,
        ]
    )


def run_demo(
    full: bool = False,
    methods: Sequence[str] | None = None,
    output_dir: str = "runs/demo",
    seed: int = 0,
    progress: bool = True,
    argv: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Train every demo method, print the comparison table, write ``<output_dir>/results.json``.

    Parameters
    ----------
    full, methods, output_dir, seed, progress
        See :func:`demo_configs`.
    argv : sequence of str, optional
        Command line recorded in the results.

    Returns
    -------
    list of dict
        The metrics of each run (see :func:`adapters.torch.finetune.train.run`).
    """
    from .train import run

    start = time.perf_counter()
    configs = demo_configs(full, methods, output_dir, seed, progress)
    print(_header(configs, full), flush=True)
    results = []
    for i, cfg in enumerate(configs, start=1):
        print(f"\n[{i}/{len(configs)}] {cfg.method}", flush=True)
        metrics = run(cfg, argv=argv)
        results.append(metrics)
        print(
            f"    accuracy {metrics['accuracy']:.4f}, {metrics['time_per_step_s']:.2f} s/step, "
            f"merge max |Δlogit| {metrics['merge_max_abs_diff']:.1e}",
            flush=True,
        )
    wall = time.perf_counter() - start
    table = format_table(results)
    print("\n" + table)
    print(
        f"\nparams (train) = trainable parameters while fine-tuning (max over growth rounds); "
        f"params (inference) = after merging back.\nlatency = median eval forward of one batch "
        f"of {results[0]['latency_batch_size']} texts after merging. Total wall time "
        f"{wall / 60:.1f} min. Results: {Path(output_dir) / 'results.json'}",
        flush=True,
    )
    write_json(
        Path(output_dir) / "results.json",
        {
            "command": command_line(argv),
            "git_revision": git_revision(),
            "full": full,
            "wall_s": wall,
            "table": table,
            "configs": [dataclasses.asdict(c) for c in configs],
            "runs": results,
        },
    )
    return results
