"""PyTorch adapter: over-parameterized fine-tuning (OPF) with exact MPO layers.

Workflow: :func:`overparameterize` a model (every target ``nn.Linear``/``Conv1D`` becomes an exact
:class:`MPOLinear`), train, then :func:`merge` it back to the original architecture. See
``docs/adapter.md``.
"""

from .checkpoint import load_optimizer_state, load_overparameterized, save_overparameterized
from .dynamic import DynamicGrowth, OPFGrowthCallback
from .layer import INITS, AdapterError, MPOLinear, decompose_module, dense_weight, module_kind
from .merge import MergeReport, merge, merge_and_unload
from .optim import factor_lr_scale, param_groups, replace_in_optimizer
from .report import ParameterCounts, PlanEntry, print_trainable_parameters, trainable_parameters
from .resync import extend_scheduler, rewrap_ddp
from .selection import default_group, find_candidates, score_modules, select_static, select_top
from .surgery import PRESETS, OverparameterizePlan, overparameterize, resolve_shape
from .targets import HEAD_NAMES, match_targets

__all__ = [
    "HEAD_NAMES",
    "INITS",
    "PRESETS",
    "AdapterError",
    "DynamicGrowth",
    "MPOLinear",
    "MergeReport",
    "OPFGrowthCallback",
    "OverparameterizePlan",
    "ParameterCounts",
    "PlanEntry",
    "decompose_module",
    "default_group",
    "dense_weight",
    "extend_scheduler",
    "factor_lr_scale",
    "find_candidates",
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
    "rewrap_ddp",
    "save_overparameterized",
    "score_modules",
    "select_static",
    "select_top",
    "trainable_parameters",
]
