"""The gradient noise scale of an MLP: B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018,
'An Empirical Model of Large-Batch Training', eq. 2.3 and appendix A).

G is the mean gradient of the loss over the training set and Sigma the covariance of one
example's gradient; a minibatch of B examples drawn at random has gradient covariance
Sigma / B, so B_simple is the batch size at which the minibatch noise is as large as G.
Both come from one pass over a sample of training examples without a per-example loop: the
weight gradient of one example at a dense layer is the outer product a_i delta_i^T of the
layer's input and its backpropagated error, so its squared norm is |a_i|^2 |delta_i|^2, and
the bias gradient's |delta_i|^2. The pass runs in float64 on a copy of the parameters and
leaves the model's arrays and buffers untouched.

A sample of n of the M training examples, drawn without replacement, gives unbiased
estimates (appendix A's, with the finite-population correction): the per-example gradients'
sample variance s^2 = (sum_i |g_i|^2 - n |g_bar|^2) / (n - 1) estimates the population's
S^2, tr(Sigma) = (M - 1) / M * S^2 and |G|^2 = |g_bar|^2 - (1 - n / M) s^2 / n; with n = M
both are exact. Weight decay and L1, which do not vary by example, are not in G.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnlab.errors import ConfigError
from nnlab.nn.model import EVAL_CHUNK, MLP, Sequential


class GradientNoise(NamedTuple):
    """One measurement: grad_sq = |G|^2 and trace = tr(Sigma), from n_examples of the
    population's n_population; b_simple = trace / grad_sq."""

    grad_sq: float
    trace: float
    n_examples: int
    n_population: int

    @property
    def b_simple(self) -> float:
        return self.trace / self.grad_sq if self.grad_sq > 0 else float("inf")


def per_example_gradients(model: MLP, x: np.ndarray, y: np.ndarray
                          ) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """The squared norm of each example's loss gradient, (batch,) float64, and the sum of
    the examples' gradients (the model's params' structure, float64), in float64 from the
    model's current parameters. x: (batch, n_features); y: (batch,) int labels."""
    params = [{key: array.astype(np.float64) for key, array in layer.items()}
              for layer in model.params]
    inputs = [np.asarray(x, dtype=np.float64)]
    for i, layer in enumerate(params):
        z = inputs[-1] @ layer["W"] + layer["b"]
        if i < len(model.hidden_activations):
            model.hidden_activations[i].apply(z, z)
        inputs.append(z)
    logits = inputs.pop()
    _, grad, _ = model.head.loss_and_grad(logits, np.asarray(y))
    assert grad is not None  # asked for with_grad
    delta = grad * len(logits)  # each example's own loss, not the batch mean
    squared = np.zeros(len(logits))
    sums: list[dict[str, np.ndarray]] = []
    for i in reversed(range(len(params))):
        a = inputs[i]
        delta_sq = np.einsum("ij,ij->i", delta, delta)
        squared += (np.einsum("ij,ij->i", a, a) + 1.0) * delta_sq
        sums.append({"W": a.T @ delta, "b": delta.sum(axis=0)})
        if i:
            delta_before = np.empty_like(a)
            model.hidden_activations[i - 1].multiply_derivative(
                a, delta @ params[i]["W"].T, delta_before)
            delta = delta_before
    return squared, sums[::-1]


def gradient_noise(model: Sequential, x: np.ndarray, y: np.ndarray,
                   n_population: int | None = None, chunk: int = EVAL_CHUNK) -> GradientNoise:
    """|G|^2 and tr(Sigma) of `model`'s loss gradient from the examples x: (n, n_features),
    y: (n,) int, drawn without replacement from a training set of n_population examples
    (default n: the whole set). ConfigError for a model other than the built-in MLP (its
    layers' per-example gradients are not outer products) or fewer than 2 examples."""
    if not isinstance(model, MLP):
        raise ConfigError("model", "the built-in MLP (the gradient noise scale is measured "
                          "for dense layers only)", model, shown=type(model).__name__)
    n = len(x)
    population = n if n_population is None else int(n_population)
    if n < 2 or population < n:
        raise ConfigError("x", f"at least 2 examples, at most n_population ({population})",
                          n, shown=f"{n} examples")
    total_sq = 0.0
    total: list[dict[str, np.ndarray]] | None = None
    for start in range(0, n, chunk):
        squared, sums = per_example_gradients(model, x[start:start + chunk],
                                              y[start:start + chunk])
        total_sq += float(squared.sum())
        total = sums if total is None else [
            {key: mine[key] + theirs[key] for key in mine}
            for mine, theirs in zip(total, sums, strict=True)]
    assert total is not None  # n >= 2
    mean_sq = sum(float(np.sum(array * array)) for layer in total
                  for array in layer.values()) / n**2
    sample_variance = (total_sq - n * mean_sq) / (n - 1)
    trace = (population - 1) / population * sample_variance
    grad_sq = mean_sq - (1 - n / population) * sample_variance / n
    return GradientNoise(grad_sq, trace, n, population)
