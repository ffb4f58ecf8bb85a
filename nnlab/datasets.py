"""In-memory data sets: the splits a training run reads, independent of where they came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    x is flat, (n, prod(image_shape)).
    """

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int = 10
    image_shape: tuple[int, int, int] = (1, 28, 28)

    @property
    def n_features(self) -> int:
        return self.train.x.shape[1]
