"""The training loop on a small synthetic problem: seeds, divergence, validation, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from nnlab.datasets import Dataset, Split
from nnlab.errors import ConfigError, NNLabError
from nnlab.nn import MLP
from nnlab.train import (
    EVAL_CHUNK_ROWS,
    PRESETS,
    TrainConfig,
    build_model,
    eval_schedule,
    evaluate,
    stream_rngs,
    stream_seeds,
    train,
)


def _split(centers: np.ndarray, n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(centers), n)
    x = centers[y] + 0.9 * rng.standard_normal((n, centers.shape[1]))
    return Split(x.astype(np.float32), y)


@pytest.fixture(scope="module")
def blobs() -> Dataset:
    """4 Gaussian classes in 20 dimensions: 600 train, 200 val, 200 test."""
    centers = np.random.default_rng(0).standard_normal((4, 20))
    return Dataset("blobs", _split(centers, 600, 1), _split(centers, 200, 2),
                   _split(centers, 200, 3), n_classes=4, image_shape=(1, 4, 5))


BASE = TrainConfig(sizes=[20, 16, 4], activation="tanh", batch_size=10, epochs=2, eta=0.2)


def without_seconds(run) -> pd.DataFrame:
    return run.curve.drop(columns="seconds")


def test_learns_the_blobs(blobs):
    run = train(BASE, blobs)
    assert run.status == "ok"
    assert run.metrics["n_steps"] == 120  # 2 epochs of 600 / 10
    assert run.curve["val_acc"].iloc[0] < 0.6 < 0.9 < run.metrics["val_acc"]
    assert run.metrics["test_acc"] > 0.9
    assert run.test_proba.shape == (200, 4) and run.test_proba.dtype == np.float32
    np.testing.assert_allclose(run.test_proba.sum(axis=1), 1.0, rtol=1e-5)
    # the trained model is the one that made the test predictions
    np.testing.assert_allclose(run.model.predict_proba(blobs.test.x), run.test_proba, rtol=1e-6)


def test_sigmoid_outputs_give_normalised_probabilities(blobs):
    run = train(BASE.replace(output="sigmoid", loss="mse"), blobs)
    np.testing.assert_allclose(run.test_proba.sum(axis=1), 1.0, rtol=1e-5)
    sigmoids = run.model.predict_proba(blobs.test.x)
    np.testing.assert_array_equal(run.test_proba.argmax(axis=1), sigmoids.argmax(axis=1))
    assert run.metrics["val_acc"] > 0.9


@pytest.mark.parametrize("fields", [
    {},
    {"output": "sigmoid", "loss": "mse"},
    {"output": "sigmoid", "target_range": [0.05, 0.95]},
    {"loss": "mse", "target_range": [0.01, 0.99]},
])
def test_an_evaluation_without_the_loss_gives_the_same_outputs(blobs, fields):
    """The test set's evaluation skips the loss (it is not recorded): its outputs and
    accuracy are those of the evaluation with the loss, bit for bit, over several chunks."""
    model = train(BASE.replace(**fields), blobs).model
    x = np.concatenate([blobs.train.x] * 4)  # 2400 rows: two chunks
    y = np.concatenate([blobs.train.y] * 4)
    assert len(x) > EVAL_CHUNK_ROWS
    loss, accuracy, proba = evaluate(model, x, y)
    no_loss, same_accuracy, same_proba = evaluate(model, x, y, with_loss=False)
    assert math.isfinite(loss) and math.isnan(no_loss)
    assert same_accuracy == accuracy
    np.testing.assert_array_equal(same_proba, proba)
    assert same_proba.tobytes() == proba.tobytes()


def test_curve_columns_and_log_spaced_evals(blobs):
    run = train(BASE.replace(n_steps=1000, n_evals=8), blobs)
    curve = run.curve
    assert list(curve.columns) == ["step", "epoch", "samples_seen", "lr", "train_loss",
                                   "val_loss", "val_acc", "test_acc", "grad_norm", "seconds"]
    assert curve["step"].tolist() == [0, 1, 3, 10, 32, 100, 316, 1000]
    np.testing.assert_allclose(curve["epoch"], curve["step"] / 60)
    np.testing.assert_array_equal(curve["samples_seen"], curve["step"] * 10)
    assert curve["seconds"].is_monotonic_increasing
    assert math.isnan(curve["grad_norm"].iloc[0]) and (curve["grad_norm"].iloc[1:] > 0).all()
    assert run.metrics["test_acc"] == curve["test_acc"].iloc[-1]


def test_eval_schedule_explicit_and_default():
    config = BASE.replace(n_steps=100, eval_steps=[50, 10, 10])
    assert eval_schedule(config, 100) == [0, 10, 50, 100]
    assert eval_schedule(BASE.replace(n_evals=2), 100) == [0, 1, 100]
    with pytest.raises(NNLabError, match=r"TrainConfig\.eval_steps"):
        train(BASE.replace(n_steps=20, eval_steps=[30]), _tiny())


def test_same_seed_gives_bit_identical_runs(blobs):
    config = BASE.replace(optimizer="adam", eta=0.01, noise="grad", noise_eta=0.01, seed=3)
    first, second = train(config, blobs), train(config, blobs)
    pd.testing.assert_frame_equal(without_seconds(first), without_seconds(second),
                                  check_exact=True)
    np.testing.assert_array_equal(first.test_proba, second.test_proba)
    assert first.seeds == second.seeds == {"seed": 3, "init": 3, "order": 3, "noise": 3,
                                           "dropout": 3}


def test_order_seed_changes_the_curve_not_the_init(blobs):
    base = train(BASE, blobs)
    reordered = train(BASE.replace(order_seed=99), blobs)
    assert reordered.seeds["order"] == 99 and reordered.seeds["init"] == 0
    # step 0 is evaluated before any update: same init -> same row
    pd.testing.assert_series_equal(without_seconds(base).iloc[0],
                                   without_seconds(reordered).iloc[0], check_exact=True)
    assert not np.array_equal(base.test_proba, reordered.test_proba)
    reinit = train(BASE.replace(init_seed=99), blobs)
    assert reinit.curve["val_loss"].iloc[0] != base.curve["val_loss"].iloc[0]


def test_order_seed_equal_to_seed_is_the_derived_stream(blobs):
    run = train(BASE.replace(seed=5, order_seed=5, noise_seed=5), blobs)
    pd.testing.assert_frame_equal(without_seconds(run),
                                  without_seconds(train(BASE.replace(seed=5), blobs)))


def test_streams_are_independent():
    draws = {name: rng.random(3) for name, rng in stream_rngs(stream_seeds(BASE)).items()}
    changed = stream_rngs(stream_seeds(BASE.replace(noise_seed=7)))
    for name, rng in changed.items():
        assert np.array_equal(rng.random(3), draws[name]) == (name != "noise")
    assert len({tuple(d) for d in draws.values()}) == 4


def test_noise_seed_changes_only_the_noise(blobs):
    noisy = BASE.replace(noise="grad", noise_eta=0.05)
    a, b = train(noisy, blobs), train(noisy.replace(noise_seed=1), blobs)
    assert not np.array_equal(a.test_proba, b.test_proba)
    # without noise, or with zero-variance noise, the noise stream has no effect
    for config in (BASE, noisy.replace(noise_eta=0.0)):
        c, d = train(config, blobs), train(config.replace(noise_seed=1), blobs)
        np.testing.assert_array_equal(c.test_proba, d.test_proba)
    # zero-variance noise leaves the run of the same chain without noise bit for bit
    # (an inactive clip keeps plain SGD on the chain rather than the fused step)
    zero_noise = train(noisy.replace(noise_eta=0.0, noise_seed=1), blobs)
    chained = train(BASE.replace(clip_norm=1e9), blobs)
    np.testing.assert_array_equal(zero_noise.test_proba, chained.test_proba)


def test_weight_noise_perturbs_after_the_step(blobs):
    plain = train(BASE, blobs)
    weight = train(BASE.replace(noise="weight", noise_eta=1e-4), blobs)
    grad = train(BASE.replace(noise="grad", noise_eta=1e-4), blobs)
    # the same draws, added after the learning rate (weight) or before it (grad)
    assert not np.array_equal(weight.test_proba, grad.test_proba)
    assert not np.array_equal(weight.test_proba, plain.test_proba)


def test_fused_sgd_matches_the_transform_chain(blobs):
    """Plain SGD uses the model's in-place step; a never-active clip forces the chain."""
    for batch_size in (1, 10):
        config = BASE.replace(batch_size=batch_size, eta=0.05, epochs=1)
        fused, chained = train(config, blobs), train(config.replace(clip_norm=1e9), blobs)
        np.testing.assert_allclose(chained.test_proba, fused.test_proba, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(chained.curve["val_loss"], fused.curve["val_loss"],
                                   rtol=1e-4)


@pytest.mark.parametrize("batch_size", [1, 10])  # 1: gradients written by BLAS level 2
@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "rmsprop", "adam"])
def test_flat_buffers_give_the_updates_of_array_by_array_bit_for_bit(blobs, optimizer,
                                                                     batch_size):
    """An elementwise optimiser runs on the MLP's flat buffers; a never-active clip makes
    the chain go array by array, with the same arithmetic per entry."""
    config = BASE.replace(optimizer=optimizer, eta=0.01, epochs=1, batch_size=batch_size)
    flat, by_array = train(config, blobs), train(config.replace(clip_norm=1e9), blobs)
    pd.testing.assert_frame_equal(without_seconds(flat), without_seconds(by_array))
    for a, b in zip(flat.model.params, by_array.model.params, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_mlp_params_and_grads_are_views_of_its_flat_buffers():
    model = MLP([6, 5, 3], seed=0)
    flat_params, flat_grads = model.flat_buffers()
    assert flat_params.size == 6 * 5 + 5 + 5 * 3 + 3
    flat_params[:] = np.arange(flat_params.size)
    assert model.params[0]["b"].tolist() == list(range(30, 35))  # W (6 x 5), then b
    loss, grads = model.loss_and_grads(np.ones((2, 6), np.float32), np.array([0, 2]))
    assert np.shares_memory(grads[1]["W"], flat_grads)
    np.testing.assert_array_equal(flat_grads[-3:], grads[1]["b"])
    model.grads[0]["b"] = model.grads[0]["b"].copy()  # replaced: no longer flat
    assert model.flat_buffers() is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_size", [1, 10, None])
def test_uint8_pixels_train_exactly_like_their_scaled_features(batch_size, dtype):
    """Minibatches gather pixels as bytes and scale them per batch; the full batch and
    evaluations use the scaled features: the same bits either way."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (300, 20), dtype=np.uint8)
    y = (pixels[:, :4].argmax(axis=1)).astype(np.int64)
    as_pixels = Split(pixels, y)
    as_floats = Split(as_pixels.features(dtype), y)
    runs = [train(BASE.replace(batch_size=batch_size, n_steps=40, dtype=dtype.__name__),
                  Dataset("px", split, split, split, n_classes=4, image_shape=(1, 4, 5)))
            for split in (as_pixels, as_floats)]
    pd.testing.assert_frame_equal(without_seconds(runs[0]), without_seconds(runs[1]),
                                  check_exact=True)


@pytest.mark.parametrize(("batch_size", "optimizer"), [(1, "sgd"), (10, "sgd"), (1, "adam")])
def test_evaluations_do_not_perturb_training(blobs, batch_size, optimizer):
    config = BASE.replace(batch_size=batch_size, optimizer=optimizer, eta=0.01, n_steps=700)
    sparse, dense = (train(config.replace(eval_steps=steps), blobs)
                     for steps in ([], list(range(0, 700, 7))))
    assert len(sparse.curve) == 2 and len(dense.curve) == 101
    np.testing.assert_array_equal(sparse.test_proba, dense.test_proba)
    assert sparse.curve["grad_norm"].iloc[-1] == dense.curve["grad_norm"].iloc[-1]


def test_on_eval_sees_every_evaluation_and_stops_the_run_where_it_says(blobs):
    config = BASE.replace(n_steps=1000, n_evals=8)
    seen = []
    whole = train(config, blobs, on_eval=lambda row, last: seen.append((row, last)) or True)
    pd.testing.assert_frame_equal(pd.DataFrame([row for row, _ in seen]), whole.curve,
                                  check_dtype=False)
    assert [last for _, last in seen] == [False] * 7 + [True]
    plain = train(config, blobs)  # watching a run does not change it
    pd.testing.assert_frame_equal(without_seconds(plain), without_seconds(whole),
                                  check_exact=True)

    stopped = train(config, blobs, on_eval=lambda row, last: row["step"] < 32)
    assert (stopped.status, stopped.note) == ("stopped", "stopped by on_eval at step 32")
    assert stopped.metrics["n_steps"] == 32 and stopped.curve["step"].tolist() == [
        0, 1, 3, 10, 32]
    pd.testing.assert_frame_equal(without_seconds(stopped), without_seconds(whole).head(5),
                                  check_exact=True)
    assert stopped.metrics["val_acc"] == whole.curve["val_acc"].iloc[4]
    # a run's last evaluation cannot stop it: it ends there anyway
    assert train(config, blobs, on_eval=lambda row, last: False if last else True
                 ).status == "ok"


def test_full_batch_ignores_the_order_stream(blobs):
    config = BASE.replace(batch_size=None, n_steps=30, eta=0.5)
    a, b = train(config, blobs), train(config.replace(order_seed=9), blobs)
    assert a.metrics["n_steps"] == 30 and a.curve["epoch"].iloc[-1] == 30
    np.testing.assert_array_equal(a.test_proba, b.test_proba)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov", "rmsprop", "adam"])
def test_every_optimizer_learns(blobs, optimizer):
    eta = 0.01 if optimizer in ("rmsprop", "adam") else 0.05
    config = BASE.replace(optimizer=optimizer, eta=eta, weight_decay=1e-4, l1=1e-5,
                          clip_norm=5.0, schedule="cosine")
    run = train(config, blobs)
    assert run.status == "ok" and run.metrics["val_acc"] > 0.9
    assert run.metrics["train_loss"] < 0.5 * run.curve["train_loss"].iloc[0]


def test_schedule_is_recorded_as_lr(blobs):
    run = train(BASE.replace(schedule="step", decay_every=50, decay_rate=0.5, n_steps=120,
                             eval_steps=[49, 50, 100]), blobs)
    lr = dict(zip(run.curve["step"], run.curve["lr"], strict=True))
    assert lr[49] == 0.2 and lr[50] == 0.1 and lr[100] == 0.05


# --- divergence -----------------------------------------------------------------------

def test_diverging_eta_is_data_not_a_crash(blobs):
    run = train(BASE.replace(eta=1e4, activation="relu", init="he"), blobs)
    assert run.status == "diverged"
    assert "train loss nan" in run.note  # relu logits overflow: the NaN check fires
    assert run.metrics["n_steps"] < 120
    assert run.curve["step"].iloc[-1] == run.metrics["n_steps"]
    assert len(run.compact_predictions()) == 200


def test_explosion_rule_catches_a_finite_loss(blobs):
    """With the stable softmax-CE a huge eta gives a large but finite loss: only the
    explosion rule can end the run."""
    config = BASE.replace(eta=1e3)  # tanh hidden units keep the logits finite
    run = train(config, blobs)
    assert run.status == "diverged" and "initial loss" in run.note
    assert np.isfinite(run.curve["train_loss"]).all()
    assert run.curve["train_loss"].iloc[-1] > 10 * run.curve["train_loss"].iloc[0]
    # the same run with the rule switched off (huge factor) goes on with a finite loss
    unchecked = train(config.replace(diverge_factor=1e30), blobs)
    assert unchecked.status == "ok" and unchecked.metrics["n_steps"] == 120
    assert np.isfinite(unchecked.curve["train_loss"]).all()
    assert unchecked.metrics["train_loss"] > 10 * unchecked.curve["train_loss"].iloc[0]


def test_moderate_eta_is_not_flagged(blobs):
    run = train(BASE.replace(eta=1.0, batch_size=1, epochs=1), blobs)
    assert run.status == "ok" and run.note == ""


# --- invalid input --------------------------------------------------------------------

@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"eta": -1}, "eta"),
        ({"activation": "swish"}, "activation"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"batch_size": 0}, "batch_size"),
        ({"noise": "pink"}, "noise"),
        ({"sizes": [20]}, "sizes"),
        ({"init": ["he"]}, "init"),
        ({"n_steps": 5, "epochs": 2}, "n_steps"),
        ({"dtype": "float16"}, "dtype"),
        ({"seed": -3}, "seed"),
        ({"etaa": 0.1}, "etaa"),
        ({"activation": ["relu"]}, "activation"),  # was TypeError: unhashable type
        ({"n_steps": 10**20}, "n_steps"),  # was accepted, then failed inside numpy
        ({"epochs": 1e30}, "epochs"),
        ({"n_evals": 10**9}, "n_evals"),  # was an 8 GB array of evaluation steps
    ],
)
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=rf"^TrainConfig\.{field}: ") as caught:
        BASE.replace(**overrides)
    assert caught.value.field == f"TrainConfig.{field}"


def _tiny() -> Dataset:
    split = Split(np.zeros((10, 20), np.float32), np.arange(10) % 4)
    return Dataset("tiny", split, split, split, n_classes=4, image_shape=(1, 4, 5))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"sizes": [30, 16, 4]}, "sizes"), ({"sizes": [20, 16, 10]}, "sizes"),
     ({"batch_size": 11}, "batch_size")],
)
def test_config_not_matching_the_data_fails_before_training(overrides, field):
    with pytest.raises(ConfigError, match=rf"^TrainConfig\.{field}: ") as caught:
        train(BASE.replace(**overrides), _tiny())
    assert caught.value.field == f"TrainConfig.{field}"
    with pytest.raises(ConfigError, match=r"^config: expected a TrainConfig, got dict$"):
        train(BASE.to_dict(), _tiny())


def test_a_model_builder_trains_its_own_network_from_the_runs_streams(blobs):
    config = BASE.replace(model="tests.data_entry:small_net", activation="relu", init="he",
                          optimizer="adam", eta=0.01, sizes=[784, 10])  # sizes: unread
    run = train(config, blobs)
    assert [type(layer).__name__ for layer in run.model.layers] == [
        "Flatten", "Dense", "ReLU", "Dropout", "Dense"]
    assert run.model.in_shape == (1, 4, 5) and run.metrics["test_acc"] > 0.8
    pd.testing.assert_frame_equal(without_seconds(train(config, blobs)), without_seconds(run))
    other = train(config.replace(seed=1), blobs)
    assert not np.array_equal(other.model.params[0]["W"], run.model.params[0]["W"])


@pytest.mark.parametrize(("model", "message"), [
    ("resnet", r"^TrainConfig\.model: expected one of mlp, cnn or a model builder "
               r"'package\.module:function', got 'resnet'$"),
    ("tests.data_entry:nope", r"^TrainConfig\.model: module 'tests\.data_entry' has no "
                              r"function 'nope'$"),
    ("tests.data_entry:three_outputs", r"^TrainConfig\.model: tests\.data_entry:three_outputs's "
                                       r"network gives 3 outputs per example; expected 4, one "
                                       r"per class of the data$"),
])
def test_a_bad_model_builder_fails_before_training(model, message):
    with pytest.raises(NNLabError, match=message):
        train(BASE.replace(model=model), _tiny())


_GOOD = Split(np.zeros((10, 20), np.uint8), np.arange(10) % 4)


@pytest.mark.parametrize(
    ("splits", "message"),
    [({"val": Split(np.zeros((0, 20), np.uint8), np.zeros(0, int))},
      r"^Dataset\.val: expected at least one example, got none"),
     ({"train": Split(_GOOD.x, _GOOD.y[:8])},
      r"^Dataset\.train\.y: expected 10 integer labels, one per row of x, got .*\(8,\)"),
     ({"test": Split(_GOOD.x, _GOOD.y.astype(float))}, r"^Dataset\.test\.y: .* float64"),
     ({"test": Split(_GOOD.x, _GOOD.y + 1)}, r"^Dataset\.test\.y: expected labels in 0\.\.3 "),
     ({"val": Split(_GOOD.x[:, :19], _GOOD.y)},
      r"^Dataset\.val\.x: expected 20 features per example \(image_shape \(1, 4, 5\)\)"),
     ({"val": Split(_GOOD.x.astype(object), _GOOD.y)}, r"^Dataset\.val\.x: .*object"),
     ({"test": (_GOOD.x, _GOOD.y)}, r"^Dataset\.test: expected a Split\(x, y\), got tuple"),
     ({"image_shape": (4, 5)}, r"^Dataset\.image_shape: "),
     ({"n_classes": 1}, r"^Dataset\.n_classes: ")],
)
def test_a_malformed_dataset_is_refused_naming_the_split_and_field(splits, message):
    """Before, an empty val split ended a run with ZeroDivisionError, and mismatched
    labels surfaced mid-run as an error about a batch's `y`."""
    fields = {"train": _GOOD, "val": _GOOD, "test": _GOOD, "n_classes": 4,
              "image_shape": (1, 4, 5), **splits}
    with pytest.raises(NNLabError, match=message):
        Dataset("bad", **fields)


def test_init_std_applies_to_the_normal_layers_of_a_per_layer_init(blobs):
    config = BASE.replace(init=["normal", "xavier"], init_std=0.5)
    weights = train(config.replace(n_steps=1), blobs).model.params
    assert weights[0]["W"].std() == pytest.approx(0.5, rel=0.1)
    assert weights[1]["W"].std() == pytest.approx(math.sqrt(2 / 20), rel=0.3)
    with pytest.raises(NNLabError, match=r"^TrainConfig\.init_std: expected null unless"):
        BASE.replace(init=["he", "xavier"], init_std=0.5)
    with pytest.raises(NNLabError, match=r"^TrainConfig\.init_std: "):
        BASE.replace(init=["normal", "xavier"], init_std=-1)


@pytest.mark.parametrize("model_fields", [
    {"model": "mlp"},
    {"model": "cnn", "layers": "conv6k2-pool2-dense8", "activation": "relu"},
], ids=["mlp", "cnn"])
def test_init_std_draws_every_weight_from_the_init_stream(blobs, model_fields):
    """init="normal" with init_std: the model train() builds has each weight array, in
    layer order, drawn as init_std * N(0, 1) from the init stream (then cast), and zero
    biases, for the CNN's conv and dense layers exactly as for the MLP's."""
    config = BASE.replace(**model_fields, init="normal", init_std=0.05)
    model = build_model(config, blobs, stream_rngs(stream_seeds(config)))
    init_stream = stream_rngs(stream_seeds(config))["init"]
    assert len(model.params) == (3 if config.model == "cnn" else 2)
    for params in model.params:
        expected = (init_stream.standard_normal(params["W"].shape) * 0.05).astype(np.float32)
        np.testing.assert_array_equal(params["W"], expected)
        np.testing.assert_array_equal(params["b"], 0)


def test_config_round_trips_through_plain_values():
    config = BASE.replace(init=["he", "xavier"], eval_steps=[5, 1], clip_norm=2)
    values = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(values) == config
    assert config.eval_steps == [1, 5] and config.clip_norm == 2.0
    assert TrainConfig.from_dict({"n_steps": 7}).epochs is None
    with pytest.raises(NNLabError, match=r"TrainConfig\.colour: unknown field"):
        TrainConfig.from_dict({"colour": "red"})


def test_compact_predictions_rank_the_probabilities(blobs):
    run = train(BASE, blobs)
    top = run.compact_predictions(k=3)
    assert list(top.columns) == ["index", "y_true", "top1", "top2", "top3", "p1", "p2", "p3"]
    assert top["top1"].dtype == np.int16 and top["p1"].dtype == np.float32
    np.testing.assert_array_equal(top["top1"], run.test_proba.argmax(axis=1))
    assert (top["p1"] >= top["p2"]).all() and (top["p2"] >= top["p3"]).all()
    np.testing.assert_array_equal(top["y_true"], blobs.test.y)
    assert run.metrics["test_acc"] == pytest.approx((top["top1"] == top["y_true"]).mean())


# --- the command line -----------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnlab.cli", *args], capture_output=True,
                          text=True, env=dict(os.environ), stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # TrainConfig's fields named as the flag that sets them
        (["--set", "eta=-1"], "nnlab: error: --set eta: expected a positive number, got -1"),
        (["--set", "activation=swish"], "nnlab: error: --set activation: expected one of"),
        (["--set", "sizes=[784,100,7]"], "nnlab: error: --set sizes: expected [784, ..., 10]"),
        (["--set", "eta"], "--set: expected KEY=VALUE"),
        # more BLAS threads than cores: one step took 36 s with 100 threads on 2 cores
        (["--threads", str((os.cpu_count() or 1) + 1)], "--threads: expected 1.."),
        (["--threads", "0"], "--threads: expected 1.."),
    ],
)
@pytest.mark.integration
def test_cli_invalid_config_is_one_line_exit_2(mnist, args, message):
    result = run_cli("train", "--preset", "seed-002", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


@pytest.mark.integration
def test_cli_unknown_preset():
    result = run_cli("train", "--preset", "seed-999")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nnlab: error: --preset: expected one of seed-000, seed-001, "
                               "seed-002, seed-003, seed-004, fast98")
    assert lines[0].endswith(", got 'seed-999'")


@pytest.mark.integration
def test_cli_train_json_with_overrides(mnist):
    result = run_cli("train", "--preset", "seed-002", "--set", "n_steps=500",
                     "--set", "seed=7", "--set", "eta=0.2", "--json", "--threads", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["n_steps"] == 500 and summary["seed"] == 7
    assert summary["config"]["eta"] == 0.2 and summary["config"]["epochs"] is None
    assert 0.5 < summary["test_acc"] <= 1 and 0.5 < summary["val_acc"] <= 1
    assert summary["seconds"] > 0
    assert summary["threads"] == 2  # the thread count is part of what reproduces a run
    # the best evaluation on val (of the 16 log-spaced ones): step, epoch, both accuracies
    best = summary["best_eval"]
    assert set(best) == {"step", "epoch", "val_acc", "test_acc"}
    assert 0 <= best["step"] <= 500 and best["epoch"] == pytest.approx(best["step"] / 50_000)
    assert best["val_acc"] >= summary["val_acc"] and 0.5 < best["test_acc"] <= 1


def test_cli_train_json_best_eval_is_the_first_best_row_of_the_curve():
    from nnlab.cli import _best_eval

    curve = pd.DataFrame({"step": [0, 10, 20, 30], "epoch": [0.0, 0.1, 0.2, 0.3],
                          "val_acc": [0.1, 0.8, 0.7, 0.8], "test_acc": [0.1, 0.75, 0.7, 0.9]})
    assert _best_eval(curve) == {"step": 10, "epoch": 0.1, "val_acc": 0.8, "test_acc": 0.75}


@pytest.mark.integration
def test_cli_presets_lists_one_line_each():
    result = run_cli("presets")
    assert result.returncode == 0
    lines = result.stdout.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names[:6] == ["seed-000", "seed-001", "seed-002", "seed-003", "seed-004", "fast98"]
    assert names == list(PRESETS) and all(len(line.split()) > 3 for line in lines)
