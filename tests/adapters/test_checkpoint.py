"""Save/load of over-parameterized models: structure, values, bit-for-bit resume, atomicity."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import mpo  # noqa: E402
from adapters.torch import (  # noqa: E402
    MPOLinear,
    load_optimizer_state,
    load_overparameterized,
    overparameterize,
    param_groups,
    save_overparameterized,
)
from adapters.torch import checkpoint as ckpt  # noqa: E402


def loss(model, inputs):
    out = model(**inputs)
    return (out.logits if hasattr(out, "logits") else out.last_hidden_state).pow(2).mean()


def run(model, opt, batches):
    model.train()
    for b in batches:
        opt.zero_grad()
        loss(model, b).backward()
        opt.step()


def assert_same(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
        assert pa[k].requires_grad == pb[k].requires_grad, k


TARGETS = {
    "tiny_bert": "all-linear",
    "tiny_gpt2": "all-linear",
    "minilm": r".*layer\.[01]\.attention\.self\.(query|value)",
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_resume_is_bit_for_bit(model_factory, make_inputs, name, tmp_path):
    model, _ = model_factory(name)
    if name == "minilm":  # frozen embeddings: a smaller checkpoint, and "frozen" is restored
        model.embeddings.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    overparameterize(model, TARGETS[name], optimizer=opt)
    batches = [make_inputs(model, seed=s) for s in range(4)]
    run(model, opt, batches[:2])
    save_overparameterized(model, tmp_path / "ck", optimizer=opt)
    torch.manual_seed(1)  # MiniLM has dropout: same RNG stream for both continuations
    run(model, opt, batches[2:])  # the uninterrupted run

    fresh, _ = model_factory(name)  # a fresh copy of the base model
    opt2 = torch.optim.AdamW(fresh.parameters(), lr=1e-3, weight_decay=0.01)
    load_overparameterized(fresh, tmp_path / "ck", optimizer=opt2)
    torch.manual_seed(1)
    run(fresh, opt2, batches[2:])
    assert_same(model, fresh)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i, st in s1["state"].items():
        assert all(torch.equal(st[k], s2["state"][i][k]) for k in st)


def test_config_contents_and_frozen_params(tiny_gpt2, tmp_path):
    tiny_gpt2.transformer.wpe.weight.requires_grad_(False)
    overparameterize(tiny_gpt2, ["c_attn"], shape="balanced", n_cores=3, init="left")
    out = save_overparameterized(tiny_gpt2, tmp_path)
    config = json.loads((out / "mpo_config.json").read_text())
    mod = config["modules"]["transformer.h.0.attn.c_attn"]
    assert mod["original_type"] == "transformers.pytorch_utils.Conv1D"
    assert (mod["out_features"], mod["in_features"]) == (96, 32)
    assert mod["init"] == "left" and len(mod["row_dims"]) == 3 and mod["bond_dims"][0] == 1
    assert config["frozen"] == ["transformer.wpe.weight"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mpo_config.json",
        "mpo_model.safetensors",
    ]


def test_load_without_optimizer_then_param_groups(model_factory, make_inputs, tmp_path):
    model, _ = model_factory("tiny_bert")
    overparameterize(model, shape="opf-svd")
    opt = torch.optim.Adam(param_groups(model, 1e-3, factor_lr="scaled"))
    batches = [make_inputs(model, seed=s) for s in range(3)]
    run(model, opt, batches[:1])
    save_overparameterized(model, tmp_path, optimizer=opt)
    run(model, opt, batches[1:])

    fresh, _ = model_factory("tiny_bert")
    load_overparameterized(fresh, tmp_path)
    assert sum(isinstance(m, MPOLinear) for m in fresh.modules()) == 13
    opt2 = torch.optim.Adam(param_groups(fresh, 1e-3, factor_lr="scaled"))
    load_optimizer_state(opt2, tmp_path)
    run(fresh, opt2, batches[1:])
    assert_same(model, fresh)


def test_corrupted_or_mixed_checkpoint_is_rejected(tiny_bert, tmp_path):
    overparameterize(tiny_bert, ["query"], shape="opf-svd")
    save_overparameterized(tiny_bert, tmp_path)
    weights = tmp_path / "mpo_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(mpo.MPOError, match="does not match"):
        load_overparameterized(tiny_bert, tmp_path)


def test_failed_write_keeps_previous_checkpoint(tiny_bert, tmp_path, monkeypatch):
    overparameterize(tiny_bert, ["query"], shape="opf-svd")
    save_overparameterized(tiny_bert, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with torch.no_grad():
        tiny_bert.bert.encoder.layer[0].attention.self.query.cores[0].add_(1.0)

    def boom(tensors, path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_overparameterized(tiny_bert, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files left


def test_load_into_wrong_base_changes_nothing(model_factory, tmp_path):
    model, _ = model_factory("tiny_bert")
    overparameterize(model, ["query"], shape="opf-svd")
    save_overparameterized(model, tmp_path)
    other, _ = model_factory("tiny_gpt2")
    state = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(mpo.MPOError, match="not found"):
        load_overparameterized(other, tmp_path)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in state.items())
    with pytest.raises(mpo.MPOError, match=r"mpo_config\.json"):
        load_overparameterized(other, tmp_path / "missing")
