"""The gradient noise scale of an MLP (nnlab.nn.noise_scale) against explicit per-example
backprop and finite differences, and its estimators against a finite population."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from nnlab.datasets import Dataset, Split
from nnlab.errors import ConfigError
from nnlab.lockstep import group_key
from nnlab.nn import MLP
from nnlab.nn.cnn import CNN
from nnlab.nn.noise_scale import gradient_noise, per_example_gradients
from nnlab.run import CURVE_COLUMNS, NOISE_SCALE_COLUMNS
from nnlab.train import TrainConfig, train
from tests.gradcheck import finite_difference, rel_error


def tiny(activation: str = "sigmoid", output: str = "softmax", loss: str = "cross_entropy",
         dtype: type = np.float64) -> MLP:
    return MLP([6, 5, 4, 3], activation=activation, output=output, loss=loss, dtype=dtype,
               seed=3)


def examples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)), rng.integers(0, 3, size=n)


def explicit_gradients(model: MLP, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, n_params): each example's gradient by the model's own backprop, one at a time."""
    rows = []
    for i in range(len(x)):
        _, grads = model.loss_and_grads(x[i:i + 1], y[i:i + 1])
        rows.append(np.concatenate([g.ravel() for layer in grads for g in layer.values()]))
    return np.array(rows)


@pytest.mark.parametrize(("activation", "output", "loss"), [
    ("sigmoid", "softmax", "cross_entropy"), ("relu", "softmax", "cross_entropy"),
    ("tanh", "sigmoid", "cross_entropy"), ("elu", "softmax", "mse")])
def test_per_example_norms_and_sum_match_one_example_at_a_time(activation, output, loss):
    model = tiny(activation, output, loss)
    x, y = examples(9)
    explicit = explicit_gradients(model, x, y)
    squared, sums = per_example_gradients(model, x, y)
    np.testing.assert_allclose(squared, (explicit ** 2).sum(axis=1), rtol=1e-10)
    flat = np.concatenate([g.ravel() for layer in sums for g in layer.values()])
    np.testing.assert_allclose(flat, explicit.sum(axis=0), rtol=1e-10, atol=1e-14)


def test_one_examples_squared_norm_matches_finite_differences():
    model = tiny()
    x, y = examples(1, seed=4)
    fd = np.concatenate([finite_difference(lambda: model.loss_and_proba(x, y)[0], array).ravel()
                         for layer in model.params for array in layer.values()])
    squared, _ = per_example_gradients(model, x, y)
    assert rel_error(np.sqrt(squared), np.linalg.norm(fd, keepdims=True)) < 1e-7


def test_whole_population_gives_the_exact_mean_gradient_and_covariance_trace():
    model = tiny()
    x, y = examples(50)
    g = explicit_gradients(model, x, y)
    noise = gradient_noise(model, x, y, chunk=16)  # chunks that do not divide n
    mean = g.mean(axis=0)
    assert noise.grad_sq == pytest.approx(mean @ mean, rel=1e-10)
    assert noise.trace == pytest.approx(((g - mean) ** 2).sum(axis=1).mean(), rel=1e-10)
    assert noise.b_simple == pytest.approx(noise.trace / noise.grad_sq)
    assert (noise.n_examples, noise.n_population) == (50, 50)


def test_subsample_estimates_are_unbiased_for_the_population():
    model = tiny()
    x, y = examples(60)
    g = explicit_gradients(model, x, y)
    mean = g.mean(axis=0)
    true_grad_sq, true_trace = mean @ mean, ((g - mean) ** 2).sum(axis=1).mean()
    rng = np.random.default_rng(1)
    draws = np.array([gradient_noise(model, x[rows], y[rows], n_population=60)[:2]
                      for rows in (rng.choice(60, 8, replace=False) for _ in range(3000))])
    se = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
    assert abs(draws[:, 0].mean() - true_grad_sq) < 4 * se[0]
    assert abs(draws[:, 1].mean() - true_trace) < 4 * se[1]
    # the plain squared mean is biased up by about its sampling variance: detectably here
    plain = np.array([np.sum(g[rows].mean(axis=0) ** 2)
                      for rows in (rng.choice(60, 8, replace=False) for _ in range(3000))])
    assert plain.mean() - true_grad_sq > 4 * plain.std(ddof=1) / np.sqrt(len(plain))


def test_float32_model_is_measured_in_float64_without_touching_its_arrays():
    model = tiny(dtype=np.float32)
    x, y = examples(20)
    before = [{k: v.copy() for k, v in layer.items()} for layer in model.params]
    grads_before = [{k: v.copy() for k, v in layer.items()} for layer in model.grads]
    noise = gradient_noise(model, x.astype(np.float32), y)
    double = tiny(dtype=np.float64)
    for mine, theirs in zip(double.params, model.params, strict=True):
        for key in mine:
            mine[key][...] = theirs[key]
    assert noise.trace == pytest.approx(gradient_noise(double, x.astype(np.float32), y).trace,
                                        rel=1e-12)
    for layer, saved in zip(model.params + model.grads, before + grads_before, strict=True):
        for key in layer:
            np.testing.assert_array_equal(layer[key], saved[key])


def test_unsupported_model_and_too_few_examples_are_clear_errors():
    cnn = CNN("conv2k3-dense4", (1, 6, 6), 3)
    x, y = np.zeros((4, 36)), np.zeros(4, dtype=int)
    with pytest.raises(ConfigError, match="the built-in MLP"):
        gradient_noise(cnn, x, y)
    model = tiny()
    x, y = examples(5)
    with pytest.raises(ConfigError, match="at least 2 examples"):
        gradient_noise(model, x[:1], y[:1])
    with pytest.raises(ConfigError, match="at most n_population"):
        gradient_noise(model, x, y, n_population=4)


# --- the opt-in measurement of a run (TrainConfig.noise_scale_examples) --------------------

def blobs() -> Dataset:
    """3 Gaussian classes in 6 dimensions: 300 train, 60 val, 60 test."""
    centers = np.random.default_rng(0).standard_normal((3, 6))

    def split(n: int, seed: int) -> Split:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        return Split((centers[y] + rng.standard_normal((n, 6))).astype(np.float32), y)

    return Dataset("blobs", split(300, 1), split(60, 2), split(60, 3), n_classes=3,
                   image_shape=(1, 2, 3))


BASE = TrainConfig(sizes=[6, 5, 3], batch_size=10, n_steps=40, eta=0.5,
                   eval_steps=[0, 10, 40])


def test_a_run_records_the_noise_scale_of_its_parameters_and_is_otherwise_unchanged():
    data = blobs()
    measured = train(BASE.replace(noise_scale_examples=200), data)
    plain = train(BASE, data)
    assert list(plain.curve.columns) == list(CURVE_COLUMNS)
    assert list(measured.curve.columns) == [*CURVE_COLUMNS, *NOISE_SCALE_COLUMNS]
    pd.testing.assert_frame_equal(measured.curve[list(CURVE_COLUMNS)].drop(columns="seconds"),
                                  plain.curve.drop(columns="seconds"))
    last = measured.curve.iloc[-1]
    noise = gradient_noise(measured.model, data.train.x[:200], data.train.y[:200], 300)
    assert (last["grad_sq"], last["noise_trace"]) == (noise.grad_sq, noise.trace)
    assert (measured.curve["noise_trace"] > 0).all()
    assert measured.curve["grad_sq"].iloc[0] != last["grad_sq"]  # measured at each step


def test_only_a_run_that_measures_converts_its_uint8_training_pixels_to_floats():
    """Minibatches are gathered from the uint8 pixels (no float copy of the training set:
    157 MB for MNIST); the float features of the training split are made only for the
    examples of the noise measurement."""
    data = blobs()
    pixels = Dataset("pixels", Split(np.clip(data.train.x * 40 + 128, 0, 255).astype(np.uint8),
                                     data.train.y), data.val, data.test, n_classes=3,
                     image_shape=(1, 2, 3))
    train_module = importlib.import_module("nnlab.train")
    cache = train_module._FEATURE_CACHE  # (split id, dtype, rows or None for all) -> x

    def converted() -> set[int | None]:
        """The row counts of the training split's float conversions."""
        return {rows for split_id, _, rows in cache if split_id == id(pixels.train.x)}

    cache.clear()
    train(BASE, pixels)
    assert converted() == {train_module.REFERENCE_ROWS}  # the initial loss's rows alone
    train(BASE.replace(noise_scale_examples=200), pixels)
    assert converted() == {train_module.REFERENCE_ROWS, 200}


def test_the_field_is_opt_in_left_out_of_to_dict_at_its_default_and_validated():
    assert "noise_scale_examples" not in BASE.to_dict()  # committed digests stay
    on = BASE.replace(noise_scale_examples=50)
    assert on.to_dict()["noise_scale_examples"] == 50
    assert TrainConfig.from_dict(on.to_dict()) == on
    assert group_key(on) is None and group_key(BASE) is not None
    for bad, config in ((1, BASE), (-3, BASE),
                        (50, TrainConfig(model="cnn", layers="conv4k3-dense8"))):
        with pytest.raises(ConfigError, match="TrainConfig.noise_scale_examples"):
            config.replace(noise_scale_examples=bad)
    with pytest.raises(ConfigError, match="at most the 300 training examples"):
        train(BASE.replace(noise_scale_examples=301), blobs())
