"""k MLPs of one architecture on the same batches as one computation (lockstep training).

Layout, for k runs of Dense layers 0..L-1 of widths n_in = n_0, n_1, ..., n_L = K. As a
run's Dense layers (nnlab.nn.layers.Dense), every product has the units along its rows and
the batch along its columns, and every weight matrix is stored as W^T (n_out, n_in):

- `W0`: the first layer's W^T of all runs one below the other, with its biases in a last
  column, (k * n_1, n_in + 1): run i's in rows i * n_1 .. (i + 1) * n_1. Its forward
  product W0^T-block @ x^T (k * n_1, batch) and its weight gradient delta @ x (k * n_1,
  n_in) are one wide GEMM each for all runs (x is the shared batch), which BLAS runs nearer
  its peak than k products of n_1 = 36 rows, too few for its kernel.
- `rest`: (k, n_rest), row i every other parameter of run i in the MLP's leaf order and
  memory order (W_1^T, b_1, ..., W_{L-1}^T, b_{L-1}). Layers 1.. multiply stacks, (k,
  n_{l+1}, n_l) @ (k, n_l, batch), with np.matmul, which makes for each run the GEMM call
  it makes alone.
- The first layer's outputs, activations and deltas are (k * n_1, batch) like its
  product, read by layer 1 as (k, n_1, batch), a reshape; later activations are stacks
  (k, n_l, batch); the grads mirror the params.

Bits: every elementwise pass and every reduction gives each run the values it gets alone,
and so do the stacked products (tests compare whole runs with separate ones). A block of
rows of a wide product equals the narrow product where BLAS takes the same kernel path
and puts the block's rows where the narrow call puts them. numpy's row-major call makes a
product's rows the columns of OpenBLAS's column-major kernel, which it packs in panels (12,
then 8 and 4 wide on Haswell kernels): a block of n_1 rows that is a multiple of the panel
width lies in whole panels, whose arithmetic does not depend on the panels beside them.
Where the panels or the path differ (n_1 not a multiple of the panel width, or OpenBLAS's
small-matrix kernels, which SkylakeX builds take for M * N * K <= 1e6 in the narrow product
and not the wide one), a wide product is not exact. So each wide shape is probed once per
process (`wide_product_exact`); where it differs, the first layer makes one narrow product
per run, the very call of a run alone, reading its block of W0 (or of the wide delta) and
writing its block of the output in place (BLAS takes a block of a wide array through its
leading dimension, which moves the elements, not the arithmetic), so no copies are made.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence

import numpy as np

from nnlab.errors import ConfigError
from nnlab.nn.activations import Activation, Sigmoid, sigmoid
from nnlab.nn.model import EVAL_CHUNK, MLP
from nnlab.nn.threads import blas_threads

Tree = list[dict[str, np.ndarray]]


@functools.cache
def _wide_product_exact(rows: int, n_in: int, n_out: int, k: int, dtype: str,
                        gradient: bool, threads: int) -> bool:
    rng = np.random.default_rng(0)
    draws = np.float32 if dtype == "float32" else np.float64  # the float dtypes a net uses
    x = rng.random((rows, n_in), dtype=draws)  # uniform draws: cheaper than normal ones
    if gradient:  # the wide delta (k * n_out, rows) @ x, written into W0's layout
        operand = x
        wide = rng.random((k * n_out, rows), dtype=draws)
        product = np.empty((k * n_out, n_in + 1), draws)[:, :n_in]
    else:  # the weights (k * n_out, n_in) in W0's layout @ x^T
        operand = x.T
        wide = rng.random((k * n_out, n_in + 1), dtype=draws)[:, :n_in]
        product = np.empty((k * n_out, rows), draws)
    wide -= 0.5  # of both signs, as weights and deltas are
    np.matmul(wide, operand, out=product)
    blocks = [slice(i * n_out, (i + 1) * n_out) for i in range(k)]
    return all(np.array_equal(product[block],
                              np.matmul(np.ascontiguousarray(wide[block]), operand))
               for block in blocks)


def wide_product_exact(rows: int, n_in: int, n_out: int, k: int, dtype: type,
                       gradient: bool = False, threads: int | None = None) -> bool:
    """Whether here, at `threads` BLAS threads (default: the current count), the first
    layer's wide product of k runs, (k * n_out, n_in) @ x^T for x (rows, n_in) (with
    `gradient`: (k * n_out, rows) @ x, delta @ x), gives in each block of n_out rows bit
    for bit the product with that block alone; probed once per shape on random data (the
    kernel path depends on the shapes, never on the values)."""
    return _wide_product_exact(rows, n_in, n_out, k, np.dtype(dtype).name, gradient,
                               blas_threads() if threads is None else threads)


def _traits(model: MLP, first: MLP) -> list[tuple[str, object, object]]:
    """(name, model's, first's) of what the models of one stack share."""
    return [("sizes", model.sizes, first.sizes),
            ("dtype", np.dtype(model.dtype).name, np.dtype(first.dtype).name),
            ("head", vars(model.head), vars(first.head)),
            ("activations", [type(a).__name__ for a in model.hidden_activations],
             [type(a).__name__ for a in first.hidden_activations])]


class StackedMLP:
    """The MLPs `models` (one architecture, head and dtype) as one computation on shared
    batches. Their parameters are copied in (`member_params` are run i's as views; the
    models are not changed until `copy_to`)."""

    def __init__(self, models: Sequence[MLP]) -> None:
        first = models[0]
        for i, model in enumerate(models):
            differences = [f"{name} {mine} (model 0: {theirs})"
                           for name, mine, theirs in _traits(model, first) if mine != theirs]
            if differences:
                raise ConfigError("StackedMLP.models", "MLPs of one architecture, head and "
                                  "dtype", shown=f"model {i} of {'; '.join(differences)}")
        self.sizes, self.dtype, self.head = first.sizes, first.dtype, first.head
        self.n_classes = first.n_classes
        self.activations: list[Activation] = [copy.deepcopy(a)
                                              for a in first.hidden_activations]
        self.threads = blas_threads()  # BLAS threads of every pass (see wide_product_exact)
        self.k = 0
        self._allocate(len(models))
        for i, model in enumerate(models):
            self.copy_from(i, model)

    # --- storage --------------------------------------------------------------------------

    def _allocate(self, k: int) -> None:
        """Fresh (uninitialised) params and grads for k runs."""
        n_in, n_1 = self.sizes[0], self.sizes[1]
        n_rest = sum(a * b + b for a, b in zip(self.sizes[1:-1], self.sizes[2:], strict=True))
        self.k = k
        self.W0: np.ndarray = np.empty((k * n_1, n_in + 1), self.dtype)
        self.rest: np.ndarray = np.empty((k, n_rest), self.dtype)
        self.grad_W0 = np.empty_like(self.W0)
        self.grad_rest = np.empty_like(self.rest)
        # each run's rows of the first layer's wide arrays
        self._run_rows = [slice(i * n_1, (i + 1) * n_1) for i in range(k)]
        self.layers = self._layers(self.W0, self.rest)
        self.grad_layers = self._layers(self.grad_W0, self.grad_rest)
        self._members = [self._member(self.layers, i) for i in range(k)]
        self._member_grads = [self._member(self.grad_layers, i) for i in range(k)]
        # the later layers' weights as the products for their input gradients take them,
        # (k, n_l, n_{l+1}), and their biases as added to their products, (k, n_{l+1}, 1)
        self._input_grad_W = [W.transpose(0, 2, 1) for W, _ in self.layers[1:]]
        self._bias_columns = [b[:, :, None] for _, b in self.layers[1:]]
        self._passes: dict[int, _Pass] = {}
        self._logits: dict[int, np.ndarray] = {}
        self._wide_exact: dict[tuple[int, bool], bool] = {}

    def _layers(self, W0: np.ndarray, rest: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W^T, b) per Dense layer as stacks: W0's weights (k * n_1, n_in) and biases
        (k * n_1,), then W^T (k, n_{l+1}, n_l) and b (k, n_{l+1}); views of W0 and rest (or
        of their grads)."""
        n_in = self.sizes[0]
        layers, offset = [(W0[:, :n_in], W0[:, n_in])], 0
        for n_l, n_out in zip(self.sizes[1:-1], self.sizes[2:], strict=True):
            W_t = rest[:, offset:offset + n_l * n_out].reshape(self.k, n_out, n_l)  # a view
            offset += n_l * n_out
            layers.append((W_t, rest[:, offset:offset + n_out]))
            offset += n_out
        return layers

    def _member(self, layers: list[tuple[np.ndarray, np.ndarray]], i: int) -> Tree:
        """Run i's arrays of stacked `layers` in the MLP's params structure, as views."""
        (W0, b0), *later = layers
        rows = self._run_rows[i]
        return [{"W": W0[rows].T, "b": b0[rows]},
                *({"W": W_t[i].T, "b": b[i]} for W_t, b in later)]

    def member_params(self, i: int) -> Tree:
        """Run i's parameters, [{"W": (n_l, n_{l+1}), "b": (n_{l+1},)}, ...], as views."""
        return self._members[i]

    def member_grads(self, i: int) -> Tree:
        """Run i's gradients from the last `loss_and_grads`, as views (like member_params)."""
        return self._member_grads[i]

    def copy_from(self, i: int, model: MLP) -> None:
        """Set run i's parameters to model's."""
        for mine, theirs in zip(self.member_params(i), model.params, strict=True):
            for key, array in mine.items():
                array[...] = theirs[key]

    def copy_to(self, i: int, model: MLP, grads: bool = False) -> None:
        """Set model's parameters (with `grads`: its gradients) to run i's."""
        ours = self.member_grads(i) if grads else self.member_params(i)
        for mine, theirs in zip(ours, model.grads if grads else model.params, strict=True):
            for key, array in mine.items():
                theirs[key][...] = array

    def alike(self) -> bool:
        """Whether every run's parameters are run 0's bit for bit (then so are its outputs):
        compared as unsigned integers, so -0.0 is not 0.0 and a NaN is itself."""
        bits = np.dtype(f"u{np.dtype(self.dtype).itemsize}")
        W0, rest = self.W0.view(bits).reshape(self.k, -1), self.rest.view(bits)
        return bool((W0 == W0[:1]).all() and (rest == rest[:1]).all())

    def keep(self, runs: Sequence[int]) -> None:
        """Keep only the runs numbered `runs` (in that order): run j is then the former
        runs[j]. The grads are not kept."""
        W0 = self._runs(self.W0)[runs].reshape(-1, self.W0.shape[1])
        rest = self.rest[runs]
        self._allocate(len(runs))
        self.W0[...], self.rest[...] = W0, rest

    def run_factors(self, values: Sequence[float]) -> np.ndarray:
        """Per-run values (k,) as factors of the grads, for `scale_grads`: a column (k, 1)."""
        return np.asarray(values, dtype=self.dtype)[:, None]

    def scale_grads(self, factors: np.ndarray) -> None:
        """Multiply each run's grads by its factor (`run_factors`). W0's grads are taken as
        one row per run, (k, n_1 * (n_in + 1)): numpy multiplies a long row by one value
        about 3.5 times faster than each of k * n_1 short rows by its own (11 runs of
        784-36: 26 against 88 us), for the same products."""
        grad_W0 = self.grad_W0.reshape(self.k, -1)  # a view: grad_W0 is C-contiguous
        grad_W0 *= factors
        self.grad_rest *= factors

    def _runs(self, wide: np.ndarray) -> np.ndarray:
        """A wide array (k * n, columns) as the stack of its runs' blocks, (k, n, columns):
        a view."""
        return wide.reshape(self.k, -1, wide.shape[1])

    def _pass(self, rows: int) -> _Pass:
        """The arrays of the passes over `rows` rows."""
        arrays = self._passes.get(rows)
        if arrays is None:
            arrays = self._passes[rows] = _Pass(self, rows)
        return arrays

    # --- passes ---------------------------------------------------------------------------

    def _wide(self, rows: int, gradient: bool) -> bool:
        """Whether the first layer's products of `rows` rows are made wide."""
        key = (rows, gradient)
        if key not in self._wide_exact:
            self._wide_exact[key] = wide_product_exact(rows, self.sizes[0], self.sizes[1],
                                                       self.k, self.dtype, gradient,
                                                       self.threads)
        return self._wide_exact[key]

    def _first_product(self, x: np.ndarray, arrays: _Pass) -> np.ndarray:
        """W^T x^T of every run, wide (k * n_1, rows): one wide product, or k narrow
        products where the wide one would round differently."""
        W0, z = self.layers[0][0], arrays.z0
        if self._wide(len(x), gradient=False):
            return np.matmul(W0, x.T, out=z)
        for rows in self._run_rows:
            np.matmul(W0[rows], x.T, out=z[rows])
        return z

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, _Pass]:
        """Logits (k, K, rows) of x: (rows, n_in), and the pass's arrays, which hold each
        later layer's input: the first layer's activations wide (k * n_1, rows), the others
        (k, n_l, rows); as a run's Dense and Activation layers compute them (the same in
        train and eval mode); valid until the next pass of as many rows."""
        arrays = self._pass(len(x))
        z = self._first_product(x, arrays)
        z += self.layers[0][1][:, None]
        for index, (W_t, _) in enumerate(self.layers[1:]):
            a = arrays.inputs[index]
            activation = self.activations[index]
            if isinstance(activation, Sigmoid):  # its form depends on one run's array size
                sigmoid(z, a, size=arrays.run_sizes[index])
            else:
                activation.apply(z, a)
            z = np.matmul(W_t, arrays.input_runs[index], out=arrays.products[index])
            z += self._bias_columns[index]
        return (z if arrays.products else self._runs(z)), arrays

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Train mode: the batch-mean loss of every run, (k,) float64, on x: (batch, n_in)
        of the model dtype and y: (batch,) int labels; fills the grads."""
        z, arrays = self._forward(x)
        losses, grad, _ = self.head.stacked_loss_and_grad(z.transpose(0, 2, 1), y)
        assert grad is not None  # with_grad
        grad = grad.transpose(0, 2, 1)  # (k, K, batch), as the head computes it
        backward = arrays.backward()
        for index in range(len(arrays.inputs), 0, -1):
            grad_W, grad_b = self.grad_layers[index]
            np.matmul(grad, backward.transposed_inputs[index - 1], out=grad_W)
            np.add.reduce(grad, axis=2, out=grad_b)
            np.matmul(self._input_grad_W[index - 1], grad,
                      out=backward.grad_input_runs[index - 1])
            grad = backward.deltas[index - 1]
            self.activations[index - 1].multiply_derivative(
                arrays.inputs[index - 1], backward.grad_inputs[index - 1], grad)
        grad = grad.reshape(-1, len(x))  # the first layer's delta, wide (k * n_1, batch)
        np.add.reduce(grad, axis=1, out=self.grad_layers[0][1])
        self._first_gradient(x, grad)
        return losses

    def _first_gradient(self, x: np.ndarray, delta: np.ndarray) -> None:
        """The first layer's weight gradient (W^T's, (k * n_1, n_in)) from its wide delta
        (k * n_1, batch): one wide product, or (where it would round differently) k narrow
        ones."""
        grad_W0 = self.grad_layers[0][0]
        if self._wide(len(x), gradient=True):
            np.matmul(delta, x, out=grad_W0)
            return
        for rows in self._run_rows:
            np.matmul(delta[rows], x, out=grad_W0[rows])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Eval mode logits (k, n, K) of x: (n, n_in) of the model dtype, in chunks of
        EVAL_CHUNK rows as a run's model computes them; valid until the next call."""
        z = self._logits.get(len(x))
        if z is None:
            z = self._logits[len(x)] = np.empty((self.k, len(x), self.n_classes), self.dtype)
        for start in range(0, len(x), EVAL_CHUNK):
            chunk = self._forward(x[start:start + EVAL_CHUNK])[0]
            z[:, start:start + EVAL_CHUNK] = chunk.transpose(0, 2, 1)
        return z

    def loss_and_proba(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eval mode, each run's `MLP.loss_and_proba`: (k,) batch-mean losses and outputs
        (k, n, K) of x: (n, n_in) of the model dtype and y: (n,) int labels."""
        loss, _, p = self.head.stacked_loss_and_grad(self.logits(x), y, with_grad=False)
        return loss, p

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Eval mode, each run's `MLP.predict_proba`: outputs (k, n, K) of x: (n, n_in) of
        the model dtype, each run's by the head as it takes them alone."""
        return np.stack([self.head.proba(z) for z in self.logits(x)])


class _Pass:
    """The arrays of a stack's passes over batches of `rows` rows (training batches,
    evaluation chunks), made once and reused from pass to pass (fresh large arrays each
    pass would cost page faults), with the views of them that the products take:

    - `z0`: the first layer's product, wide (k * n_1, rows);
    - `inputs`: the hidden layers' activations, the later layers' inputs (the first wide
      (k * n_1, rows), the others (k, n_l, rows)), and `input_runs`, all (k, n_l, rows);
    - `products`: the later layers' products (k, n_{l+1}, rows);
    - `backward()`: the arrays of the backward pass."""

    def __init__(self, stack: StackedMLP, rows: int) -> None:
        self.stack, self.rows = stack, rows
        k, dtype, hidden = stack.k, stack.dtype, stack.sizes[1:-1]
        self.z0: np.ndarray = np.empty((k * stack.sizes[1], rows), dtype)
        self.inputs: list[np.ndarray] = [
            np.empty((k * n, rows) if index == 0 else (k, n, rows), dtype)
            for index, n in enumerate(hidden)]
        self.input_runs = [stack._runs(a) if index == 0 else a
                           for index, a in enumerate(self.inputs)]
        self.run_sizes = [rows * n for n in hidden]  # elements of one run's activations
        self.products: list[np.ndarray] = [np.empty((k, n, rows), dtype) for n in stack.sizes[2:]]
        self._backward: _Backward | None = None

    def backward(self) -> _Backward:
        """The arrays of the backward pass (made at its first call)."""
        if self._backward is None:
            self._backward = _Backward(self)
        return self._backward


class _Backward:
    """The backward pass's arrays of a `_Pass`: each hidden layer's activations' gradient
    `grad_inputs` (laid out as its `inputs`, written through `grad_input_runs`), its delta
    `deltas` (the same layout), and the `inputs` transposed as the weight gradients take
    them, (k, rows, n_l)."""

    def __init__(self, arrays: _Pass) -> None:
        stack = arrays.stack
        self.grad_inputs = [np.empty_like(a) for a in arrays.inputs]
        self.grad_input_runs = [stack._runs(a) if index == 0 else a
                                for index, a in enumerate(self.grad_inputs)]
        self.deltas = [np.empty_like(a) for a in arrays.inputs]
        self.transposed_inputs = [a.transpose(0, 2, 1) for a in arrays.input_runs]
