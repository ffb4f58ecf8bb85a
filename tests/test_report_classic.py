"""The classic experiments' sections: the inverse query inverts the layers of the study's
own run, and take-off, overfitting and lr x epochs find what was built in."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnlab.datasets import Dataset, Split
from nnlab.report import classic
from nnlab.report.build import load_results
from nnlab.report.sections import NotApplicable, Options
from nnlab.study import Study
from tests.data_entry import blobs
from tests.synthetic_study import ramp, synthetic

OPTIONS = Options(n_resamples=200)


def test_the_inverse_query_runs_each_layer_backwards_through_the_transposed_weights():
    # one layer, 20 inputs, 5 classes: class k is wired to input 2k only
    weights = np.zeros((20, 5))
    weights[2 * np.arange(5), np.arange(5)] = 1.0
    images = classic.inverse_query([{"W": weights, "b": np.zeros(5)}], 5)
    # logit(0.99) at input 2k, logit(0.01) = -logit(0.99) at the other wired inputs (0, 2,
    # .., 8), 0 at the unwired ones; rescaled to [0, 1]: 1, 0 and 0.5
    expected = np.full((5, 20), 0.5)
    expected[:, 2 * np.arange(5)] = 0.0
    expected[np.arange(5), 2 * np.arange(5)] = 1.0
    np.testing.assert_allclose(images, expected, atol=1e-12)
    # a hidden layer: class k -> hidden unit k -> input 3k; biases are taken out first
    hidden = np.zeros((15, 5))
    hidden[3 * np.arange(5), np.arange(5)] = 2.0
    bias = np.full(5, 7.0)
    images = classic.inverse_query([{"W": hidden, "b": np.zeros(5)},
                                    {"W": np.eye(5), "b": bias}], 5)
    assert (images.argmax(axis=1) == 3 * np.arange(5)).all()
    assert images.min() == 0 and images.max() == 1


def test_a_sigmoid_study_gets_the_inverse_query_of_its_best_configuration(tmp_path):
    spec = {"study": {"name": "inverse", "replicates": 2},
            "base": {"sizes": [784, 24, 10], "activation": "sigmoid", "output": "sigmoid",
                     "loss": "mse", "target_range": [0.01, 0.99], "init": "lecun",
                     "batch_size": 1, "epochs": 1, "n_evals": 4},
            "grid": {"eta": [0.1, 0.3, 1.0]},
            "data": {"train_size": 2000, "val_size": 300, "test_size": 300}}
    study = Study(spec, results=tmp_path)
    study.run(n_jobs=2, progress=False)
    results = load_results(study)
    section = classic.inverse_query_section(results, OPTIONS)
    trials = study.trials()
    best = trials.groupby("eta")["val_acc"].mean().idxmax()
    stored = trials[(trials["eta"] == best) & (trials["seed"] == 0)]["test_acc"].item()
    assert section.data["test_acc"] == stored  # the study's run itself, trained again
    assert section.data["recognised"] >= 5  # the net sees its classes in what it imagines
    assert f"the study's run with this seed: {stored:.4f}" in section.findings[0]
    (figure,) = section.figures
    figure.write(tmp_path / "inverse.png")
    assert (tmp_path / "inverse.png").stat().st_size > 20_000

    with pytest.raises(NotApplicable, match=r"training disabled \(--no-train\)"):
        classic.inverse_query_section(results, Options(train=False))
    softmax = synthetic({"eta": [0.1, 0.3]}, {((0.1,), 0): ramp(np.arange(3), 1)})
    with pytest.raises(NotApplicable, match="not an all-sigmoid MLP"):
        classic.inverse_query_section(softmax, OPTIONS)


def test_the_gallery_and_the_inverse_query_figure_are_for_images_only(tmp_path):
    x, y = blobs()  # 3 classes of 12 features each, no image
    data = Dataset("flat", Split(x[:400], y[:400]), Split(x[400:500], y[400:500]),
                   Split(x[500:], y[500:]), n_classes=3, image_shape=(1, 1, 12))
    spec = {"study": {"name": "flat"},
            "base": {"sizes": [12, 8, 3], "activation": "sigmoid", "output": "sigmoid",
                     "loss": "mse", "eta": 1.0, "batch_size": 20, "n_steps": 300,
                     "n_evals": 2}}
    study = Study(spec, results=tmp_path, data=data)
    study.run(progress=False)
    results = load_results(study)
    with pytest.raises(NotApplicable, match=r"^the examples are not images \(1x1x12\); the "
                                            r"gallery shows images only$"):
        classic.gallery_section(results, OPTIONS)
    section = classic.inverse_query_section(results, OPTIONS)
    assert section.figures == [] and section.notes == ["The examples are not images (1x1x12): "
                                                       "no figure."]
    assert "of 3 imagined images are classified" in section.findings[0]
    assert section.data["test_acc"] == study.trials()["test_acc"].item()


def test_take_off_finds_the_critical_learning_rate():
    steps = np.array([0, 1, 3, 10, 30, 100, 300, 1000])
    takeoff = {0.01: (None, None), 0.1: (None, 300), 1.0: (30, 100), 10.0: (10, 10)}
    results = synthetic({"eta": list(takeoff)}, {
        ((eta,), seed): ramp(steps, start) for eta, starts in takeoff.items()
        for seed, start in enumerate(starts)})
    section = classic.takeoff_section(results, OPTIONS)
    assert section.data["critical_eta"] == 1.0  # 0.1 has a run that never takes off
    table = pd.DataFrame(section.data["takeoff"]).set_index("eta")
    assert table["n_never"].to_dict() == {0.01: 2, 0.1: 1, 1.0: 0, 10.0: 0}
    # the ramps jump between two evaluations: each run takes off at their geometric
    # midpoint (threshold half way), and the table gives the geometric mean over seeds
    assert table.loc[1.0, "mean"] == pytest.approx((10 * 30 * 30 * 100) ** 0.25)
    assert table.loc[10.0, ["mean", "low", "high"]].tolist() == pytest.approx([np.sqrt(30)] * 3)
    assert section.findings[0].startswith("Critical learning rate: 1.")
    assert section.data["scaling"] is None  # only 2 learning rates where all runs take off
    assert section.data["threshold"] == pytest.approx(0.5)  # half way from 1/10 to 0.9
    runs = {((eta,), seed): ramp(steps, start, top=0.95) for eta, starts in takeoff.items()
            for seed, start in enumerate(starts)}
    two = classic.takeoff_section(synthetic({"eta": list(takeoff)}, runs, n_classes=2), OPTIONS)
    assert two.data["threshold"] == pytest.approx(0.725)  # chance is 1/2 with 2 classes

    # a learning rate whose runs all take off by the first evaluation gets an upper bound
    sparse = np.array([0, 100, 300, 1000, 3000, 10000])
    mixed = synthetic({"eta": [0.01, 0.03, 0.1]}, {
        ((0.01,), 0): ramp(sparse, 3000), ((0.01,), 1): ramp(sparse, 1000),
        ((0.03,), 0): ramp(sparse, 300), ((0.03,), 1): ramp(sparse, 100),
        ((0.1,), 0): ramp(sparse, 100), ((0.1,), 1): ramp(sparse, 100)})
    section = classic.takeoff_section(mixed, OPTIONS)
    assert "eta=0.1: <= 100 (n=2, all by the first evaluation)" in section.findings[0]
    # geometric means of the geometric midpoints: sqrt(sqrt(1000 3000) sqrt(300 1000)) and,
    # with one run that took off by step 100, sqrt(sqrt(100 300) 100)
    assert "eta=0.01: 974 [" in section.findings[0]
    assert "eta=0.03: 132 [" in section.findings[0] and "early 1)" in section.findings[0]
    assert pd.DataFrame(section.data["takeoff"])["n_early"].tolist() == [0, 1, 2]

    early = synthetic({"eta": [0.1, 0.3, 1.0]}, {
        ((eta,), seed): ramp(steps, 1) for eta in (0.1, 0.3, 1.0) for seed in (0, 1)})
    with pytest.raises(NotApplicable, match="before its first evaluation after step 0"):
        classic.takeoff_section(early, OPTIONS)


def test_take_off_recovers_a_step_that_falls_as_one_over_eta():
    steps = np.unique(np.geomspace(1, 10**5, 400).astype(int))
    etas = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]

    def run(eta: float, seed: int) -> pd.DataFrame:
        # accuracy rises smoothly in log step through the threshold (0.5) at step t0 =
        # 50 / eta, a seed off by +-10%; at eta 3 training is unstable and takes off late
        t0 = (50 / eta if eta < 3 else 100) * (0.9, 1.1)[seed]
        val_acc = 0.1 + 0.8 / (1 + (steps / t0) ** -8.0)
        return pd.DataFrame({"step": steps, "epoch": steps / 500, "val_acc": val_acc,
                             "test_acc": val_acc, "train_loss": 1.0, "val_loss": 1.0})
    results = synthetic({"eta": etas}, {((eta,), seed): run(eta, seed)
                                        for eta in etas for seed in (0, 1)})
    section = classic.takeoff_section(results, OPTIONS)
    scaling = section.data["scaling"]
    # etas 0.01..0.3: eta 1 takes off fastest (50 steps), eta 3 later again; both are
    # left out, and 0.3 (167 steps) is just over 3x the fastest
    assert scaling["n"] == 8
    assert scaling["exponent"]["value"] == pytest.approx(1.0, abs=0.01)
    assert scaling["prefactor"]["value"] == pytest.approx(50 * np.sqrt(0.99), rel=0.02)
    assert scaling["exponent"]["low"] < 1.0 < scaling["exponent"]["high"]
    # the budget-free answer: within N = 1000 steps from eta = 50 / 1000 on, with its CI
    found = re.search(r"(0\.0\d+) \[(0\.0\d+), (0\.0\d+)\] for N = 1000", section.findings[1])
    value, low, high = map(float, found.groups())
    assert value == pytest.approx(0.0497, abs=1e-4) and low < 0.05 < high


def test_overfitting_and_lr_by_epochs_find_the_built_in_peak():
    epochs = np.arange(0, 11)

    def run(eta: float, seed: int) -> pd.DataFrame:
        peak = {0.1: 4, 0.3: 7}[eta] + seed  # validation accuracy peaks there
        val_acc = 0.95 - 0.01 * np.abs(epochs - peak) - (0.02 if eta == 0.3 else 0)
        return pd.DataFrame({"step": epochs * 100, "epoch": epochs.astype(float),
                             "val_acc": val_acc, "test_acc": val_acc - 0.005,
                             "train_loss": 1 / (1 + epochs), "val_loss": 1 - val_acc})
    results = synthetic({"eta": [0.1, 0.3]}, {((eta,), seed): run(eta, seed)
                                              for eta in (0.1, 0.3) for seed in (0, 1)})
    overfit = classic.overfit_section(results, OPTIONS)
    found = {row["config"]: row for row in overfit.data["best_epoch"]}
    assert found["eta=0.1"]["epoch"]["value"] == 4.5  # its seeds peak at epochs 4 and 5
    assert found["eta=0.3"]["epoch"]["value"] == 7.5
    assert found["eta=0.1"]["val_acc_at_peak"]["value"] == pytest.approx(0.95)
    assert found["eta=0.1"]["val_acc_at_end"]["value"] == pytest.approx(0.895)
    with pytest.raises(NotApplicable, match=">= 3 learning rates|eta is not varied"):
        classic.lr_epochs_section(results, OPTIONS)  # two learning rates only


def test_the_retrained_config_is_the_one_the_study_started_with():
    results = synthetic({"eta": [0.1, 0.3]}, {((0.3,), 0): ramp(np.arange(3), 1)})
    trial = results.complete.iloc[0]
    assert classic.run_config(results, trial, 5).init == "xavier"  # from the spec
    started = results.spec.base_config().replace(init="he", activation="tanh", eta=9.0)
    results = replace(results, base_config=started.to_dict())  # e.g. a preset changed since
    config = classic.run_config(results, trial, 5)
    assert (config.init, config.activation, config.eta, config.seed) == ("he", "tanh", 0.3, 5)
