"""Gradients against central finite differences, for layers and whole models (float64).

A backward pass is right when the relative error ||g - g_fd|| / (||g|| + ||g_fd||)
against central differences with step H stays below RTOL. A random stream (dropout) is
rewound before every pass, so every pass sees the same mask.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nnlab.nn import Layer, Sequential

H = 1e-6
RTOL = 1e-7


def rel_error(g: np.ndarray, g_fd: np.ndarray) -> float:
    """||g - g_fd|| / (||g|| + ||g_fd||); 0 when both are zero."""
    denom = np.linalg.norm(g) + np.linalg.norm(g_fd)
    return 0.0 if denom == 0 else float(np.linalg.norm(g - g_fd) / denom)


def finite_difference(f: Callable[[], float], array: np.ndarray) -> np.ndarray:
    """Central differences of scalar f() with respect to every entry of `array`, which is
    changed in place and restored (any memory order: Fortran-ordered weights too)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + H
        up = f()
        array[index] = saved - H
        down = f()
        array[index] = saved
        grad[index] = (up - down) / (2 * H)
    return grad


def _rewinder(stream: np.random.Generator | None) -> Callable[[], None]:
    """A function that puts `stream` back in its present state."""
    state = None if stream is None else stream.bit_generator.state

    def rewind() -> None:
        if stream is not None:
            stream.bit_generator.state = state

    return rewind


def check_layer_gradients(layer: Layer, x: np.ndarray, seed: int = 0) -> None:
    """For L = sum(R * layer.forward(x)) in train mode, R ~ N(0, 1) drawn from `seed`:
    backward(R) is dL/dx, and it fills dL/dparam for every parameter array.
    x: (batch, *in_shape) float64, of a built layer."""
    rewind = _rewinder(layer.rng)

    def forward() -> np.ndarray:
        rewind()
        return layer.forward(x, train=True)

    r = np.random.default_rng(seed).normal(size=forward().shape)

    def loss() -> float:
        return float(np.sum(r * forward()))

    loss()
    grad_x = np.array(layer.backward(r))
    grads = {key: g.copy() for key, g in layer.grads.items()}
    assert grad_x.shape == x.shape
    assert grads.keys() == layer.params.keys()
    assert rel_error(grad_x, finite_difference(loss, x)) < RTOL
    for key, param in layer.params.items():
        assert rel_error(grads[key], finite_difference(loss, param)) < RTOL, key


def check_model_gradients(model: Sequential, x: np.ndarray, y: np.ndarray,
                          train_loss: bool = False) -> None:
    """loss_and_grads' gradient of every parameter (each non-zero) and
    loss_and_input_grad's gradient of x against central differences of the batch-mean
    loss. The differences are of the eval-mode loss, an independent forward pass whose
    value must equal the train-mode loss; with train_loss (a model with active dropout),
    of the train-mode loss, with one dropout mask throughout.
    x: (batch, n_features) float64; y: (batch,) int labels."""
    rewind = _rewinder(model.layers[0].rng)  # the dropout stream all layers share

    def loss() -> float:
        if train_loss:
            rewind()
            return model.loss_and_grads(x, y)[0]
        return model.loss_and_proba(x, y)[0]

    rewind()
    value, grads = model.loss_and_grads(x, y)
    if not train_loss:
        assert value == pytest.approx(loss(), rel=1e-12)
    grads = [{key: g.copy() for key, g in layer_grads.items()} for layer_grads in grads]
    for i, (params, layer_grads) in enumerate(zip(model.params, grads, strict=True)):
        assert params.keys() == layer_grads.keys()
        for key, param in params.items():
            g = layer_grads[key]
            assert g.shape == param.shape
            assert np.linalg.norm(g) > 0, f"params[{i}][{key!r}] has a zero gradient"
            error = rel_error(g, finite_difference(loss, param))
            assert error < RTOL, (i, key, error)
    rewind()
    _, grad_x = model.loss_and_input_grad(x, y)
    assert rel_error(grad_x, finite_difference(loss, x)) < RTOL
