"""Your own data from files: IDX, CSV, npz or parquet, in given splits or cut by a split rule.

A source is one file of examples, x and y together: a CSV (label first, then the
features; `.csv` or `.csv.gz`), an npz (arrays `x` (n, ...) and `y` (n,)) or a parquet
table (an integer `label` column, the other columns features); or an IDX pair, an images
file (n, ...) and a labels file (n,). The features keep the dtype the file stores, except
CSV's, which are float32 as written; uint8 features are pixels (scaled by /255 in
training), and `pixels=True` makes any integer features in 0..255 pixels.

Given splits: one source per split (train, val, test), declared disjoint, so an example
(a row of features) found in two splits is an error. A split rule: the sources' examples
in the order given, cut by `nnlab.datasets.split_by_rule`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnlab.datasets import SPLITS, Dataset, Split, split_by_rule
from nnlab.errors import ConfigError, DataError
from nnlab.loaders import (
    check_labels,
    csv_has_header,
    label_array,
    read_csv,
    read_idx,
    read_npz,
    read_parquet,
)

Source = str | tuple[str, str]
"""A file of examples (CSV, npz or parquet), or an IDX pair (images file, labels file)."""

SUFFIXES = (".csv", ".csv.gz", ".npz", ".parquet")


@dataclass(frozen=True)
class Examples:
    """The examples of one source: x (n, n_features), y (n,) integer labels, the per-example
    shape the arrays give (None when they are flat), and how errors name the source and
    its rows (CSV: `first_row`, the file's line of the first example; else None: examples
    are counted from 0)."""

    where: str
    x: np.ndarray
    y: np.ndarray
    image_shape: tuple[int, int, int] | None = None
    first_row: int | None = None

    def row(self, i: int) -> str:
        return f"example {i}" if self.first_row is None else f"row {i + self.first_row}"


def suffix(path: Path) -> str:
    """The data suffix of `path` (".csv.gz" counts as one), or ""."""
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), "")


def read_source(source: Source, pixels: bool) -> Examples:
    """The examples of one source (see the module docstring), checked: x numeric with one
    row per label, labels integers >= 0, at least one example."""
    if isinstance(source, tuple):
        images, labels = (Path(p) for p in source)
        x, y = read_idx(images), read_idx(labels)
        examples = _examples(f"{images} + {labels}", x, y, str(labels))
    else:
        path = Path(source)
        kind = suffix(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        if kind in (".csv", ".csv.gz"):
            x, y = read_csv(path, n_features=None, n_classes=None, pixels=pixels)
            return Examples(str(path), x, y, None, 1 + int(csv_has_header(path)))
        if kind == ".npz":
            arrays = read_npz(path, ("x", "y"))
            examples = _examples(str(path), arrays["x"], arrays["y"], f"{path}: y")
        elif kind == ".parquet":
            x, y = read_parquet(path)
            examples = _examples(str(path), x, y, f"{path}: label")
        else:
            raise DataError(f"{path}: expected a {', '.join(SUFFIXES)} file, or an IDX pair "
                            "{ images = PATH, labels = PATH }")
    return _as_pixels(examples) if pixels else examples


def _examples(where: str, x: np.ndarray, y: np.ndarray, labels_where: str) -> Examples:
    """Examples from arrays x (n, ...) and y (n,), flattening x and keeping its
    per-example image shape ((1, H, W) for (n, H, W), (C, H, W) for (n, C, H, W))."""
    if x.ndim < 2 or x.ndim > 4 or x.dtype.kind not in "uif" or not len(x):
        raise DataError(f"{where}: expected features x of shape (n, n_features), (n, height, "
                        f"width) or (n, channels, height, width) with n >= 1, numeric; got "
                        f"{x.dtype} of shape {x.shape}")
    if y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise DataError(f"{labels_where}: expected {len(x)} integer labels, one per example, "
                        f"got {y.dtype} of shape {y.shape}")
    check_labels(Path(where), y, None)
    image_shape = {2: None, 3: (1, *x.shape[1:]), 4: x.shape[1:]}[x.ndim]
    return Examples(where, x.reshape(len(x), -1), label_array(y), image_shape)


def _as_pixels(examples: Examples) -> Examples:
    """The examples with uint8 pixels; NNLabError naming the first example whose features
    are not integers in 0..255."""
    x = examples.x
    if x.dtype == np.uint8:
        return examples
    bad = np.flatnonzero(((x < 0) | (x > 255) | (x != np.round(x))).any(axis=1))
    if bad.size:
        raise DataError(f"{examples.where}: {examples.row(bad[0])}: pixels must be integers "
                        "in 0..255 (data.pixels = true)")
    return Examples(examples.where, x.astype(np.uint8), examples.y, examples.image_shape,
                    examples.first_row)


def folder_splits(folder: Path) -> dict[str, Source]:
    """The given splits in `folder`: for each of train, val and test one file
    `<split>.csv`, `.csv.gz`, `.npz` or `.parquet`, or an IDX pair `<split>-images*` and
    `<split>-labels*`."""
    sources: dict[str, Source] = {}
    for split in SPLITS:
        names = {f"{split}{s}" for s in SUFFIXES}
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower() in names)
        images, labels = (sorted(folder.glob(f"{split}-{kind}*")) for kind in ("images",
                                                                                 "labels"))
        if len(files) == 1 and not images and not labels:
            sources[split] = str(files[0])
        elif not files and len(images) == 1 and len(labels) == 1:
            sources[split] = (str(images[0]), str(labels[0]))
        else:
            found = ", ".join(p.name for p in [*files, *images, *labels]) or "none"
            raise DataError(
                f"data.files: {folder}: expected one {split} split: {split}.csv, .csv.gz, .npz "
                f"or .parquet, or an IDX pair {split}-images* and {split}-labels*; found "
                f"{found}")
    return sources


def folder_files(folder: Path) -> list[Source]:
    """Every CSV, npz or parquet file in `folder`, by name."""
    files: list[Source] = sorted(str(p) for p in folder.iterdir() if p.is_file() and suffix(p))
    if not files:
        raise DataError(f"data.files: {folder}: expected {', '.join(SUFFIXES)} files to "
                        "split, found none")
    return files


def load_given_splits(sources: dict[str, Source], n_classes: int | None,
                      image_shape: tuple[int, int, int] | None, pixels: bool) -> Dataset:
    """train / val / test from one source each; NNLabError naming the file for a source
    that does not read, examples unlike the others' (features, dtype, image shape), a label
    outside 0..n_classes-1, or an example found in two splits."""
    examples = {split: read_source(sources[split], pixels) for split in SPLITS}
    shape, n_classes = _common_form(list(examples.values()), n_classes, image_shape)
    _check_disjoint(examples)
    return Dataset("files", n_classes=n_classes, image_shape=shape,
                   **{split: Split(e.x, e.y) for split, e in examples.items()})


def load_split_rule(sources: list[Source], fractions: tuple[float, float, float], seed: int,
                    stratify: bool, n_classes: int | None,
                    image_shape: tuple[int, int, int] | None, pixels: bool) -> Dataset:
    """The examples of every source, in order, cut into train / val / test by the split
    rule (`split_by_rule`); NNLabError naming the file as for given splits."""
    examples = [read_source(source, pixels) for source in sources]
    shape, n_classes = _common_form(examples, n_classes, image_shape)
    x = np.concatenate([e.x for e in examples])
    y = label_array(np.concatenate([e.y for e in examples]))
    return split_by_rule("files", x, y, fractions, seed, stratify, n_classes, shape,
                         where="data.split")


def _common_form(examples: list[Examples], n_classes: int | None,
                 image_shape: tuple[int, int, int] | None
                 ) -> tuple[tuple[int, int, int], int]:
    """(image_shape, n_classes) of the examples of every source: the same number of features
    and dtype in each, labels in 0..n_classes-1. image_shape: as declared, else the shape
    the arrays give (the same in every source that gives one), else (1, 1, n_features);
    n_classes: as declared, else the largest label + 1."""
    first = examples[0]
    for other in examples[1:]:
        if other.x.shape[1] != first.x.shape[1] or other.x.dtype != first.x.dtype:
            raise DataError(f"{other.where}: expected examples like {first.where}'s "
                            f"({first.x.shape[1]} {first.x.dtype} features each), got "
                            f"{other.x.shape[1]} {other.x.dtype} features each")
    shaped = [e for e in examples if e.image_shape is not None]
    for other in shaped[1:]:
        if other.image_shape != shaped[0].image_shape and image_shape is None:
            raise DataError(f"{other.where}: expected images of shape {shaped[0].image_shape} "
                            f"like {shaped[0].where}'s, got {other.image_shape}")
    n_features = first.x.shape[1]
    shape = image_shape or next((e.image_shape for e in shaped if e.image_shape is not None),
                                (1, 1, n_features))
    if int(np.prod(shape)) != n_features:
        raise ConfigError("data.image_shape", f"channels x height x width = {n_features} (the "
                          f"features per example of {first.where})", shown=f"{list(shape)}")
    if n_classes is None:
        n_classes = max(2, max(int(e.y.max()) + 1 for e in examples))
    for e in examples:
        check_labels(Path(e.where), e.y, n_classes,
                     None if e.first_row is None else np.arange(len(e.y)) + e.first_row)
    channels, height, width = (int(n) for n in shape)
    return (channels, height, width), n_classes


def _check_disjoint(examples: dict[str, Examples]) -> None:
    """NNLabError naming both places of the first example (row of features) that two given
    splits share."""
    def rows(e: Examples) -> np.ndarray:
        x = np.ascontiguousarray(e.x)
        return x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()

    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            _, in_a, in_b = np.intersect1d(rows(examples[a]), rows(examples[b]),
                                           return_indices=True)
            if in_a.size:
                first = int(np.argmin(in_a))
                raise DataError(
                    f"{examples[b].where}: {examples[b].row(int(in_b[first]))} is the same "
                    f"example as {examples[a].where} {examples[a].row(int(in_a[first]))}: "
                    f"given splits must be disjoint ({a} and {b} share {in_a.size})")
