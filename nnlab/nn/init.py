"""Weight initialisations: the standard deviation each scheme gives a weight array."""

from __future__ import annotations

import math

import numpy as np

from nnlab.errors import ConfigError

INITS = ("normal", "xavier", "glorot", "he", "kaiming", "lecun")
"""normal: N(0, std^2) with a given std (default 0.01); xavier = glorot:
std sqrt(2 / (fan_in + fan_out)); he = kaiming: std sqrt(2 / fan_in);
lecun: std 1 / sqrt(fan_in) (the N(0, 1/sqrt(n_in)) of the classic 784-100-10 recipe)."""

DEFAULT_NORMAL_STD = 0.01


def check_init(init: object, std: object, init_field: str, std_field: str) -> None:
    """Raise ConfigError naming the field unless `init` is a known scheme and `std` fits it."""
    if init not in INITS:
        raise ConfigError(init_field, f"one of {', '.join(INITS)}", init)
    if std is None:
        return
    if init != "normal":
        raise ConfigError(std_field, "None unless init is 'normal'", std,
                          shown=f"{std!r} with init={init!r}")
    if (
        isinstance(std, bool)
        or not isinstance(std, int | float)
        or not math.isfinite(std)
        or std <= 0
    ):
        raise ConfigError(std_field, "a positive number", std)


def init_std(init: str, fan_in: int, fan_out: int, std: float | None = None) -> float:
    """The standard deviation of scheme `init` for a weight with these fans."""
    if init == "normal":
        return DEFAULT_NORMAL_STD if std is None else float(std)
    if init in ("xavier", "glorot"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init in ("he", "kaiming"):
        return math.sqrt(2.0 / fan_in)
    if init == "lecun":
        return 1.0 / math.sqrt(fan_in)
    raise ConfigError("init", f"one of {', '.join(INITS)}", init)


def init_weights(
    init: str,
    shape: tuple[int, ...],
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    dtype: type = np.float32,
    std: float | None = None,
) -> np.ndarray:
    """A zero-mean normal weight array of `shape` with the scheme's std.

    Draws in float64 and casts, so float32 and float64 models start from the same weights
    (up to rounding) for the same generator state.
    """
    scale = init_std(init, fan_in, fan_out, std)
    return (rng.standard_normal(shape) * scale).astype(dtype)
