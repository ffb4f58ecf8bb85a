"""In-memory data sets: the splits a training run reads, independent of where they came from;
their content digest, and the seeded split rule that cuts one set of examples into three."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnlab.errors import ConfigError, DataError, is_integer

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split of a data set.

    x: (n, n_features) uint8 pixels 0..255 (or any real features); y: (n,) integer labels.
    """

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def features(self, dtype: type = np.float32) -> np.ndarray:
        """(n, n_features) array of `dtype`; uint8 pixels are scaled to [0, 1] by /255."""
        if self.x.dtype == np.uint8:
            return scale_pixels(self.x, dtype)
        return self.x.astype(dtype, copy=False)


def scale_pixels(pixels: np.ndarray, dtype: type, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 pixels (n, n_features) -> pixels / 255 in [0, 1], computed in `dtype` (the same
    bits as pixels.astype(dtype) / dtype(255)); written into out if given."""
    return np.divide(pixels, dtype(255.0), out=out, dtype=dtype)


@dataclass(frozen=True)
class Dataset:
    """train / val / test splits of a classification data set.

    `image_shape` is (channels, height, width) of one example, (1, 28, 28) for MNIST;
    x is flat, (n, prod(image_shape)). Checked when built: each split holds at least one
    example, x (n, prod(image_shape)) numeric and y (n,) integer labels in 0..n_classes-1;
    an error names the split and the field.
    """

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)

    def __post_init__(self) -> None:
        if not is_integer(self.n_classes) or self.n_classes < 2:
            raise ConfigError("Dataset.n_classes", "an integer >= 2", self.n_classes)
        shape = self.image_shape
        if (not isinstance(shape, tuple | list) or len(shape) != 3
                or not all(isinstance(n, int | np.integer) and n >= 1 for n in shape)):
            raise ConfigError("Dataset.image_shape", "(channels, height, width), three positive "
                              "integers", shape)
        for name in SPLITS:
            _check_split(getattr(self, name), f"Dataset.{name}", tuple(shape), self.n_classes)

    @property
    def n_features(self) -> int:
        return self.train.x.shape[1]

    @functools.cached_property
    def digest(self) -> str:
        """sha256 (hex) of the content as loaded: n_classes and image_shape, then for train,
        val and test the dtype, shape and bytes of x and of y. The name is not part of it:
        the same arrays under another name are the same data."""
        digest = hashlib.sha256(json.dumps(
            {"n_classes": int(self.n_classes),
             "image_shape": [int(n) for n in self.image_shape]}).encode())
        for name in SPLITS:
            split = getattr(self, name)
            for key, array in (("x", split.x), ("y", split.y)):
                digest.update(f"{name}.{key} {array.dtype.str} {array.shape}\n".encode())
                digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def identity(self, source: str) -> dict[str, Any]:
        """What a study records of its data: name, `source` (where it came from), digest,
        n_classes, image_shape, n_features and the split sizes."""
        return {"name": self.name, "source": source, "digest": self.digest,
                "n_classes": int(self.n_classes),
                "image_shape": [int(n) for n in self.image_shape],
                "n_features": int(self.n_features),
                "sizes": {name: len(getattr(self, name)) for name in SPLITS}}


def split_by_rule(name: str, x: np.ndarray, y: np.ndarray, fractions: tuple[float, ...],
                  seed: int, stratify: bool, n_classes: int,
                  image_shape: tuple[int, int, int], where: str = "split") -> Dataset:
    """Cut the examples x (n, n_features), y (n,) into train / val / test.

    fractions: (train, val, test), each > 0, summing to 1. Stratified: within each class
    (in label order) a permutation drawn from numpy's default_rng(seed) gives the first
    round(f_val * n_class) examples to val, the next round(f_test * n_class) to test and
    the rest to train; not stratified: the same over all examples at once. Each split keeps
    the examples in their original order. `where` names the rule in errors."""
    rng = np.random.default_rng(seed)
    groups = ([np.flatnonzero(y == label) for label in np.unique(y)] if stratify
              else [np.arange(len(y))])
    parts: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for group in groups:
        order = rng.permutation(group)
        n_val = int(np.floor(fractions[1] * len(order) + 0.5))
        n_test = int(np.floor(fractions[2] * len(order) + 0.5))
        parts["val"].append(order[:n_val])
        parts["test"].append(order[n_val:n_val + n_test])
        parts["train"].append(order[n_val + n_test:])
    splits = {}
    for split, indices in parts.items():
        rows = np.sort(np.concatenate(indices))
        if not len(rows):
            raise ConfigError(where, "", list(fractions), problem=f"the fractions "
                              f"{list(fractions)} leave the {split} split of {len(y)} examples "
                              "empty")
        splits[split] = Split(x[rows], y[rows])
    return Dataset(name, n_classes=n_classes, image_shape=image_shape, **splits)


def _check_split(split: object, where: str, image_shape: tuple[int, ...], n_classes: int
                 ) -> None:
    """Raise NNLabError naming `where` unless split is a Split of at least one example with
    x (n, prod(image_shape)) numeric and y (n,) integer labels in 0..n_classes-1."""
    if not isinstance(split, Split):
        raise ConfigError(where, "a Split(x, y)", shown=f"{type(split).__name__}")
    x, y = split.x, split.y
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype.kind not in "uif":
        raise DataError(f"{where}.x: expected a numeric array (n, n_features), got "
                        f"{_describe(x)}")
    if x.shape[1] != math.prod(image_shape):
        raise DataError(f"{where}.x: expected {math.prod(image_shape)} features per example "
                        f"(image_shape {image_shape}), got {x.shape[1]}")
    if not isinstance(y, np.ndarray) or y.shape != (len(x),) or y.dtype.kind not in "iu":
        raise DataError(f"{where}.y: expected {len(x)} integer labels, one per row of x, got "
                        f"{_describe(y)}")
    if not len(y):
        raise DataError(f"{where}: expected at least one example, got none")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= n_classes:
        raise DataError(f"{where}.y: expected labels in 0..{n_classes - 1} (n_classes), got "
                        f"{low}..{high}")


def _describe(array: object) -> str:
    if isinstance(array, np.ndarray):
        return f"{array.dtype} array of shape {array.shape}"
    return type(array).__name__
