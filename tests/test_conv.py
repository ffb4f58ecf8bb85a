"""Convolution, pooling, flatten and dropout layers: gradients against central finite
differences (float64), the forward pass against a direct loop, shape errors at model
construction, dropout's random stream."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

import nnlab.nn
from nnlab.datasets import Dataset, Split
from nnlab.errors import NNLabError
from nnlab.nn.activations import ReLU
from nnlab.nn.batch_threads import batch_parts
from nnlab.nn.cnn import CNN, multiply_adds_per_example, parse_layers
from nnlab.nn.conv import Conv2D, MaxPool2D
from nnlab.nn.layers import Dense, Dropout, Flatten, Layer
from nnlab.nn.model import Sequential
from nnlab.train import TrainConfig, get_preset, train
from tests.gradcheck import check_layer_gradients, check_model_gradients


def built(layer: Layer, in_shape: tuple[int, ...], seed: int = 0) -> Layer:
    layer.build(in_shape, np.random.default_rng(seed), np.float64)
    if layer.params:  # non-zero biases, so their gradient path is exercised too
        bias = layer.params["b"]
        bias[...] = np.random.default_rng(seed + 1).normal(size=bias.shape)
    return layer


def conv_reference(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int,
                   padding: int) -> np.ndarray:
    """Direct loops: y[n, f, a, c] = b[f] + sum_{ch,i,j} xp[n, ch, a*s+i, c*s+j] W[i, j, ch, f]."""
    n, c_in, h, w = x.shape
    k, f = W.shape[0], W.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - k) // stride + 1
    ow = (w + 2 * padding - k) // stride + 1
    y = np.zeros((n, f, oh, ow))
    for e in range(n):
        for o in range(f):
            for a in range(oh):
                for c in range(ow):
                    patch = xp[e, :, a * stride:a * stride + k, c * stride:c * stride + k]
                    y[e, o, a, c] = b[o] + np.sum(patch * W[:, :, :, o].transpose(2, 0, 1))
    return y


CONV_CASES = [  # (c_in, h, w, n_filters, kernel, stride, padding)
    (1, 6, 6, 2, 3, 1, 0),
    (1, 7, 6, 2, 3, 2, 1),
    (2, 7, 6, 3, 3, 2, 1),
    (3, 5, 5, 2, 2, 1, 2),
    (2, 8, 7, 2, 3, 3, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_forward_matches_direct_loops(case):
    c_in, h, w, f, k, s, p = case
    conv = built(Conv2D(f, k, stride=s, padding=p), (c_in, h, w))
    x = np.random.default_rng(2).normal(size=(3, c_in, h, w))
    expected = conv_reference(x, conv.params["W"], conv.params["b"], s, p)
    assert conv.forward(x, train=True).shape == expected.shape
    np.testing.assert_allclose(conv.forward(x, train=True), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.forward(x, train=False), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients(case):
    c_in, h, w, f, k, s, p = case
    conv = built(Conv2D(f, k, stride=s, padding=p), (c_in, h, w))
    check_layer_gradients(conv, np.random.default_rng(3).normal(size=(2, c_in, h, w)))


def test_conv_eval_chunks_match_one_pass(monkeypatch):
    conv = built(Conv2D(3, 3, padding=1), (2, 5, 5))
    x = np.random.default_rng(4).normal(size=(7, 2, 5, 5))
    whole = conv.forward(x, train=False)
    monkeypatch.setattr("nnlab.nn.conv.EVAL_CHUNK_ROWS", 2 * 25)  # 2 images per chunk
    np.testing.assert_allclose(conv.forward(x, train=False), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size, shape", [(2, (3, 6, 4)), (3, (2, 7, 8)), (2, (2, 5, 5))])
def test_maxpool_forward_and_gradients(size, shape):
    pool = built(MaxPool2D(size), shape)
    x = np.random.default_rng(5).normal(size=(2, *shape))
    c, h, w = shape
    oh, ow = h // size, w // size
    windows = x[:, :, :oh * size, :ow * size].reshape(2, c, oh, size, ow, size)
    np.testing.assert_array_equal(pool.forward(x, train=True), windows.max(axis=(3, 5)))
    check_layer_gradients(pool, x)


def test_maxpool_tie_sends_the_gradient_to_one_input():
    pool = built(MaxPool2D(2), (1, 2, 4))
    x = np.array([[[[1.0, 1.0, 0.0, 2.0], [1.0, 0.5, 2.0, 2.0]]]])
    pool.forward(x, train=True)
    grad_x = pool.backward(np.array([[[[3.0, 5.0]]]]))
    np.testing.assert_array_equal(grad_x, [[[[3.0, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]]]])


def test_flatten_gradients_and_order():
    flatten = built(Flatten(), (2, 3, 2))
    x = np.random.default_rng(6).normal(size=(2, 2, 3, 2))
    np.testing.assert_array_equal(flatten.forward(x, train=True), x.reshape(2, 12))
    check_layer_gradients(flatten, x)


def test_flatten_of_a_conv_output_is_in_channel_height_width_order():
    conv = built(Conv2D(3, 2), (1, 4, 4))
    x = np.random.default_rng(7).normal(size=(2, 1, 4, 4))
    y = conv.forward(x, train=True)
    flat = built(Flatten(), (3, 3, 3)).forward(y, train=True)
    np.testing.assert_array_equal(flat, np.ascontiguousarray(y).reshape(2, 27))


def test_dropout_gradients():
    dropout = built(Dropout(0.4), (3, 4, 4))
    dropout.rng = np.random.default_rng(0)
    x = np.random.default_rng(8).normal(size=(2, 3, 4, 4))
    check_layer_gradients(dropout, x, seed=9)  # one mask: the stream is rewound each pass


def dropout_output(seed: int, x: np.ndarray, rate: float = 0.5) -> np.ndarray:
    dropout = built(Dropout(rate), x.shape[1:])
    dropout.rng = np.random.default_rng(seed)
    return dropout.forward(x, train=True)


def test_dropout_mask_comes_from_the_given_stream():
    x = np.ones((64, 8, 4, 4))
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002 (must stay untouched)
    first = dropout_output(1, x)
    np.testing.assert_array_equal(dropout_output(1, x), first)
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002
    assert not np.array_equal(dropout_output(2, x), first)


def test_dropout_is_inverted_and_identity_at_eval():
    x = np.ones((200, 50, 10))
    y = dropout_output(3, x, rate=0.25)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    assert abs(kept.mean() - 0.75) < 0.01  # 100k draws: std of the mean ~0.0014
    dropout = built(Dropout(0.25), (50, 10))
    np.testing.assert_array_equal(dropout.forward(x, train=False), x)


def small_cnn() -> list[Layer]:
    return [Conv2D(4, 3, padding=1), MaxPool2D(2), ReLU(), Conv2D(6, 3, stride=2), ReLU(),
            Flatten(), Dropout(0.3), Dense(3)]


def test_model_gradients_through_the_whole_cnn():
    """Sequential of conv, pool, activation, flatten, dropout, dense: every parameter's
    and the input's gradient of the mean cross-entropy against finite differences (fixed
    dropout mask)."""
    model = Sequential(small_cnn(), in_shape=(2, 8, 8), dtype=np.float64, seed=0,
                       dropout_rng=np.random.default_rng(1))
    x = np.random.default_rng(10).normal(size=(4, 128))
    y = np.array([0, 2, 1, 2])
    for param in model.params:
        param["b"][...] = np.random.default_rng(11).normal(size=param["b"].shape) * 0.1
    check_model_gradients(model, x, y, train_loss=True)


@pytest.mark.parametrize("make_model", [
    lambda: Sequential(small_cnn(), in_shape=(2, 8, 8), dtype=np.float64, seed=0,
                       dropout_rng=np.random.default_rng(1)),
    lambda: CNN("conv4k3p1-pool2-conv6k3s2-dropout0.3", (2, 8, 8), 3, dtype=np.float64,
                seed=0, dropout_rng=np.random.default_rng(1)),
], ids=["Sequential", "CNN"])
def test_batch_split_across_threads_matches_one_thread(make_model):
    """Conv and pool layers cut the batch into one part per allowed thread, run in parallel
    threads (a CNN keeps BLAS on one thread meanwhile); the loss, every gradient and the
    eval outputs equal the one-part results."""
    x = np.random.default_rng(12).normal(size=(6, 128))
    y = np.array([0, 1, 2, 0, 1, 2])
    results = []
    for n_threads in (1, 2):
        model = make_model()
        with threadpool_limits(n_threads):
            assert len(batch_parts(6)) == n_threads
            loss, grads = model.loss_and_grads(x, y)
            results.append((loss, [{k: g.copy() for k, g in d.items()} for d in grads],
                            model.predict_proba(x)))
    (loss1, grads1, proba1), (loss2, grads2, proba2) = results
    assert loss2 == pytest.approx(loss1, rel=1e-12)
    for one, two in zip(grads1, grads2, strict=True):
        for key in one:
            np.testing.assert_allclose(two[key], one[key], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(proba2, proba1, rtol=1e-12)


def test_conv_stack_that_no_longer_fits_the_dense_layer_fails_at_construction():
    # a Dense sized for another input is impossible here: shapes propagate, so the
    # mismatch shows where a conv/pool no longer fits its input
    layers = [Conv2D(4, 5), MaxPool2D(2), Conv2D(8, 5), MaxPool2D(2), Flatten(), Dense(10)]
    with pytest.raises(NNLabError, match=r"layers\[2\] \(Conv2D\).*5x5.*4x4"):
        Sequential(layers, in_shape=(1, 12, 12))
    with pytest.raises(NNLabError, match=r"layers\[0\] \(Conv2D\).*\(channels, height, width\)"):
        Sequential([Conv2D(4, 3), Flatten(), Dense(10)], in_shape=(784,))
    with pytest.raises(NNLabError, match=r"layers\[1\] \(Dense\).*Flatten"):
        Sequential([Conv2D(4, 3), Dense(10)], in_shape=(1, 8, 8))


@pytest.mark.parametrize("make, match", [
    (lambda: Conv2D(0, 3), "Conv2D.n_filters"),
    (lambda: Conv2D(4, 3, stride=0), "Conv2D.stride"),
    (lambda: Conv2D(4, 3, padding=-1), "Conv2D.padding"),
    (lambda: Conv2D(4, 3, init="nope"), "Conv2D.init"),
    (lambda: MaxPool2D(0), "MaxPool2D.size"),
])
def test_bad_layer_arguments_name_the_field(make, match):
    with pytest.raises(NNLabError, match=match):
        make()


def test_the_package_exports_the_cnn_and_its_layers():
    for cls in (CNN, Conv2D, MaxPool2D, Flatten, Dropout):
        assert getattr(nnlab.nn, cls.__name__) is cls
        assert cls.__name__ in nnlab.nn.__all__


def test_spec_builds_layers_in_order_with_pool_before_activation():
    model = CNN("conv4k3p1-pool2-conv8k3-dense16-dropout0.25", (1, 8, 8), 3)
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPool2D", "ReLU", "Conv2D", "ReLU", "Flatten", "Dense", "ReLU", "Dropout",
        "Dense"]
    conv = model.layers[0]
    assert (conv.n_filters, conv.kernel_size, conv.stride, conv.padding) == (4, 3, 1, 1)
    assert model.params[-1]["W"].shape == (16, 3)
    assert model.layers[8].rate == 0.25


def test_multiply_adds_count_conv_positions_and_dense_weights():
    model = CNN("conv4k3-pool2-dense5", (2, 8, 8), 3)
    conv = 6 * 6 * (3 * 3 * 2 * 4)  # output positions x weights
    dense = 4 * 3 * 3 * 5 + 5 * 3
    assert multiply_adds_per_example(model) == conv + dense


@pytest.mark.parametrize("spec, match", [
    ("conv32", "token 'conv32'"),
    ("dense10-conv3k3", "before the first dense"),
    ("conv4k3-dropout1.5", "dropout rate"),
    ("conv0k3", "positive"),
    ("", "expected dash-separated tokens"),
])
def test_bad_spec_names_the_field(spec, match):
    with pytest.raises(NNLabError, match=f"TrainConfig.layers: .*{match}"):
        parse_layers(spec, "TrainConfig.layers")


def quadrant_images(n: int, seed: int) -> Split:
    """8x8 images with one bright 3x3 blob; the label is the quadrant it sits in."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, size=(n, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 4, size=n)
    rows = 4 * (y // 2) + rng.integers(0, 2, size=n)
    cols = 4 * (y % 2) + rng.integers(0, 2, size=n)
    for di in range(3):
        for dj in range(3):
            x[np.arange(n), rows + di, cols + dj] = 255
    return Split(x.reshape(n, 64), y)


def quadrants() -> Dataset:
    return Dataset("quadrants", quadrant_images(512, 0), quadrant_images(256, 1),
                   quadrant_images(256, 2), n_classes=4, image_shape=(1, 8, 8))


CNN_CONFIG = dict(model="cnn", layers="conv4k3p1-pool2-dense16-dropout0.25", activation="relu",
                  init="he", optimizer="adam", eta=0.01, batch_size=32, epochs=4, n_evals=3,
                  sizes=[64, 4])


def test_cnn_trains_through_train_and_reruns_bit_for_bit():
    data = quadrants()
    config = TrainConfig(**CNN_CONFIG)
    run = train(config, data)
    assert run.status == "ok"
    assert run.metrics["val_acc"] >= 0.95  # chance is 0.25
    again = train(config, data)
    columns = ["train_loss", "val_loss", "val_acc", "grad_norm"]
    pd.testing.assert_frame_equal(run.curve[columns], again.curve[columns])
    other_dropout = train(config.replace(dropout_seed=123), data)
    assert not run.curve["train_loss"].equals(other_dropout.curve["train_loss"])
    assert other_dropout.seeds["order"] == run.seeds["order"]


@pytest.mark.slow
def test_cnn_preset_reaches_99_2_percent_on_mnist(mnist):
    run = train(get_preset("cnn"), mnist)
    assert run.status == "ok"
    assert run.metrics["test_acc"] >= 0.992
