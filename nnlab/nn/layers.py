"""The layer protocol shared by dense and convolutional networks; Dense, Flatten, Dropout.

A layer works on batches: `forward(x, train)` with x of shape (batch, *in_shape) keeps
what `backward(grad_y)` needs; backward fills `self.grads` (same keys and shapes as
`self.params`) and returns the gradient with respect to x.

Buffers: in train mode a layer may write its output (and backward its input gradient)
into an array it reuses on the next call with the same shape (`buffer`, `buffer_like`),
so results are valid until the layer's next forward/backward. Eval mode
(`train=False`) never returns a reused buffer.
"""

from __future__ import annotations

import numpy as np

from nnlab.errors import ConfigError, is_integer
from nnlab.nn.init import check_init, init_weights


class Layer:
    """Base of all layers.

    Attributes:
        params: name -> parameter array ({} for parameter-free layers).
        grads: name -> gradient array, same keys and shapes as params, set by backward.
        name: the field errors name the layer by; a model sets it to e.g.
            "layers[2] (Dense)".
        needs_input_grad: a model sets it False on its first layer, whose backward may
            then skip computing the input gradient and return None.
        rng: the train-time random stream for layers that need one (Dropout); a model sets
            it. Never the global RNG.
    """

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.name: str = type(self).__name__
        self.needs_input_grad: bool = True
        self.rng: np.random.Generator | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._like_buffers: dict[str, tuple[tuple, np.ndarray]] = {}

    def build(
        self, in_shape: tuple[int, ...], rng: np.random.Generator, dtype: type
    ) -> tuple[int, ...]:
        """Allocate parameters for per-example input shape `in_shape`; return the
        per-example output shape. Raises ConfigError naming the layer if in_shape does
        not fit."""
        return in_shape

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """x: (batch, *in_shape) -> y: (batch, *out_shape)."""
        raise NotImplementedError

    def backward(self, grad_y: np.ndarray) -> np.ndarray | None:
        """grad_y: (batch, *out_shape) -> grad_x: (batch, *in_shape); sets self.grads."""
        raise NotImplementedError

    def buffer(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A reusable uninitialised C-ordered array (reallocated when shape or dtype
        change)."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = np.empty(shape, dtype=dtype)
            self._buffers[key] = buf
        return buf

    def buffer_like(self, key: str, like: np.ndarray, zeros: bool = False) -> np.ndarray:
        """A reusable uninitialised array with like's shape, dtype and memory layout (so a
        channels-last view stays channels-last); with `zeros`, one filled with zeros
        when allocated, which callers only read."""
        layout = (like.shape, like.dtype, like.strides)
        cached = self._like_buffers.get(key)
        if cached is None or cached[0] != layout:
            array = np.zeros_like(like) if zeros else np.empty_like(like)
            cached = self._like_buffers[key] = (layout, array)
        return cached[1]


class Dense(Layer):
    """Affine layer y = x @ W + b; W: (n_in, n_out), b: (n_out,) (zero at init).

    Layout: W is kept Fortran-ordered, its memory W^T (n_out, n_in) row by row, and every
    product is computed with the units along its output's rows: y^T = W^T x^T (n_out,
    batch), returned as its transposed view y (batch, n_out); the weight gradient as
    grad_W^T = grad_y^T x, the input gradient as grad_x^T = W grad_y^T. So k networks
    stacked on one batch (nnlab.nn.stacked) put each run's units in whole panels of the
    BLAS kernel, where a wide product gives each run's block bit for bit.
    """

    def __init__(self, n_out: int, init: str = "xavier", init_std: float | None = None) -> None:
        super().__init__()
        if not is_integer(n_out) or n_out < 1:
            raise ConfigError("Dense.n_out", "a positive integer", n_out)
        check_init(init, init_std, "Dense.init", "Dense.init_std")
        self.n_out = int(n_out)
        self.init = init
        self.init_std = init_std
        self._x: np.ndarray  # the last train-mode input, which backward reads

    def build(
        self, in_shape: tuple[int, ...], rng: np.random.Generator, dtype: type
    ) -> tuple[int, ...]:
        if len(in_shape) != 1:
            raise ConfigError(self.name, "a flat per-example input (n_in,): put a Flatten "
                              "layer before it", tuple(in_shape), shown=f"shape {tuple(in_shape)}")
        n_in = int(in_shape[0])
        W = np.asfortranarray(init_weights(self.init, (n_in, self.n_out), n_in, self.n_out,
                                           rng, dtype, self.init_std))
        self.params = {"W": W, "b": np.zeros(self.n_out, dtype=dtype)}
        self.grads = {"W": np.zeros_like(W), "b": np.zeros(self.n_out, dtype=dtype)}
        return (self.n_out,)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """x: (batch, n_in) -> (batch, n_out), a transposed view of (n_out, batch)."""
        W, b = self.params["W"], self.params["b"]
        if not train:
            y_t = W.T @ x.T
            y_t += b[:, None]
            return y_t.T
        self._x = x
        y_t = self.buffer("y_t", (self.n_out, x.shape[0]), W.dtype)
        np.matmul(W.T, x.T, out=y_t)
        y_t += b[:, None]
        return y_t.T

    def backward(self, grad_y: np.ndarray) -> np.ndarray | None:
        """grad_y: (batch, n_out) -> grad_x: (batch, n_in) (a transposed view), or None if
        not needed."""
        x, W = self._x, self.params["W"]
        np.matmul(grad_y.T, x, out=self.grads["W"].T)
        np.sum(grad_y, axis=0, out=self.grads["b"])
        if not self.needs_input_grad:
            return None
        grad_x_t = self.buffer("grad_x_t", (x.shape[1], x.shape[0]), W.dtype)
        np.matmul(W, grad_y.T, out=grad_x_t)
        return grad_x_t.T


class Flatten(Layer):
    """Reshape (batch, *in_shape) to (batch, prod(in_shape)); a view, no copy."""

    def build(
        self, in_shape: tuple[int, ...], rng: np.random.Generator, dtype: type
    ) -> tuple[int, ...]:
        self._in_shape = tuple(in_shape)
        return (int(np.prod(in_shape)),)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        return grad_y.reshape(grad_y.shape[0], *self._in_shape)


class Dropout(Layer):
    """Inverted dropout: in train mode zero each unit with probability `rate` and scale
    the rest by 1 / (1 - rate); identity in eval mode. Draws from `self.rng`."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise ConfigError("Dropout.rate", "a number in [0, 1)", rate)
        self.rate = float(rate)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        if not train or self.rate == 0.0:
            self._mask = None
            return x
        if self.rng is None:
            raise ConfigError(f"{self.name}.rng", "a random stream (a model sets it)", None)
        keep = self.rng.random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        self._mask = (keep >= self.rate).astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        return x * self._mask

    def backward(self, grad_y: np.ndarray) -> np.ndarray:
        return grad_y if self._mask is None else grad_y * self._mask
