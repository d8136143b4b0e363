"""Exchange with other tensor-network libraries (optional dependencies, imported on call).

``tensornetwork`` (Google; the user-named extra ``mpo-toolkit[tensornetwork]``): an MPO becomes
a chain of connected ``tn.Node`` objects whose axes are named ``("left", "row", "col",
"right")``, and back. Inner bonds are connected edges; the two boundary bonds (size 1) stay
dangling, so ``tn.contractors.greedy(nodes, output_edge_order=output_edges(nodes))`` contracts
the chain to the dense tensor with TensorNetwork's own contractors.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import MPOError
from .operator import MPO

__all__ = ["from_tensornetwork", "output_edges", "to_tensornetwork"]

AXES = ("left", "row", "col", "right")


def _tn() -> Any:
    try:
        import tensornetwork
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "tensornetwork is not installed; pip install 'mpo-toolkit[tensornetwork]'"
        ) from exc
    return tensornetwork


def to_tensornetwork(m: MPO, backend: str = "numpy") -> list[Any]:
    """Export ``m`` as connected ``tensornetwork.Node`` objects, one per core.

    Parameters
    ----------
    m : MPO
        The operator.
    backend : str
        tensornetwork backend for the nodes (``"numpy"``, ``"pytorch"``, ...).

    Returns
    -------
    list of tensornetwork.Node
        Node ``k`` holds core ``k`` with axes ``("left", "row", "col", "right")``; node ``k``'s
        ``"right"`` edge is connected to node ``k+1``'s ``"left"`` edge.
    """
    tn = _tn()
    nodes = [
        tn.Node(np.array(c), name=f"core{k}", axis_names=list(AXES), backend=backend)
        for k, c in enumerate(m.cores)
    ]
    for left, right in itertools.pairwise(nodes):
        left["right"] ^ right["left"]
    return nodes


def output_edges(nodes: Sequence[Any]) -> list[Any]:
    """Dangling edges in dense order: ``left_0, rows..., cols..., right_{n-1}``."""
    return (
        [nodes[0]["left"]]
        + [n["row"] for n in nodes]
        + [n["col"] for n in nodes]
        + [nodes[-1]["right"]]
    )


def from_tensornetwork(nodes: Sequence[Any]) -> MPO:
    """Import a chain of ``tensornetwork.Node`` objects as an :class:`MPO`.

    The nodes must be in chain order with 4 axes ``(left, row, col, right)`` and node ``k``'s
    axis 3 connected to node ``k+1``'s axis 0.

    Raises
    ------
    MPOError
        A node that is not 4-D, or consecutive nodes whose bond edges are not connected.
    """
    nodes = list(nodes)
    if not nodes:
        raise MPOError("from_tensornetwork needs at least one node, got none")
    for k, node in enumerate(nodes):
        if len(node.edges) != 4:
            raise MPOError(f"node {k} ({node.name}) must have 4 axes, got {len(node.edges)}")
    for k in range(len(nodes) - 1):
        edge = nodes[k][3]
        if edge.is_dangling() or edge is not nodes[k + 1][0]:
            raise MPOError(
                f"node {k} axis 3 (right bond) must be connected to node {k + 1} axis 0 (left bond)"
            )
    return MPO([np.asarray(node.tensor) for node in nodes])
