"""overparameterize: exactness, optimizer registration (the OPF bug), targets, presets, errors."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import mpo  # noqa: E402
from adapters.torch import (  # noqa: E402
    AdapterError,
    MPOLinear,
    factor_lr_scale,
    match_targets,
    overparameterize,
    param_groups,
    print_trainable_parameters,
    trainable_parameters,
)

# Per model: targets + shape for the default (fast) suite. MiniLM gets a subset of its 36
# encoder matrices here; the full 15-core run over all of them is the slow test below.
CASES = {
    "tiny_bert": {"targets": "all-linear"},
    "tiny_gpt2": {"targets": "all-linear"},
    "minilm": {"targets": r".*layer\.0\.attention\.self\.(query|value)"},
}
N_TARGETS = {"tiny_bert": 13, "tiny_gpt2": 8, "minilm": 2}


def outputs(model, inputs):
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def assert_close_eps(actual, expected, n_cores, k):
    actual, expected = actual.detach().double(), expected.detach().double()
    err = float((actual - expected).abs().max())
    tol = 4.0 * torch.finfo(torch.float32).eps * n_cores * math.sqrt(k)
    assert err <= tol * float(expected.abs().max()), err


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, [
        (n, type(m)) for n, m in model.named_modules()
    ]


def assert_untouched(model, snap):
    state, types = snap
    now = model.state_dict()
    assert now.keys() == state.keys()
    assert all(torch.equal(now[k], state[k]) or torch.equal(now[k].isnan(), state[k].isnan())
               for k in state)  # fmt: skip
    assert [(n, type(m)) for n, m in model.named_modules()] == types


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_unchanged_after_overparameterize(model_factory, name):
    model, inputs = model_factory(name)
    with torch.no_grad():
        ref = outputs(model, inputs)
    overparameterize(model, **CASES[name])
    layers = [m for m in model.modules() if isinstance(m, MPOLinear)]
    assert len(layers) == N_TARGETS[name]
    with torch.no_grad():
        out = outputs(model, inputs)
    n = max(m.n_cores for m in layers)
    k = max(m.in_features for m in layers)
    assert_close_eps(out, ref, n * len(layers), k)


@pytest.mark.parametrize("name", list(CASES))
def test_one_step_changes_every_core(model_factory, name):
    """Regression for the OPF code: the optimizer was built before the swap, factors never moved."""
    model, inputs = model_factory(name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.8, 0.9))
    overparameterize(model, **CASES[name], optimizer=opt)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, MPOLinear)}
    before = {n: [c.detach().clone() for c in m.cores] for n, m in layers.items()}
    model.train()
    outputs(model, inputs).pow(2).mean().backward()
    opt.step()
    for n, m in layers.items():
        for k, (c, c0) in enumerate(zip(m.cores, before[n], strict=True)):
            assert not torch.equal(c, c0), f"{n}.cores.{k} did not change"
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    cores = {id(c) for m in layers.values() for c in m.cores}
    assert cores <= held
    assert len(held) == len({id(p) for p in model.parameters()})  # no stale dense weights
    new_groups = [g for g in opt.param_groups if "mpo_module" in g]
    assert {g["mpo_module"] for g in new_groups} == set(layers)
    assert all(g["lr"] == 1e-3 and g["weight_decay"] == 0.01 and g["betas"] == (0.8, 0.9)
               for g in new_groups)  # fmt: skip


def test_all_linear_excludes_heads(tiny_bert, tiny_gpt2):
    names = match_targets(tiny_bert)
    assert "classifier" not in names and "bert.pooler.dense" in names
    gpt = match_targets(tiny_gpt2)
    assert "lm_head" not in gpt and all(".h." in n for n in gpt)


def test_target_rules_regex_suffix_exclude(tiny_bert):
    assert match_targets(tiny_bert, ["query", "layer.1.output.dense"]) == [
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.1.attention.self.query",
        "bert.encoder.layer.1.output.dense",
    ]
    assert len(match_targets(tiny_bert, r".*\.(key|value)")) == 4
    assert len(match_targets(tiny_bert, ["key"])) == 2
    names = match_targets(tiny_bert, "all-linear", exclude=["pooler.dense", "intermediate.dense"])
    assert len(names) == 10


@pytest.mark.parametrize(
    ("shape", "n_cores", "rows"),
    [
        ("chain", None, (8,) + (1,) * 13 + (4,)),
        ("chain", 4, (8, 1, 1, 4)),
        ("opf-svd", None, (8, 4)),
        ("balanced", None, (2, 2, 2, 2, 2)),
        (((4, 2, 4), (2, 4, 4)), None, (4, 2, 4)),
    ],
)
def test_shape_presets(tiny_bert, shape, n_cores, rows):
    overparameterize(tiny_bert, ["layer.0.attention.self.query"], shape=shape, n_cores=n_cores)
    layer = tiny_bert.bert.encoder.layer[0].attention.self.query
    assert layer.row_dims == rows
    assert layer.bond_dims == mpo.full_bond_dims(layer.row_dims, layer.col_dims)


def test_overrides_and_init(tiny_bert):
    overparameterize(
        tiny_bert,
        ["query", "intermediate.dense"],
        shape="opf-svd",
        overrides={r".*layer\.1\..*": {"shape": "balanced", "n_cores": 3, "init": "left"},
                   "layer.0.intermediate.dense": ((8, 8), (4, 8))},
    )  # fmt: skip
    enc = tiny_bert.bert.encoder.layer
    assert enc[0].attention.self.query.n_cores == 2
    assert enc[0].intermediate.dense.row_dims == (8, 8)
    assert enc[1].attention.self.query.n_cores == 3 and enc[1].attention.self.query.init == "left"


def test_bond_cap_truncates(tiny_bert):
    overparameterize(tiny_bert, ["query"], shape="balanced", n_cores=3, bond=4)
    layer = tiny_bert.bert.encoder.layer[0].attention.self.query
    assert max(layer.bond_dims) <= 4 and layer.bond_dims[0] == layer.bond_dims[-1] == 1


def test_bf16_model(tiny_bert, make_inputs):
    model = tiny_bert.to(torch.bfloat16)
    inputs = make_inputs(model)
    with torch.no_grad():
        ref = model(**inputs).logits
    overparameterize(model, shape="opf-svd")
    layer = model.bert.encoder.layer[0].attention.self.query
    assert all(c.dtype == torch.bfloat16 for c in layer.cores)
    with torch.no_grad():
        out = model(**inputs).logits
    err = float((out.float() - ref.float()).abs().max())
    # bf16 round-off of the cast cores, through 2 layers of 6 matrices + pooler
    assert err <= 4 * torch.finfo(torch.bfloat16).eps * 2 * math.sqrt(64) * 13 * float(
        ref.float().abs().max()
    )


def test_dry_run_changes_nothing_and_reports(tiny_bert, capsys):
    snap = snapshot(tiny_bert)
    plan = overparameterize(tiny_bert, dry_run=True)
    assert_untouched(tiny_bert, snap)
    assert len(plan) == 13
    q = plan[0]
    assert q.shape == (32, 32) and q.params_before == 1024
    assert q.params_after == 8 * 8 * 16 + 13 * 16 * 16 + 16 * 4 * 4  # rows = cols = 8,1x13,4
    printed = capsys.readouterr().out
    assert (
        "bert.encoder.layer.0.attention.self.query" in printed and "total (13 modules)" in printed
    )


BAD = [
    ({"targets": ["query", "qeury"]}, "qeury"),
    ({"targets": r"nothing\..*"}, "matches no module"),
    ({"targets": ["bert.embeddings.word_embeddings"]}, "unsupported type"),
    ({"targets": ["query"], "shape": ((3, 3), (4, 8))}, "multiplies out"),
    ({"targets": ["query"], "shape": "zigzag"}, "zigzag"),
    ({"targets": ["query"], "n_cores": 0}, "n_cores"),
    ({"targets": ["query"], "init": "random"}, "init"),
    ({"targets": ["query"], "bond": [2, 2]}, "bond"),
    ({"targets": ["query"], "overrides": {"valeu": "balanced"}}, "valeu"),
    ({"targets": ["query"], "exclude": ["poolr"]}, "poolr"),
    ({"targets": 42}, "targets must be"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD)
def test_bad_input_raises_before_any_change(tiny_bert, kwargs, match):
    snap = snapshot(tiny_bert)
    with pytest.raises(mpo.MPOError, match=match):
        overparameterize(tiny_bert, **kwargs)
    assert_untouched(tiny_bert, snap)


def test_nan_weight_raises_before_any_change(tiny_bert):
    with torch.no_grad():
        tiny_bert.bert.encoder.layer[1].attention.self.key.weight[3, 3] = float("inf")
    snap = snapshot(tiny_bert)
    with pytest.raises(AdapterError, match=r"layer\.1\.attention\.self\.key.*NaN/Inf"):
        overparameterize(tiny_bert)  # earlier targets are fine: still nothing may change
    assert_untouched(tiny_bert, snap)


def test_second_call_and_optimizer_errors(tiny_bert):
    opt = torch.optim.SGD([p for n, p in tiny_bert.named_parameters() if "key" not in n], lr=0.1)
    snap = snapshot(tiny_bert)
    groups = [list(g["params"]) for g in opt.param_groups]
    with pytest.raises(AdapterError, match="not in the optimizer"):
        overparameterize(tiny_bert, ["query", "key"], optimizer=opt)
    assert_untouched(tiny_bert, snap)
    assert [list(g["params"]) for g in opt.param_groups] == groups
    overparameterize(tiny_bert, ["query"], shape="opf-svd", optimizer=opt)
    snap = snapshot(tiny_bert)
    with pytest.raises(AdapterError, match="already an MPOLinear"):
        overparameterize(tiny_bert, ["layer.0.attention.self.query"])
    with pytest.raises(AdapterError, match="already over-parameterized"):
        overparameterize(tiny_bert)
    assert_untouched(tiny_bert, snap)
    overparameterize(tiny_bert, ["value"], shape="opf-svd")  # dynamic rounds: more targets later
    assert sum(isinstance(m, MPOLinear) for m in tiny_bert.modules()) == 4


def test_parameter_report_and_param_groups(tiny_bert, capsys):
    dense = trainable_parameters(tiny_bert)
    assert dense.mpo_cores == 0 and dense.total == dense.dense_equivalent == dense.trainable
    overparameterize(tiny_bert, shape="opf-svd")
    counts = print_trainable_parameters(tiny_bert)
    assert "trainable params" in capsys.readouterr().out
    cores = sum(c.numel() for m in tiny_bert.modules() if isinstance(m, MPOLinear) for c in m.cores)
    assert counts.mpo_cores == cores
    assert counts.dense_equivalent == dense.total
    replaced = 9 * 32 * 32 + 4 * 64 * 32  # 8 attention + pooler, 4 FFN weights
    assert counts.total == dense.total - replaced + cores
    groups = param_groups(tiny_bert, lr=1e-3, factor_lr="scaled", weight_decay=0.0)
    assert [g["lr"] for g in groups] == [1e-3, 1e-3 * factor_lr_scale(2)]
    assert sum(len(g["params"]) for g in groups) == len(list(tiny_bert.parameters()))
    assert factor_lr_scale(15) == pytest.approx(1 / 15)


@pytest.mark.slow
def test_minilm_all_encoder_matrices_chain15_fast_and_exact(minilm, make_inputs):
    """36 encoder matrices, 15-core chains: cost ~ one SVD per matrix, not a sweep per core."""
    import time

    import numpy as np

    inputs = make_inputs(minilm)
    with torch.no_grad():
        ref = minilm(**inputs).last_hidden_state
    names = match_targets(minilm, ["query", "key", "value", "dense"], exclude=["pooler.dense"])
    t0 = time.perf_counter()
    for name in names:  # the irreducible work: one SVD of each rearranged matrix
        w = minilm.get_submodule(name).weight.detach().double().numpy()
        (a, b), (c, d) = mpo.suggest_shape(w.shape, 2, layout="chain")
        np.linalg.svd(w.reshape(a, b, c, d).transpose(0, 2, 1, 3).reshape(a * c, b * d))
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    overparameterize(minilm, names)
    elapsed = time.perf_counter() - t0
    layers = [m for m in minilm.modules() if isinstance(m, MPOLinear)]
    assert len(layers) == 36 and all(m.n_cores == 15 for m in layers)
    assert elapsed < 5 * baseline + 5, (elapsed, baseline)
    with torch.no_grad():
        out = minilm(**inputs).last_hidden_state
    assert_close_eps(out, ref, 15 * 36, 1536)
