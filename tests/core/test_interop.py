"""tensornetwork interop: export/import is the identity; its contractors serve as an oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpo

tn = pytest.importorskip("tensornetwork")
from mpo import interop  # noqa: E402


def _oracle_dense(m, contractor):
    """``to_dense`` computed by TensorNetwork alone (its own contractor and path search)."""
    nodes = interop.to_tensornetwork(m)
    out = contractor(nodes, output_edge_order=interop.output_edges(nodes))
    return np.asarray(out.tensor).reshape(m.shape)


def _oracle_matvec(m, x, contractor):
    """``W @ x`` for one vector, by TensorNetwork: x's legs connected to the column edges."""
    nodes = interop.to_tensornetwork(m)
    xn = tn.Node(x.reshape(m.col_dims))
    for k, node in enumerate(nodes):
        node["col"] ^ xn[k]
    edges = [nodes[0]["left"], *(n["row"] for n in nodes), nodes[-1]["right"]]
    out = contractor([*nodes, xn], output_edge_order=edges)
    return np.asarray(out.tensor).reshape(m.shape[0])


@settings(max_examples=30)
@given(data=st.data())
def test_round_trip_and_oracle(kit, data):
    case = data.draw(kit.cases(max_cores=5))
    m = mpo.decompose(case.W, case.dims, form=data.draw(st.sampled_from(["left", "symmetric"])))
    back = interop.from_tensornetwork(interop.to_tensornetwork(m))
    assert back.core_shapes == m.core_shapes and back.dtype == m.dtype
    for a, b in zip(back.cores, m.cores, strict=True):
        np.testing.assert_array_equal(a, b)
    contractor = data.draw(st.sampled_from([tn.contractors.greedy, tn.contractors.optimal]))
    norm = float(np.linalg.norm(kit.wide(case.W)))
    tol = kit.roundoff(case.dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), max(norm, 1))
    oracle = kit.wide(_oracle_dense(m, contractor))
    assert np.linalg.norm(kit.wide(m.to_dense()) - oracle) <= tol
    x = np.random.default_rng(case.seed).standard_normal(m.shape[1]).astype(case.dtype)
    ref = kit.wide(_oracle_matvec(m, x, contractor))
    scale = max(norm, 1) * max(float(np.linalg.norm(x)), 1)
    tol = kit.roundoff(case.dtype, m.n_cores, kit.size_of(m.shape, m.bond_dims), scale)
    for strategy in ("dense", "through"):
        assert np.linalg.norm(kit.wide(m.matvec(x, strategy=strategy)) - ref) <= tol


def test_axis_names_and_connections():
    m = mpo.decompose(np.ones((4, 6)), ((2, 2), (3, 2)))
    nodes = interop.to_tensornetwork(m)
    assert [n.axis_names for n in nodes] == [list(interop.AXES)] * 2
    assert nodes[0]["right"] is nodes[1]["left"]
    assert nodes[0]["left"].is_dangling() and nodes[1]["right"].is_dangling()


def test_from_tensornetwork_rejects_bad_chains():
    with pytest.raises(mpo.MPOError, match="at least one node"):
        interop.from_tensornetwork([])
    with pytest.raises(mpo.MPOError, match=r"node 0 .* must have 4 axes, got 3"):
        interop.from_tensornetwork([tn.Node(np.ones((1, 2, 2)))])
    a, b = tn.Node(np.ones((1, 2, 2, 3))), tn.Node(np.ones((3, 2, 2, 1)))
    with pytest.raises(mpo.MPOError, match=r"node 0 axis 3 .* connected to node 1 axis 0"):
        interop.from_tensornetwork([a, b])
