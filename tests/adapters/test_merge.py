"""merge / merge_and_unload: back to the original architecture, outputs checked."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch import nn  # noqa: E402

import mpo  # noqa: E402
from adapters.torch import MPOLinear, merge, merge_and_unload, overparameterize  # noqa: E402

CASES = {
    "tiny_bert": {"targets": "all-linear"},
    "tiny_gpt2": {"targets": "all-linear"},
    "minilm": {"targets": r".*layer\.0\.attention\.self\.(query|value)"},
}


def outputs(model, inputs):
    out = model(**inputs)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def train_steps(model, inputs, steps=2, lr=1e-2):
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        outputs(model, inputs).pow(2).mean().backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("name", list(CASES))
def test_merge_equals_overparameterized_forward(model_factory, name, capsys):
    model, inputs = model_factory(name)
    overparameterize(model, **CASES[name])
    train_steps(model, inputs)  # cores now differ from the original weights
    with torch.no_grad():
        ref = outputs(model, inputs)
    merged, report = merge(model, inputs, return_report=True)
    assert merged is model
    assert not any(isinstance(m, MPOLinear) for m in model.modules())
    assert "max abs diff" in capsys.readouterr().out
    assert report.max_rel <= report.tolerance
    with torch.no_grad():
        out = outputs(model, inputs)
    err = float((out - ref).abs().max())
    assert err <= report.tolerance * float(ref.abs().max())


@pytest.mark.parametrize("name", list(CASES))
def test_merge_of_untouched_model_returns_original_weights(model_factory, name):
    model, _ = model_factory(name)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    types = {n: type(m) for n, m in model.named_modules()}
    overparameterize(model, **CASES[name])
    report = merge_and_unload(model, verbose=False, return_report=True)[1]
    assert report.n_modules > 0 and report.per_module  # random per-layer probes were run
    state = model.state_dict()
    assert list(state) == list(original)
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in original.items()}
    assert {n: type(m) for n, m in model.named_modules()} == types
    eps = torch.finfo(torch.float32).eps
    for k, v in original.items():
        if not v.is_floating_point():
            continue
        scale = max(float(v.abs().max()), 1.0)
        n_cores = 15
        tol = 4 * eps * n_cores * math.sqrt(max(v.shape[-1], 1)) * scale
        assert float((state[k] - v).abs().max()) <= tol, k


def test_merged_model_saves_and_loads_with_plain_transformers(tiny_bert, make_inputs, tmp_path):
    inputs = make_inputs(tiny_bert)
    overparameterize(tiny_bert)
    train_steps(tiny_bert, inputs)
    merge(tiny_bert, inputs, verbose=False)
    with torch.no_grad():
        ref = tiny_bert(**inputs).logits
    tiny_bert.save_pretrained(tmp_path)
    plain = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert plain.state_dict().keys() == tiny_bert.state_dict().keys()
    with torch.no_grad():
        assert torch.equal(plain(**inputs).logits, ref)


def test_failed_check_leaves_model_unmerged(tiny_bert, make_inputs, monkeypatch):
    inputs = make_inputs(tiny_bert)
    overparameterize(tiny_bert, ["query"], shape="opf-svd")
    real = MPOLinear.merged_weight

    def corrupt(self):
        return real(self) * 2.0  # (a constant shift would vanish after LayerNorm: zero-mean x)

    monkeypatch.setattr(MPOLinear, "merged_weight", corrupt)
    for probe in (None, inputs):
        with pytest.raises(mpo.MPOError, match="merge check failed"):
            merge(tiny_bert, probe)
        assert sum(isinstance(m, MPOLinear) for m in tiny_bert.modules()) == 2


def test_merge_bare_layer_and_bf16():
    torch.manual_seed(0)
    lin = nn.Linear(16, 12, dtype=torch.bfloat16)
    layer = MPOLinear.from_linear(lin, ((3, 1, 4), (4, 1, 4)))
    back = merge(layer, verbose=False)
    assert type(back) is nn.Linear and back.weight.dtype == torch.bfloat16
    tol = 4 * torch.finfo(torch.bfloat16).eps * 3 * float(lin.weight.detach().abs().max())
    assert float((back.weight.detach().float() - lin.weight.detach().float()).abs().max()) <= tol


def test_docs_examples(capsys):
    """Run the ```python blocks of docs/adapter.md in order, in one namespace."""
    import pathlib
    import re

    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "adapter.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(doc), "exec"), namespace)
    assert "trainable params" in capsys.readouterr().out
