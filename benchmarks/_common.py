"""Helpers shared by the benchmark scripts: formatting and the machine/revision facts they print.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fmt_s(t: float) -> str:
    """Seconds as ``1.23 s``, ``12.3 ms`` or ``45 us``."""
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} us"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, or ``?``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def git_revision(paths: tuple[str, ...]) -> str:
    """Short HEAD, marked when any of ``paths`` has uncommitted changes; ``?`` without git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *paths],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "?"
    where = ", ".join(f"{p}/" for p in paths[:-1]) + f" or {paths[-1]}/"
    return rev + (f" (+ uncommitted changes in {where})" if dirty else "")
