"""Convolution and max pooling on image batches, fast by construction.

Shapes follow the image convention (batch, channels, height, width), but the arrays these
layers return are channels-last in memory (a transposed view of a (batch, height, width,
channels) buffer, as PyTorch's `channels_last` format), and elementwise layers between them
keep that layout. So:

- Conv2D forward is im2col, one copy of a strided `sliding_window_view` into `cols`
  (batch * out_h * out_w, k * k * c_in + 1; the last column is ones, so the bias rides in
  the GEMM), then one GEMM `cols @ [W; b]` whose rows are already the channels-last output.
- Conv2D backward is one GEMM `cols.T @ grad` for W and b together, and, for the input
  gradient, one small GEMM and one vectorised add per kernel offset (a loop over k * k
  offsets, never over pixels or examples): the col2im scatter without a `cols`-sized
  temporary (measured faster than one big GEMM and strided adds, and than one GEMM per
  kernel row).
- MaxPool2D reshapes non-overlapping windows to (batch, out_h, k, out_w, k, c) views; its
  backward is one comparison and one multiply over the whole input.

Both split the batch into one part per allowed BLAS thread and run the parts in parallel
threads with one BLAS thread each (nnlab.nn.batch_threads).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnlab.errors import ConfigError, is_integer
from nnlab.nn.batch_threads import batch_parts, run_parallel
from nnlab.nn.init import check_init, init_weights
from nnlab.nn.layers import Layer

EVAL_CHUNK_ROWS = 1 << 14
"""Eval-mode convolutions process at most this many output pixels (rows of `cols`) at a
time, in one reused buffer, so a large eval batch never allocates gigabytes of im2col
buffers."""


def _positive_int(value: object, field: str, minimum: int = 1) -> int:
    if not is_integer(value) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(field, kind, value)
    return int(value)


def _channels_last(x: np.ndarray) -> np.ndarray:
    """(batch, c, h, w) -> (batch, h, w, c) view; contiguous when x is channels-last."""
    return x.transpose(0, 2, 3, 1)


def _image_shape(layer: Layer, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise ConfigError(layer.name, "a per-example image shape (channels, height, width)",
                          tuple(in_shape), shown=f"shape {tuple(in_shape)}")
    c, h, w = (int(d) for d in in_shape)
    return c, h, w


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    x: (batch, c_in, h, w) -> y: (batch, n_filters, out_h, out_w) with
    out_h = (h + 2 * padding - kernel_size) // stride + 1 (likewise out_w).
    Params: W (kernel_size, kernel_size, c_in, n_filters), b (n_filters,) (zero at init).
    Init fans: fan_in = c_in * k * k, fan_out = n_filters * k * k.
    """

    def __init__(
        self,
        n_filters: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        init: str = "he",
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.n_filters = _positive_int(n_filters, "Conv2D.n_filters")
        self.kernel_size = _positive_int(kernel_size, "Conv2D.kernel_size")
        self.stride = _positive_int(stride, "Conv2D.stride")
        self.padding = _positive_int(padding, "Conv2D.padding", minimum=0)
        check_init(init, init_std, "Conv2D.init", "Conv2D.init_std")
        self.init = init
        self.init_std = init_std

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(n_filters, out_h, out_w) for a (c, h, w) input; ConfigError naming the layer if
        the kernel does not fit."""
        c, h, w = _image_shape(self, in_shape)
        k, p, s = self.kernel_size, self.padding, self.stride
        if h + 2 * p < k or w + 2 * p < k:
            raise ConfigError(self.name, f"height and width >= {k - 2 * p}",
                              problem=f"kernel {k}x{k} does not fit the input {h}x{w} with "
                              f"padding {p}")
        return self.n_filters, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1

    def build(
        self, in_shape: tuple[int, ...], rng: np.random.Generator, dtype: type
    ) -> tuple[int, ...]:
        out_shape = self.out_shape(in_shape)
        self.in_shape = _image_shape(self, in_shape)
        self.out_hw = out_shape[1:]
        c, k = self.in_shape[0], self.kernel_size
        W = init_weights(self.init, (k, k, c, self.n_filters), c * k * k, self.n_filters * k * k,
                         rng, dtype, self.init_std)
        self.params = {"W": W, "b": np.zeros(self.n_filters, dtype=dtype)}
        # the bias rides in the GEMM as one more row of the weight matrix (and a column of
        # ones in cols), so dW and db come from one product: grads are views of it
        self._grad_wb: np.ndarray = np.zeros((k * k * c + 1, self.n_filters), dtype=dtype)
        self.grads = {"W": self._grad_wb[:-1].reshape(W.shape), "b": self._grad_wb[-1]}
        return out_shape

    def _padded(self, x_hwc: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """x_hwc (n, h, w, c) -> zero-padded (n, h + 2p, w + 2p, c) (x itself if p == 0)."""
        p = self.padding
        if p == 0:
            return x_hwc
        n, h, w, c = x_hwc.shape
        if out is None:
            out = np.empty((n, h + 2 * p, w + 2 * p, c), dtype=x_hwc.dtype)
        out[:, :p] = 0
        out[:, h + p:] = 0
        out[:, p:h + p, :p] = 0
        out[:, p:h + p, w + p:] = 0
        out[:, p:h + p, p:w + p] = x_hwc
        return out

    def _offset_slice(self, i: int, j: int) -> tuple[slice, slice, slice, slice]:
        """Index of the padded-input pixels that kernel offset (i, j) meets, (n, oh, ow, c)."""
        s = self.stride
        oh, ow = self.out_hw
        return (slice(None), slice(i, i + s * (oh - 1) + 1, s),
                slice(j, j + s * (ow - 1) + 1, s), slice(None))

    def _rows(self, images: slice) -> slice:
        """The rows of cols (and of the output) that belong to these images."""
        n_pixels = self.out_hw[0] * self.out_hw[1]
        return slice(images.start * n_pixels, images.stop * n_pixels)

    def _weights(self) -> np.ndarray:
        """(k * k * c_in + 1, n_filters): W's rows (i, j, c) then b."""
        W, b = self.params["W"], self.params["b"]
        wb = self.buffer("wb", self._grad_wb.shape, W.dtype)
        wb[:-1] = W.reshape(-1, self.n_filters)
        wb[-1] = b
        return wb

    def _cols(self, key: str, n_rows: int, dtype: np.dtype) -> np.ndarray:
        """A reused (n_rows, k * k * c_in + 1) im2col buffer. With one input channel it is
        the transpose of a C-ordered array, so each kernel offset fills one contiguous row
        of it (whole image rows at a time) instead of every 26th float."""
        n_cols = self._grad_wb.shape[0]
        if self.in_shape[0] == 1:
            return self.buffer(key, (n_cols, n_rows), dtype).T
        return self.buffer(key, (n_rows, n_cols), dtype)

    def _conv(self, x_hwc: np.ndarray, cols: np.ndarray, y: np.ndarray,
              padded: np.ndarray | None) -> None:
        """y (n * oh * ow, n_filters) = [im2col(x_hwc), 1] @ [W; b], filling `cols`
        (n * oh * ow, k * k * c_in + 1): rows (n, oh, ow), columns (i, j, c) then ones.
        The batch is split across threads (batch_threads)."""
        wb = self._weights()
        tasks = []
        for part in batch_parts(x_hwc.shape[0]):
            rows = self._rows(part)
            part_padded = None if padded is None else padded[part]
            tasks.append(partial(self._conv_part, x_hwc[part], cols[rows], y[rows],
                                 part_padded, wb))
        run_parallel(tasks)

    def _conv_part(self, x_hwc: np.ndarray, cols: np.ndarray, y: np.ndarray,
                   padded: np.ndarray | None, wb: np.ndarray) -> None:
        """_conv of some images; im2col is one copy of a strided window view."""
        k, s = self.kernel_size, self.stride
        oh, ow = self.out_hw
        xp = self._padded(x_hwc, padded)
        n, c = xp.shape[0], xp.shape[3]
        windows = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::s, ::s][:, :oh, :ow]
        if c == 1:  # cols.T is C-ordered: rows (i, j), columns (n, oh, ow)
            np.copyto(np.reshape(cols.T[:-1], (k, k, n, oh, ow), copy=False),
                      windows[:, :, :, 0].transpose(3, 4, 0, 1, 2))
        else:
            np.copyto(np.reshape(cols[:, :-1], (n, oh, ow, k, k, c), copy=False),
                      windows.transpose(0, 1, 2, 4, 5, 3))
        cols[:, -1] = 1
        np.matmul(cols, wb, out=y)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """x: (batch, c_in, h, w) -> (batch, n_filters, out_h, out_w), channels-last memory."""
        n = x.shape[0]
        c, h, w = self.in_shape
        oh, ow = self.out_hw
        p, f = self.padding, self.n_filters
        dtype = self.params["W"].dtype
        x_hwc = _channels_last(x)
        if train:
            cols = self._cols("cols", n * oh * ow, dtype)
            y = self.buffer("y", (n * oh * ow, f), dtype)
            padded = self.buffer("padded", (n, h + 2 * p, w + 2 * p, c), dtype) if p else None
            self._conv(x_hwc, cols, y, padded)
            self._train_cols = cols
        else:
            y = np.empty((n * oh * ow, f), dtype=dtype)
            chunk = max(1, EVAL_CHUNK_ROWS // (oh * ow))
            for start in range(0, n, chunk):
                images = slice(start, min(start + chunk, n))
                cols = self._cols("eval_cols", (images.stop - start) * oh * ow, dtype)
                self._conv(x_hwc[images], cols, y[self._rows(images)], None)
        return y.reshape(n, oh, ow, f).transpose(0, 3, 1, 2)

    def backward(self, grad_y: np.ndarray) -> np.ndarray | None:
        """grad_y: (batch, n_filters, out_h, out_w) -> grad_x: (batch, c_in, h, w) (or None
        on a first layer), channels-last memory. The batch is split across threads."""
        n = grad_y.shape[0]
        c, h, w = self.in_shape
        p, f = self.padding, self.n_filters
        dtype = self.params["W"].dtype
        g = np.ascontiguousarray(_channels_last(grad_y)).reshape(-1, f)
        parts = batch_parts(n)
        grad_wb = self._grad_wb[None] if len(parts) == 1 else self.buffer(
            "grad_wb_parts", (len(parts), *self._grad_wb.shape), dtype)
        grad_offset = grad_xp = None
        if self.needs_input_grad:
            grad_offset = self.buffer("grad_offset", (g.shape[0], c), dtype)
            grad_xp = self.buffer("grad_x", (n, h + 2 * p, w + 2 * p, c), dtype)
        tasks = []
        for index, part in enumerate(parts):
            rows = self._rows(part)
            tasks.append(partial(
                self._backward_part, self._train_cols[rows], g[rows], grad_wb[index],
                None if grad_offset is None else grad_offset[rows],
                None if grad_xp is None else grad_xp[part]))
        run_parallel(tasks)
        if len(parts) > 1:
            np.sum(grad_wb, axis=0, out=self._grad_wb)
        return None if grad_xp is None else grad_xp[:, p:p + h, p:p + w].transpose(0, 3, 1, 2)

    def _backward_part(self, cols: np.ndarray, g: np.ndarray, grad_wb: np.ndarray,
                       grad_offset: np.ndarray | None, grad_xp: np.ndarray | None) -> None:
        """Backward of some images: grad_wb = cols.T @ g, and (if grad_xp is given) the
        padded input gradient by col2im without a cols-sized temporary: per kernel offset
        (i, j) one small GEMM, g @ W[i, j].T (rows (n, oh, ow), c_in columns), and one
        vectorised add onto the input pixels that offset met."""
        np.matmul(cols.T, g, out=grad_wb)
        if grad_xp is None or grad_offset is None:  # both given, or neither
            return
        W = self.params["W"]
        grad_offset4 = grad_offset.reshape(-1, *self.out_hw, W.shape[2])
        grad_xp.fill(0)
        for i in range(self.kernel_size):
            for j in range(self.kernel_size):
                np.matmul(g, W[i, j].T, out=grad_offset)
                grad_xp[self._offset_slice(i, j)] += grad_offset4


class MaxPool2D(Layer):
    """Max pooling over non-overlapping size x size windows (stride = size); rows and
    columns that do not fill a window are dropped, as in PyTorch.

    x: (batch, c, h, w) -> y: (batch, c, h // size, w // size), channels-last memory.
    The gradient goes to the first maximum of each window (row-major order).
    """

    def __init__(self, size: int = 2) -> None:
        super().__init__()
        self.size = _positive_int(size, "MaxPool2D.size")

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(c, h // size, w // size) for a (c, h, w) input; ConfigError naming the layer if
        the window does not fit."""
        c, h, w = _image_shape(self, in_shape)
        k = self.size
        if h < k or w < k:
            raise ConfigError(self.name, f"height and width >= {k}",
                              problem=f"window {k}x{k} does not fit the input {h}x{w}")
        return c, h // k, w // k

    def build(
        self, in_shape: tuple[int, ...], rng: np.random.Generator, dtype: type
    ) -> tuple[int, ...]:
        out_shape = self.out_shape(in_shape)
        self.in_shape = _image_shape(self, in_shape)
        return out_shape

    def _windows(self, x_hwc: np.ndarray) -> np.ndarray:
        """x_hwc (n, h, w, c) -> (n, oh, k, ow, k, c), a view when h and w divide by k."""
        k = self.size
        n, h, w, c = x_hwc.shape
        oh, ow = h // k, w // k
        return x_hwc[:, :oh * k, :ow * k].reshape(n, oh, k, ow, k, c)

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        """x: (batch, c, h, w) -> (batch, c, h // size, w // size). The batch is split
        across threads."""
        win = self._windows(_channels_last(x))
        n, oh, _, ow, _, c = win.shape
        y = self.buffer("y", (n, oh, ow, c), x.dtype) if train else np.empty(
            (n, oh, ow, c), dtype=x.dtype)
        run_parallel([partial(self._max_part, win[part], y[part]) for part in batch_parts(n)])
        if train:
            self._win, self._y = win, y
        return y.transpose(0, 3, 1, 2)

    def _max_part(self, win: np.ndarray, y: np.ndarray) -> None:
        """y (n, oh, ow, c) = maxima of the windows win (n, oh, k, ow, k, c)."""
        k = self.size
        np.copyto(y, win[:, :, 0, :, 0])
        for i in range(k):
            for j in range(k):
                if i or j:
                    np.maximum(y, win[:, :, i, :, j], out=y)

    def backward(self, grad_y: np.ndarray) -> np.ndarray | None:
        """grad_y: (batch, c, oh, ow) -> grad_x: (batch, c, h, w), channels-last memory."""
        if not self.needs_input_grad:
            return None
        k = self.size
        c, h, w = self.in_shape
        win, y = self._win, self._y
        n = win.shape[0]
        g = _channels_last(grad_y)
        grad_x = self.buffer("grad_x", (n, h, w, c), grad_y.dtype)
        if h % k or w % k:  # rows or columns that no window covers
            grad_x.fill(0)
        grad_win = self._windows(grad_x)
        hit = self.buffer("hit", win.shape, np.dtype(bool))
        taken = self.buffer("taken", y.shape, np.dtype(bool))
        run_parallel([partial(self._backward_part, win[part], y[part], g[part], grad_win[part],
                              hit[part], taken[part]) for part in batch_parts(n)])
        return grad_x.transpose(0, 3, 1, 2)

    def _backward_part(self, win: np.ndarray, y: np.ndarray, g: np.ndarray,
                       grad_win: np.ndarray, hit: np.ndarray, taken: np.ndarray) -> None:
        """grad_win (n, oh, k, ow, k, c) = g where x equals its window's maximum, at the
        first such place only; hit and taken are bool work buffers."""
        k = self.size
        np.equal(win, y[:, :, None, :, None, :], out=hit)
        np.copyto(taken, hit[:, :, 0, :, 0])
        for i in range(k):
            for j in range(k):
                if i or j:
                    later = hit[:, :, i, :, j]
                    np.greater(later, taken, out=later)  # and not an earlier one
                    taken |= later
        np.multiply(g[:, :, None, :, None, :], hit, out=grad_win)
