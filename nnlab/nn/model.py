"""Models: a Sequential stack of layers with a fused output/loss head, and the MLP.

`params` and `grads` are lists with one dict per layer that has parameters. The params
dicts are the layers' live arrays: update them in place, or assign new arrays into the
dicts. The grads are buffers reused by the next `loss_and_grads`/`sgd_step` call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.linalg import blas

from nnlab.errors import ConfigError, is_integer
from nnlab.nn.activations import Activation, check_activation, make_activation
from nnlab.nn.init import check_init
from nnlab.nn.layers import Dense, Layer
from nnlab.nn.losses import Head
from nnlab.nn.threads import one_blas_thread

DTYPES = {"float32": np.float32, "float64": np.float64}

EVAL_CHUNK = 1024
"""Rows per eval-mode forward chunk (a CNN's activations for 10k images would be GBs)."""

ONE_THREAD_WORK = 2**21
"""MLP train passes with batch * n_weights at most this (~4 MFLOP per GEMM direction) run
BLAS on one thread; e.g. batch <= 26 for 784-100-10, <= 10 for 784-256-10."""


def check_dtype(dtype: object, field: str) -> type:
    """np.float32 or np.float64 from a dtype or its name; ConfigError naming `field`."""
    try:
        name = np.dtype(dtype).name  # type: ignore[call-overload]
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ConfigError(field, "float32 or float64", dtype)
    return DTYPES[name]


def make_rng(seed: object, field: str) -> np.random.Generator:
    """A Generator from a non-negative int seed (or a Generator, used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if not is_integer(seed) or seed < 0:
        raise ConfigError(field, "a non-negative integer or a Generator", seed)
    return np.random.default_rng(int(seed))


class Sequential:
    """Layers applied in order, then an output/loss head on the last layer's (K,) output.

    Args:
        layers: Layer instances (built here, in order).
        in_shape: per-example input shape, e.g. (784,) or (1, 28, 28); inputs arrive
            flat, (batch, prod(in_shape)), and are reshaped inside.
        output, loss, target_range: see nnlab.nn.losses.
        dtype: float32 (default) or float64, for parameters and computation.
        seed: int or Generator for the initial weights.
        dropout_rng: the train-time stream of layers that need one (default: spawned
            from the init generator, without consuming its draws).
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        in_shape: tuple[int, ...],
        output: str = "softmax",
        loss: str = "cross_entropy",
        dtype: object = np.float32,
        seed: int | np.random.Generator = 0,
        target_range: tuple[float, float] = (0.0, 1.0),
        dropout_rng: np.random.Generator | None = None,
    ) -> None:
        where = type(self).__name__
        self.dtype = check_dtype(dtype, f"{where}.dtype")
        self.head = Head(output, loss, target_range, where)
        rng = make_rng(seed, f"{where}.seed")
        if not layers:
            raise ConfigError(f"{where}.layers", "at least one layer", layers, shown="none")
        self.in_shape = tuple(int(n) for n in in_shape)
        self.n_features = math.prod(self.in_shape)
        self.layers = list(layers)
        dropout_rng = dropout_rng if dropout_rng is not None else rng.spawn(1)[0]
        shape = self.in_shape
        for i, layer in enumerate(self.layers):
            layer.name = f"layers[{i}] ({type(layer).__name__})"
            layer.rng = dropout_rng
            shape = tuple(layer.build(shape, rng, self.dtype))
        if len(shape) != 1:
            raise ConfigError(f"{where}.layers", "a last layer with a flat (n_classes,) output",
                              shape, shown=f"per-example shape {shape}")
        self.n_classes = shape[0]
        self.layers[0].needs_input_grad = False
        with_params = [layer for layer in self.layers if layer.params]
        self.params: list[dict[str, np.ndarray]] = [layer.params for layer in with_params]
        self.grads: list[dict[str, np.ndarray]] = [layer.grads for layer in with_params]

    # -- inputs ---------------------------------------------------------------------------

    def _inputs(self, x: np.ndarray) -> np.ndarray:
        """x: (batch, n_features) -> (batch, *in_shape) of the model dtype."""
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != self.n_features:
            shape = getattr(x, "shape", type(x).__name__)
            raise ConfigError("x", f"an array of shape (batch, {self.n_features})", shape,
                              shown=str(shape))
        if x.shape[0] == 0:
            raise ConfigError("x", "at least one example", x.shape, shown="an empty batch")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        return x.reshape((x.shape[0], *self.in_shape))

    def _labels(self, y: npt.ArrayLike, batch: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (batch,) or y.dtype.kind not in "iu":
            raise ConfigError("y", f"{batch} integer labels, shape ({batch},)", y.shape,
                              shown=f"{y.dtype} array of shape {y.shape}")
        # one reduction for both bounds: negative labels read as unsigned (same size and
        # byte order) are huge
        if batch and y.view(y.dtype.str.replace("i", "u")).max() >= self.n_classes:
            low, high = y.min(), y.max()
            raise ConfigError("y", f"labels in 0..{self.n_classes - 1}", (low, high),
                              shown=f"{low}..{high}")
        return y

    # -- passes ---------------------------------------------------------------------------

    def logits(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """x: (batch, n_features) -> logits z: (batch, n_classes). Eval mode runs in
        chunks of EVAL_CHUNK rows, bounding the memory of intermediate activations."""
        a = self._inputs(x)
        if train:
            for layer in self.layers:
                a = layer.forward(a, True)
            return a
        z: np.ndarray = np.empty((len(a), self.n_classes), dtype=self.dtype)
        for start in range(0, len(a), EVAL_CHUNK):
            chunk = a[start:start + EVAL_CHUNK]
            for layer in self.layers:
                chunk = layer.forward(chunk, False)
            z[start:start + EVAL_CHUNK] = chunk
        return z

    def loss_and_grads(
        self, x: np.ndarray, y: npt.ArrayLike
    ) -> tuple[float, list[dict[str, np.ndarray]]]:
        """Batch-mean loss and its gradients (same structure as params, valid until the
        next call). x: (batch, n_features); y: (batch,) int labels."""
        loss, _ = self._backprop(x, y)
        return loss, self.grads

    def loss_and_input_grad(self, x: np.ndarray, y: npt.ArrayLike) -> tuple[float, np.ndarray]:
        """Batch-mean loss and its gradient w.r.t. x, (batch, n_features)."""
        first = self.layers[0]
        first.needs_input_grad = True
        try:
            loss, grad_x = self._backprop(x, y)
        finally:
            first.needs_input_grad = False
        assert grad_x is not None  # the first layer needed its input gradient
        return loss, grad_x.reshape(len(grad_x), self.n_features).copy()

    def _backprop(self, x: np.ndarray, y: npt.ArrayLike) -> tuple[float, np.ndarray | None]:
        """Train-mode forward and backward: fills the layers' grads; returns the loss and
        the first layer's input gradient (None unless it needs_input_grad)."""
        with self._threads_for(getattr(x, "shape", (0,))[0]):
            z = self.logits(x, train=True)
            loss, grad, _ = self.head.loss_and_grad(z, self._labels(y, len(z)))
            for layer in reversed(self.layers):
                assert grad is not None  # only the first layer's backward may give None
                grad = layer.backward(grad)
        return loss, grad

    def _threads_for(self, batch: int) -> AbstractContextManager:
        """The BLAS threading for a train pass of this batch size (subclasses may limit
        it for small work)."""
        return nullcontext()

    def flat_buffers(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(params, grads) as two 1-D arrays of which all parameter / gradient arrays are
        views, if the model keeps them so (the MLP does), else None."""
        return None

    def loss_and_proba(self, x: np.ndarray, y: npt.ArrayLike) -> tuple[float, np.ndarray]:
        """Eval mode: batch-mean loss and outputs (batch, n_classes), one forward pass."""
        z = self.logits(x)
        loss, _, p = self.head.loss_and_grad(z, self._labels(y, len(z)), with_grad=False)
        return loss, p

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Eval mode outputs (batch, n_classes): softmax probabilities, or per-class
        sigmoids for a sigmoid output."""
        return self.head.proba(self.logits(x))


def _view_like(flat: np.ndarray, array: np.ndarray) -> np.ndarray:
    """flat (array.size,) as an array of array's shape and memory order (a Dense layer's
    Fortran-ordered W, see nnlab.nn.layers.Dense); a view."""
    if array.ndim > 1 and array.flags.f_contiguous:
        return flat.reshape(array.shape[::-1]).T
    return flat.reshape(array.shape)


def _per_layer(value: object, n: int, field: str) -> list:
    """A value for all n layers, or a list with one value per layer."""
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ConfigError(field, f"one value or a list of {n}", len(value))
        return list(value)
    return [value] * n


class MLP(Sequential):
    """Dense layers of `sizes` = [n_in, hidden..., n_classes] with activations between.

    activation: one name for all hidden layers or a list (len(sizes) - 2); init: one
    name for all Dense layers or a list (len(sizes) - 1); init_std: the std of the
    layers initialised "normal" (default 0.01), one value or a per-layer list (None for
    the other layers). params: [{"W": (n_in, n_out), "b": (n_out,)}, ...].
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str | Sequence[str] = "sigmoid",
        output: str = "softmax",
        loss: str = "cross_entropy",
        init: str | Sequence[str] = "xavier",
        init_std: float | Sequence[float | None] | None = None,
        dtype: object = np.float32,
        seed: int | np.random.Generator = 0,
        target_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        if (
            not isinstance(sizes, list | tuple)
            or len(sizes) < 2
            or any(not is_integer(n) or n < 1
                   for n in sizes)
        ):
            raise ConfigError("MLP.sizes", "a list of at least 2 positive integers "
                              "[n_in, hidden..., n_classes]", sizes)
        n_dense = len(sizes) - 1
        activations = _per_layer(activation, n_dense - 1, "MLP.activation")
        inits = _per_layer(init, n_dense, "MLP.init")
        if isinstance(init_std, list | tuple):
            stds = _per_layer(init_std, n_dense, "MLP.init_std")
        else:  # one std for every layer initialised "normal"
            if init_std is not None and "normal" not in inits:
                raise ConfigError("MLP.init_std", "None unless a layer's init is 'normal'",
                                  init_std, shown=f"{init_std!r} with init={init!r}")
            stds = [init_std if name == "normal" else None for name in inits]
        for i, name in enumerate(activations):
            check_activation(name, f"MLP.activation[{i}]")
        for i, (name, std) in enumerate(zip(inits, stds, strict=True)):
            check_init(name, std, f"MLP.init[{i}]", f"MLP.init_std[{i}]")
        layers: list[Layer] = []
        for i, n_out in enumerate(sizes[1:]):
            layers.append(Dense(int(n_out), init=inits[i], init_std=stds[i]))
            if i < n_dense - 1:
                layers.append(make_activation(activations[i]))
        super().__init__(layers, (int(sizes[0]),), output, loss, dtype, seed, target_range)
        self.sizes = [int(n) for n in sizes]
        self.dense: list[Dense] = [layer for layer in self.layers if isinstance(layer, Dense)]
        self.n_weights = sum(dense.params["W"].size for dense in self.dense)
        self.hidden_activations: list[Activation] = [
            layer for layer in self.layers if isinstance(layer, Activation)
        ]
        self._gemv, self._ger, self._axpy, self._gemm = blas.get_blas_funcs(
            ("gemv", "ger", "axpy", "gemm"), dtype=self.dtype
        )
        self._one_example_buffers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
            (np.empty(n_out, self.dtype), np.empty(n_in, self.dtype), np.empty(n_in, self.dtype))
            for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True)
        ]
        self._one_example_head_buffers: tuple[np.ndarray, np.ndarray] = (
            np.empty(self.n_classes, self.dtype), np.empty(self.n_classes, self.dtype))
        self._flat = self._move_into_flat_buffers()

    def _move_into_flat_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """Re-home every parameter and gradient array as a view of one flat buffer each,
        in leaf order (layer by layer, W then b); returns the two buffers."""
        total = sum(array.size for layer in self.params for array in layer.values())
        flat_params: np.ndarray = np.empty(total, self.dtype)
        flat_grads: np.ndarray = np.zeros(total, self.dtype)
        offset = 0
        for params, grads in zip(self.params, self.grads, strict=True):
            for key, array in params.items():
                span = slice(offset, offset + array.size)
                params[key] = _view_like(flat_params[span], array)
                params[key][...] = array
                grads[key] = _view_like(flat_grads[span], array)
                offset += array.size
        return flat_params, flat_grads

    def flat_buffers(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(params, grads) as two 1-D arrays that every parameter and gradient array is a
        view of, in leaf order: an elementwise update on them covers every array in one
        numpy call per pass. None once an array was replaced by one that is not such a
        view."""
        flat_params, flat_grads = self._flat
        for flat, tree in ((flat_params, self.params), (flat_grads, self.grads)):
            if any(array.base is not flat for layer in tree for array in layer.values()):
                return None
        return flat_params, flat_grads

    def _threads_for(self, batch: int) -> AbstractContextManager:
        """One BLAS thread when a pass is too small to split (batch * n_weights below
        ONE_THREAD_WORK): thread hand-off then costs more than the GEMMs."""
        return one_blas_thread() if batch * self.n_weights <= ONE_THREAD_WORK else nullcontext()

    def loss_and_grads(
        self, x: np.ndarray, y: npt.ArrayLike
    ) -> tuple[float, list[dict[str, np.ndarray]]]:
        """As Sequential.loss_and_grads; one example (x of shape (1, n_features)) takes
        the BLAS level-2 path of sgd_step, writing the gradients instead of applying them."""
        if isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[0] == 1:
            x_one = self._one_example(x[0])
            label = int(self._labels(y, 1)[0])
            with one_blas_thread():
                loss = self._step_one(x_one, label, None, self._one_example_plan())
            return loss, self.grads
        return super().loss_and_grads(x, y)

    def sgd_step(self, x: np.ndarray, y: np.ndarray | int, eta: float) -> float:
        """One plain SGD step in place, params -= eta * grads; returns the batch-mean loss
        before the step. x: (batch, n_features), or (n_features,) for one example; y:
        (batch,) int labels, or one int.

        Batch size 1 runs fused, with BLAS level 2 on one thread, in place on the weights
        (gemv forward, gemv + ger backward, no temporaries); larger batches use
        loss_and_grads and in-place updates. Afterwards `self.grads` is not valid.
        """
        if isinstance(x, np.ndarray) and (x.ndim == 1 or (x.ndim == 2 and x.shape[0] == 1)):
            x = self._one_example(x.reshape(-1))
            label = self._one_label(y)
            with one_blas_thread():
                return self._step_one(x, label, eta, self._one_example_plan())
        loss, grads = self.loss_and_grads(x, y)
        flat = self.flat_buffers()
        if flat is not None:
            pairs = [flat]
        else:
            self._make_params_blas_ready()
            pairs = [(params[key], layer_grads[key])
                     for params, layer_grads in zip(self.params, grads, strict=True)
                     for key in params]
        for value, grad in pairs:
            grad *= grad.dtype.type(eta)
            value -= grad  # numpy, not a threaded BLAS axpy: no thread hand-off
        return loss

    def sgd_steps(
        self, x: np.ndarray, y: np.ndarray, eta: float | np.ndarray
    ) -> np.ndarray:
        """Per-sample SGD over the rows of x in order: len(x) fused batch-1 steps, as
        many sgd_step calls but with the checks and thread setup done once.

        x: (n, n_features); y: (n,) int labels; eta: one learning rate or (n,), one per
        step. Returns (n,) float64: each step's loss before its update.
        """
        x = self._inputs(x).reshape(len(x), self.n_features)
        y = self._labels(y, len(x))
        etas = np.broadcast_to(np.asarray(eta, dtype=np.float64), (len(x),))
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        losses = np.empty(len(x))
        labels = y.tolist()
        rates = etas.tolist()
        plan = self._one_example_plan()
        with one_blas_thread():
            for i in range(len(x)):
                losses[i] = self._step_one(x[i], labels[i], rates[i], plan)
        return losses

    def _one_example(self, x: np.ndarray) -> np.ndarray:
        """x: (n_features,) of any real dtype -> contiguous model-dtype copy or view."""
        if x.shape[0] != self.n_features:
            raise ConfigError("x", f"{self.n_features} features", x.shape[0])
        if x.dtype != self.dtype or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=self.dtype)
        return x

    def _one_label(self, y: object) -> int:
        label = y if isinstance(y, int) else int(np.asarray(y).reshape(-1)[0])
        if not 0 <= label < self.n_classes:
            raise ConfigError("y", f"a label in 0..{self.n_classes - 1}", label)
        return label

    def _one_example_plan(self) -> list[_LayerPlan]:
        """What the one-example path touches, per Dense layer (see _LayerPlan)."""
        self._make_params_blas_ready()
        activations = [*self.hidden_activations, None]
        return [
            _LayerPlan(dense.params["W"], dense.params["b"], *buffers, activation,
                       dense.grads["W"], dense.grads["b"])
            for dense, buffers, activation in zip(
                self.dense, self._one_example_buffers, activations, strict=True
            )
        ]

    def _make_params_blas_ready(self) -> None:
        """Make every weight matrix a Fortran-ordered and every bias a contiguous array of
        the model dtype (replacing it in its dict if an optimiser left it otherwise), so
        in-place BLAS updates reach it."""
        for params in self.params:
            for key, value in params.items():
                if value.dtype != self.dtype or not value.flags.f_contiguous:
                    params[key] = np.asfortranarray(value, dtype=self.dtype)

    def _step_one(
        self, x: np.ndarray, label: int, eta: float | None, plan: list[_LayerPlan]
    ) -> float:
        """One example, BLAS level 2: returns the loss; then applies the SGD step with
        rate eta in place (ger/axpy on W, b), or for eta None writes the gradients into
        the layers' grads. x: (n_features,) contiguous, model dtype."""
        gemv, ger, axpy, gemm = self._gemv, self._ger, self._axpy, self._gemm
        hidden = self.hidden_activations  # hidden[i - 1] made the input of plan[i]
        # forward: a_{i+1} = f(W_i^T a_i + b_i)
        acts = [x]
        for layer in plan:
            z = layer.z
            np.copyto(z, layer.b)
            gemv(1.0, layer.W, acts[-1], beta=1.0, y=z, trans=1, overwrite_y=1)
            if layer.activation is not None:
                layer.activation.apply(z, z)
            acts.append(z)
        p_out, delta = self._one_example_head_buffers
        loss = self.head.loss_and_grad_one(acts[-1], label, p_out, delta)
        # backward: each layer's input gradient is taken before its weights change
        for i in range(len(plan) - 1, -1, -1):
            W, b, _, grad_a, grad_z, _, grad_W, grad_b = plan[i]
            if i > 0:
                gemv(1.0, W, delta, y=grad_a, overwrite_y=1)
                hidden[i - 1].multiply_derivative(acts[i], grad_a, grad_z)
            if eta is None:  # grad_W = a_i delta^T, a k=1 GEMM written in one pass
                gemm(1.0, acts[i][:, None], delta[None, :], beta=0.0, c=grad_W, overwrite_c=1)
                np.copyto(grad_b, delta)
            else:
                ger(-eta, acts[i], delta, a=W, overwrite_a=1)
                axpy(delta, b, a=-eta)
            delta = grad_z
        return loss


class _LayerPlan(NamedTuple):
    """One Dense layer as the one-example path sees it."""

    W: np.ndarray
    """(n_in, n_out), Fortran-ordered (see Dense), which BLAS updates in place."""
    b: np.ndarray
    z: np.ndarray
    """(n_out,) pre-activations, then the activations (in place)."""
    grad_a: np.ndarray
    """(n_in,) gradient w.r.t. the layer input, before the previous activation's
    derivative"""
    grad_z: np.ndarray
    """(n_in,) ... and after it."""
    activation: Activation | None
    """the activation after this layer (None for the last)"""
    grad_W: np.ndarray
    grad_b: np.ndarray
