"""One SGD step of an MLP in plain numpy, as a textbook writes it: what nnlab.nn and
nnlab.train compute, without their buffers, fused paths and BLAS calls. Tests hold the fast
paths to it; nothing trains with it.

params: [{"W": (n_in, n_out), "b": (n_out,)}, ...]; x: (batch, n_in); y: (batch,) labels.
The products are written as a textbook with one column per example writes them, z^T =
W^T a^T + b (each layer's units along the rows of its products), as nnlab.nn.Dense
computes them; arrays are passed and returned as (batch, n), their transposes.
Hidden layers: sigmoid or relu. Heads: softmax + cross-entropy (loss="cross_entropy") or
sigmoid + mean squared error 0.5 * sum_k (p_k - t_k)^2 (loss="mse"), on the targets
t = lo + (hi - lo) * onehot(y); each loss is averaged over the batch.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


# activation f, and its derivative f'(z) written with a = f(z)
ACTIVATIONS = {"sigmoid": (sigmoid, lambda a: a * (1 - a)),
               "relu": (relu, lambda a: (a > 0).astype(a.dtype))}


def forward(params: list[dict], x: np.ndarray, activation: str) -> list[np.ndarray]:
    """[x, a_1, ..., a_{L-1}, z_L]: each layer's activations, the last layer's logits."""
    f = ACTIVATIONS[activation][0]
    a = [x]
    for i, layer in enumerate(params):
        z = (layer["W"].T @ a[-1].T + layer["b"][:, None]).T
        a.append(z if i == len(params) - 1 else f(z))
    return a


def loss_and_grad(z: np.ndarray, y: np.ndarray, loss: str,
                  target_range: tuple[float, float] = (0.0, 1.0)) -> tuple[float, np.ndarray]:
    """The batch-mean loss of logits z: (batch, K) and its gradient dL/dz: (batch, K)."""
    batch = len(y)
    lo, hi = target_range
    t = np.full(z.shape, lo, dtype=z.dtype)
    t[np.arange(batch), y] = hi
    if loss == "cross_entropy":  # softmax output
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        value = -np.sum(t * np.log(p)) / batch
        grad = p * t.sum(axis=1, keepdims=True) - t  # p - t when the targets sum to 1
    else:  # sigmoid output, mse
        p = sigmoid(z)
        value = 0.5 * np.sum((p - t) ** 2) / batch
        grad = (p - t) * p * (1 - p)
    return float(value), grad / batch


def backward(params: list[dict], a: list[np.ndarray], grad_z: np.ndarray,
             activation: str) -> list[dict]:
    """The gradients of every W and b, from the forward pass `a` and dL/dz of the last layer."""
    derivative = ACTIVATIONS[activation][1]
    grads: list[dict] = [{} for _ in params]
    for i in reversed(range(len(params))):
        grads[i] = {"W": (grad_z.T @ a[i]).T, "b": grad_z.sum(axis=0)}
        if i > 0:  # through W, then through the activation that made a[i]
            grad_z = (params[i]["W"] @ grad_z.T).T * derivative(a[i])
    return grads


def sgd_step(params: list[dict], x: np.ndarray, y: np.ndarray, eta: float, activation: str,
             loss: str, target_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """params -= eta * gradient, in place; returns the loss before the step."""
    a = forward(params, x, activation)
    value, grad_z = loss_and_grad(a[-1], y, loss, target_range)
    for layer, grads in zip(params, backward(params, a, grad_z, activation), strict=True):
        for key in layer:
            layer[key] -= eta * grads[key]
    return value
