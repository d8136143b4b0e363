"""The core never imports torch or transformers (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import numpy as np
import mpo
w = np.random.default_rng(0).standard_normal((16, 12))
m = mpo.decompose(w, ((4, 2, 2), (3, 2, 2)), form="symmetric")
m.to_dense(); m @ np.ones(12); m.rmatvec(np.ones((2, 16))); m.truncate(bond=2)
mpo.plan_matvec(m.core_shapes, 8).describe()
mpo.suggest_shape((768, 3072), 4, layout="chain")
heavy = ("torch", "transformers", "tensorflow", "jax", "tensornetwork")
print(json.dumps(sorted(k for k in sys.modules if k.split(".")[0] in heavy)))
"""


def test_import_mpo_does_not_import_torch():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
