"""Provenance (command line, git revision) and the plain-text comparison table."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["command_line", "format_table", "git_revision", "write_json"]


def git_revision(path: str | Path | None = None) -> str:
    """Return ``git describe --always --dirty`` of the repository holding ``path`` (or ``""``)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def command_line(argv: Sequence[str] | None = None) -> str:
    """Return the command line as a shell-like string (default: ``sys.argv``)."""
    args = list(sys.argv if argv is None else argv)
    return " ".join(args)


def write_json(path: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON (creating parent folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


COLUMNS = (
    ("method", "method", "{}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("params_train", "params (train)", "{:,}"),
    ("params_inference", "params (inference)", "{:,}"),
    ("time_per_step_s", "s/step", "{:.2f}"),
    ("latency_ms", "latency ms/batch", "{:.1f}"),
    ("merge_max_abs_diff", "merge |Δlogit|", "{:.1e}"),
)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return a Markdown table of run metrics (one row per run; see :data:`COLUMNS`)."""
    header = [title for _, title, _ in COLUMNS]
    body = []
    for row in rows:
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append("n/a" if value is None else fmt.format(value))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for cells in body:
        lines.append(
            "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"
        )
    return "\n".join(lines)
