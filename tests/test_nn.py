"""nnlab.nn: gradients against central finite differences (float64), the loss values
against their textbook formulas, the batch-1 fast path against the general path, init
statistics, dtypes, and the errors a bad configuration raises."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.special import expit
from threadpoolctl import threadpool_info, threadpool_limits

from nnlab.errors import ConfigError
from nnlab.nn import (
    ACTIVATIONS,
    MLP,
    Dense,
    Dropout,
    Flatten,
    Sequential,
    init_std,
    make_activation,
)
from nnlab.nn.activations import ELU, SIGMOID_BY_EXP_FROM, sigmoid
from nnlab.nn.threads import blas_threads, one_blas_thread
from tests.gradcheck import check_layer_gradients, check_model_gradients

HEADS = [
    ("softmax", "cross_entropy", (0.0, 1.0)),
    ("softmax", "cross_entropy", (0.02, 0.9)),
    ("softmax", "mse", (0.0, 1.0)),
    ("sigmoid", "mse", (0.01, 0.99)),
    ("sigmoid", "cross_entropy", (0.0, 1.0)),
    ("sigmoid", "cross_entropy", (0.1, 0.9)),
]


def small_batch(rng: np.random.Generator, n: int = 4, n_features: int = 5, n_classes: int = 3):
    return rng.normal(size=(n, n_features)), np.arange(n) % n_classes


# -- gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 4])  # batch 1 takes the BLAS level-2 path
@pytest.mark.parametrize("output, loss, target_range", HEADS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_mlp_gradients_match_finite_differences(activation, output, loss, target_range,
                                                batch):
    rng = np.random.default_rng(1)
    model = MLP([5, 4, 3, 3], activation=activation, output=output, loss=loss,
                init="normal", init_std=0.7, dtype=np.float64, seed=2,
                target_range=target_range)
    for params in model.params:  # non-zero biases, so their role is checked too
        params["b"][:] = rng.normal(scale=0.3, size=params["b"].shape)
    check_model_gradients(model, *small_batch(rng, n=batch))


@pytest.mark.parametrize("init", ["normal", "xavier", "glorot", "he", "kaiming", "lecun"])
def test_each_init_gives_a_model_with_correct_gradients(init):
    std = 0.5 if init == "normal" else None  # the default 0.01 leaves FD in the roundoff
    model = MLP([5, 6, 3], activation="tanh", init=init, init_std=std, dtype=np.float64,
                seed=3)
    check_model_gradients(model, *small_batch(np.random.default_rng(4)))


def test_sequential_with_flatten_and_dropout_matches_finite_differences():
    """Image-shaped input through Flatten; Dropout in eval mode is the identity, and in
    train mode with a fixed stream its gradient is checked at the layer level below."""
    model = Sequential([Flatten(), Dense(4, init="he"), make_activation("elu"), Dropout(0.0),
                        Dense(3)], in_shape=(1, 2, 3), dtype=np.float64, seed=5)
    check_model_gradients(model, *small_batch(np.random.default_rng(6), n_features=6))


LAYERS = {
    "dense": lambda: Dense(3, init="he"),
    "flatten": Flatten,
    "dropout": lambda: Dropout(0.5),
    **{name: (lambda name=name: make_activation(name)) for name in ACTIVATIONS},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [SIGMOID_BY_EXP_FROM - 1, SIGMOID_BY_EXP_FROM])
def test_sigmoid_matches_expit_in_both_forms_without_overflow(size, dtype):
    """Small arrays take expit, large ones the exp form: both within 1 ulp of 1 of the
    exact value (expit in extended precision) and within 2 ulp of it relatively down to
    1e-30, in [0, 1], written into out, and silent for +-1e4."""
    x = np.random.default_rng(3).normal(scale=8.0, size=size).astype(dtype)
    x[:3] = [1e4, -1e4, 0.0]
    out = np.full_like(x, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = sigmoid(x, out)
    assert result is out and out.dtype == dtype
    exact = expit(x.astype(np.longdouble))
    eps = np.finfo(dtype).eps
    assert np.abs(out - exact).max() <= eps
    not_tiny = exact > 1e-30
    assert (np.abs(out - exact)[not_tiny] <= 2 * eps * exact[not_tiny]).all()
    assert out[:3].tolist() == [1.0, 0.0, 0.5]
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_sigmoid_layer_in_its_exp_form_matches_finite_differences():
    layer = make_activation("sigmoid")
    layer.build((SIGMOID_BY_EXP_FROM,), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).normal(scale=3.0, size=(1, SIGMOID_BY_EXP_FROM))
    check_layer_gradients(layer, x, seed=2)


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_backward_matches_finite_differences(name):
    """For L = sum(R * layer(x)): backward(R) is dL/dx and fills dL/dparams."""
    rng = np.random.default_rng(7)
    layer = LAYERS[name]()
    in_shape = (2, 3) if name == "flatten" else (4,)
    layer.build(in_shape, rng, np.float64)
    x = rng.normal(size=(3, *in_shape))
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu-like activations
    layer.rng = np.random.default_rng(8)
    check_layer_gradients(layer, x, seed=9)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_matches_expm1_and_passes_positive_inputs_exactly(alpha, dtype):
    """Within 1 ulp of alpha of alpha * expm1(x) (in extended precision) for x <= 0, x
    itself for x > 0, silent for -1e4."""
    x = np.random.default_rng(20).normal(scale=4.0, size=4096).astype(dtype)
    x[:4] = [-1e4, -1e-9, 0.0, 1e-9]
    layer = ELU(alpha)
    out = np.full_like(x, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.apply(x, out)
    positive = x > 0
    np.testing.assert_array_equal(out[positive], x[positive])
    exact = alpha * np.expm1(x[~positive].astype(np.longdouble))
    assert np.abs(out[~positive] - exact).max() <= alpha * np.finfo(dtype).eps
    assert out[0] == -alpha


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_elu_with_other_alphas_matches_finite_differences(alpha):
    layer = ELU(alpha)
    layer.build((4,), np.random.default_rng(0), np.float64)
    x = np.random.default_rng(21).normal(size=(3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink
    check_layer_gradients(layer, x, seed=22)


# -- loss values -------------------------------------------------------------------------


@pytest.mark.parametrize("output, loss, target_range", HEADS)
def test_loss_values_follow_the_textbook_formulas(output, loss, target_range):
    rng = np.random.default_rng(9)
    model = MLP([5, 3], output=output, loss=loss, dtype=np.float64, seed=1,
                target_range=target_range)
    x, y = small_batch(rng)
    z = x @ model.params[0]["W"] + model.params[0]["b"]
    lo, hi = target_range
    t = np.full(z.shape, lo)
    t[np.arange(len(y)), y] = hi
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) if output == "softmax" else (
        1 / (1 + np.exp(-z)))
    if loss == "mse":
        expected = np.mean(0.5 * np.sum((p - t) ** 2, axis=1))
    elif output == "softmax":
        expected = np.mean(-np.sum(t * np.log(p), axis=1))
    else:
        expected = np.mean(-np.sum(t * np.log(p) + (1 - t) * np.log(1 - p), axis=1))
    value, proba = model.loss_and_proba(x, y)
    assert value == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(proba, p, rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(x), p, rtol=1e-12)


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_cross_entropy_is_finite_and_exact_for_huge_logits(output):
    """Logits of +-1e4 overflow a naive exp; log-sum-exp / softplus keep the loss exact."""
    model = MLP([2, 3], output=output, dtype=np.float32, seed=0)
    model.params[0]["W"][:] = np.array([[1e4, 0, -1e4], [0, 0, 0]], dtype=np.float32)
    x = np.array([[1.0, 0.0]], dtype=np.float32)
    for label, expected in [(0, 0.0), (1, 1e4), (2, 2e4)]:
        loss, grads = model.loss_and_grads(x, np.array([label]))
        assert math.isfinite(loss)
        if output == "softmax":
            assert loss == pytest.approx(expected, abs=1e-3)
        assert all(np.isfinite(g).all() for d in grads for g in d.values())


# -- the plain SGD fast path -------------------------------------------------------------


def sgd_by_hand(model: MLP, x: np.ndarray, y: np.ndarray, eta: float) -> float:
    """params -= eta * grads, with the grads of the layer-by-layer (batched) path."""
    loss, grads = Sequential.loss_and_grads(model, x, y)
    for params, layer_grads in zip(model.params, grads, strict=True):
        for key in params:
            params[key] -= eta * layer_grads[key]
    return loss


@pytest.mark.parametrize("output, loss, target_range", HEADS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_batch1_sgd_step_equals_the_general_path(activation, output, loss, target_range):
    kwargs = dict(activation=activation, output=output, loss=loss, target_range=target_range,
                  init="normal", init_std=0.8, dtype=np.float64, seed=11)
    fast, general = MLP([6, 5, 4, 3], **kwargs), MLP([6, 5, 4, 3], **kwargs)
    rng = np.random.default_rng(12)
    for step in range(3):
        x = rng.normal(size=6)
        label = step % 3
        loss_fast = fast.sgd_step(x, label, 0.3)
        loss_general = sgd_by_hand(general, x[None, :], np.array([label]), 0.3)
        assert loss_fast == pytest.approx(loss_general, rel=1e-12)
    for p_fast, p_general in zip(fast.params, general.params, strict=True):
        for key in p_fast:
            np.testing.assert_allclose(p_fast[key], p_general[key], rtol=1e-12, atol=1e-15)
            assert p_fast[key].dtype == np.float64


def test_sgd_steps_equals_a_loop_of_sgd_step_and_batched_sgd_step_equals_general():
    rng = np.random.default_rng(13)
    x, y = rng.random((20, 8), dtype=np.float32), rng.integers(0, 4, 20)
    etas = np.linspace(0.5, 0.1, 20)
    kwargs = dict(output="sigmoid", loss="mse", init="lecun", target_range=(0.01, 0.99))
    looped, fused = MLP([8, 6, 4], **kwargs), MLP([8, 6, 4], **kwargs)
    losses_looped = [looped.sgd_step(x[i:i + 1], y[i:i + 1], etas[i]) for i in range(20)]
    losses_fused = fused.sgd_steps(x, y, etas)
    assert losses_fused.shape == (20,)
    np.testing.assert_array_equal(losses_fused, losses_looped)
    for a, b in zip(looped.params, fused.params, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
            assert a[key].dtype == np.float32
    batched, general = MLP([8, 6, 4], seed=3), MLP([8, 6, 4], seed=3)
    assert batched.sgd_step(x, y, 0.2) == sgd_by_hand(general, x, y, 0.2)
    for a, b in zip(batched.params, general.params, strict=True):
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("x_rows", [slice(0, 1), slice(0, 5)])
def test_sgd_step_updates_params_an_optimiser_replaced(x_rows):
    """Params assigned as C-ordered (a Dense layer keeps W Fortran-ordered) or float64
    arrays are still updated in place, and end up in the layer's own layout."""
    rng = np.random.default_rng(20)
    x, y = rng.random((5, 6), dtype=np.float32)[x_rows], np.arange(5)[x_rows] % 3
    model, reference = MLP([6, 4, 3], seed=1), MLP([6, 4, 3], seed=1)
    model.params[0]["W"] = np.ascontiguousarray(model.params[0]["W"])
    model.params[1]["b"] = model.params[1]["b"].astype(np.float64)
    model.sgd_step(x, y, 0.5)
    sgd_by_hand(reference, x, y, 0.5)
    for a, b in zip(model.params, reference.params, strict=True):
        for key in a:
            assert a[key].dtype == np.float32 and a[key].flags.f_contiguous
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7)


def test_batch1_sgd_learns_a_separable_problem():
    """Per-sample SGD with the classic 0.01/0.99 MSE recipe fits a linear rule."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(600, 10)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    model = MLP([10, 8, 2], output="sigmoid", loss="mse", init="lecun",
                target_range=(0.01, 0.99))
    losses = model.sgd_steps(x[:500], y[:500], 0.3)
    assert losses[-100:].mean() < 0.5 * losses[:100].mean()
    accuracy = np.mean(model.predict_proba(x[500:]).argmax(axis=1) == y[500:])
    assert accuracy > 0.9


# -- init, dtype, seeds, eval chunks -----------------------------------------------------


@pytest.mark.parametrize("init, std, expected", [
    ("normal", 0.05, 0.05),
    ("xavier", None, math.sqrt(2 / (800 + 1200))),
    ("he", None, math.sqrt(2 / 800)),
    ("lecun", None, 1 / math.sqrt(800)),
])
def test_init_statistics_on_a_large_layer(init, std, expected):
    model = MLP([800, 1200], init=init, init_std=std, seed=15)
    W, b = model.params[0]["W"], model.params[0]["b"]
    assert W.shape == (800, 1200)
    assert W.std() == pytest.approx(expected, rel=0.005)  # 960k draws: se ~0.07%
    assert abs(W.mean()) < 0.005 * expected
    assert not b.any()
    assert init_std(init, 800, 1200, std) == pytest.approx(expected)


def test_per_layer_init_and_std():
    expected = [math.sqrt(2 / 600), 0.2, math.sqrt(2 / 410)]
    for std in ([None, 0.2, None], 0.2):  # a scalar std goes to the "normal" layers
        model = MLP([600, 500, 400, 10], activation="relu", init=["he", "normal", "xavier"],
                    init_std=std, seed=16)
        stds = [p["W"].std() for p in model.params]
        assert stds == pytest.approx(expected, rel=0.02)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "float64"])
def test_dtype_is_preserved_everywhere(dtype):
    expected = np.dtype(dtype)
    model = MLP([6, 5, 3], activation="relu", dtype=dtype)
    x = np.random.default_rng(17).random((4, 6))  # float64 input is cast
    y = np.array([0, 1, 2, 0])
    loss, grads = model.loss_and_grads(x, y)
    assert isinstance(loss, float)
    assert all(a.dtype == expected for d in model.params + grads for a in d.values())
    assert model.predict_proba(x).dtype == expected
    assert model.loss_and_input_grad(x, y)[1].dtype == expected
    model.sgd_step(x[0], 1, 0.1)
    model.sgd_step(x, y, 0.1)
    assert all(a.dtype == expected for d in model.params for a in d.values())


def test_seeds_fix_the_initial_weights():
    same = [MLP([20, 10, 3], seed=5).params, MLP([20, 10, 3], seed=5).params]
    other = MLP([20, 10, 3], seed=6).params
    wide = MLP([20, 10, 3], seed=5, dtype=np.float64).params
    for a, b, c, d in zip(*same, other, wide, strict=True):
        np.testing.assert_array_equal(a["W"], b["W"])
        assert not np.array_equal(a["W"], c["W"])
        np.testing.assert_allclose(a["W"], d["W"], rtol=1e-6)  # same draws, rounded


def test_dropout_uses_the_model_stream_and_is_identity_in_eval():
    def model(stream_seed: int) -> Sequential:
        return Sequential([Dense(50), Dropout(0.5), Dense(3)], in_shape=(4,), seed=0,
                          dropout_rng=np.random.default_rng(stream_seed))

    x, y = np.ones((8, 4), np.float32), np.zeros(8, dtype=np.int64)
    a, b, c = model(1), model(1), model(2)
    grads = [m.loss_and_grads(x, y)[1][0]["W"].copy() for m in (a, b, c)]
    np.testing.assert_array_equal(grads[0], grads[1])
    assert not np.array_equal(grads[0], grads[2])
    np.testing.assert_array_equal(a.predict_proba(x), c.predict_proba(x))
    kept = a.layers[1].forward(np.ones((200, 50), np.float32), True)
    assert set(np.unique(kept)) == {0.0, 2.0}
    assert abs(kept.mean() - 1.0) < 0.05


def test_eval_in_chunks_matches_train_mode_forward():
    model = MLP([12, 7, 5], activation="tanh", dtype=np.float64)
    x = np.random.default_rng(18).random((2500, 12))  # 3 chunks of EVAL_CHUNK
    np.testing.assert_allclose(model.logits(x), model.logits(x, train=True), rtol=1e-12)


@pytest.mark.parametrize("name", ["relu", "elu"])
def test_activations_against_cached_zeros_follow_shape_and_layout_changes(name):
    """relu and elu take max/min against a cached zeros array: across batch sizes and a
    channels-last view they still give the reference values, and the zeros stay zero."""
    layer = make_activation(name)
    rng = np.random.default_rng(23)
    reference = {"relu": lambda x: np.maximum(x, 0.0),
                 "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))}[name]
    for x in (rng.normal(size=(5, 7)), rng.normal(size=(3, 7)),
              rng.normal(size=(2, 4, 5, 3)).transpose(0, 3, 1, 2), rng.normal(size=(5, 7))):
        for train in (True, False):
            np.testing.assert_allclose(layer.forward(x, train), reference(x), rtol=0,
                                       atol=1e-15)
        assert not layer.zeros(x).any()


def test_buffer_like_keeps_a_channels_last_layout():
    relu = make_activation("relu")
    x = np.random.default_rng(19).normal(size=(2, 4, 5, 3)).transpose(0, 3, 1, 2)
    y = relu.forward(x, True)
    assert y.strides == x.strides
    np.testing.assert_array_equal(y, np.maximum(x, 0))


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, field", [
    (dict(activation="swish"), "MLP.activation[0]"),
    (dict(activation=["relu"]), "MLP.activation"),
    (dict(init="uniform"), "MLP.init[0]"),
    (dict(init=["he", "he"]), "MLP.init"),
    (dict(init="he", init_std=0.1), "MLP.init_std"),
    (dict(init=["he", "normal", "he"], init_std=[0.1, 0.1, None]), "MLP.init_std[0]"),
    (dict(init="normal", init_std=-1.0), "MLP.init_std[0]"),
    (dict(output="tanh"), "MLP.output"),
    (dict(loss="hinge"), "MLP.loss"),
    (dict(dtype="float16"), "MLP.dtype"),
    (dict(seed=-1), "MLP.seed"),
    (dict(target_range=(0.0, 2.0)), "MLP.target_range"),
    (dict(sizes=[784]), "MLP.sizes"),
    (dict(sizes=[784, 0, 10]), "MLP.sizes"),
])
def test_bad_config_raises_naming_the_field(kwargs, field):
    kwargs = {"sizes": [784, 16, 16, 10], **kwargs}
    with pytest.raises(ConfigError) as error:
        MLP(**kwargs)
    assert str(error.value).startswith(f"{field}: expected") and error.value.field == field


def test_bad_inputs_and_shapes_raise_naming_what_is_wrong():
    model = MLP([6, 4, 3])
    with pytest.raises(ConfigError, match=r"^x: expected an array of shape \(batch, 6\)"):
        model.loss_and_grads(np.zeros((2, 5)), np.zeros(2, dtype=int))
    for labels in ([0, 3], [0, -1], np.array([0, 3], dtype=np.uint8), np.array([-1, 0], ">i4")):
        with pytest.raises(ConfigError, match=r"^y: expected labels in 0\.\.2"):
            model.loss_and_grads(np.zeros((2, 6)), np.array(labels))
    big_endian = model.loss_and_grads(np.zeros((2, 6)), np.array([0, 2], dtype=">i8"))[0]
    assert big_endian == model.loss_and_grads(np.zeros((2, 6)), np.array([0, 2]))[0]
    with pytest.raises(ConfigError, match=r"^y: expected 2 integer labels"):
        model.loss_and_grads(np.zeros((2, 6)), np.array([0.0, 1.0]))
    with pytest.raises(ConfigError, match=r"^x: expected 6 features"):
        model.sgd_step(np.zeros(5), 0, 0.1)
    with pytest.raises(ConfigError, match=r"^y: expected a label in 0\.\.2"):
        model.sgd_step(np.zeros(6), 7, 0.1)
    assert Sequential([Flatten(), Dense(3)], in_shape=(2, 2)).n_classes == 3
    with pytest.raises(ConfigError, match=r"^layers\[0\] \(Dense\): expected a flat"):
        Sequential([Dense(3)], in_shape=(2, 2))
    with pytest.raises(ConfigError, match=r"^x: expected at least one example"):
        model.predict_proba(np.zeros((0, 6)))


def blas_thread_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_one_blas_thread_limits_and_restores_the_thread_count():
    with threadpool_limits(2, user_api="blas"):
        before = blas_thread_counts()
        with one_blas_thread():
            assert set(blas_thread_counts()) == {1}
        assert blas_thread_counts() == before


@pytest.mark.parametrize("limit", [1, 2])
def test_blas_threads_reports_the_current_limit(limit):
    """blas_threads() (the batch-split count) follows threadpoolctl and one_blas_thread()."""
    with threadpool_limits(limit, user_api="blas"):
        assert blas_threads() == max(blas_thread_counts()) == limit
        with one_blas_thread():
            assert blas_threads() == 1
        assert blas_threads() == limit
