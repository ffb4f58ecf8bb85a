"""k MLPs of one architecture on the same batches as one computation (lockstep training).

Layout, for k runs of Dense layers 0..L-1 of widths n_in = n_0, n_1, ..., n_L = K:

- `W0`: the first layer's weights side by side, and below them its biases, (n_in + 1,
  k * n_1): run i's weights in rows 0..n_in-1 of columns i * n_1 .. (i + 1) * n_1, its
  biases in row n_in of those columns. Its forward product x @ W0[:n_in] and its weight
  gradient x^T @ delta are one wide GEMM each for all runs (x is the shared batch), which
  BLAS runs nearer its peak than k products of n_1 = 36 columns, too narrow for its kernel.
- `rest`: (k, n_rest), row i every other parameter of run i in the MLP's leaf order (W_1,
  b_1, ..., W_{L-1}, b_{L-1}). Layers 1.. multiply stacks, (k, batch, n_l) @ (k, n_l,
  n_{l+1}), with np.matmul, which makes for each run the GEMM call it makes alone.
- The first layer's outputs, activations and deltas stay wide, (batch, k * n_1) like its
  product, so that their elementwise passes run over contiguous arrays; layer 1 reads the
  activations, and writes the gradient by them, as (k, batch, n_1) views with a row stride
  of k * n_1, which BLAS takes as they are (the leading dimension of a matrix changes
  where its elements lie, not the arithmetic). Later activations are stacks (k, batch,
  n_l); the grads mirror the params.

Bits: every elementwise pass and every reduction gives each run the values it gets alone,
and so do the stacked products (tests compare whole runs with separate ones). A block of
columns of a wide product equals the narrow product only where BLAS takes the same kernel
path for both: OpenBLAS's small-matrix kernels (SkylakeX builds, for M * N * K <= 1e6,
e.g. batch 25 of 784-36) round the narrow product differently, and its Haswell kernels
(AMD EPYC hosts) round a float32 column by its place in the call (a call's first 8
columns, its last full 8, those between and the last n mod 8 can each take their own
path), so that no block of 36 columns of a wide product is exact. So each wide shape is
probed once per process (`wide_product_exact`); where it differs, the first layer makes
one narrow product per run, the very call of a run alone, reading its block of W0 (or of
the wide delta) and writing its block of the output in place: BLAS takes a block of a wide
array through its leading dimension, which moves the elements, not the arithmetic (as for
the later layers' stacked products), so no copies are made.
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
FACTOR_BYTES = 2**18
"""At most this many bytes of the first layer's per-run factors (see `_factor_rows`)."""


@functools.cache
def _wide_product_exact(rows: int, n_in: int, n_out: int, k: int, dtype: str,
                        gradient: bool, threads: int) -> bool:
    rng = np.random.default_rng(0)
    draws = np.float32 if dtype == "float32" else np.float64  # the float dtypes a net uses
    x = rng.random((rows, n_in), dtype=draws)  # uniform draws: cheaper than normal ones
    a = x.T if gradient else x  # x^T @ delta, or x @ W
    wide = rng.random((len(a.T), k * n_out), dtype=draws)
    wide -= 0.5  # of both signs, as weights and deltas are
    product = a @ wide
    return all(np.array_equal(product[:, i * n_out:(i + 1) * n_out],
                              a @ np.ascontiguousarray(wide[:, i * n_out:(i + 1) * n_out]))
               for i in range(k))


def wide_product_exact(rows: int, n_in: int, n_out: int, k: int, dtype: type,
                       gradient: bool = False, threads: int | None = None) -> bool:
    """Whether here, at `threads` BLAS threads (default: the current count), a (rows, n_in)
    @ (n_in, k * n_out) product (with `gradient`: (n_in, rows) @ (rows, k * n_out), x^T @
    delta) gives in each block of n_out columns bit for bit the product with that block
    alone; probed once per shape on random data (the kernel path depends on the shapes,
    never on the values)."""
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
        self.W0: np.ndarray = np.empty((n_in + 1, k * n_1), self.dtype)
        self.rest: np.ndarray = np.empty((k, n_rest), self.dtype)
        self.grad_W0 = np.empty_like(self.W0)
        self.grad_rest = np.empty_like(self.rest)
        self.layers = self._layers(self.W0, self.rest)
        self.grad_layers = self._layers(self.grad_W0, self.grad_rest)
        self._members = [self._member(self.layers, i) for i in range(k)]
        self._member_grads = [self._member(self.grad_layers, i) for i in range(k)]
        # the later layers' weights as the products for their input gradients take them,
        # (k, n_{l+1}, n_l), and their biases as added to their products, (k, 1, n_{l+1})
        self._transposed_W = [W.transpose(0, 2, 1) for W, _ in self.layers[1:]]
        self._bias_rows = [b[:, None] for _, b in self.layers[1:]]
        self._passes: dict[int, _Pass] = {}
        self._logits: dict[int, np.ndarray] = {}
        self._wide_exact: dict[tuple[int, bool], bool] = {}
        # each run's columns of the first layer's wide arrays
        self._run_columns = [slice(i * n_1, (i + 1) * n_1) for i in range(k)]

    def _layers(self, W0: np.ndarray, rest: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, b) per Dense layer as stacks: W0 (n_in, k * n_1) and b0 (k * n_1,), then W
        (k, n_l, n_{l+1}) and b (k, n_{l+1}); views of W0 and rest (or of their grads)."""
        n_in = self.sizes[0]
        layers, offset = [(W0[:n_in], W0[n_in])], 0
        for n_l, n_out in zip(self.sizes[1:-1], self.sizes[2:], strict=True):
            W = rest[:, offset:offset + n_l * n_out].reshape(self.k, n_l, n_out)  # a view
            offset += n_l * n_out
            layers.append((W, rest[:, offset:offset + n_out]))
            offset += n_out
        return layers

    def _member(self, layers: list[tuple[np.ndarray, np.ndarray]], i: int) -> Tree:
        """Run i's arrays of stacked `layers` in the MLP's params structure, as views."""
        (W0, b0), *later = layers
        columns = slice(i * self.sizes[1], (i + 1) * self.sizes[1])
        return [{"W": W0[:, columns], "b": b0[columns]},
                *({"W": W[i], "b": b[i]} for W, b in later)]

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
        W0, rest = self.W0.view(bits).reshape(len(self.W0), self.k, -1), self.rest.view(bits)
        return bool((W0 == W0[:, :1]).all() and (rest == rest[:1]).all())

    def keep(self, runs: Sequence[int]) -> None:
        """Keep only the runs numbered `runs` (in that order): run j is then the former
        runs[j]. The grads are not kept."""
        W0 = self._runs(self.W0)[runs].transpose(1, 0, 2).reshape(len(self.W0), -1)
        rest = self.rest[runs]
        self._allocate(len(runs))
        self.W0[...], self.rest[...] = W0, rest

    def run_factors(self, values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Per-run values (k,) as factors of the grads, for `scale_grads`: one per column
        of W0, repeated for a block of its rows (see `_factor_rows`), and (k, 1)."""
        factors: np.ndarray = np.asarray(values, dtype=self.dtype)
        return (np.tile(np.repeat(factors, self.sizes[1]), self._factor_rows()),
                factors[:, None])

    def _factor_rows(self) -> int:
        """How many rows of W0 one row of its factors covers: the most that divide its rows
        within FACTOR_BYTES. Multiplied by one row of factors, the grads would be one short
        numpy loop per row (785 rows: 2-3x the time of a multiplication by a scalar)."""
        row_bytes = self.W0[0].nbytes
        return max(d for d in range(1, len(self.W0) + 1)
                   if len(self.W0) % d == 0 and (d == 1 or d * row_bytes <= FACTOR_BYTES))

    def scale_grads(self, factors: tuple[np.ndarray, np.ndarray]) -> None:
        """Multiply each run's grads by its factor (`run_factors`)."""
        W0_factors, rest_factors = factors
        blocks = self.grad_W0.reshape(-1, W0_factors.size)  # a view
        np.multiply(blocks, W0_factors, out=blocks)
        self.grad_rest *= rest_factors

    def _runs(self, wide: np.ndarray) -> np.ndarray:
        """A wide array (rows, k * n) as the stack of its runs' blocks, (k, rows, n): a view."""
        return wide.reshape(len(wide), self.k, -1).transpose(1, 0, 2)

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
        """x @ W0 of every run, wide (rows, k * n_1): one wide product, or k narrow
        products where the wide one would round differently."""
        W0, z = self.layers[0][0], arrays.z0
        if self._wide(len(x), gradient=False):
            return np.matmul(x, W0, out=z)
        for columns in self._run_columns:
            np.matmul(x, W0[:, columns], out=z[:, columns])
        return z

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, _Pass]:
        """Logits (k, rows, K) of x: (rows, n_in), and the pass's arrays, which hold each
        later layer's input: the first layer's activations wide (rows, k * n_1), the others
        (k, rows, n_l); as a run's Dense and Activation layers compute them (the same in
        train and eval mode); valid until the next pass of as many rows."""
        arrays = self._pass(len(x))
        z = self._first_product(x, arrays)
        z += self.layers[0][1]
        for index, (W, _) in enumerate(self.layers[1:]):
            a = arrays.inputs[index]
            activation = self.activations[index]
            if isinstance(activation, Sigmoid):  # its form depends on one run's array size
                sigmoid(z, a, size=arrays.run_sizes[index])
            else:
                activation.apply(z, a)
            z = np.matmul(arrays.input_runs[index], W, out=arrays.products[index])
            z += self._bias_rows[index]
        return (z if arrays.products else self._runs(z)), arrays

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Train mode: the batch-mean loss of every run, (k,) float64, on x: (batch, n_in)
        of the model dtype and y: (batch,) int labels; fills the grads."""
        z, arrays = self._forward(x)
        losses, grad, _ = self.head.stacked_loss_and_grad(z, y)  # grad: (k, batch, K)
        assert grad is not None  # with_grad
        backward = arrays.backward()
        for index in range(len(arrays.inputs), 0, -1):
            grad_W, grad_b = self.grad_layers[index]
            np.matmul(backward.transposed_inputs[index - 1], grad, out=grad_W)
            np.add.reduce(grad, axis=1, out=grad_b)
            np.matmul(grad, self._transposed_W[index - 1],
                      out=backward.grad_input_runs[index - 1])
            grad = backward.deltas[index - 1]
            self.activations[index - 1].multiply_derivative(
                arrays.inputs[index - 1], backward.grad_inputs[index - 1], grad)
        grad_b0 = self.grad_layers[0][1]
        if arrays.inputs:  # grad is the first layer's delta, wide
            np.add.reduce(grad, axis=0, out=grad_b0)
        else:  # the logits' gradient (k, batch, K), a view of (k, K, batch): summed along
            # its batch as a run sums it (pairwise), then laid out wide
            np.add.reduce(grad, axis=1, out=grad_b0.reshape(self.k, -1))
            wide = backward.wide_logits_grad
            self._runs(wide)[...] = grad
            grad = wide
        self._first_gradient(x, grad)
        return losses

    def _first_gradient(self, x: np.ndarray, delta: np.ndarray) -> None:
        """The first layer's weight gradient from its wide delta (batch, k * n_1): one wide
        product, or (where it would round differently) k narrow ones."""
        grad_W0 = self.grad_layers[0][0]
        if self._wide(len(x), gradient=True):
            np.matmul(x.T, delta, out=grad_W0)
            return
        for columns in self._run_columns:
            np.matmul(x.T, delta[:, columns], out=grad_W0[:, columns])

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Eval mode logits (k, n, K) of x: (n, n_in) of the model dtype, in chunks of
        EVAL_CHUNK rows as a run's model computes them; valid until the next call."""
        z = self._logits.get(len(x))
        if z is None:
            z = self._logits[len(x)] = np.empty((self.k, len(x), self.n_classes), self.dtype)
        for start in range(0, len(x), EVAL_CHUNK):
            z[:, start:start + EVAL_CHUNK] = self._forward(x[start:start + EVAL_CHUNK])[0]
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

    - `z0`: the first layer's product, wide (rows, k * n_1);
    - `inputs`: the hidden layers' activations, the later layers' inputs (the first wide
      (rows, k * n_1), the others (k, rows, n_l)), and `input_runs`, all (k, rows, n_l);
    - `products`: the later layers' products (k, rows, n_{l+1});
    - `backward()`: the arrays of the backward pass."""

    def __init__(self, stack: StackedMLP, rows: int) -> None:
        self.stack, self.rows = stack, rows
        k, dtype, hidden = stack.k, stack.dtype, stack.sizes[1:-1]
        self.z0: np.ndarray = np.empty((rows, k * stack.sizes[1]), dtype)
        self.inputs: list[np.ndarray] = [
            np.empty((rows, k * n) if index == 0 else (k, rows, n), dtype)
            for index, n in enumerate(hidden)]
        self.input_runs = [stack._runs(a) if index == 0 else a
                           for index, a in enumerate(self.inputs)]
        self.run_sizes = [rows * n for n in hidden]  # elements of one run's activations
        self.products: list[np.ndarray] = [np.empty((k, rows, n), dtype) for n in stack.sizes[2:]]
        self._backward: _Backward | None = None

    def backward(self) -> _Backward:
        """The arrays of the backward pass (made at its first call)."""
        if self._backward is None:
            self._backward = _Backward(self)
        return self._backward


class _Backward:
    """The backward pass's arrays of a `_Pass`: each hidden layer's activations' gradient
    `grad_inputs` (laid out as its `inputs`, written through `grad_input_runs`), its delta
    `deltas` (the same layout), the `inputs` transposed as the weight gradients take them
    (k, n_l, rows), and without hidden layers the logits' gradient wide (rows, k * K)."""

    def __init__(self, arrays: _Pass) -> None:
        stack = arrays.stack
        self.grad_inputs = [np.empty_like(a) for a in arrays.inputs]
        self.grad_input_runs = [stack._runs(a) if index == 0 else a
                                for index, a in enumerate(self.grad_inputs)]
        self.deltas = [np.empty_like(a) for a in arrays.inputs]
        self.transposed_inputs = [a.transpose(0, 2, 1) for a in arrays.input_runs]
        self.wide_logits_grad: np.ndarray = np.empty(
            (arrays.rows, 0 if arrays.inputs else stack.k * stack.n_classes), stack.dtype)
