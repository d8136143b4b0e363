"""Command line: ``mpo-finetune train ...`` (one run) and ``mpo-finetune demo [--full]``.

Also available as ``python -m adapters.torch.finetune``. ``mpo-finetune train --help`` lists
every option; they map one-to-one onto :class:`~adapters.torch.finetune.config.TrainConfig`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .config import METHODS, SCORES, TrainConfig

__all__ = ["build_parser", "config_from_args", "main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected e.g. 8") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected an integer >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected e.g. 5e-5") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive; expected a number > 0")
    return value


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{value} is not in (0, 1); expected e.g. 0.2")
    return value


def _add_train_options(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = p.add_argument_group("model and method")
    g.add_argument("--model", default=d.model, help="local HF model dir (default: packaged MiniLM)")
    g.add_argument("--method", choices=METHODS, default=d.method, help="fine-tuning method")
    g.add_argument("--targets", default=d.targets, help="regex of nn.Linear names; '|' = groups")
    g.add_argument("--n-cores", type=_positive_int, default=d.n_cores, help="MPO cores (opf-mpo)")
    g.add_argument("--shape", default=d.shape, help="core layout: chain | balanced | opf-svd")
    g.add_argument("--n-per-group", type=_positive_int, default=d.n_per_group, help="N per group")
    g.add_argument("--n-per-round", type=_positive_int, default=d.n_per_round, help="n per round")
    g.add_argument(
        "--growth-interval", type=_positive_int, default=d.growth_interval, help="t (steps)"
    )
    g.add_argument("--score", choices=SCORES, default=d.score, help="matrix importance score")
    g.add_argument("--score-batches", type=_positive_int, default=d.score_batches)
    g = p.add_argument_group("optimization")
    g.add_argument("--lr", type=_positive_float, default=d.lr, help="peak learning rate")
    g.add_argument(
        "--factor-lr-scale",
        type=_positive_float,
        default=None,
        help="LR multiplier for MPO cores (default 1/cores)",
    )
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    g.add_argument("--grad-clip", type=float, default=d.grad_clip, help="0 disables clipping")
    g.add_argument("--epochs", type=_positive_float, default=d.epochs)
    g.add_argument("--max-steps", type=_positive_int, default=None, help="overrides --epochs")
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size, help="global batch")
    g.add_argument("--eval-batch-size", type=_positive_int, default=d.eval_batch_size)
    g.add_argument("--max-length", type=_positive_int, default=d.max_length, help="tokens")
    g.add_argument("--seed", type=int, default=d.seed)
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, help="CSV/TSV/JSONL file (default: Rotten Tomatoes)")
    g.add_argument("--text-column", default=d.text_column)
    g.add_argument("--label-column", default=d.label_column)
    g.add_argument("--held-out-fraction", type=_fraction, default=d.held_out_fraction)
    g.add_argument("--train-size", type=_positive_int, default=None, help="train subset size")
    g.add_argument("--eval-size", type=_positive_int, default=None, help="held-out subset size")
    g = p.add_argument_group("output")
    g.add_argument("--output-dir", default=d.output_dir)
    g.add_argument("--no-save", dest="save_model", action="store_false", help="skip saving")
    g.add_argument("--log-every", type=_positive_int, default=d.log_every)
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm bars")
    g.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``mpo-finetune`` argument parser (subcommands ``train`` and ``demo``)."""
    parser = argparse.ArgumentParser(
        prog="mpo-finetune",
        description="Fine-tune a Hugging Face classifier densely or with OPF (MPO "
        "over-parameterization), merge it back, evaluate and save it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,demo}")
    train = sub.add_parser("train", help="one fine-tuning run", description=__doc__)
    _add_train_options(train)
    demo = sub.add_parser("demo", help="dense vs OPF comparison on Rotten Tomatoes")
    demo.add_argument("--full", action="store_true", help="full data and epochs (hours on CPU)")
    demo.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build a :class:`TrainConfig` from parsed ``train`` arguments."""
    fields = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for invalid options or data (the message says which).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(
            full=args.full,
            methods=args.methods,
            output_dir=args.output_dir,
            seed=args.seed,
            progress=args.progress,
            argv=["mpo-finetune", *argv],
        )
        return 0
    from .data import DataError
    from .train import run, validate

    cfg = config_from_args(args)
    try:
        validate(cfg)
    except ValueError as exc:
        parser.exit(2, f"mpo-finetune train: error: {exc}\n")
    try:
        metrics = run(cfg, argv=["mpo-finetune", *argv])
    except DataError as exc:
        parser.exit(2, f"mpo-finetune train: data error: {exc}\n")
    if metrics:
        summary = {k: metrics[k] for k in ("accuracy", "params_train", "params_inference")}
        summary["metrics"] = str(os.path.join(cfg.output_dir, "metrics.json"))
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
