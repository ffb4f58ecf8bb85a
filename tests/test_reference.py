"""The fast paths of nnlab.nn and nnlab.train against nnlab.reference, the textbook MLP.

Bit for bit where the operations are the same: the forward pass (W^T x^T + b, relu, the
sigmoid's exp form from SIGMOID_BY_EXP_FROM elements) and the backward pass through the
layers from a given dL/dz. To 1e-12 (relative, float64) where they are not: the output
heads sum over the classes in another order (a transposed copy), and the per-example path
runs BLAS gemv/ger; so the losses and gradients of a step, and SGD over a few steps, by
the model's fused steps (batch 1 and batch > 1) and by train()'s loop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnlab import reference
from nnlab.datasets import Dataset, Split
from nnlab.nn import MLP
from nnlab.nn.activations import SIGMOID_BY_EXP_FROM
from nnlab.optim import copy_tree
from nnlab.train import TrainConfig, build_model, stream_rngs, stream_seeds, train

RTOL = 1e-12
HEADS = [  # (output, loss, target_range) pairs the reference has
    ("softmax", "cross_entropy", (0.0, 1.0)),
    ("softmax", "cross_entropy", (0.01, 0.91)),  # label smoothing: targets sum to 0.99
    ("sigmoid", "mse", (0.01, 0.99)),
]
WIDTH = 32
BATCH = SIGMOID_BY_EXP_FROM // WIDTH  # every hidden layer takes the sigmoid's exp form


def assert_trees_close(got: list[dict], expected: list[dict]) -> None:
    for layer_got, layer_expected in zip(got, expected, strict=True):
        for key, array in layer_expected.items():
            scale = float(np.abs(array).max())
            np.testing.assert_allclose(layer_got[key], array, rtol=RTOL, atol=RTOL * scale)


def batch_of(n: int, n_features: int = 20, n_classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_features)), rng.integers(0, n_classes, n)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_the_forward_and_backward_passes_are_the_textbook_ones_bit_for_bit(activation, dtype):
    model = MLP([20, WIDTH, WIDTH, 4], activation=activation, dtype=dtype, seed=1)
    for params in model.params:  # non-zero biases, so they take part
        params["b"][:] = np.random.default_rng(2).normal(size=params["b"].shape)
    x, _ = batch_of(BATCH)
    x = x.astype(dtype)
    params = copy_tree(model.params)
    a = reference.forward(params, x, activation)
    np.testing.assert_array_equal(model.logits(x), a[-1])  # eval mode
    np.testing.assert_array_equal(model.logits(x, train=True), a[-1])
    grad_z = np.random.default_rng(3).normal(size=a[-1].shape).astype(dtype)
    grad = grad_z
    for layer in reversed(model.layers):  # the layers' backward, from the same dL/dz
        grad = layer.backward(grad)
    for got, expected in zip(model.grads, reference.backward(params, a, grad_z, activation),
                             strict=True):
        np.testing.assert_array_equal(got["W"], expected["W"])
        np.testing.assert_array_equal(got["b"], expected["b"])


@pytest.mark.parametrize(("output", "loss", "target_range"), HEADS)
def test_the_heads_loss_and_gradient_are_the_textbook_ones(output, loss, target_range):
    model = MLP([20, 4], output=output, loss=loss, target_range=target_range,
                dtype=np.float64)
    z = np.random.default_rng(4).normal(scale=3.0, size=(16, 4))
    _, y = batch_of(16)
    value, grad, _ = model.head.loss_and_grad(z, y)
    expected_value, expected_grad = reference.loss_and_grad(z, y, loss, target_range)
    assert value == pytest.approx(expected_value, rel=RTOL)
    np.testing.assert_allclose(grad, expected_grad, rtol=RTOL, atol=RTOL * 1e-2)


@pytest.mark.parametrize("batch", [1, 8])  # 1: BLAS level 2 in place; 8: the flat buffers
@pytest.mark.parametrize(("output", "loss", "target_range"), HEADS)
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_sgd_steps_of_the_model_follow_the_textbook(activation, output, loss, target_range,
                                                    batch):
    steps = 5
    model = MLP([20, 16, 8, 4], activation=activation, output=output, loss=loss,
                target_range=target_range, dtype=np.float64, seed=5)
    params = copy_tree(model.params)
    x, y = batch_of(steps * batch)
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        loss_value = model.sgd_step(x[rows], y[rows], 0.5)
        expected = reference.sgd_step(params, x[rows], y[rows], 0.5, activation, loss,
                                      target_range)
        assert loss_value == pytest.approx(expected, rel=RTOL)
    assert_trees_close(model.params, params)
    assert not np.allclose(params[0]["W"], copy_tree(MLP(
        [20, 16, 8, 4], activation=activation, dtype=np.float64, seed=5).params)[0]["W"])


@pytest.fixture(scope="module")
def blobs() -> Dataset:
    """4 Gaussian classes in 20 dimensions: 60 training examples."""
    centers = np.random.default_rng(6).normal(size=(4, 20))

    def split(n: int, seed: int) -> Split:
        x, y = batch_of(n, seed=seed)
        return Split((centers[y] + x).astype(np.float32), y)

    return Dataset("blobs", split(60, 7), split(20, 8), split(20, 9), n_classes=4,
                   image_shape=(1, 4, 5))


@pytest.mark.parametrize("batch_size", [1, 10])  # 1: train's per-example loop
@pytest.mark.parametrize(("output", "loss", "target_range"), HEADS)
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_train_follows_the_textbook(blobs, activation, output, loss, target_range,
                                    batch_size):
    """train() with plain SGD is: each epoch a permutation of the training rows from the
    order stream, cut into batches, one SGD step per batch (here 2.5 epochs)."""
    config = TrainConfig(sizes=[20, 16, 4], activation=activation, output=output, loss=loss,
                         target_range=list(target_range), dtype="float64", eta=0.1,
                         batch_size=batch_size, n_steps=150 // batch_size, n_evals=2)
    run = train(config, blobs)
    assert run.status == "ok"
    rngs = stream_rngs(stream_seeds(config))
    params = copy_tree(build_model(config, blobs, rngs).params)  # the run's initial weights
    x, y = blobs.train.features(np.float64), blobs.train.y
    per_epoch = len(y) // batch_size
    losses = []
    for step in range(config.n_steps):
        if step % per_epoch == 0:
            order = rngs["order"].permutation(len(y))
        rows = order[step % per_epoch * batch_size:][:batch_size]
        losses.append(reference.sgd_step(params, x[rows], y[rows], config.eta, activation,
                                         loss, target_range))
    assert_trees_close(run.model.params, params)
    # the last evaluation's train_loss: the mean over the steps since the one at step 1
    assert run.curve["train_loss"].iloc[-1] == pytest.approx(np.mean(losses[1:]), rel=RTOL)


def test_the_docs_show_the_reference_as_it_is():
    root = Path(__file__).parent.parent
    docs = (root / "docs" / "internals.md").read_text()
    shown = docs.split("```python\n", 1)[1].split("```", 1)[0]
    source = (root / "nnlab" / "reference.py").read_text()
    assert shown.startswith("def forward(") and source.endswith(shown)
