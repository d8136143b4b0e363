"""PyTorch adapter: over-parameterized fine-tuning (OPF) with exact MPO layers.

Workflow: :func:`overparameterize` a model (every target ``nn.Linear``/``Conv1D`` becomes an exact
:class:`MPOLinear`), train, then :func:`merge` it back to the original architecture. See
``docs/adapter.md``.
"""

from .checkpoint import load_optimizer_state, load_overparameterized, save_overparameterized
from .layer import INITS, AdapterError, MPOLinear, decompose_module, dense_weight, module_kind
from .merge import MergeReport, merge, merge_and_unload
from .optim import factor_lr_scale, param_groups, replace_in_optimizer
from .report import ParameterCounts, PlanEntry, print_trainable_parameters, trainable_parameters
from .surgery import PRESETS, OverparameterizePlan, overparameterize, resolve_shape
from .targets import HEAD_NAMES, match_targets

__all__ = [
    "HEAD_NAMES",
    "INITS",
    "PRESETS",
    "AdapterError",
    "MPOLinear",
    "MergeReport",
    "OverparameterizePlan",
    "ParameterCounts",
    "PlanEntry",
    "decompose_module",
    "dense_weight",
    "factor_lr_scale",
    "load_optimizer_state",
    "load_overparameterized",
    "match_targets",
    "merge",
    "merge_and_unload",
    "module_kind",
    "overparameterize",
    "param_groups",
    "print_trainable_parameters",
    "replace_in_optimizer",
    "resolve_shape",
    "save_overparameterized",
    "trainable_parameters",
]
