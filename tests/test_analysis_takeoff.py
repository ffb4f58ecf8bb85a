"""The take-off of runs whose accuracy leaves the chance plateau at a known step: the step
per run, its geometric mean per learning rate, the critical learning rate and the power law
step = a * eta^-k, each recovered with its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis.takeoff import takeoff, takeoff_step, takeoff_threshold
from nnlab.errors import NNLabError

STEPS = np.unique(np.geomspace(1, 10**5, 200).astype(int))


def curves(t0: dict[float, list[float | None]], steps: np.ndarray = STEPS) -> pd.DataFrame:
    """val_acc rising smoothly in log step from chance (0.1) to 0.9, through 0.5 (half way:
    the threshold) at each run's take-off step t0 (None: flat at chance, never)."""
    rows, trial = [], 0
    for eta, starts in t0.items():
        for start in starts:
            val_acc = (np.full(steps.size, 0.1) if start is None
                       else 0.1 + 0.8 / (1 + (np.maximum(steps, 1e-9) / start) ** -8.0))
            rows.append(pd.DataFrame({"eta": eta, "trial": trial, "step": steps,
                                      "val_acc": val_acc}))
            trial += 1
    return pd.concat(rows, ignore_index=True)


def test_the_take_off_step_is_interpolated_in_log_step():
    steps = np.array([0, 10, 100, 1000])
    val_acc = np.array([0.1, 0.2, 0.6, 0.9])
    # 0.4 is half way from 0.2 (step 10) to 0.6 (step 100): the geometric midpoint
    assert takeoff_step(steps, val_acc, 0.4) == pytest.approx(np.sqrt(10 * 100))
    assert takeoff_step(steps, val_acc, 0.6) == pytest.approx(100)
    assert takeoff_step(steps, val_acc, 0.15) == 10  # after step 0: no log
    assert np.isnan(takeoff_step(steps, val_acc, 0.95))


def test_the_threshold_is_half_way_from_chance_to_the_best_final_accuracy():
    assert takeoff_threshold(0.9, 10) == pytest.approx(0.5)
    assert takeoff_threshold(0.95, 2) == pytest.approx(0.725)
    with pytest.raises(NNLabError, match=r"takeoff.n_classes: expected an integer >= 2, got 1"):
        takeoff_threshold(0.9, 1)


def test_each_run_s_take_off_step_and_the_geometric_mean_per_learning_rate():
    # two seeds per eta at t0 / 1.25 and t0 * 1.25: the geometric mean is t0 exactly, and
    # the t interval over 2 seeds of log10 steps is t(0.975, 1) * |log10 1.25| wide each side
    t0 = {0.01: 4000.0, 0.1: 400.0, 1.0: 40.0}
    found = takeoff(curves({eta: [t / 1.25, t * 1.25] for eta, t in t0.items()}), 10)
    assert found.threshold == pytest.approx(0.5)
    steps = found.runs.set_index("trial")["step"]
    assert steps.to_numpy() == pytest.approx(
        [t * f for t in t0.values() for f in (1 / 1.25, 1.25)], rel=2e-3)
    table = found.table.set_index("eta")
    assert table["mean"].to_dict() == pytest.approx(t0, rel=2e-3)
    half = 12.706 * np.log10(1.25)
    assert (np.log10(table["high"] / table["mean"])).to_numpy() == pytest.approx(half, rel=1e-2)
    assert found.critical_eta is None  # every run takes off: at or below the grid's smallest
    assert found.scaling is None  # 3 learning rates, of which the fastest is left out


def test_the_critical_learning_rate_is_the_smallest_above_every_run_that_never_takes_off():
    found = takeoff(curves({0.01: [None, None], 0.1: [None, 300.0], 1.0: [30.0, 100.0],
                            10.0: [10.0, 12.0]}), 10)
    assert found.critical_eta == 1.0
    assert found.table.set_index("eta")["n_never"].to_dict() == {0.01: 2, 0.1: 1, 1.0: 0,
                                                                 10.0: 0}
    largest = takeoff(curves({0.1: [None, None], 1.0: [None, 30.0], 10.0: [3.0, None]}), 10)
    assert largest.critical_eta is None  # the largest has a run that never takes off


@pytest.mark.parametrize("a, k, largest", [(40.0, 1.0, 0.3), (200.0, 0.7, 0.1)])
def test_the_power_law_of_the_take_off_step_is_recovered_with_its_interval(a, k, largest):
    # t0 = a eta^-k, each seed off by a log-normal factor (sd 10%); eta 1 takes off fastest
    # and eta 3 later again (unstable): both are left out of the fit, and so is 0.3 for
    # k = 0.7 (462 steps: within SCALING_CLEARANCE x the fastest, 200)
    rng = np.random.default_rng(1)
    etas = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
    t0 = {eta: [float(a * eta**-k * np.exp(0.1 * rng.normal())) if eta < 3 else 3 * a
                for _ in range(6)] for eta in etas}
    found = takeoff(curves(t0, np.unique(np.geomspace(1, 10**6, 300).astype(int))), 10,
                    n_resamples=1000)
    scaling = found.scaling
    assert set(scaling.x) == {eta for eta in etas if eta <= largest}
    assert scaling.n == 6 * len(set(scaling.x))
    assert scaling.exponent.low < k < scaling.exponent.high
    assert scaling.exponent.high - scaling.exponent.low < 0.1
    assert scaling.prefactor.low < a < scaling.prefactor.high
    assert found.to_dict()["scaling"]["exponent"]["value"] == pytest.approx(k, abs=0.03)


def test_the_power_law_interval_covers_the_true_exponent_in_most_simulations():
    # 30 simulated studies of 5 seeds x 5 learning rates; a 95% bootstrap interval over
    # 25 runs covers k = 1 in at least 80% of them (a broken resampling covers far less)
    rng = np.random.default_rng(2)
    etas = [0.003, 0.01, 0.03, 0.1, 1.0]
    steps = np.unique(np.geomspace(1, 10**5, 120).astype(int))
    covered = 0
    for _ in range(30):
        t0 = {eta: [float(40 / eta * np.exp(0.15 * rng.normal())) for _ in range(5)]
              for eta in etas}
        scaling = takeoff(curves(t0, steps), 10, n_resamples=300).scaling
        covered += scaling.exponent.low < 1.0 < scaling.exponent.high
    assert covered >= 24


def test_bad_curves_are_named_in_one_line():
    with pytest.raises(NNLabError, match="takeoff: missing column"):
        takeoff(pd.DataFrame({"eta": [0.1], "trial": [0], "step": [1]}), 10)
    with pytest.raises(NNLabError, match="takeoff: no curve rows"):
        takeoff(pd.DataFrame(columns=["eta", "trial", "step", "val_acc"]), 10)
