"""Coverage is tested, not assumed: each interval procedure, run on simulated studies with a
known answer at the studies' sizes, holds the truth in at least 90% of 200 simulations
(`-m slow`); the default suite runs a few simulations of each with a looser bar.

Sizes: 10 seeds per eta on an 11-point log2 grid (eta-vs-n) for eta_best, its power law and
the breakpoint; 100 seeds per N at 11 lengths, read at every N from one run per seed
(restarts-long) for the variance floor. Measured coverages are in
docs/analysis-learning-rate.md.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnlab.analysis import (
    eta_best,
    eta_path,
    eta_sensitivity,
    extrapolation_check,
    fit_broken_power_law,
    variance_vs_n,
)
from nnlab.analysis.power_law import MIN_R_SQUARED
from tests.simulated_eta import broken, eta_trials, linex, power_law
from tests.simulated_restarts import EXPONENT, FLOOR, restart_trials

FULL = 200  # simulations of the slow tests
FAST = 25  # ... and of the default suite
POWER_NS = np.array([3162, 5623, 10_000, 17_783, 31_623, 56_234, 100_000])
BROKEN_NS = np.array([32, 56, 100, 178, 316, 562, 1000, 1778, 3162, 5623, 10_000, 17_783,
                      31_623, 56_234, 100_000])
B_TRUE = 1.04
A_TRUE = 9.5e3  # simulated_eta.power_law's prefactor


def power_law_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Shares of simulations whose intervals hold the truth: eta_best per N (its default,
    pooled over the 7 lengths), the seed mean of each cell away from the cliff, the smooth
    path per N, b and a from the 3-point parabola, b from the path, and the held-out check
    of the longest length (its ratio holds 1). `min R^2`: the smallest R^2 of the fit."""
    truth = power_law(b=B_TRUE)(POWER_NS)
    hits: dict[str, list] = {"eta_best": [], "cell means": [], "eta_path": [], "b": [],
                             "a": [], "b_path": [], "held-out ratio": []}
    r_squared = []
    for s in range(n_sims):
        trials = eta_trials(np.random.default_rng(s), POWER_NS, power_law(b=B_TRUE))
        result = eta_best(trials, stalled_at=0.2, n_resamples=n_resamples, seed=s)
        table = result.table
        hits["eta_best"] += list((table["low"] <= truth) & (truth <= table["high"]))
        cells = result.curves[result.curves["eta"] < 16]
        d = np.log(cells["eta"] / power_law(b=B_TRUE)(cells["n_steps"]))
        cell_truth = 0.965 - 0.003 * linex(d.to_numpy(), -0.6)
        hits["cell means"] += list((cells["low"] <= cell_truth) & (cell_truth <= cells["high"]))
        path = eta_path(result)
        hits["eta_path"] += list((path.table["low"] <= truth) & (truth <= path.table["high"]))
        fit = result.power_law(max_edge_share=0.1, seed=s)
        hits["b"].append(fit.exponent.contains(B_TRUE))
        hits["a"].append(fit.prefactor.contains(A_TRUE))
        r_squared.append(fit.r_squared)
        hits["b_path"].append(path.power_law(seed=s).exponent.contains(B_TRUE))
        keep = result.fit_mask(True, 0.1)
        check = extrapolation_check(POWER_NS[keep], table["eta_best"][keep],
                                    y_boot=np.exp(result.boot_log_eta[:, keep]), seed=s)
        hits["held-out ratio"].append(check.holds)
    return {**{key: float(np.mean(value)) for key, value in hits.items()},
            "min R^2": float(np.min(r_squared))}


def sensitivity_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Per row of `eta_sensitivity` (estimator, grid): the share of simulations whose CI of b
    holds the truth, among those where the row has a fit ("fitted": that share)."""
    hits: dict[str, list] = {}
    for s in range(n_sims):
        trials = eta_trials(np.random.default_rng(s), POWER_NS, power_law(b=B_TRUE))
        table = eta_sensitivity(trials, stalled_at=0.2, n_resamples=n_resamples,
                                seed=s).table
        for row in table.to_dict("records"):
            name = f"{row['estimator']}, {row['grid']}"
            hits.setdefault(name, []).append(
                np.nan if np.isnan(row["b"]) else row["low"] <= B_TRUE <= row["high"])
    found = {}
    for name, values in hits.items():
        values = np.array(values, dtype=float)
        fitted = values[~np.isnan(values)]
        found[name] = float(fitted.mean()) if fitted.size else np.nan
        found[f"{name}: fitted"] = float(fitted.size / values.size)
    return found


def breakpoint_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Shares of simulations whose broken power law's intervals hold the true breakpoint
    (3000) and slopes (0 before, 1 after), eta_best flat at 3 then falling as N^-1."""
    hits: dict[str, list] = {"breakpoint": [], "before": [], "after": []}
    for s in range(n_sims):
        trials = eta_trials(np.random.default_rng(s), BROKEN_NS, broken())
        result = eta_best(trials, stalled_at=0.2, n_resamples=n_resamples, seed=s)
        keep = result.fit_mask(True, 0.1)
        fit = fit_broken_power_law(BROKEN_NS[keep], result.table["eta_best"][keep],
                                   y_boot=np.exp(result.boot_log_eta[:, keep]))
        hits["breakpoint"].append(fit.breakpoint.contains(3000.0))
        hits["before"].append(fit.exponent_before.contains(0.0))
        hits["after"].append(fit.exponent_after.contains(1.0))
    return {key: float(np.mean(value)) for key, value in hits.items()}


def floor_coverage(n_sims: int, n_resamples: int, floor: float,
                   df: float | None) -> dict[str, float]:
    """Shares of simulated restarts whose profile intervals hold the true floor and the
    true exponent of var(N) = c + a N^-b, as the report fits them (kurtosis weights)."""
    hits: dict[str, list] = {"floor": [], "exponent": []}
    for s in range(n_sims):
        fit = variance_vs_n(restart_trials(np.random.default_rng(s), floor=floor, df=df),
                            weights="kurtosis", floor_interval="profile",
                            n_resamples=n_resamples, seed=s).fit
        hits["floor"].append(fit.floor.contains(floor))
        hits["exponent"].append(fit.exponent.contains(EXPONENT))
    return {key: float(np.mean(value)) for key, value in hits.items()}


def test_eta_best_path_and_b_intervals_cover_a_known_power_law_fast():
    coverage = power_law_coverage(FAST, 400)
    assert coverage.pop("min R^2") >= MIN_R_SQUARED
    assert min(coverage.values()) >= 0.8, coverage


def test_each_sensitivity_row_s_interval_covers_b_fast():
    coverage = sensitivity_coverage(5, 300)
    assert min(v for k, v in coverage.items() if not k.endswith("fitted")) >= 0.6, coverage


def test_breakpoint_and_slopes_intervals_cover_a_known_break_fast():
    coverage = breakpoint_coverage(FAST // 2, 400)
    assert min(coverage.values()) >= 0.75, coverage


@pytest.mark.parametrize(("floor", "df"), [(FLOOR, None), (0.0, None)])
def test_floor_interval_covers_the_floor_and_zero_fast(floor, df):
    coverage = floor_coverage(FAST, 300, floor, df)
    assert min(coverage.values()) >= 0.8, coverage


@pytest.mark.slow
def test_eta_best_path_and_b_intervals_cover_a_known_power_law():
    coverage = power_law_coverage(FULL, 2000)
    print("power law", coverage)
    assert coverage.pop("min R^2") >= MIN_R_SQUARED
    assert min(coverage.values()) >= 0.9, coverage


@pytest.mark.slow
def test_each_sensitivity_row_s_interval_covers_b():
    coverage = sensitivity_coverage(FULL, 2000)
    print("sensitivity", coverage)
    assert min(v for k, v in coverage.items() if not k.endswith("fitted")) >= 0.9, coverage


@pytest.mark.slow
def test_breakpoint_and_slopes_intervals_cover_a_known_break():
    coverage = breakpoint_coverage(FULL, 2000)
    print("breakpoint", coverage)
    assert min(coverage.values()) >= 0.9, coverage


@pytest.mark.slow
@pytest.mark.parametrize(("floor", "df"), [(FLOOR, None), (0.0, None), (FLOOR, 8.0)])
def test_floor_interval_covers_the_floor_and_zero(floor, df):
    # the floor of restarts-long, no floor (the boundary), and t_8 tails (excess kurtosis 1.5)
    coverage = floor_coverage(FULL, 1000, floor, df)
    print("floor", floor, df, coverage)
    assert min(coverage.values()) >= 0.9, coverage
