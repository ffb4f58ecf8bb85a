"""B_simple along training and at one learning-rate time (nnlab.analysis.noise_scale), on
simulated curves whose noise scale is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis.noise_scale import (
    along_training,
    at_time,
    batch_ratio,
    log_b_simple,
    noise_scale_at,
)
from nnlab.errors import ConfigError, InsufficientData

ETAS = (0.5, 1.0, 2.0)
STEPS = (0, 10, 100, 1000, 10000, 30000)


def simulated(offsets: np.ndarray, slope: float = 0.5, at: float = 7000.0,
              b: float = 1000.0) -> pd.DataFrame:
    """Curves with log B_simple = log b + slope log(eta step / at) + offsets[seed] (one
    offset per seed, shared by its etas): B_simple at T = `at` is b exp(offset) per seed."""
    rows = []
    for seed, offset in enumerate(offsets):
        for eta in ETAS:
            for step in STEPS:
                time = max(eta * step, 1e-3)
                log_b = np.log(b) + slope * np.log(time / at) + offset
                grad_sq = 1e-3 * (1 + seed + step % 7)  # any |G|^2: B is the ratio
                rows.append({"eta": eta, "seed": seed, "step": step, "grad_sq": grad_sq,
                             "noise_trace": grad_sq * np.exp(log_b), "val_acc": 0.9})
    return pd.DataFrame(rows)


def test_the_noise_scale_at_a_time_is_the_geometric_mean_over_seeds_with_a_seed_interval():
    offsets = np.random.default_rng(0).normal(0, 0.2, size=6)
    found = noise_scale_at(simulated(offsets), 7000.0)
    assert found.value == pytest.approx(1000 * np.exp(offsets.mean()), rel=1e-9)
    assert found.low < found.value < found.high
    assert found.n_seeds == 6 and found.etas == list(ETAS)
    for value, low, high in found.per_eta.values():  # every eta agrees at the same T
        assert value == pytest.approx(found.value, rel=1e-9) and low < value < high
    # the interval is about the seed spread: 2 x t_5 x sd / sqrt(6) wide in log
    width = np.log(found.high / found.low)
    assert width == pytest.approx(2 * 2.571 * offsets.std(ddof=1) / np.sqrt(6), rel=0.3)
    assert np.log(found.value) == pytest.approx(found.boot_log.mean(), abs=0.02)
    # at a tenth of the time, B is 10^-0.5 as large (the simulated slope)
    earlier = noise_scale_at(simulated(offsets), 700.0)
    assert earlier.value == pytest.approx(found.value / np.sqrt(10), rel=1e-9)


def test_along_training_gives_each_evaluation_its_geometric_mean_over_seeds():
    offsets = np.array([0.1, -0.1, 0.3])
    table = along_training(simulated(offsets))
    assert len(table) == len(ETAS) * (len(STEPS) - 1)  # step 0 has no learning-rate time
    row = table[(table["eta"] == 2.0) & (table["step"] == 1000)].iloc[0]
    assert row["time"] == 2000.0
    assert row["b_simple"] == pytest.approx(1000 * np.sqrt(2000 / 7000) *
                                            np.exp(offsets.mean()), rel=1e-9)
    assert row["low"] < row["b_simple"] < row["high"] and row["n_seeds"] == 3


def test_mccandlish_batch_ratio():
    assert batch_ratio(1100.0, 400) == pytest.approx(3.2)
    assert batch_ratio(1e12, 1600) == pytest.approx(16.0)  # noise-dominated: linear
    assert batch_ratio(0.0, 25) == pytest.approx(1.0)  # curvature-dominated: no change
    assert batch_ratio(np.array([100.0]), 25)[0] == pytest.approx(0.25 * 200 / 125)


def test_a_time_outside_the_runs_or_missing_columns_are_clear_errors():
    curves = simulated(np.zeros(2))
    with pytest.raises(InsufficientData, match="eta = 0.5, seed 0 .* not around step 1e"):
        noise_scale_at(curves, 5e5)
    with pytest.raises(ConfigError, match="noise_scale_examples"):
        log_b_simple(curves.drop(columns="noise_trace"))
    with pytest.raises(InsufficientData, match="not every seed"):
        at_time(log_b_simple(curves[~((curves["seed"] == 1) & (curves["eta"] == 2.0))]),
                7000.0)
    with pytest.raises(InsufficientData, match="1 seed"):
        noise_scale_at(simulated(np.zeros(1)), 7000.0)
