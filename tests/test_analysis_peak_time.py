"""The learning-rate time of the validation peak, T* = eta x step, on simulated curves with
a known T*: recovered between evaluations, censored peaks reported as bounds and left out,
the slope of log T* in log eta, the interval's coverage over seeds, and the eta_best(N) =
T*/N it predicts against eta_best measured on the same model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import eta_best, peak_time, predict_eta_best
from nnlab.errors import NNLabError

# eta-vs-n's evaluations (step 0 is ignored: log step)
STEPS = np.array([0, 32, 56, 100, 178, 316, 562, 1000, 1778, 3162, 5623, 10000])
T_STAR = 7000.0


def curves(etas: list[float], t_star=T_STAR, *, n_seeds: int = 10, seed_sd: float = 0.0,
           eval_sd: float = 0.0, level_sd: float = 0.0, curvature: float = 0.004,
           rng: np.random.Generator | None = None) -> pd.DataFrame:
    """A row per (eta, seed, step): val_acc a parabola in log(eta x step) with its maximum
    at log t_star(eta) (a number or a function of eta) plus the seed's shift of it (sd
    `seed_sd` in log time, shared by the seed's runs), the seed's level (sd `level_sd`) and
    noise per evaluation (sd `eval_sd`). The seed-mean curve peaks at t_star in expectation."""
    rng = rng or np.random.default_rng(0)
    shifts, levels = seed_sd * rng.normal(size=n_seeds), level_sd * rng.normal(size=n_seeds)
    rows = []
    for eta in etas:
        t = t_star(eta) if callable(t_star) else t_star
        for s in range(n_seeds):
            d = np.log(eta * np.maximum(STEPS, 1)) - np.log(t) - shifts[s]
            val_acc = (0.97 - curvature * d**2 + levels[s]
                       + eval_sd * rng.normal(size=STEPS.size))
            rows.append(pd.DataFrame({"eta": eta, "seed": s, "step": STEPS,
                                      "val_acc": val_acc}))
    return pd.concat(rows, ignore_index=True)


def test_the_peak_is_recovered_between_evaluations_and_censored_peaks_are_bounds():
    # T* = 7000: eta 1, 2, 4 peak at steps 7000, 3500, 1750 (between evaluations); eta 0.25
    # would peak at step 28000, after the last evaluation; eta 512 at step 13.7, before the
    # first
    found = peak_time(curves([0.25, 1.0, 2.0, 4.0, 512.0]), n_resamples=200)
    table = found.table.set_index("eta")
    inside = table.loc[[1.0, 2.0, 4.0]]
    assert inside["t_peak"].to_numpy() == pytest.approx(T_STAR, rel=1e-9)
    assert inside["step_peak"].to_numpy() == pytest.approx([7000, 3500, 1750], rel=1e-9)
    assert inside["step_grid"].tolist() == [5623, 3162, 1778]
    assert (inside["censored"] == "no").all() and not inside["excluded"].any()
    late, early = table.loc[0.25], table.loc[512.0]
    assert (late["censored"], late["t_peak"], late["low"], late["high"]) == (
        "right", 2500.0, 2500.0, np.inf)  # only T* >= 0.25 x 10000
    assert (early["censored"], early["t_peak"], early["low"], early["high"]) == (
        "left", 512.0 * 32, 0.0, 512.0 * 32)
    assert late["excluded"] and early["excluded"]
    # the pooled T* and the slope use the three uncensored learning rates only
    assert found.pooled().value == pytest.approx(T_STAR, rel=1e-9)
    assert found.slope().exponent.value == pytest.approx(0.0, abs=1e-9)
    assert "right-censored" in found.summary() and "left-censored" in found.summary()


def test_a_learning_rate_with_a_diverged_run_is_listed_and_not_estimated():
    data = curves([1.0, 2.0])
    diverged = (data["eta"] == 2.0) & (data["seed"] == 3) & (data["step"] > 1000)
    data.loc[diverged, "val_acc"] = np.nan
    table = peak_time(data, n_resamples=200).table.set_index("eta")
    assert not table.loc[2.0, "complete"] and table.loc[2.0, "excluded"]
    assert np.isnan(table.loc[2.0, "t_peak"])
    assert table.loc[1.0, "t_peak"] == pytest.approx(T_STAR, rel=1e-9)
    # a run that stops (no rows after its divergence) is the same
    table = peak_time(data[~diverged], n_resamples=200).table.set_index("eta")
    assert not table.loc[2.0, "complete"]


def test_a_peak_time_that_moves_with_eta_gives_its_slope():
    # T* = 7000 eta^0.3: the slope of log T* in log eta is 0.3 (the power law's b = -0.3)
    etas = [1.0, 2.0, 4.0, 8.0]
    found = peak_time(curves(etas, lambda eta: T_STAR * eta**0.3), n_resamples=200)
    assert found.table["t_peak"].to_numpy() == pytest.approx(
        [T_STAR * e**0.3 for e in etas], rel=1e-9)
    assert -found.slope().exponent.value == pytest.approx(0.3, abs=1e-9)


def test_the_interval_is_over_seeds_and_holds_the_seed_mean_peak():
    # seeds that shift the peak (same curvature): the seed-mean curve peaks at the mean
    # shift, and the bootstrap over seeds gives it +- t(9) s / sqrt(10) (s: the shifts' sd)
    rng = np.random.default_rng(1)
    shifts = 0.15 * np.random.default_rng(1).normal(size=10)  # what curves() draws
    data = curves([2.0, 4.0, 8.0], seed_sd=0.15, level_sd=0.002, rng=rng)
    found = peak_time(data, n_resamples=4000)
    assert found.resampling == "seeds, shared across learning rates, widened by t/z"
    table = found.table
    assert np.log(table["t_peak"] / T_STAR).to_numpy() == pytest.approx(shifts.mean())
    half = np.log(table["high"] / table["low"]).to_numpy() / 2
    assert half == pytest.approx(2.262 * shifts.std(ddof=1) / np.sqrt(10), rel=0.1)
    # the learning rates share the seeds: one seed index, so their replicates move together
    assert np.corrcoef(found.boot_log_t.T).min() > 0.99
    # a seed missing from one learning rate: resampled within each learning rate
    fewer = data[~((data["eta"] == 8.0) & (data["seed"] == 9))]
    assert peak_time(fewer, n_resamples=200).resampling.startswith(
        "seeds within each learning rate")


def coverage(n_sims: int, n_resamples: int) -> tuple[float, float]:
    """Share of simulated studies (10 seeds, 3 learning rates with their peak inside
    eta-vs-n's evaluations) whose interval holds the true T* of one learning rate, and of the
    pooled T*."""
    rng = np.random.default_rng(2024)
    held, pooled = 0, 0
    for i in range(n_sims):
        data = curves([2.0, 4.0, 8.0], seed_sd=0.15, eval_sd=0.0015, level_sd=0.002, rng=rng)
        found = peak_time(data, n_resamples=n_resamples, seed=i)
        row = found.table.iloc[1]
        held += row["low"] <= T_STAR <= row["high"]
        pooled += found.pooled().contains(T_STAR)
    return held / n_sims, pooled / n_sims


def test_the_interval_covers_the_true_peak_time_fast():
    single, pooled = coverage(40, 300)
    # 40 simulations: the binomial sd at 0.95 is 0.034
    assert 0.85 <= single <= 1.0 and 0.85 <= pooled <= 1.0


@pytest.mark.slow
def test_the_interval_covers_the_true_peak_time():
    single, pooled = coverage(1000, 1000)
    # 1000 simulations: the binomial sd at 0.95 is 0.007
    assert 0.93 <= single <= 0.975 and 0.93 <= pooled <= 0.975


def lengths_view(data: pd.DataFrame) -> pd.DataFrame:
    """The curves as runs of each length N = step (a constant-eta run's state at step N is
    a run of length N), with status: what `eta_best` reads."""
    runs = data[data["step"] > 0].rename(columns={"step": "n_steps"})
    return runs.assign(status="ok")


def test_eta_best_is_predicted_as_t_star_over_n_on_held_out_lengths():
    # the metric is a function of eta x step alone: the best eta for N steps is T*/N. T*
    # from the learning rates 2, 4, 8 on their whole curves; eta_best measured from a
    # second grid of learning rates at the longest three lengths
    rng = np.random.default_rng(3)
    short = curves([2.0, 4.0, 8.0], seed_sd=0.1, eval_sd=0.001, rng=rng)
    grid = curves([0.25, 0.5, 1.0, 2.0, 4.0, 8.0], seed_sd=0.1, eval_sd=0.001, rng=rng)
    found = peak_time(short, n_resamples=1000)
    measured = eta_best(lengths_view(grid), n_resamples=1000)
    check = predict_eta_best(found, measured, n_values=[3162, 5623, 10000])
    assert check.table["n_steps"].tolist() == [3162, 5623, 10000]
    assert check.table["eta_pred"].to_numpy() == pytest.approx(
        check.t_star.value / np.array([3162, 5623, 10000]))
    assert check.t_star.value == pytest.approx(T_STAR, rel=0.1)
    assert check.mean_ratio.contains(1.0)
    assert check.etas == [2.0, 4.0, 8.0]
    # a metric that peaks at twice the learning-rate time on the grid: the ratio says 2
    doubled = curves([0.25, 0.5, 1.0, 2.0, 4.0, 8.0], 2 * T_STAR, seed_sd=0.1,
                     eval_sd=0.001, rng=rng)
    check = predict_eta_best(found, eta_best(lengths_view(doubled), n_resamples=1000),
                             n_values=[3162, 5623, 10000])
    assert check.mean_ratio.value == pytest.approx(2.0, rel=0.15)
    assert check.mean_ratio.low > 1.4
    assert "measured / predicted" in check.summary()


def test_bad_input_is_one_clear_error():
    data = curves([1.0, 2.0])
    with pytest.raises(NNLabError, match="peak_time: missing column 'seed'"):
        peak_time(data.drop(columns="seed"))
    with pytest.raises(NNLabError, match="several rows for one"):
        peak_time(pd.concat([data, data]))
    with pytest.raises(NNLabError, match="peak_time.window"):
        peak_time(data, window=0)
    found = peak_time(data, n_resamples=200)
    measured = eta_best(lengths_view(curves([0.5, 1.0, 2.0, 4.0])), n_resamples=200)
    with pytest.raises(NNLabError, match=r"peak_time.n_values.*got 17783"):
        predict_eta_best(found, measured, n_values=[10000, 17783])
    censored = peak_time(curves([0.125, 0.25]), n_resamples=200)  # both peak after 10^4
    with pytest.raises(NNLabError, match="no learning rate has an uncensored peak"):
        censored.pooled()
