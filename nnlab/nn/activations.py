"""Element-wise activation layers: sigmoid, tanh, relu, leaky_relu, elu.

Each is its own parameter-free layer (forward and backward side by side). They are not
fused into Dense: the element-wise pass costs the same either way, and the only saving
of fusion, one Python call per layer (~1 us), is noise next to a batch-128 GEMM; the
batch-1 case has its own fused path (`MLP.sgd_step`), which uses `derivative_from_output`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from nnlab.errors import ConfigError
from nnlab.nn.layers import Layer


class Activation(Layer):
    """y = f(x) element-wise. In train mode writes y into a reused buffer and keeps what
    the backward pass needs."""

    def build(
        self, in_shape: tuple[int, ...], rng: np.random.Generator, dtype: type
    ) -> tuple[int, ...]:
        return tuple(in_shape)

    def apply(self, x: np.ndarray, out: np.ndarray) -> None:
        """Write f(x) into out (out may be x)."""
        raise NotImplementedError

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        y = self.buffer_like("y", x) if train else np.empty_like(x)
        self.apply(x, y)
        if train:
            self._y = y
        return y

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        grad_x = self.buffer_like("grad_x", grad_y)
        self.multiply_derivative(self._y, grad_y, grad_x)
        return grad_x

    def multiply_derivative(self, y: np.ndarray, grad_y: np.ndarray, out: np.ndarray) -> None:
        """out = grad_y * f'(x), with f' written in terms of the output y = f(x)."""
        raise NotImplementedError

    def zeros(self, like: np.ndarray) -> np.ndarray:
        """Zeros shaped and laid out like `like`, to take maximum/minimum against: numpy
        vectorises those for two arrays but not for an array and the scalar 0 (on an AVX2
        EPYC, relu of 128 x 256 float32: 5.8 against 21 us; of 50000 x 10: 94 against
        356 us)."""
        return self.buffer_like("zeros", like, zeros=True)


SIGMOID_BY_EXP_FROM = 1536
"""Arrays of at least this many elements take sigmoid's exp form (see `sigmoid`): alone the
two forms take about the same time from ~1500 to ~2000 elements (on an AVX2 EPYC, 1600
float32: expit 7.1 us, the exp form 7.5 us), and a stack of runs (nnlab.nn.stacked), which
takes the form of one run's size, computes 11 runs' 1600 elements by the exp form in 35
against expit's 95 us."""


def sigmoid(x: np.ndarray, out: np.ndarray | None = None, size: int | None = None
            ) -> np.ndarray:
    """1 / (1 + exp(-x)) element-wise, without overflow warnings; written into out if given.

    Large arrays are computed as written, in four vectorised numpy passes (exp has SIMD
    loops on AVX2 and AVX-512 CPUs): on an AVX2-only EPYC, 5000 x 36 float32 takes 310 us,
    against 985 us for scipy's expit, which is not vectorised, and 770 us for
    0.5 * tanh(x / 2) + 0.5 (numpy's float32 tanh is vectorised only for AVX-512). Below
    SIGMOID_BY_EXP_FROM elements the one call of expit costs less (alone). The two agree within
    1 ulp of 1 in absolute terms and keep relative precision for small outputs; exp(-x)
    overflows to inf for x < -88 (float32), giving 0 where expit gives a value below
    1e-38.

    `size` (default x.size) picks the form: x that stacks several runs' arrays
    (nnlab.nn.stacked) passes the size of one run's, so that each run gets the values it
    gets alone."""
    if (x.size if size is None else size) < SIGMOID_BY_EXP_FROM:
        return expit(x, out=out)
    out = np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.divide(1, out, out=out)


class Sigmoid(Activation):
    """1 / (1 + exp(-x)), see `sigmoid`."""

    def apply(self, x: np.ndarray, out: np.ndarray) -> None:
        sigmoid(x, out)

    def multiply_derivative(self, y: np.ndarray, grad_y: np.ndarray, out: np.ndarray) -> None:
        np.subtract(1, y, out=out)
        out *= y
        out *= grad_y


class Tanh(Activation):
    def apply(self, x: np.ndarray, out: np.ndarray) -> None:
        np.tanh(x, out=out)

    def multiply_derivative(self, y: np.ndarray, grad_y: np.ndarray, out: np.ndarray) -> None:
        np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
        out *= grad_y


class ReLU(Activation):
    """max(x, 0); derivative 0 at x = 0."""

    def apply(self, x: np.ndarray, out: np.ndarray) -> None:
        np.maximum(x, self.zeros(x), out=out)

    def multiply_derivative(self, y: np.ndarray, grad_y: np.ndarray, out: np.ndarray) -> None:
        np.multiply(grad_y, y > 0, out=out)


class LeakyReLU(Activation):
    """x for x > 0, alpha * x otherwise (alpha = 0.01)."""

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        self.alpha = alpha

    def apply(self, x: np.ndarray, out: np.ndarray) -> None:
        np.maximum(x, x * x.dtype.type(self.alpha), out=out)

    def multiply_derivative(self, y: np.ndarray, grad_y: np.ndarray, out: np.ndarray) -> None:
        # y > 0 exactly where x > 0 (alpha > 0)
        slope = np.where(y > 0, 1, self.alpha).astype(grad_y.dtype, copy=False)
        np.multiply(grad_y, slope, out=out)


class ELU(Activation):
    """x for x > 0, alpha * (exp(x) - 1) otherwise (alpha = 1).

    exp(x) - 1 rather than expm1(x): numpy's float32 expm1 is not vectorised on AVX2 CPUs
    (50000 x 32 float32 on an EPYC: 22 ms, against 3 ms for exp). The outputs agree with
    alpha * expm1 within 1 ulp of alpha in absolute terms; positive inputs pass exactly."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha

    def apply(self, x: np.ndarray, out: np.ndarray) -> None:
        zeros = self.zeros(x)
        negative = np.minimum(x, zeros, out=self.buffer_like("negative", x))
        np.exp(negative, out=negative)
        negative -= 1  # exactly 0 where x > 0
        if self.alpha != 1:
            negative *= x.dtype.type(self.alpha)
        np.maximum(x, zeros, out=out)
        out += negative

    def multiply_derivative(self, y: np.ndarray, grad_y: np.ndarray, out: np.ndarray) -> None:
        # f'(x) = y + alpha for x <= 0, 1 for x > 0 (where y > 0); min(y, 0) + alpha is
        # both when alpha is 1
        np.minimum(y, self.zeros(y), out=out)
        out += y.dtype.type(self.alpha)
        if self.alpha != 1:
            np.copyto(out, 1, where=y > 0)
        out *= grad_y


ACTIVATIONS: dict[str, type[Activation]] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
}


def check_activation(name: object, field: str) -> None:
    """Raise ConfigError naming `field` unless `name` is a known activation."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ConfigError(field, f"one of {', '.join(ACTIVATIONS)}", name)


def make_activation(name: str, field: str = "activation") -> Activation:
    """The activation layer called `name`."""
    check_activation(name, field)
    return ACTIVATIONS[name]()
