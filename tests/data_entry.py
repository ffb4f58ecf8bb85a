"""Entry points the tests name as "tests.data_entry:<function>": data sets and model
builders, good and bad, as a user's own module would hold them."""

from __future__ import annotations

import numpy as np

from nnlab.datasets import Dataset, Split
from nnlab.nn import Dense, Dropout, Flatten, Layer, make_activation
from nnlab.train_config import TrainConfig


def blobs(n: int = 600, seed: int = 0, spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """n examples of 3 classes: x (n, 12) float32, a Gaussian blob of std `spread` around
    each class's centre; y (n,) uint8 in 0..2."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3).astype(np.uint8)
    centres = rng.normal(0.0, 1.0, (3, 12))
    x = centres[y] + rng.normal(0.0, spread, (n, 12))
    return x.astype(np.float32), y


def blobs_dataset() -> Dataset:
    """blobs() as 400 train / 100 val / 100 test examples, each a 3 x 4 image."""
    x, y = blobs()
    cut = {"train": slice(0, 400), "val": slice(400, 500), "test": slice(500, 600)}
    return Dataset("blobs", n_classes=3, image_shape=(1, 3, 4),
                   **{name: Split(x[rows], y[rows]) for name, rows in cut.items()})


def broken() -> Dataset:
    raise ValueError("no data here")


def not_a_dataset() -> dict:
    return {"x": np.zeros((3, 4))}


def small_net(in_shape: tuple[int, int, int], n_classes: int,
              config: TrainConfig) -> list[Layer]:
    """An MLP with dropout, which nnlab's MLP has not: flatten, dense 16 with the config's
    activation, dropout 0.1, then one output per class."""
    return [Flatten(), Dense(16, init=config.init), make_activation(config.activation),
            Dropout(0.1), Dense(n_classes, init=config.init)]


def three_outputs(in_shape: tuple[int, int, int], n_classes: int,
                  config: TrainConfig) -> list[Layer]:
    return [Flatten(), Dense(3)]


def no_flatten(in_shape: tuple[int, int, int], n_classes: int,
               config: TrainConfig) -> list[Layer]:
    return [Dense(n_classes)]


def not_layers(in_shape: tuple[int, int, int], n_classes: int, config: TrainConfig) -> str:
    return "dense16"
