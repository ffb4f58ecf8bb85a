"""The [data] section of a study spec: where the data come from, how files are read and
split, and how many examples of each split to use (docs/data.md).

```toml
[data]
name = "digits"           # one source: name, files, train + val + test, or entry_point
# files = ["a.csv", { images = "i.idx", labels = "l.idx" }]   # with a split rule:
# split = [0.8, 0.1, 0.1]  (train, val, test)
# split_seed = 0
# stratify = true
# n_classes = 10          # files only, also image_shape = [1, 8, 8] and pixels = true
# train_size = 500        # any source: the first n examples of a split
```
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nnlab.data_files import Source
from nnlab.datasets import SPLITS, Dataset, Split
from nnlab.entry_points import FORM_TEXT as ENTRY_POINT_FORM
from nnlab.entry_points import call_entry_point, is_entry_point
from nnlab.errors import ConfigError, DataError, is_int, is_number
from nnlab.validation import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    Boolean,
    Constraint,
    Integers,
    checked_fields,
)

DATASETS = ("mnist", "digits")
SIZE_KEYS = ("train_size", "val_size", "test_size")
FILE_KEYS = ("split", "split_seed", "stratify", "n_classes", "image_shape", "pixels")
DATA_KEYS = ("name", "files", *SPLITS, *FILE_KEYS, "entry_point", "dataset", *SIZE_KEYS)
CONSTRAINTS: dict[str, Constraint] = {
    "split_seed": NON_NEGATIVE_INT, "stratify": Boolean(), "n_classes": Integers(2),
    "pixels": Boolean(), **{key: POSITIVE_INT for key in SIZE_KEYS}}
"""The own constraint of each [data] key that holds one value; the sources, the split and
image_shape, and which keys go together, are checked by `data_spec`."""


@dataclass(frozen=True)
class DataSpec:
    """The data a study trains on: one source, how files are read and split, and optional
    sizes (the first n examples of each split). See docs/data.md.

    Sources, one of: `name` (built in: mnist, the default, or digits); `files` (a folder of
    given splits, or the files, or a folder of them, to cut by the `split` rule);
    `train`, `val` and `test` (given splits, one source each); `entry_point`
    ("package.module:function" returning a Dataset); `dataset` (the name of a Dataset
    object given to `Study(spec, data=...)`). A file source is a path, or an IDX pair
    (images, labels) written { images = PATH, labels = PATH }; paths are relative to the
    current folder. `given` holds the object of `dataset`, `digest` the content digest a
    study expects; neither is part of the spec (its TOML, digest or equality).
    """

    name: str | None = "mnist"
    files: Source | tuple[Source, ...] | None = None
    train: Source | None = None
    val: Source | None = None
    test: Source | None = None
    split: tuple[float, float, float] | None = None
    split_seed: int | None = None
    stratify: bool | None = None
    n_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None
    pixels: bool | None = None
    entry_point: str | None = None
    dataset: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    given: Dataset | None = field(default=None, compare=False, repr=False)
    digest: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key in DATA_KEYS:
            value = getattr(self, key)
            if key == "files" and isinstance(value, tuple):
                values[key] = [_source_value(v) for v in value]
            elif key in SPLITS:
                if value is not None:
                    values[key] = _source_value(value)
            elif value is not None:
                values[key] = list(value) if isinstance(value, tuple) else value
        return values

    def with_dataset(self, data: object) -> DataSpec:
        """This spec with the Dataset object `data` as its source (`Study(spec, data=...)`):
        its `dataset` key names it; the spec may hold sizes, but no other source."""
        if not isinstance(data, Dataset):
            raise ConfigError("data", "a nnlab.datasets.Dataset", shown=f"{type(data).__name__}")
        other = [key for key in ("files", *SPLITS, "entry_point") if getattr(self, key)]
        if self.name not in (None, "mnist") or other:
            raise ConfigError("data", "", problem=f"given a Dataset object and a [data] source "
                              f"({(other or ['name'])[0]}); give one or the other")
        return replace(self, name=None, dataset=data.name, given=data)

    def with_digest(self, digest: str) -> DataSpec:
        """This spec, expecting data of content digest `digest` (see `check`)."""
        return replace(self, digest=digest)

    def check(self, data: Dataset) -> None:
        """NNLabError unless `data` has the digest this spec expects (when it expects one)."""
        if self.digest is not None and data.digest != self.digest:
            raise DataError(f"data: {self.source()} has digest {data.digest[:16]}, the study's "
                            f"data {self.digest[:16]}: refusing to train on other data")

    def source(self) -> str:
        """Where the data comes from, in words (files as absolute paths)."""
        if self.dataset is not None:
            return f"a Dataset object {self.dataset!r} given to Study(spec, data=...)"
        if self.entry_point is not None:
            return f"entry point {self.entry_point}"
        if self.train is not None:
            return "files: " + ", ".join(f"{split}={_source_text(getattr(self, split))}"
                                         for split in SPLITS)
        if self.files is not None:
            files = ([self.files] if isinstance(self.files, str) else list(self.files))
            text = "files: " + ", ".join(_source_text(f) for f in files)
            if self.split is None:
                return text + " (a folder of train, val and test files)"
            return (text + f" split {list(self.split)} with seed {self.split_seed}, "
                    + ("stratified" if self.stratify else "not stratified"))
        if self.name == "digits":
            return "digits (scikit-learn's 8x8 digits, stratified 60/20/20 split, seed 0)"
        return str(self.name)

    def stamp(self) -> tuple[tuple[str, int, int], ...] | None:
        """(path, size, modification time) of every file this spec reads (files in a folder
        included): what tells data loaded before from files changed since. None for the
        other sources."""
        if self.train is not None:
            sources: list[Source] = [getattr(self, split) for split in SPLITS]
        elif self.files is not None:
            sources = [self.files] if isinstance(self.files, str) else list(self.files)
        else:
            return None
        paths = [Path(p) for source in sources
                 for p in (source if isinstance(source, tuple) else (source,))]
        files = [f for p in paths for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
        return tuple((str(f), s.st_size, s.st_mtime_ns) for f in files if f.is_file()
                     for s in [f.stat()])

    def load(self) -> Dataset:
        """The data set, cut to the requested sizes (an error if a split is too small)."""
        data = self._load_source()
        if all(getattr(self, f"{split}_size") is None for split in SPLITS):
            return data
        splits = {}
        for split_name in SPLITS:
            split: Split = getattr(data, split_name)
            size = getattr(self, f"{split_name}_size")
            if size is not None and size > len(split):
                raise ConfigError(f"data.{split_name}_size", f"an integer <= {len(split)} (the "
                                  f"{data.name} {split_name} split)", shown=f"{size}")
            splits[split_name] = split if size is None else Split(split.x[:size], split.y[:size])
        return Dataset(data.name, n_classes=data.n_classes, image_shape=data.image_shape,
                       **splits)

    def _load_source(self) -> Dataset:
        from nnlab.data import load_digits, load_mnist
        from nnlab.data_files import (
            folder_files,
            folder_splits,
            load_given_splits,
            load_split_rule,
        )

        if self.dataset is not None:
            if self.given is None:
                raise ConfigError(
                    "data.dataset", "", problem=f"{self.dataset!r} is a Dataset object given "
                    "from Python (Study(spec, data=...)): give it again that way, or name the "
                    "data with data.name, files, train/val/test or entry_point")
            return self.given
        if self.entry_point is not None:
            data = call_entry_point(self.entry_point, "data.entry_point")
            if not isinstance(data, Dataset):
                raise ConfigError("data.entry_point", "a nnlab.datasets.Dataset",
                                  problem=f"{self.entry_point} returned {type(data).__name__}")
            return data
        form: dict[str, Any] = {"n_classes": self.n_classes, "image_shape": self.image_shape,
                "pixels": bool(self.pixels)}
        if self.train is not None:
            return load_given_splits({split: getattr(self, split) for split in SPLITS}, **form)
        if self.files is not None:
            folder = Path(self.files) if isinstance(self.files, str) else None
            if folder is not None and folder.is_dir():
                if self.split is None:
                    return load_given_splits(folder_splits(folder), **form)
                sources = folder_files(folder)
            elif folder is not None and not folder.exists():
                raise DataError(f"data.files: {folder}: no such file or folder")
            elif self.split is None:
                raise ConfigError("data.split", "[train, val, test] fractions to cut "
                                  f"{self.files} into splits (or give a folder of train, val and "
                                  "test files, or data.train, val and test)")
            else:
                sources = [self.files] if isinstance(self.files, str) else list(self.files)
            # data_spec() gives split_seed and stratify their defaults with a split
            assert self.split_seed is not None and self.stratify is not None
            return load_split_rule(sources, self.split, self.split_seed, self.stratify, **form)
        return load_digits() if self.name == "digits" else load_mnist()


def data_spec(table: dict[str, Any]) -> DataSpec:
    """The [data] table `table` (its keys already checked against DATA_KEYS) as a DataSpec;
    NNLabError naming the key for anything else than docs/data.md describes."""
    kinds: list[str] = [key for key in ("name", "files", "entry_point", "dataset")
                        if key in table]
    kinds += ["train/val/test"] if any(split in table for split in SPLITS) else []
    if len(kinds) > 1:
        raise ConfigError("data", "one source of data", shown=f"{' and '.join(kinds)}")
    kind = kinds[0] if kinds else "name"
    values: dict[str, Any] = {} if kind == "name" else {"name": None}
    if kind == "name":
        name = table.get("name", "mnist")
        if name not in DATASETS:
            raise ConfigError("data.name", f"one of {', '.join(DATASETS)}", name)
        values["name"] = name
    elif kind == "files":
        files = table["files"]
        if isinstance(files, list) and files:
            values["files"] = tuple(_source(f"data.files[{i}]", f) for i, f in enumerate(files))
        elif isinstance(files, dict):
            values["files"] = (_source("data.files", files),)
        else:
            values["files"] = _path("data.files", files)
    elif kind == "train/val/test":
        for split in SPLITS:
            if split not in table:
                raise ConfigError(f"data.{split}", "a file for each of train, val and test "
                                  "(given splits)", shown=f"none for {split}")
            values[split] = _source(f"data.{split}", table[split])
    elif kind == "entry_point":
        if not is_entry_point(table["entry_point"]):
            raise ConfigError("data.entry_point", f"{ENTRY_POINT_FORM} returning a "
                              "nnlab.datasets.Dataset", table['entry_point'])
        values["entry_point"] = table["entry_point"]
    else:
        values["dataset"] = _text("data.dataset", table["dataset"])
    for key in FILE_KEYS:
        if key in table and kind not in ("files", "train/val/test"):
            raise ConfigError(f"data.{key}", "", problem="only for data from files (data.files "
                              "or data.train, val and test)")
    values.update(_split_rule(table, kind))
    values.update(checked_fields("data", CONSTRAINTS, table))
    if "image_shape" in table:
        shape = table["image_shape"]
        if not (isinstance(shape, list) and len(shape) == 3
                and all(is_int(n) and n >= 1 for n in shape)):
            raise ConfigError("data.image_shape", "[channels, height, width], three positive "
                              "integers", shape)
        values["image_shape"] = tuple(shape)
    return DataSpec(**values)


def _split_rule(table: dict[str, Any], kind: str) -> dict[str, Any]:
    """split, and the defaults of split_seed (0) and stratify (true), given with
    data.files; `data_spec` checks the values of split_seed and stratify given."""
    if "split" not in table:
        for key in ("split_seed", "stratify"):
            if key in table:
                raise ConfigError(f"data.{key}", "", problem="only with data.split")
        if kind == "files" and isinstance(table["files"], list | dict):
            raise ConfigError("data.split", "[train, val, test] fractions to cut the files into "
                              "splits", shown="none")
        return {}
    if kind != "files":
        raise ConfigError("data.split", "", problem="only with data.files (given splits are "
                          "not cut)")
    split = table["split"]
    if not (isinstance(split, list) and len(split) == 3 and all(
            is_number(f) and f > 0 for f in split) and math.isclose(sum(split), 1.0)):
        raise ConfigError("data.split", "[train, val, test] fractions, three positive numbers "
                          "summing to 1", split)
    return {"split": tuple(float(f) for f in split), "split_seed": 0, "stratify": True}


def _source(where: str, value: object) -> Source:
    """A file source: a path, or an IDX pair { images = PATH, labels = PATH }."""
    if isinstance(value, dict):
        if set(value) != {"images", "labels"}:
            raise ConfigError(where, "a path or { images = PATH, labels = PATH } (an IDX "
                              f"pair), got {value!r}")
        return (_path(f"{where}.images", value["images"]),
                _path(f"{where}.labels", value["labels"]))
    return _path(where, value)


def _path(where: str, value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "a path", value)
    return value


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "a name", value)
    return value


def _source_value(source: Source) -> str | dict[str, str]:
    """A file source as the TOML spec writes it."""
    return {"images": source[0], "labels": source[1]} if isinstance(source, tuple) else source


def _source_text(source: Source) -> str:
    """A file source as an absolute path (an IDX pair: both)."""
    if isinstance(source, tuple):
        return " + ".join(str(Path(p).resolve()) for p in source)
    return str(Path(source).resolve())
