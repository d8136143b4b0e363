"""MPOLinear: exact init, forward/weight/merge through the core's plans, dtypes, autograd."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import mpo  # noqa: E402
from adapters.torch import INITS, AdapterError, MPOLinear  # noqa: E402

Conv1D = pytest.importorskip("transformers.pytorch_utils").Conv1D

SHAPES = [
    ((4, 1, 1, 3), (2, 1, 1, 8)),  # OPF chain, fast path
    ((2, 3, 2), (4, 2, 2)),  # general MPO
    ((12,), (16,)),  # one core
]


def rel_tol(dtype: torch.dtype, n_cores: int, k: int) -> float:
    """Round-off bound for a product of ``n_cores`` factors summed over ``k`` terms."""
    return 4.0 * torch.finfo(dtype).eps * max(n_cores, 1) * math.sqrt(k)


def assert_close_eps(actual, expected, dtype, n_cores, k):
    actual, expected = actual.detach().double(), expected.detach().double()
    err = float((actual - expected).abs().max())
    scale = float(expected.abs().max())
    assert err <= rel_tol(dtype, n_cores, k) * scale, (err, scale)


def make_linear(out_f=12, in_f=16, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(in_f, out_f, dtype=dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("init", INITS)
def test_from_linear_is_exact_and_forward_matches(shape, init):
    lin = make_linear()
    layer = MPOLinear.from_linear(lin, shape, init=init)
    assert isinstance(layer.cores, nn.ParameterList)
    assert all(type(c) is nn.Parameter for c in layer.cores)
    assert layer.bias is lin.bias  # the very same Parameter
    assert (layer.row_dims, layer.col_dims) == tuple(tuple(s) for s in shape)
    assert layer.bond_dims == mpo.full_bond_dims(*shape)
    keys = set(layer.state_dict())
    assert keys == {f"cores.{k}" for k in range(len(shape[0]))} | {"bias"}
    x = torch.randn(3, 5, 16)
    assert_close_eps(layer(x), lin(x), torch.float32, layer.n_cores, 16)
    assert_close_eps(layer.weight, lin.weight, torch.float32, layer.n_cores, 1)


def test_init_forms_place_the_norm():
    lin = make_linear(16, 16)
    shape = ((4, 1, 4), (4, 1, 4))
    sym = MPOLinear.from_linear(lin, shape, init="symmetric")
    a = sym.cores[0].detach().double().reshape(16, -1)
    b = sym.cores[-1].detach().double().reshape(-1, 16)
    torch.testing.assert_close(torch.diag(a.T @ a), torch.diag(b @ b.T))  # sqrt(lambda) split
    left = MPOLinear.from_linear(lin, shape, init="left")
    g = left.cores[0].detach().double().reshape(16, -1)
    torch.testing.assert_close(g.T @ g, torch.eye(g.shape[1], dtype=torch.float64))
    bal = MPOLinear.from_linear(lin, ((2, 2, 4), (4, 2, 2)), init="balanced")
    norms = [float(c.detach().norm()) for c in bal.cores]
    assert max(norms) / min(norms) == pytest.approx(1.0, rel=1e-5)


def test_conv1d_roundtrip_keeps_layout():
    torch.manual_seed(0)
    conv = Conv1D(12, 16)  # nf=out=12, nx=in=16, weight (16, 12)
    layer = MPOLinear.from_linear(conv, ((3, 1, 4), (4, 1, 4)))
    assert layer.original_type.endswith("Conv1D")
    x = torch.randn(2, 7, 16)
    assert_close_eps(layer(x), conv(x), torch.float32, 3, 16)
    back = layer.to_linear()
    assert type(back) is Conv1D and back.weight.shape == conv.weight.shape
    assert_close_eps(back.weight, conv.weight, torch.float32, 3, 1)
    assert back.bias is conv.bias


def test_to_linear_returns_plain_linear_with_contracted_weight():
    lin = make_linear()
    layer = MPOLinear.from_linear(lin, SHAPES[1])
    with torch.no_grad():
        layer.cores[0].mul_(1.5)
    back = layer.to_linear()
    assert type(back) is nn.Linear
    assert back.weight.dtype == torch.float32 and back.weight.device == lin.weight.device
    torch.testing.assert_close(back.weight, layer.weight.detach(), rtol=1e-6, atol=1e-7)
    x = torch.randn(4, 16)
    assert_close_eps(back(x), layer(x), torch.float32, 3, 16)


def test_gradients_reach_every_core_and_bias():
    layer = MPOLinear.from_linear(make_linear(), SHAPES[0])
    layer(torch.randn(6, 16)).pow(2).sum().backward()
    for c in layer.cores:
        assert c.grad is not None and c.grad.abs().sum() > 0
    assert layer.bias.grad is not None


def test_plans_cached_per_batch_size_and_strategy_from_core():
    layer = MPOLinear.from_linear(make_linear(), SHAPES[1])
    for b in (1, 3, 3, 64):
        layer(torch.randn(b, 16))
    assert sorted(layer._plans) == [1, 3, 64]
    assert {p.strategy for p in layer._plans.values()} <= {"dense", "through"}
    assert layer._plans[3] is mpo.plan_matvec(layer.core_shapes, 3)


def test_empty_batch_and_leading_dims():
    layer = MPOLinear.from_linear(make_linear(), SHAPES[1])
    assert layer(torch.randn(0, 16)).shape == (0, 12)
    assert layer(torch.randn(2, 3, 4, 16)).shape == (2, 3, 4, 12)


def test_bf16_decomposes_in_float64_and_casts_back():
    lin = make_linear(dtype=torch.bfloat16)
    layer = MPOLinear.from_linear(lin, SHAPES[0])
    assert all(c.dtype == torch.bfloat16 for c in layer.cores)
    x = torch.randn(4, 16, dtype=torch.bfloat16)
    assert layer(x).dtype == torch.bfloat16
    assert_close_eps(layer(x), lin(x), torch.bfloat16, layer.n_cores, 16)
    merged = layer.to_linear()
    assert merged.weight.dtype == torch.bfloat16
    assert_close_eps(merged.weight, lin.weight, torch.bfloat16, layer.n_cores, 1)


def test_to_dtype_deepcopy_and_state_dict_roundtrip():
    lin = make_linear()
    layer = MPOLinear.from_linear(lin, SHAPES[1])
    x = torch.randn(3, 16)
    clone = copy.deepcopy(layer)
    torch.testing.assert_close(clone(x), layer(x))
    fresh = MPOLinear(layer.core_shapes, bias=True)
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh(x), layer(x))
    layer64 = copy.deepcopy(layer).to(torch.float64)
    assert layer64(x.double()).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device():
    lin = make_linear().cuda()
    layer = MPOLinear.from_linear(lin, SHAPES[0])
    assert all(c.is_cuda for c in layer.cores)
    x = torch.randn(4, 16, device="cuda")
    assert_close_eps(layer(x), lin(x), torch.float32, layer.n_cores, 16)
    assert layer.to_linear().weight.is_cuda


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": ((5, 3), (4, 4))}, "multiply"),
        ({"init": "diagonal"}, "init"),
    ],
)
def test_from_linear_rejects_bad_input(kwargs, match):
    with pytest.raises(mpo.MPOError, match=match):
        MPOLinear.from_linear(make_linear(), **kwargs)


def test_from_linear_rejects_nan_and_unsupported_type():
    lin = make_linear()
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(AdapterError, match="NaN"):
        MPOLinear.from_linear(lin, SHAPES[1])
    with pytest.raises(AdapterError, match="unsupported module type"):
        MPOLinear.from_linear(nn.Embedding(4, 4), 2)


def test_core_shapes_validated():
    with pytest.raises(AdapterError, match="chain"):
        MPOLinear([(1, 2, 2, 3), (4, 2, 2, 1)])
    layer = MPOLinear([(1, 2, 3, 4), (4, 5, 6, 1)], bias=False)
    assert (layer.out_features, layer.in_features, layer.bias) == (10, 18, None)
    assert np.prod(layer.bond_dims) == 4


def test_probe_error_estimates_relative_error():
    import numpy as np

    import mpo
    from adapters.torch.decomposition import _probe_error

    w = np.random.default_rng(1).standard_normal((96, 48))
    m = mpo.decompose(w, mpo.suggest_shape(w.shape, 6, layout="chain"), form="symmetric")
    assert _probe_error(m, w) < 1e-13
    cores = [c.copy() for c in m.cores]
    cores[2][0, 0, 0, 1] += 1e-4
    bad = mpo.MPO(cores)
    true = np.linalg.norm(bad.to_dense() - w) / np.linalg.norm(w)
    assert true / 10 < _probe_error(bad, w) < true * 10
