"""``mpo-finetune``: argument errors, tiny end-to-end runs, loading the result without this package.

The end-to-end runs use a tiny BERT (hidden 32, 2 layers) built from a config, with a 40-word
vocabulary written to a tmp dir, and a 48-row CSV, so that each run takes about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from adapters.torch.finetune.cli import build_parser, main  # noqa: E402
from adapters.torch.finetune.demo import demo_configs  # noqa: E402

WORDS = "good great fine nice fun love best happy bad awful poor sad dull hate worst boring".split()
FILLER = "the a movie film was is it this plot acting story and".split()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *FILLER, "."]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = transformers.BertTokenizer(vocab_file=str(root / "vocab.txt"))
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    transformers.BertModel(cfg).save_pretrained(root)
    tok.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows = ["review,sentiment"]
    for i in range(48):
        positive = i % 2 == 0
        word = WORDS[(i // 2) % 8 + (0 if positive else 8)]
        label = "pos" if positive else "neg"
        rows.append(f"{FILLER[i % 12]} {FILLER[(i * 5) % 12]} was {word} {i},{label}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _args(model_dir, csv, out, *extra):
    return [
        "train",
        "--model", str(model_dir),
        "--data", str(csv),
        "--text-column", "review",
        "--label-column", "sentiment",
        "--batch-size", "8",
        "--max-steps", "4",
        "--max-length", "16",
        "--lr", "1e-3",
        "--output-dir", str(out),
        "--no-progress",
        *extra,
    ]  # fmt: skip


# --- argument errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--method", "lora"], "invalid choice: 'lora'"),
        (["train", "--lr", "-1"], "is not positive"),
        (["train", "--n-cores", "x"], "'x' is not an integer"),
        (["train", "--held-out-fraction", "1.5"], "is not in (0, 1)"),
        (["train", "--score", "random"], "invalid choice: 'random'"),
        ([], "required"),
    ],
)
def test_parser_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_validation_errors(tmp_path, tiny_model_dir, tiny_csv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", str(tmp_path), "--no-progress"])
    assert exc.value.code == 2
    assert "not a local Hugging Face model directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", str(tiny_model_dir), "--n-per-group", "2", "--n-per-round", "3"])
    assert "--n-per-round 3; expected 1..n-per-group (2)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model", str(tiny_model_dir), "--method", "opf-mpo-dynamic",
              "--score", "zeroing"])  # fmt: skip
    assert "expected --score taylor or fisher" in capsys.readouterr().err


def test_data_errors_exit_2(tmp_path, tiny_model_dir, tiny_csv, capsys):
    argv = _args(tiny_model_dir, tiny_csv, tmp_path)
    argv[argv.index("sentiment")] = "stars"
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "label column 'stars' not found" in err and "'review', 'sentiment'" in err


def test_demo_configs_are_small():
    quick = demo_configs()
    assert [c.method for c in quick] == ["dense", "opf-svd", "opf-mpo-static", "opf-mpo-dynamic"]
    assert all(c.train_size == 3072 and c.max_length <= 48 for c in quick)
    assert demo_configs(full=True)[0].train_size is None


# --- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dense", "opf-svd", "opf-mpo-static", "opf-mpo-dynamic"])
def test_train_end_to_end(method, tmp_path, tiny_model_dir, tiny_csv, capsys):
    out = tmp_path / method
    extra = ["--method", method, "--n-cores", "3", "--n-per-group", "2", "--growth-interval", "1"]
    assert main(_args(tiny_model_dir, tiny_csv, out, *extra)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert summary["accuracy"] == metrics["accuracy"]
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["n_train"] + metrics["n_eval"] == 48
    assert metrics["params_inference"] == metrics["params_dense"]
    assert metrics["merge_max_abs_diff"] < 1e-4
    assert metrics["steps"] == 4 and len(metrics["history"]) >= 1
    assert metrics["command"].startswith("mpo-finetune train")
    assert "git_revision" in metrics and metrics["latency_ms"] > 0
    if method == "dense":
        assert metrics["params_train"] == metrics["params_dense"] and not metrics["decomposed"]
    else:
        assert metrics["params_train"] > metrics["params_dense"]
        assert metrics["decomposed"]
    if method == "opf-mpo-dynamic":
        # growth every step, 1 per group per round, up to 2 per group: rounds at steps 1 and 2
        assert [r["step"] for r in metrics["growth_rounds"]] == [1, 2]
        assert len(metrics["decomposed"]) == 12
    if method == "opf-mpo-static":
        assert len(metrics["decomposed"]) == 12  # 6 groups x 2
    if method == "opf-svd":
        assert len(metrics["decomposed"]) == 12  # all 2 layers x 6 matrices
    assert (out / "model" / "config.json").is_file()


@pytest.mark.slow
def test_merged_model_loads_with_plain_transformers(tmp_path, tiny_model_dir, tiny_csv):
    out = tmp_path / "run"
    extra = ["--method", "opf-mpo-dynamic", "--n-cores", "3", "--growth-interval", "2"]
    assert main(_args(tiny_model_dir, tiny_csv, out, *extra)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    _check_plain_transformers_load(out / "model", metrics["check"], tmp_path)


def _check_plain_transformers_load(model_dir: Path, check: dict, tmp_path: Path) -> None:
    """Load the saved model in a fresh interpreter that never imports adapters or mpo."""
    code = f"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
check = json.loads({json.dumps(json.dumps(check))})
model = AutoModelForSequenceClassification.from_pretrained({str(model_dir)!r}).eval()
tok = AutoTokenizer.from_pretrained({str(model_dir)!r})
enc = tok(check["texts"], truncation=True, max_length=check["max_length"], padding=True,
          return_tensors="pt")
with torch.no_grad():
    out = model(**enc).logits
diff = (out - torch.tensor(check["logits"])).abs().max().item()
bad = [m for m in sys.modules if m.split(".")[0] in ("adapters", "mpo")]
assert not bad, bad
assert diff < 1e-5, diff
print("ok", diff)
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.startswith("ok")


def test_module_entry_point_help():
    res = subprocess.run(
        [sys.executable, "-m", "adapters.torch.finetune", "train", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0 and "--growth-interval" in res.stdout


@pytest.mark.slow
@pytest.mark.parametrize("method", ["opf-mpo-static", "opf-mpo-dynamic"])
def test_torchrun_matches_single_process(method, tmp_path, tiny_model_dir, tiny_csv):
    """2 processes (gloo, DDP) = 1 process when each step sees the whole training set."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    common = ["--batch-size", "38", "--max-steps", "3", "--method", method, "--n-cores", "3",
              "--n-per-group", "1", "--growth-interval", "1", "--threads", "1"]  # fmt: skip
    single = tmp_path / "single"
    assert main(_args(tiny_model_dir, tiny_csv, single, *common)) == 0
    multi = tmp_path / "multi"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "adapters.torch.finetune",
           *_args(tiny_model_dir, tiny_csv, multi, *common)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    a = json.loads((single / "metrics.json").read_text())
    b = json.loads((multi / "metrics.json").read_text())
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert a["decomposed"] == b["decomposed"]
    assert a["params_train"] == b["params_train"]
    assert a["accuracy"] == b["accuracy"]
    la, lb = torch.tensor(a["check"]["logits"]), torch.tensor(b["check"]["logits"])
    assert torch.allclose(la, lb, atol=1e-4), (la - lb).abs().max()


# --- helpers ---------------------------------------------------------------------------------


def test_group_targets_default_bert_groups(tiny_model_dir):
    from adapters.torch.finetune.config import TrainConfig
    from adapters.torch.finetune.methods import group_targets

    model = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    groups = group_targets(model, TrainConfig().targets)
    assert len(groups) == 6 and all(len(v) == 2 for v in groups.values())
    ffn_out = groups[r"(?<!attention\.)output\.dense"]
    assert ffn_out == ["bert.encoder.layer.0.output.dense", "bert.encoder.layer.1.output.dense"]
    with pytest.raises(ValueError, match=r"matches no nn.Linear.*bert\."):
        group_targets(model, "nothing_here")


def test_set_lr_schedule_and_core_groups():
    from adapters.torch.finetune.config import TrainConfig
    from adapters.torch.finetune.methods import set_lr

    cfg = TrainConfig(method="opf-mpo-static", n_cores=4, lr=1e-3, warmup_ratio=0.1)
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([{"params": [a]}, {"params": [b], "mpo_module": "x"}])
    assert set_lr(opt, cfg, 0, 100) == pytest.approx(1 / 11)
    set_lr(opt, cfg, 10, 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3 / 4)
    assert set_lr(opt, cfg, 100, 100) == 0.0


def test_format_table():
    from adapters.torch.finetune.report import format_table

    row = {"method": "dense", "accuracy": 0.5, "params_train": 10, "params_inference": 10,
           "time_per_step_s": 1.0, "latency_ms": 2.0, "merge_max_abs_diff": 0.0}  # fmt: skip
    table = format_table([row, {**row, "method": "opf-svd", "latency_ms": None}])
    assert table.splitlines()[0].startswith("| method")
    assert "0.5000" in table and "n/a" in table and len(table.splitlines()) == 4
