"""Plots and a summary table from ``docs/results/experiments.json`` (see experiments.py).

Writes into the output folder:

* ``experiments_accuracy.png``  accuracy per method and setting, every seed as a dot, mean ± std
* ``experiments_params.png``    parameters during training vs at inference per method
* ``experiments_loss.png``      training loss (mean over seeds) per method, one panel per setting
* ``experiments.md``            the summary table (mean ± std accuracy, Δ vs dense, params, s/step)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ORDER = ("dense", "opf-svd", "opf-mpo-static", "opf-mpo-dynamic")
COLORS = {
    "dense": "#444444",
    "opf-svd": "#1f77b4",
    "opf-mpo-static": "#2ca02c",
    "opf-mpo-dynamic": "#d62728",
}


def _grouped(runs: list[dict]) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        out[r["setting"]][r["method"]].append(r)
    return out


def _methods(by_method: dict) -> list[str]:
    return [m for m in ORDER if m in by_method]


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summary_table(runs: list[dict]) -> str:
    """Markdown table: setting, method, seeds, accuracy mean ± std, Δ vs dense, params, s/step."""
    lines = [
        "| setting | method | seeds | accuracy (mean ± std) | Δ vs dense (pp) | wins vs dense "
        "(paired seeds) | params train | params inference | s/step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, by_method in _grouped(runs).items():
        dense = {r["config"]["seed"]: r["accuracy"] for r in by_method.get("dense", [])}
        dense_mean = statistics.mean(dense.values()) if dense else None
        for method in _methods(by_method):
            rs = by_method[method]
            acc = [r["accuracy"] for r in rs]
            mean = statistics.mean(acc)
            delta = "" if dense_mean is None else f"{100 * (mean - dense_mean):+.2f}"
            pairs = [(r["accuracy"], dense[r["config"]["seed"]]) for r in rs
                     if r["config"]["seed"] in dense]  # fmt: skip
            wins = "" if method == "dense" or not pairs else (
                f"{sum(a > d for a, d in pairs)}/{len(pairs)}"
            )  # fmt: skip
            lines.append(
                f"| {setting} | {method} | {len(rs)} | {mean:.4f} ± {_std(acc):.4f} | {delta} | "
                f"{wins} | {max(r['params_train'] for r in rs):,} | "
                f"{rs[0]['params_inference']:,} | "
                f"{statistics.mean(r['time_per_step_s'] for r in rs):.2f} |"
            )
    return "\n".join(lines)


def plot_accuracy(runs: list[dict], path: Path) -> Path:
    """Accuracy per method (dots = seeds, bar = mean ± std), one panel per setting."""
    grouped = _grouped(runs)
    fig, axes = plt.subplots(1, len(grouped), figsize=(5.5 * len(grouped), 4), squeeze=False)
    for ax, (setting, by_method) in zip(axes[0], grouped.items(), strict=True):
        methods = _methods(by_method)
        for i, m in enumerate(methods):
            acc = [r["accuracy"] for r in by_method[m]]
            ax.scatter([i] * len(acc), acc, color=COLORS[m], alpha=0.6, zorder=3)
            ax.errorbar(i + 0.15, statistics.mean(acc), yerr=_std(acc), fmt="o", color="black",
                        capsize=4, zorder=4)  # fmt: skip
        n_train = by_method[methods[0]][0]["n_train"]
        ax.set_title(f"{setting}: {n_train:,} training texts")
        ax.set_xticks(range(len(methods)), methods, rotation=15)
        ax.set_ylabel("held-out accuracy")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("MiniLM on Rotten Tomatoes: dots = seeds, black = mean ± std")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_params(runs: list[dict], path: Path) -> Path:
    """Parameters during training vs at inference (after merge) per method."""
    by_method: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        by_method[r["method"]].append(r)
    methods = _methods(by_method)
    train = [max(r["params_train"] for r in by_method[m]) / 1e6 for m in methods]
    infer = [by_method[m][0]["params_inference"] / 1e6 for m in methods]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    xs = range(len(methods))
    ax.bar([x - 0.2 for x in xs], train, width=0.4, label="during training", color="#1f77b4")
    ax.bar([x + 0.2 for x in xs], infer, width=0.4, label="at inference (merged)", color="#aaa")
    for x, v in zip(xs, train, strict=True):
        ax.text(x - 0.2, v, f"{v:.1f}M", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), methods, rotation=15)
    ax.set_ylabel("parameters (millions)")
    ax.legend()
    ax.set_title("Trainable parameters while fine-tuning vs after merging back")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss(runs: list[dict], path: Path) -> Path:
    """Training loss (mean over seeds) per method, one panel per setting."""
    grouped = _grouped(runs)
    fig, axes = plt.subplots(1, len(grouped), figsize=(5.5 * len(grouped), 4), squeeze=False)
    for ax, (setting, by_method) in zip(axes[0], grouped.items(), strict=True):
        for m in _methods(by_method):
            curves = [r["history"] for r in by_method[m]]
            steps = [h["step"] for h in curves[0]]
            mean = [statistics.mean(c[i]["loss"] for c in curves if i < len(c))
                    for i in range(len(steps))]  # fmt: skip
            ax.plot(steps, mean, label=m, color=COLORS[m])
            for r in by_method[m]:
                for g in r.get("growth_rounds", []):
                    ax.axvline(g["step"], color=COLORS[m], alpha=0.15, lw=1)
        ax.set_title(f"{setting}: training loss (mean over seeds)")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("cross-entropy")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: Path, out_dir: Path) -> list[Path]:
    """Draw every plot and the summary table from the results JSON; return the written paths."""
    data = json.loads(Path(results).read_text())
    runs = data["runs"]
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "experiments.md"
    table.write_text(
        f"<!-- generated by benchmarks/plot_experiments.py from {Path(results).name}; "
        f"git {data.get('git_revision', '')} -->\n"
        + "".join(f"Command: `{c}`\n\n" for c in data.get("merged_from", [data.get("command")]))
        + summary_table(runs)
        + "\n",
        encoding="utf-8",
    )
    return [
        plot_accuracy(runs, out_dir / "experiments_accuracy.png"),
        plot_params(runs, out_dir / "experiments_params.png"),
        plot_loss(runs, out_dir / "experiments_loss.png"),
        table,
    ]


if __name__ == "__main__":
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/results/experiments.json")
    for p in plot_all(src, src.parent):
        print("wrote", p)
