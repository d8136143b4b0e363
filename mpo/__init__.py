"""mpo: matrix product operators (tensor-train matrices) on NumPy arrays.

A dense matrix enters :func:`decompose` and becomes an :class:`MPO`: a chain of cores
``(r_{k-1}, row_k, col_k, r_k)`` plus cached opt_einsum plans for contracting them. The
decomposition is exact by default (full bond dimension) and truncates with a guaranteed,
reported error on request. This package imports numpy, scipy and opt_einsum only; the PyTorch
adapter lives in :mod:`adapters.torch`.

>>> import numpy as np, mpo
>>> W = np.random.default_rng(0).standard_normal((64, 48))
>>> m = mpo.decompose(W, ((4, 4, 4), (4, 4, 3)))
>>> m.bond_dims
(1, 16, 12, 1)
>>> bool(np.allclose(m.to_dense(), W))
True
"""

from .decompose import decompose
from .errors import MPOError, TruncationWarning
from .operator import MPO
from .plans import DensePlan, MatvecPlan, plan_dense, plan_matvec
from .report import TruncationReport
from .shapes import factorize, full_bond_dims, n_params, suggest_shape

__all__ = [
    "MPO",
    "DensePlan",
    "MPOError",
    "MatvecPlan",
    "TruncationReport",
    "TruncationWarning",
    "decompose",
    "factorize",
    "full_bond_dims",
    "n_params",
    "plan_dense",
    "plan_matvec",
    "suggest_shape",
]

__version__ = "0.1.0"
