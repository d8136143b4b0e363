"""Save and load an over-parameterized model as ``mpo_config.json`` + ``mpo_model.safetensors``.

``mpo_config.json`` records, per ``MPOLinear``, the original module type, dims, bond dims, core
shapes and init; ``mpo_model.safetensors`` holds the cores and every trainable (or MPO-owned)
parameter; ``optimizer.pt`` (optional) holds ``optimizer.state_dict()``. Loading rebuilds the
structure on a fresh copy of the base model without decomposing anything, then loads the values,
so training resumes bit for bit.

Every file is written to a temporary file in the same directory and renamed into place; the
config is written last and carries the SHA-256 of the other files, which the loader verifies:
a reader never sees a half-written or mixed checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .layer import AdapterError, MPOLinear, dense_weight, module_kind
from .optim import replace_in_optimizer

__all__ = [
    "CONFIG_NAME",
    "load_optimizer_state",
    "load_overparameterized",
    "save_overparameterized",
]

CONFIG_NAME = "mpo_config.json"
WEIGHTS_NAME = "mpo_model.safetensors"
OPTIMIZER_NAME = "optimizer.pt"
FORMAT_VERSION = 1


def _atomic_write(path: Path, write) -> str:
    """Write via ``write(tmp_path)`` then ``os.replace``; return the file's SHA-256."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_overparameterized(
    model: nn.Module, directory: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None
) -> Path:
    """Write the MPO structure and trained values of ``model`` to ``directory``.

    Parameters
    ----------
    model : nn.Module
        Model after ``overparameterize`` (and training).
    directory : path
        Created if missing; other files in it are left alone.
    optimizer : torch.optim.Optimizer, optional
        Its ``state_dict()`` is saved to ``optimizer.pt`` for resuming.

    Returns
    -------
    Path
        ``directory``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    modules = {}
    owned: set[int] = set()
    for name, m in model.named_modules():
        if isinstance(m, MPOLinear):
            modules[name] = {
                "original_type": m.original_type,
                "in_features": m.in_features,
                "out_features": m.out_features,
                "row_dims": list(m.row_dims),
                "col_dims": list(m.col_dims),
                "bond_dims": list(m.bond_dims),
                "core_shapes": [list(s) for s in m.core_shapes],
                "init": m.init,
                "bias": m.bias is not None,
                "dtype": str(m.cores[0].dtype).removeprefix("torch."),
            }
            owned.update(id(p) for p in m.parameters())
    if not modules:
        raise AdapterError("model has no MPOLinear layers; nothing over-parameterized to save")
    named = dict(model.named_parameters())  # tied parameters appear once
    tensors = {
        n: p.detach().cpu().contiguous()
        for n, p in named.items()
        if p.requires_grad or id(p) in owned
    }
    files = {WEIGHTS_NAME: _atomic_write(out / WEIGHTS_NAME, lambda t: save_file(tensors, t))}
    if optimizer is not None:
        state = optimizer.state_dict()
        files[OPTIMIZER_NAME] = _atomic_write(out / OPTIMIZER_NAME, lambda t: torch.save(state, t))
    config = {
        "format_version": FORMAT_VERSION,
        "modules": modules,
        "frozen": sorted(n for n, p in named.items() if not p.requires_grad),
        "files": files,
    }
    text = json.dumps(config, indent=2)
    _atomic_write(out / CONFIG_NAME, lambda t: Path(t).write_text(text))
    return out


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise AdapterError(f"{path} not found; expected a directory from save_overparameterized")
    config = json.loads(path.read_text())
    if config.get("format_version") != FORMAT_VERSION:
        raise AdapterError(f"{path}: format_version {config.get('format_version')!r} unsupported")
    for name, digest in config["files"].items():
        if not (directory / name).is_file() or _sha256(directory / name) != digest:
            raise AdapterError(f"{directory / name} is missing or does not match {CONFIG_NAME}")
    return config


def load_overparameterized(
    base_model: nn.Module,
    directory: str | os.PathLike,
    optimizer: torch.optim.Optimizer | None = None,
) -> nn.Module:
    """Rebuild the saved MPO structure on a fresh ``base_model`` (in place) and load the values.

    Parameters
    ----------
    base_model : nn.Module
        A fresh copy of the model that was over-parameterized (same architecture).
    directory : path
        Written by :func:`save_overparameterized`.
    optimizer : torch.optim.Optimizer, optional
        Built on ``base_model`` exactly as the original one was (before ``overparameterize``).
        It gets the same surgery, in the saved group order, and the saved state is loaded.

    Returns
    -------
    nn.Module
        ``base_model``, over-parameterized and loaded.
    """
    src = Path(directory)
    config = _read_config(src)
    tensors = load_file(src / WEIGHTS_NAME)
    mods = dict(base_model.named_modules())
    order = list(config["modules"])
    opt_state = None
    if optimizer is not None:
        if OPTIMIZER_NAME not in config["files"]:
            raise AdapterError(f"{src} has no {OPTIMIZER_NAME}; save with optimizer= to resume")
        opt_state = torch.load(src / OPTIMIZER_NAME, weights_only=True)
        tagged = [g["mpo_module"] for g in opt_state["param_groups"] if "mpo_module" in g]
        order = tagged + [n for n in order if n not in tagged]
    new = {}
    for name in order:  # validate and build before touching the model
        spec = config["modules"][name]
        old = mods.get(name)
        if old is None or module_kind(old) != spec["original_type"]:
            raise AdapterError(
                f"module {name!r} of {CONFIG_NAME} not found as a {spec['original_type']} in "
                f"base_model (got {type(old).__name__}); pass a fresh copy of the base model"
            )
        expected = (spec["out_features"], spec["in_features"])
        if tuple(dense_weight(old).shape) != expected:
            raise AdapterError(
                f"module {name!r}: base weight is {tuple(dense_weight(old).shape)} (out, in), "
                f"checkpoint expects {expected}"
            )
        w = old.weight
        layer = MPOLinear(
            spec["core_shapes"],
            bias=False,
            original_type=spec["original_type"],
            init=spec["init"],
            device=w.device,
            dtype=w.dtype,
        )
        if spec["bias"]:
            layer.bias = old.bias
        layer.train(old.training)
        new[name] = (old, layer)
    if optimizer is not None:
        replace_in_optimizer(optimizer, [(n, o.weight, lay.cores) for n, (o, lay) in new.items()])
    for name, (_, layer) in new.items():
        parent, _, child = name.rpartition(".")
        setattr(base_model.get_submodule(parent), child, layer)
    result = base_model.load_state_dict(tensors, strict=False)
    if result.unexpected_keys:
        raise AdapterError(f"saved tensors not in the model: {result.unexpected_keys[:5]}")
    frozen = set(config["frozen"])
    for n, p in base_model.named_parameters():
        p.requires_grad_(n not in frozen)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
    return base_model


def load_optimizer_state(optimizer: torch.optim.Optimizer, directory: str | os.PathLike) -> None:
    """Load ``optimizer.pt`` into an optimizer built on the already-loaded model."""
    src = Path(directory)
    config = _read_config(src)
    if OPTIMIZER_NAME not in config["files"]:
        raise AdapterError(f"{src} has no {OPTIMIZER_NAME}")
    optimizer.load_state_dict(torch.load(src / OPTIMIZER_NAME, weights_only=True))
