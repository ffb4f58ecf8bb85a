"""Your own data: the formats (IDX, CSV, npz, parquet), given splits and the split rule, the
content digest, scikit-learn's digits, entry points, and a clear error for each bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnlab.data import load_digits
from nnlab.datasets import Dataset, Split, split_by_rule
from nnlab.errors import NNLabError
from nnlab.loaders import write_csv, write_idx
from nnlab.study.spec import StudySpec
from tests.data_entry import blobs, blobs_dataset


def load(data: dict) -> Dataset:
    """The data of a spec whose [data] is `data`."""
    return StudySpec.from_dict({"study": {"name": "x"}, "data": data}).data.load()


def write_blobs(folder, fmt: str, rows: slice, name: str) -> str:
    """blobs()[rows] written as `name` in format fmt; returns the path (an IDX pair: a
    {images, labels} table)."""
    x, y = blobs()
    x, y = x[rows], y[rows]
    if fmt == "csv":
        path = folder / f"{name}.csv"
        pd.DataFrame(np.column_stack([y, x])).to_csv(path, index=False, header=False)
    elif fmt == "npz":
        path = folder / f"{name}.npz"
        np.savez(path, x=x.reshape(-1, 3, 4), y=y)
    elif fmt == "parquet":
        path = folder / f"{name}.parquet"
        frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(12)])
        frame.insert(0, "label", y)
        frame.to_parquet(path)
    else:
        images, labels = folder / f"{name}-images.idx", folder / f"{name}-labels.idx"
        write_idx(images, x.reshape(-1, 3, 4))
        write_idx(labels, y)
        return {"images": str(images), "labels": str(labels)}
    return str(path)


SPLIT_ROWS = {"train": slice(0, 400), "val": slice(400, 500), "test": slice(500, 600)}


# --- the content digest ------------------------------------------------------------------

def test_the_digest_is_the_content_whatever_the_name():
    data = blobs_dataset()
    same = Dataset("other name", data.train, data.val, data.test, n_classes=3,
                   image_shape=(1, 3, 4))
    assert same.digest == data.digest and len(data.digest) == 64
    x = data.test.x.copy()
    x[7, 2] = np.nextafter(x[7, 2], np.float32(np.inf))
    changed = Dataset("blobs", data.train, data.val, Split(x, data.test.y), n_classes=3,
                      image_shape=(1, 3, 4))
    assert changed.digest != data.digest
    as_float64 = Dataset("blobs", data.train, data.val,
                         Split(data.test.x.astype(np.float64), data.test.y), n_classes=3,
                         image_shape=(1, 3, 4))
    assert as_float64.digest != data.digest  # the arrays as loaded, dtype included
    reshaped = Dataset("blobs", data.train, data.val, data.test, n_classes=3,
                       image_shape=(1, 4, 3))
    assert reshaped.digest != data.digest


# --- the split rule ----------------------------------------------------------------------

@pytest.mark.parametrize("stratify", [True, False])
def test_the_split_rule_is_seeded_disjoint_complete_and_keeps_the_order(stratify):
    x, y = blobs(n=601)
    x = np.column_stack([np.arange(601), x]).astype(np.float32)  # row numbers in column 0
    data = split_by_rule("b", x, y, (0.7, 0.2, 0.1), seed=3, stratify=stratify, n_classes=3,
                         image_shape=(1, 1, 13))
    rows = {name: getattr(data, name).x[:, 0].astype(int) for name in ("train", "val", "test")}
    assert sorted(np.concatenate(list(rows.values()))) == list(range(601))
    assert all(np.all(np.diff(r) > 0) for r in rows.values())
    assert (len(rows["val"]), len(rows["test"])) == (120, 60)
    if stratify:  # each class's share of each split is its share of the whole
        assert all(np.bincount(getattr(data, s).y).tolist() == [n] * 3
                   for s, n in (("val", 40), ("test", 20)))
    again = split_by_rule("b", x, y, (0.7, 0.2, 0.1), seed=3, stratify=stratify, n_classes=3,
                          image_shape=(1, 1, 13))
    other = split_by_rule("b", x, y, (0.7, 0.2, 0.1), seed=4, stratify=stratify, n_classes=3,
                          image_shape=(1, 1, 13))
    assert again.digest == data.digest != other.digest


def test_a_split_rule_that_leaves_a_split_empty_is_named():
    x, y = blobs(n=6)
    with pytest.raises(NNLabError, match=r"^data.split: the fractions \[0.9, 0.05, 0.05\] "
                                         r"leave the val split of 6 examples empty$"):
        split_by_rule("b", x, y, (0.9, 0.05, 0.05), 0, True, 3, (1, 3, 4), where="data.split")


# --- scikit-learn's digits ---------------------------------------------------------------

def test_digits_are_split_60_20_20_stratified_with_seed_0():
    data = load_digits()
    assert (len(data.train), len(data.val), len(data.test)) == (1079, 359, 359)
    assert data.image_shape == (1, 8, 8) and data.n_classes == 10
    assert data.train.x.dtype == np.float32 and data.train.x.max() == 1.0
    assert np.bincount(data.test.y).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    assert load_digits().digest == data.digest
    assert load({"name": "digits"}).digest == data.digest


# --- files: given splits and the split rule ----------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "npz", "parquet", "idx"])
def test_given_splits_in_each_format_read_back_the_arrays(tmp_path, fmt):
    spec = {split: write_blobs(tmp_path, fmt, rows, split) for split, rows in SPLIT_ROWS.items()}
    data = load(spec)
    expected = blobs_dataset()
    for split in SPLIT_ROWS:
        np.testing.assert_array_equal(getattr(data, split).x, getattr(expected, split).x)
        np.testing.assert_array_equal(getattr(data, split).y, getattr(expected, split).y)
    assert data.n_classes == 3
    assert data.image_shape == ((1, 1, 12) if fmt in ("csv", "parquet") else (1, 3, 4))
    shaped = load({**spec, "image_shape": [1, 3, 4], "n_classes": 5})
    assert shaped.image_shape == (1, 3, 4) and shaped.n_classes == 5


def test_a_folder_holds_given_splits_or_files_to_split(tmp_path):
    for split, rows in SPLIT_ROWS.items():
        write_blobs(tmp_path, "npz" if split == "test" else "csv", rows, split)
    given = load({"files": str(tmp_path)})
    assert [len(given.train), len(given.val), len(given.test)] == [400, 100, 100]
    cut = load({"files": str(tmp_path), "split": [0.5, 0.25, 0.25], "split_seed": 1,
                "image_shape": [1, 3, 4]})
    assert [len(cut.train), len(cut.val), len(cut.test)] == [300, 150, 150]
    listed = load({"files": [f"{tmp_path}/test.npz", f"{tmp_path}/train.csv",
                             f"{tmp_path}/val.csv"], "split": [0.5, 0.25, 0.25],
                   "split_seed": 1, "image_shape": [1, 3, 4]})
    assert listed.digest == cut.digest  # the folder's files, by name
    assert given.image_shape == (1, 3, 4)  # from test.npz; the CSV files are flat
    sizes = load({"files": str(tmp_path), "train_size": 50, "test_size": 10})
    assert [len(sizes.train), len(sizes.val), len(sizes.test)] == [50, 100, 10]


def test_pixels_are_uint8_and_csv_features_float32_as_written(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 4), dtype=np.uint8)
    y = np.arange(30) % 2
    write_csv(tmp_path / "all.csv", x, y)
    rule = {"files": str(tmp_path / "all.csv"), "split": [0.6, 0.2, 0.2]}
    as_features = load(rule)
    assert as_features.train.x.dtype == np.float32 and as_features.train.x.max() > 1
    pixels = load({**rule, "pixels": True})
    assert pixels.train.x.dtype == np.uint8
    np.testing.assert_array_equal(pixels.train.x, as_features.train.x)
    assert pixels.train.features().max() <= 1.0


def test_a_spec_with_files_round_trips_and_hashes_like_before_for_mnist(tmp_path):
    values = {"study": {"name": "x"}, "data": {
        "files": ["a.csv", {"images": "i.idx", "labels": "l.idx"}], "split": [0.8, 0.1, 0.1]}}
    spec = StudySpec.from_dict(values)
    assert spec.data.split_seed == 0 and spec.data.stratify is True
    assert StudySpec.from_dict(spec.to_dict()) == spec
    assert StudySpec.from_dict(spec.to_dict()).digest() == spec.digest()
    mnist = StudySpec.from_dict({"study": {"name": "x"}})
    assert mnist.to_dict()["data"] == {"name": "mnist"}
    assert mnist.digest() == StudySpec.from_dict({"study": {"name": "x"},
                                                  "data": {"name": "mnist"}}).digest()


# --- bad input: one line naming the file or field ----------------------------------------

BAD_SPECS = [
    ({"name": "cifar"}, r"^data.name: expected one of mnist, digits, got 'cifar'$"),
    ({"name": "digits", "files": "x"}, r"^data: expected one source of data, got name and "
                                       r"files$"),
    ({"train": "a.csv", "test": "c.csv"}, r"^data.val: expected a file for each of train, val "
                                          r"and test \(given splits\), got none for val$"),
    ({"files": ["a.csv"]}, r"^data.split: expected \[train, val, test\] fractions to cut the "
                           r"files into splits, got none$"),
    ({"files": "a.csv", "split": [0.8, 0.3, 0.1]}, r"^data.split: expected \[train, val, "
                                                   r"test\] fractions, three positive numbers "
                                                   r"summing to 1, got \[0.8, 0.3, 0.1\]$"),
    ({"train": "a", "val": "b", "test": "c", "split": [0.8, 0.1, 0.1]},
     r"^data.split: only with data.files"),
    ({"name": "digits", "n_classes": 10}, r"^data.n_classes: only for data from files"),
    ({"files": "a", "split_seed": 1}, r"^data.split_seed: only with data.split$"),
    ({"train": {"images": "a"}, "val": "b", "test": "c"},
     r"^data.train: expected a path or \{ images = PATH, labels = PATH \}"),
    ({"entry_point": "mypkg.data"}, r"^data.entry_point: expected 'package.module:function' "),
    ({"files": "a", "image_shape": [1, 8]}, r"^data.image_shape: expected \[channels, height, "
                                            r"width\]"),
]


@pytest.mark.parametrize(("data", "message"), BAD_SPECS)
def test_a_bad_data_section_is_named(data, message):
    with pytest.raises(NNLabError, match=message):
        StudySpec.from_dict({"study": {"name": "x"}, "data": data})


def given(tmp_path, **replace: str) -> dict:
    """Given CSV splits of blobs in tmp_path, with `replace` as the text of some files."""
    spec = {split: write_blobs(tmp_path, "csv", rows, split) for split, rows in
            SPLIT_ROWS.items()}
    for split, text in replace.items():
        (tmp_path / f"{split}.csv").write_text(text)
    return spec


def test_files_that_do_not_parse_are_named(tmp_path):
    spec = given(tmp_path, val="1,2,3\n1,2,oops\n")
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.csv: expected 3 comma-separated "
                                         r"numbers per row \(label \+ 2 features\)"):
        load(spec)
    (tmp_path / "val.npz").write_bytes(b"not a zip")
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.npz: not a readable .npz file"):
        load({**spec, "val": str(tmp_path / "val.npz")})
    (tmp_path / "val.parquet").write_bytes(b"PAR1 nothing")
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.parquet: not a readable parquet"):
        load({**spec, "val": str(tmp_path / "val.parquet")})
    (tmp_path / "val.txt").write_text("1,2")
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.txt: expected a .csv, .csv.gz, "
                                         r".npz, .parquet file"):
        load({**spec, "val": str(tmp_path / "val.txt")})
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/nope.csv: no such file$"):
        load({**spec, "val": str(tmp_path / "nope.csv")})
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 12)), y=np.array([0.0, 1.0, 2.0]))
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/flat.npz: y: expected 3 integer "
                                         r"labels"):
        load({**spec, "val": str(tmp_path / "flat.npz")})
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.csv: expected examples like "
                                         rf"{tmp_path}/train.csv's \(12 float32 features"):
        load(given(tmp_path, val="1,2,3\n"))
    with pytest.raises(NNLabError, match=r"^data.image_shape: expected channels x height x "
                                         r"width = 12 .* got \[1, 8, 8\]"):
        load({**given(tmp_path), "image_shape": [1, 8, 8]})
    with pytest.raises(NNLabError, match=rf"^data.files: {tmp_path}/none: no such file"):
        load({"files": str(tmp_path / "none")})
    with pytest.raises(NNLabError, match=rf"^data.files: {tmp_path}: expected one val split: "
                                         r".* found val.csv, val.npz, val.parquet$"):
        load({"files": str(tmp_path)})


def test_labels_outside_0_to_k_minus_1_are_named_by_file_and_row(tmp_path):
    spec = given(tmp_path)
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/train.csv: row 3: label must be an "
                                         r"integer in 0..1, got 2"):
        load({**spec, "n_classes": 2})
    x, y = blobs(n=3)
    write_csv(tmp_path / "val.csv", x.round(), np.array([0, -1, 2]), header=True)
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.csv: row 3: label must be an "
                                         r"integer >= 0, got -1"):
        load(spec)
    np.savez(tmp_path / "val.npz", x=x, y=np.array([0, 7, 1]))
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/val.npz: example 1: label must be an "
                                         r"integer in 0..2, got 7"):
        load({**spec, "val": str(tmp_path / "val.npz"), "n_classes": 3})


def test_pixels_out_of_range_are_named(tmp_path):
    np.savez(tmp_path / "all.npz", x=np.array([[0, 3], [256, 1], [1, 1]]), y=np.arange(3) % 2)
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/all.npz: example 1: pixels must be "
                                         r"integers in 0..255"):
        load({"files": str(tmp_path / "all.npz"), "split": [0.4, 0.3, 0.3], "pixels": True})


def test_an_example_in_two_given_splits_is_named_in_both(tmp_path):
    spec = given(tmp_path)
    frame = pd.read_csv(tmp_path / "test.csv", header=None)
    train = pd.read_csv(tmp_path / "train.csv", header=None)
    frame.iloc[4] = train.iloc[9]
    frame.to_csv(tmp_path / "test.csv", index=False, header=False)
    with pytest.raises(NNLabError, match=rf"^{tmp_path}/test.csv: row 5 is the same example as "
                                         rf"{tmp_path}/train.csv row 10: given splits must be "
                                         r"disjoint \(train and test share 1\)$"):
        load(spec)


def test_entry_points_that_do_not_import_or_return_no_dataset_are_named():
    assert load({"entry_point": "tests.data_entry:blobs_dataset"}).digest == \
        blobs_dataset().digest
    with pytest.raises(NNLabError, match=r"^data.entry_point: cannot import 'tests.nope' "
                                         r"\(ModuleNotFoundError: No module named 'tests.nope'\)"):
        load({"entry_point": "tests.nope:load"})
    with pytest.raises(NNLabError, match=r"^data.entry_point: module 'tests.data_entry' has no "
                                         r"function 'nope'$"):
        load({"entry_point": "tests.data_entry:nope"})
    with pytest.raises(NNLabError, match=r"^data.entry_point: tests.data_entry:not_a_dataset "
                                         r"returned dict; expected a nnlab.datasets.Dataset$"):
        load({"entry_point": "tests.data_entry:not_a_dataset"})
    with pytest.raises(NNLabError, match=r"^data.entry_point: tests.data_entry:broken raised "
                                         r"ValueError: no data here$"):
        load({"entry_point": "tests.data_entry:broken"})
