"""eta_best and power-law fits recover known answers from data generated with them."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import eta_best, fit_power_law
from nnlab.analysis.power_law import r_squared
from nnlab.errors import NNLabError

NS = np.array([100, 300, 1000, 3000, 10000])
ETAS = np.geomspace(1e-3, 1, 13)


def quadratic_trials(
    seed: int, n_seeds: int = 5, noise: float = 0.005, prefactor: float = 2.0, exponent=0.5
) -> pd.DataFrame:
    """val_acc = 0.9 - 0.02 (log eta - log eta*(N))^2 + noise, eta*(N) = prefactor N^-exponent."""
    rng = np.random.default_rng(seed)
    n, eta, s = (a.ravel() for a in np.meshgrid(NS, ETAS, np.arange(n_seeds), indexing="ij"))
    best = prefactor * n.astype(float) ** -exponent
    val_acc = 0.9 - 0.02 * np.log(eta / best) ** 2 + noise * rng.normal(size=n.size)
    return pd.DataFrame({"n_steps": n, "eta": eta, "seed": s, "status": "ok", "val_acc": val_acc})


def power_law_sample(rng, n_seeds: int, xs=NS, sigma: float = 0.2):
    """n_seeds replicates of y = 3 x^-0.5 with log-normal noise at each x."""
    x = np.repeat(xs, n_seeds).astype(float)
    return x, 3.0 * x**-0.5 * np.exp(sigma * rng.normal(size=x.size))


def test_eta_best_is_the_exact_vertex_for_a_noiseless_quadratic():
    result = eta_best(quadratic_trials(0, noise=0.0), n_resamples=200)
    truth = 2.0 * NS**-0.5
    np.testing.assert_allclose(result.table["eta_best"], truth, rtol=1e-9)
    assert result.table["bracketed"].all()
    assert result.resampling == "seeds, shared across cells, widened by t/z"


def test_eta_best_ci_covers_the_true_optimum_with_noise():
    result = eta_best(quadratic_trials(1), n_resamples=1000, seed=1)
    truth = 2.0 * NS**-0.5
    table = result.table
    inside = (table["low"] <= truth) & (truth <= table["high"])
    assert inside.sum() >= 4  # a 95% CI may miss one of five
    np.testing.assert_allclose(np.log(table["eta_best"] / truth), 0, atol=0.25)
    assert (table["n_runs"] == 13 * 5).all() and (table["min_seeds"] == 5).all()
    # the per-(N, eta) curves hold the seed means the figure plots
    curve = result.curves[result.curves["n_steps"] == 1000]
    data = quadratic_trials(1)
    expected = data[data["n_steps"] == 1000].groupby("eta")["val_acc"].mean()
    np.testing.assert_allclose(curve["mean"], expected.to_numpy())


def test_power_law_of_eta_best_recovers_the_exponent():
    result = eta_best(quadratic_trials(2, n_seeds=8), n_resamples=1000)
    for method in ("ols", "wls", "nls"):
        fit = result.power_law(method=method)
        assert fit.exponent.contains(0.5), (method, fit.exponent)
        assert fit.exponent.high - fit.exponent.low < 0.25
        assert fit.resampling == "seeds (the given replicates, propagated)"
    json.dumps(result.to_dict())
    assert "n_steps=1000" in result.summary()


def test_diverged_runs_without_a_metric_count_as_the_worst_result():
    trials = quadratic_trials(3)
    top = trials["eta"] == ETAS[-1]
    diverged = trials.assign(status=np.where(top, "diverged", "ok"))
    diverged.loc[top, "val_acc"] = np.nan
    filled = trials.copy()
    filled.loc[top, "val_acc"] = trials.loc[~top, "val_acc"].min()
    running = pd.DataFrame({"n_steps": [100], "eta": [0.1], "seed": [9], "status": [None]})
    a = eta_best(pd.concat([diverged, running]), n_resamples=200)
    b = eta_best(filled, n_resamples=200)
    np.testing.assert_allclose(a.table["eta_best"], b.table["eta_best"])
    assert (a.table["n_diverged"] == 5).all()
    assert a.n_unfinished == 1 and "1 unfinished trials ignored" in a.summary()


def test_a_diverged_neighbour_of_the_best_point_is_flagged():
    trials = quadratic_trials(3)
    assert not eta_best(trials, n_resamples=200).table["cliff"].any()
    beside = (trials["n_steps"] == 1000) & np.isclose(trials["eta"], ETAS[8])  # best: ETAS[7]
    flagged = eta_best(trials.assign(status=np.where(beside, "diverged", "ok")), n_resamples=200)
    assert list(flagged.table["cliff"]) == [False, False, True, False, False]
    assert "a neighbour diverged" in flagged.summary()
    assert "only 5 seeds" not in flagged.summary()
    assert "(!) only 3 seeds" in eta_best(quadratic_trials(3, n_seeds=3)).summary()


def test_optimum_beyond_the_grid_is_flagged_and_left_out_of_the_power_law():
    trials = quadratic_trials(4, prefactor=20.0)  # eta* = 2 and 1.15 at N = 100, 300
    result = eta_best(trials, n_resamples=200)
    edge = result.table[~result.table["bracketed"]]
    assert list(edge["n_steps"]) == [100, 300]
    np.testing.assert_allclose(edge["eta_best"], ETAS[-1])
    assert "(!) optimum at the grid edge" in result.summary()
    assert result.power_law().n == 3
    assert result.power_law(bracketed_only=False).n == 5
    far = eta_best(quadratic_trials(4, prefactor=60.0), n_resamples=200)
    with pytest.raises(NNLabError, match="1 value.* optimum inside the eta grid"):
        far.power_law()  # only N = 10000 is bracketed


def test_minimised_metric_gives_the_same_optimum():
    trials = quadratic_trials(5, noise=0.0)
    trials["val_loss"] = 1 - trials["val_acc"]
    result = eta_best(trials, metric="val_loss", maximize=False, n_resamples=200)
    np.testing.assert_allclose(result.table["eta_best"], 2.0 * NS**-0.5, rtol=1e-9)


def test_power_law_ci_covers_the_true_exponent_in_most_seeded_trials():
    found = replicate_fit_coverage(100, 1000)
    assert all(0.88 <= value <= 0.995 for value in found.values()), found


def test_power_law_residual_bootstrap_covers_the_true_exponent():
    xs = np.geomspace(100, 1e5, 8)
    covered = [
        fit_power_law(*power_law_sample(np.random.default_rng(s), 1, xs), seed=s).exponent.contains(
            0.5
        )
        for s in range(100)
    ]
    assert 0.88 <= np.mean(covered) <= 0.995


def test_nonlinear_fit_covers_the_exponent_under_additive_noise():
    xs = np.geomspace(10, 1e4, 10)
    covered = []
    for s in range(40):
        y = 3.0 * xs**-0.5 + 0.005 * np.random.default_rng(s).normal(size=xs.size)
        fit = fit_power_law(xs, y, method="nls", n_resamples=500, seed=s)
        assert fit.resampling == "residuals"
        covered.append(fit.exponent.contains(0.5))
    assert np.mean(covered) >= 0.85


def test_the_inverse_of_a_power_law_and_its_ci_cover_the_true_x():
    # y = 3 x^-0.5 reaches y = 0.03 at x = (3 / 0.03)^2 = 10^4
    fits = [fit_power_law(*power_law_sample(np.random.default_rng(s), 5), n_resamples=500,
                          seed=s) for s in range(60)]
    assert np.mean([fit.inverse(0.03).contains(1e4) for fit in fits]) >= 0.85
    exact = fit_power_law(NS, 3.0 * NS**-0.5, n_resamples=200)
    assert exact.inverse(0.03).value == pytest.approx(1e4, rel=1e-8)
    with pytest.raises(NNLabError, match="positive number"):
        exact.inverse(0.0)


def replicate_fit_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Shares of fits on 5 replicates at 5 x (as the report's take-off power law: 5 seeds at
    5 learning rates) whose intervals hold b, a and the x where y = 0.03."""
    hits: dict[str, list] = {"b": [], "a": [], "inverse": []}
    for s in range(n_sims):
        fit = fit_power_law(*power_law_sample(np.random.default_rng(s), 5),
                            n_resamples=n_resamples, seed=s)
        hits["b"].append(fit.exponent.contains(0.5))
        hits["a"].append(fit.prefactor.contains(3.0))
        hits["inverse"].append(fit.inverse(0.03).contains(1e4))
    return {key: float(np.mean(value)) for key, value in hits.items()}


@pytest.mark.slow
def test_fits_on_replicates_cover_b_a_and_the_inverse_at_the_take_off_size():
    found = replicate_fit_coverage(400, 2000)
    print("replicates", found)
    assert min(found.values()) >= 0.9, found


def test_power_law_ci_narrows_with_more_seeds():
    def mean_width(n_seeds: int) -> float:
        fits = [
            fit_power_law(*power_law_sample(np.random.default_rng(s), n_seeds), seed=s)
            for s in range(20)
        ]
        return float(np.mean([f.exponent.high - f.exponent.low for f in fits]))

    assert mean_width(16) < 0.65 * mean_width(4)


@pytest.mark.parametrize("method", ["ols", "wls", "nls"])
def test_exact_power_law_is_recovered_exactly(method: str):
    x = np.geomspace(10, 1e4, 6)
    weights = np.linspace(1, 2, 6) if method != "ols" else None
    fit = fit_power_law(x, 0.7 * x**-0.35, method=method, weights=weights, n_resamples=200)
    assert fit.exponent.value == pytest.approx(0.35, rel=1e-8)
    assert fit.prefactor.value == pytest.approx(0.7, rel=1e-8)
    assert fit.r_squared == pytest.approx(1.0)
    np.testing.assert_allclose(fit.residuals, 0, atol=1e-10)
    np.testing.assert_allclose(fit.predict(x), 0.7 * x**-0.35, rtol=1e-8)


def test_r_squared_is_the_weighted_share_explained_and_1_where_y_is_flat():
    """1 - SS_res / SS_tot about the (weighted) mean: residuals (0.5, -0.5, 0) of y = (1, 2,
    3) leave 0.5 of 2 (0.75); with weights (1, 1, 2) 0.5 of 2.75. A flat y, which a power
    law of b = 0 fits exactly, has nothing left to explain: 1.0, not 0/0."""
    y, residuals = np.array([1.0, 2.0, 3.0]), np.array([0.5, -0.5, 0.0])
    assert r_squared(residuals, y) == pytest.approx(0.75)
    assert r_squared(residuals, y, np.array([1.0, 1.0, 2.0])) == pytest.approx(1 - 0.5 / 2.75)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_power_law(np.geomspace(10, 1e4, 6), np.full(6, 0.5), n_resamples=200)
    assert fit.exponent.value == pytest.approx(0.0, abs=1e-12) and fit.r_squared == 1.0


def test_band_brackets_the_fit_and_residuals_are_log_residuals():
    x, y = power_law_sample(np.random.default_rng(7), 4)
    fit = fit_power_law(x, y)
    low, high = fit.band(NS)
    assert np.all(low < fit.predict(NS)) and np.all(fit.predict(NS) < high)
    np.testing.assert_allclose(fit.residuals, np.log(y) - np.log(fit.predict(x)))
    assert fit.n == x.size and json.dumps(fit.to_dict())


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        ([1, 2], [1, 2], {}, "needs at least 3 values"),
        ([1, 2, 2, 1], [1, 2, 3, 4], {}, "at least 3 distinct"),
        ([1, 2, 3], [1, np.nan, 3], {}, "NaN"),
        ([1, 2, 3], [1, -2, 3], {}, "positive"),
        ([1, 2, 3], [1, 2], {}, "expected 3 values"),
        ([1, 2, 3], [1, 2, 3], {"method": "ols", "weights": [1, 1, 1]}, "weights need"),
        ([1, 2, 3], [1, 2, 3], {"method": "wls"}, "needs weights or y_boot"),
        ([1, 2, 3], [1, 2, 3], {"method": "cubic"}, "method"),
    ],
)
def test_fit_power_law_rejects_bad_input(x, y, kwargs, message):
    with pytest.raises(NNLabError, match=message):
        fit_power_law(x, y, **kwargs)


def test_eta_best_rejects_bad_input():
    trials = quadratic_trials(0)
    with pytest.raises(NNLabError, match="missing column 'lr'"):
        eta_best(trials, eta_col="lr")
    with pytest.raises(NNLabError, match="at least 2 seeds"):
        eta_best(quadratic_trials(0, n_seeds=1))
    with pytest.raises(NNLabError, match="'val_acc' has 1 NaN"):
        eta_best(trials.assign(val_acc=trials["val_acc"].where(trials.index != 3)))
    few_etas = trials[trials["eta"].isin(ETAS[:2])]
    with pytest.raises(NNLabError, match="at least 3"):
        eta_best(few_etas)


def test_edge_shares_count_replicates_at_the_grid_edge_or_beside_a_stalled_cell():
    # eta* = 20 N^-0.5: beyond the grid's top (1) at N = 100 and 300, one grid step below
    # it at N = 1000 (0.63), well inside from 3000 on
    trials = quadratic_trials(6, prefactor=20.0)
    shares = eta_best(trials, n_resamples=400).edge_shares()
    assert (shares["edge_share"].iloc[:2] == 1.0).all() and shares["excluded"].iloc[:2].all()
    assert 0.02 < shares["edge_share"].iloc[2] < 0.3
    assert (shares["share"].iloc[3:] == 0).all() and not shares["excluded"].iloc[3:].any()
    # runs stuck at chance one grid point above the optimum at N = 1000 (ETAS[7] is best)
    stalled = quadratic_trials(6)
    beside = (stalled["n_steps"] == 1000) & np.isclose(stalled["eta"], ETAS[8])
    stalled.loc[beside, "val_acc"] = 0.1
    plain = eta_best(stalled, n_resamples=400)
    assert plain.edge_shares()["cliff_share"].iloc[2] == 0  # stalls not counted unless asked
    checked = eta_best(stalled, stalled_at=0.2, n_resamples=400)
    curves = checked.curves
    cell = (curves["n_steps"] == 1000) & np.isclose(curves["eta"], ETAS[8])
    assert curves.loc[cell, "n_stalled"].tolist() == [5] and curves["n_stalled"].sum() == 5
    shares = checked.edge_shares()
    assert shares["cliff_share"].iloc[2] == 1.0 and shares["excluded"].iloc[2]
    assert "n_stalled" not in plain.curves and json.dumps(checked.to_dict())
    # the same eta_best: stalls only flag, they do not move the estimate
    np.testing.assert_array_equal(plain.table["eta_best"], checked.table["eta_best"])


def test_power_law_leaves_out_lengths_whose_optimum_is_often_at_an_edge():
    result = eta_best(quadratic_trials(6, prefactor=20.0), n_resamples=400)
    shares = result.edge_shares(0.5)
    kept = result.power_law(bracketed_only=False, max_edge_share=0.5)
    assert kept.n == int((~shares["excluded"]).sum()) == 3
    assert result.power_law(bracketed_only=False).n == 5  # unchanged without the argument
    np.testing.assert_array_equal(result.fit_mask(False, 0.5), ~shares["excluded"])
    with pytest.raises(NNLabError, match="2 value.*at most 0.01 of the replicates at an edge"):
        result.power_law(max_edge_share=0.01)  # N = 1000 goes too
    with pytest.raises(NNLabError, match="max_share: expected a share in"):
        result.edge_shares(1.5)


def test_small_sample_widens_the_interval_by_t_over_z():
    trials = quadratic_trials(7, n_seeds=10)
    plain = eta_best(trials, small_sample=False, n_resamples=500, seed=3)
    wide = eta_best(trials, n_resamples=500, seed=3)  # the default
    factor = 2.2622 / 1.9600  # t_9 / z at 95%
    np.testing.assert_allclose(wide.table["eta_best"], plain.table["eta_best"])
    np.testing.assert_allclose(np.log(wide.table["high"] / wide.table["eta_best"]),
                               factor * np.log(plain.table["high"] / plain.table["eta_best"]),
                               rtol=1e-3)
    # each cell mean's interval too, around the cell's seed mean
    np.testing.assert_allclose(wide.curves["high"] - wide.curves["mean"],
                               factor * (plain.curves["high"] - plain.curves["mean"]), rtol=1e-4)
    np.testing.assert_array_equal(wide.boot_means, plain.boot_means)
    assert wide.resampling.endswith("widened by t/z")
    assert wide.power_law().exponent.high - wide.power_law().exponent.low > (
        plain.power_law().exponent.high - plain.power_law().exponent.low)
    with pytest.raises(NNLabError, match="stalled_at: expected a number"):
        eta_best(trials, stalled_at="chance")


def test_a_fit_is_exploratory_with_a_low_r_squared_few_points_or_a_wide_interval():
    rng = np.random.default_rng(8)
    xs = np.geomspace(32, 1e5, 15)
    flat_then_falling = 3.0 * np.minimum(1.0, (xs / 3000) ** -1.0)
    y = np.repeat(flat_then_falling, 4) * np.exp(0.05 * rng.normal(size=60))
    bent = fit_power_law(np.repeat(xs, 4), y, n_resamples=300)
    assert bent.r_squared < 0.9 and bent.exploratory
    assert any(reason.startswith("R^2 = ") for reason in bent.exploratory_reasons)
    assert "; exploratory: " in bent.summary() and bent.to_dict()["exploratory"]
    straight = fit_power_law(*power_law_sample(rng, 5), n_resamples=300)
    assert not straight.exploratory and "exploratory" not in straight.summary()
    assert straight.exploratory_reasons == [] and straight.r_squared >= 0.9
    few = fit_power_law(*power_law_sample(rng, 5, xs=NS[:4]), n_resamples=300)
    assert few.exploratory_reasons[0] == "4 points, fewer than 5"  # distinct x, not runs
    noisy = fit_power_law(*power_law_sample(rng, 2, sigma=3.0), n_resamples=300)
    assert "a CI wider than the estimate" in noisy.exploratory_reasons
