r"""Which modules to over-parameterize: PEFT's target rules, minus its silent failures.

Rules (``targets`` and ``exclude`` alike):

* ``str`` other than ``"all-linear"``: a regular expression that must ``re.fullmatch`` the whole
  dotted module name (``r".*\.attention\.self\.(query|key)"``).
* list/tuple of ``str``: each entry is an exact module name or a suffix after a dot
  (``"query"`` matches ``"bert.encoder.layer.0.attention.self.query"``).
* ``"all-linear"``: every ``nn.Linear`` and transformers ``Conv1D`` except the output head: the
  module returned by ``model.get_output_embeddings()`` (e.g. ``lm_head``, also when tied to
  the embeddings) and any module below a component named in :data:`HEAD_NAMES`.

Unlike PEFT, an entry (or regex) that matches no module is an error that names the entry.

Examples
--------
>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
>>> match_targets(model, ["0", "2"])
['0', '2']
>>> match_targets(model, r"\d")
['0', '1', '2']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from .layer import AdapterError, MPOLinear, module_kind

__all__ = ["HEAD_NAMES", "TargetSpec", "match_name", "match_targets", "output_head_names"]

#: Module-name components treated as output heads by ``"all-linear"``.
HEAD_NAMES = frozenset({"classifier", "lm_head", "score", "qa_outputs", "cls"})

TargetSpec = str | Sequence[str]


def match_name(name: str, entry: str, *, regex: bool) -> bool:
    """Whether ``name`` matches one target entry (full-match regex, or exact/suffix)."""
    if regex:
        return re.fullmatch(entry, name) is not None
    return name == entry or name.endswith("." + entry)


def _check_spec(spec: object, what: str) -> None:
    ok = isinstance(spec, str) or (
        isinstance(spec, list | tuple) and all(isinstance(e, str) and e for e in spec)
    )
    if not ok:
        raise AdapterError(
            f"{what} must be a regex string, 'all-linear', or a list of module names/suffixes; "
            f"got {spec!r} (example: ['query', 'value'])"
        )
    if isinstance(spec, str):
        try:
            re.compile(spec)
        except re.error as exc:
            raise AdapterError(
                f"{what} {spec!r} is not a valid regular expression: {exc}"
            ) from None


def _select(names: Sequence[str], spec: TargetSpec, what: str) -> list[str]:
    """Names matching ``spec``; every list entry (or the regex) must match something."""
    if isinstance(spec, str):
        hits = [n for n in names if match_name(n, spec, regex=True)]
        if not hits:
            raise AdapterError(f"{what} regex {spec!r} matches no module name (full match)")
        return hits
    hits: list[str] = []
    for entry in spec:
        found = [n for n in names if match_name(n, entry, regex=False)]
        if not found:
            raise AdapterError(f"{what} entry {entry!r} matches no module (exact name or suffix)")
        hits += [n for n in found if n not in hits]
    return [n for n in names if n in hits]


def output_head_names(model: nn.Module) -> set[str]:
    """Names of output-head modules that ``"all-linear"`` leaves out."""
    heads = set()
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    for name, module in model.named_modules():
        if (out is not None and module is out) or HEAD_NAMES.intersection(name.split(".")):
            heads.add(name)
    return heads


def match_targets(
    model: nn.Module, targets: TargetSpec = "all-linear", exclude: TargetSpec | None = None
) -> list[str]:
    """Resolve ``targets`` minus ``exclude`` to module names, in ``named_modules`` order.

    Parameters
    ----------
    model : nn.Module
        The model to search.
    targets : str or list of str
        See the module docstring.
    exclude : str or list of str, optional
        Same rules; each entry must match some module of the model.

    Returns
    -------
    list of str
        Dotted names of the selected modules (types not yet checked, except for
        ``"all-linear"``, which yields supported types only).

    Raises
    ------
    AdapterError
        A malformed spec, an entry/regex matching nothing, an empty selection, or
        ``"all-linear"`` on a model that already holds ``MPOLinear`` layers.
    """
    _check_spec(targets, "targets")
    names = [n for n, _ in model.named_modules() if n]
    if targets == "all-linear":
        mods = dict(model.named_modules())
        done = [n for n in names if isinstance(mods[n], MPOLinear)]
        if done:
            raise AdapterError(
                f"model is already over-parameterized ({len(done)} MPOLinear, e.g. {done[0]!r}); "
                "merge it first, or name the remaining targets explicitly"
            )
        heads = output_head_names(model)
        selected = [n for n in names if module_kind(mods[n]) and n not in heads]
        if not selected:
            raise AdapterError("targets='all-linear' found no nn.Linear/Conv1D outside the head")
    else:
        selected = _select(names, targets, "targets")
    if exclude is not None:
        _check_spec(exclude, "exclude")
        if exclude == "all-linear":
            raise AdapterError("exclude='all-linear' is not supported; give names or a regex")
        dropped = set(_select(names, exclude, "exclude"))
        selected = [n for n in selected if n not in dropped]
        if not selected:
            raise AdapterError(f"exclude={exclude!r} removes every target; nothing to do")
    return selected
