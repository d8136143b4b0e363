"""Dense vs OPF over several seeds, on the default data and on a small training set.

Runs ``adapters.torch.finetune.train.run`` for every (setting, method, seed), appends each
run's metrics to ``docs/results/experiments.json`` as soon as it finishes (so an interrupted
sweep keeps its runs; ``--resume`` skips runs already there), then draws the plots with
``benchmarks/plot_experiments.py``.

Settings (all: MiniLM, Rotten Tomatoes, batch 32, the same 500 held-out texts per seed):

``default``  1,024 training texts, 1 epoch (32 steps), lr 1e-4, max 48 tokens.
``small``    256 training texts, 4 epochs (32 steps), lr 1e-4, max 48 tokens — the low-data
             regime where the paper's gains were largest (RTE, CoLA, STS-B, MRPC).

Usage::

    python benchmarks/experiments.py                      # ~1 min per run on an idle 2-core CPU
    python benchmarks/experiments.py --seeds 0 1 2 3 4 --settings default small
    python benchmarks/experiments.py --plot-only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.torch.finetune.config import TrainConfig  # noqa: E402
from adapters.torch.finetune.report import git_revision, write_json  # noqa: E402

COMMON = {
    "eval_size": 500,
    "max_length": 48,
    "batch_size": 32,
    "lr": 1e-4,
    "warmup_ratio": 0.1,
    "n_cores": 5,
    "n_per_group": 3,
    "n_per_round": 1,
    "score_batches": 2,
    "save_model": False,
    "progress": False,
    "log_every": 2,
}
SETTINGS = {
    "default": {"train_size": 1024, "epochs": 1.0, "growth_interval": 8},
    "small": {"train_size": 256, "epochs": 4.0, "growth_interval": 8},
}
METHODS = ("dense", "opf-svd", "opf-mpo-static", "opf-mpo-dynamic")


def _key(run: dict) -> tuple[str, str, int]:
    return run["setting"], run["method"], run["config"]["seed"]


KNOBS = (
    "train_size",
    "eval_size",
    "max_length",
    "epochs",
    "batch_size",
    "lr",
    "n_cores",
    "n_per_group",
    "n_per_round",
    "growth_interval",
    "score_batches",
    "warmup_ratio",
)


def _demo_runs(path: Path, have: set) -> list[dict]:
    """Runs of a demo results.json whose knobs equal the ``default`` setting's."""
    want = {**COMMON, **SETTINGS["default"]}
    out = []
    for r in json.loads(path.read_text())["runs"]:
        if all(r["config"][k] == want[k] for k in KNOBS):
            r = {**r, "setting": "default", "source": str(path)}
            if _key(r) not in have:
                out.append(r)
    return out


def step_probe(out: Path, lr: float = 1e-4) -> dict:
    """First Adam step of an MPO layer vs the dense layer, on real MiniLM matrices.

    For each matrix (layer-0 query 384x384, layer-0 FFN-in 1536x384), each init gauge and each
    core count, take one AdamW step on the loss ``<G, W>`` (``G`` a fixed random direction, the
    linearised loss of opf.md §3.3) and compare the change of the contracted weight with the
    dense step: ``ratio = ||ΔW_mpo|| / ||ΔW_dense||`` at the same LR, and its cosine with the dense
    step. With the default core LR ``lr / n_cores`` the ratio should be near 1.
    """
    import torch
    from transformers import AutoModel

    from adapters.torch.finetune.config import default_model_path

    torch.manual_seed(0)
    bert = AutoModel.from_pretrained(default_model_path())
    mats = {
        "query 384x384": bert.encoder.layer[0].attention.self.query,
        "ffn-in 1536x384": bert.encoder.layer[0].intermediate.dense,
    }
    rows = []
    for label, lin in mats.items():
        w0 = lin.weight.detach().clone()
        g = torch.randn_like(w0)
        dense_step = -lr * torch.sign(g)  # first AdamW step (bias-corrected m/sqrt(v) = sign)
        for init in ("symmetric", "left", "balanced"):
            for n in (2, 5, 15):
                layer = _mpo_layer(lin, n, init)
                opt = torch.optim.AdamW(layer.cores.parameters(), lr=lr, weight_decay=0.0)
                (layer.weight * g).sum().backward()
                opt.step()
                dw = layer.merged_weight().double() - w0.double()
                ratio = float(dw.norm() / dense_step.double().norm())
                cos = float(torch.nn.functional.cosine_similarity(
                    dw.flatten(), dense_step.double().flatten(), dim=0))  # fmt: skip
                rows.append({"matrix": label, "init": init, "n_cores": n,
                             "ratio_same_lr": ratio, "ratio_lr_over_n": ratio / n,
                             "cosine": cos})  # fmt: skip
                print(f"{label:16s} {init:9s} n={n:2d}: |dW|/|dW_dense| = {ratio:6.2f} at the same "
                      f"LR, {ratio / n:5.2f} with lr/n; cos = {cos:.2f}", flush=True)  # fmt: skip
    result = {"lr": lr, "rows": rows, "git_revision": git_revision(ROOT)}
    write_json(out, result)
    return result


def _mpo_layer(lin, n_cores: int, init: str):
    from torch import nn

    from adapters.torch import overparameterize

    box = nn.ModuleDict({"lin": nn.Linear(lin.in_features, lin.out_features)})
    box["lin"].load_state_dict(lin.state_dict())
    shape = "opf-svd" if n_cores == 2 else "chain"
    overparameterize(box, ["lin"], shape=shape, n_cores=n_cores, init=init)
    return box["lin"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "experiments.json"))
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "experiments"))
    p.add_argument("--resume", action="store_true", help="skip runs already in --out")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument(
        "--from-demo",
        default=None,
        help="reuse the runs of a quick `mpo-finetune demo` results.json as setting 'default' "
        "(same configuration as the demo; only runs whose knobs match are taken)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads per run")
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="combine the runs of these results files into --out (first file's header), then plot",
    )
    p.add_argument(
        "--step-probe",
        action="store_true",
        help="only measure the first-step |dW| of MPO vs dense (docs/results/step_probe.json)",
    )
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        runs = [r for part in parts for r in part["runs"]]
        merged = {**parts[0], "merged_from": [p.get("command", "") for p in parts], "runs": runs}
        write_json(out, merged)
        args.plot_only = True
    if args.step_probe:
        step_probe(out.parent / "step_probe.json")
        return 0
    if not args.plot_only:
        from adapters.torch.finetune.train import run

        previous = json.loads(out.read_text()) if args.resume and out.is_file() else None
        runs = previous["runs"] if previous else []
        if args.from_demo:
            runs += _demo_runs(Path(args.from_demo), {_key(r) for r in runs})
        done = {_key(r) for r in runs}
        header = {
            "command": " ".join(["python", *sys.argv]),
            "git_revision": git_revision(ROOT),
            "settings": {k: {**COMMON, **v} for k, v in SETTINGS.items()},
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for setting in args.settings:
            for seed in args.seeds:
                for method in args.methods:
                    if (setting, method, seed) in done:
                        continue
                    cfg = TrainConfig(
                        method=method,
                        seed=seed,
                        output_dir=str(Path(args.runs_dir) / setting / method / f"seed{seed}"),
                        **COMMON,  # type: ignore[arg-type]
                        **SETTINGS[setting],  # type: ignore[arg-type]
                        threads=args.threads,
                    )
                    t0 = time.perf_counter()
                    metrics = run(cfg, argv=[*sys.argv, f"# {setting}/{method}/seed{seed}"])
                    metrics["setting"] = setting
                    runs.append(metrics)
                    print(
                        f"{setting:8s} {method:16s} seed {seed}: acc {metrics['accuracy']:.4f} "
                        f"({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
                    write_json(out, {**header, "runs": runs})
    from plot_experiments import plot_all

    for path in plot_all(out, out.parent):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
