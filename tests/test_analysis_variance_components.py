"""Variance components of a crossed design: estimates, GCI coverage, shares, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import variance_components
from nnlab.errors import InsufficientData, NNLabError

TRUTH = {"init_seed": 1.0, "order_seed": 0.5, "residual": 2.0}  # s2_init, s2_order, s2_res


def crossed(rng: np.random.Generator, n_rows: int = 20, n_cols: int = 20,
            truth: dict[str, float] = TRUTH, effects=None) -> pd.DataFrame:
    """One simulated crossed design: y_ij = 3 + a_i + b_j + e_ij with variances `truth`;
    `effects(rng, size)` draws standardised effects (default normal)."""
    draw = effects or (lambda r, size: r.standard_normal(size))
    a = np.sqrt(truth["init_seed"]) * draw(rng, n_rows)
    b = np.sqrt(truth["order_seed"]) * draw(rng, n_cols)
    e = np.sqrt(truth["residual"]) * draw(rng, (n_rows, n_cols))
    y = 3.0 + a[:, None] + b[None, :] + e
    i, j = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    return pd.DataFrame({"init_seed": i.ravel(), "order_seed": j.ravel(),
                         "test_acc": y.ravel()})


def simulate(n_sims: int, truth: dict[str, float] = TRUTH, seed: int = 1, effects=None
             ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Coverage of the 95% intervals of the components and of the shares, and the mean of
    the untruncated estimates, over `n_sims` simulated 20 x 20 designs."""
    rng = np.random.default_rng(seed)
    total = sum(truth.values())
    covered = {name: 0 for name in truth}
    share_covered = {name: 0 for name in truth}
    estimates = {name: [] for name in truth}
    for k in range(n_sims):
        result = variance_components(crossed(rng, truth=truth, effects=effects),
                                     n_draws=4000, seed=k)
        for name, true in truth.items():
            component = result[name]
            covered[name] += component.value.contains(true)
            share_covered[name] += component.share.contains(true / total)
            estimates[name].append(component.untruncated)
    return ({n: c / n_sims for n, c in covered.items()},
            {n: c / n_sims for n, c in share_covered.items()},
            {n: float(np.mean(v)) for n, v in estimates.items()})


def test_anova_estimates_on_a_design_with_known_mean_squares():
    # rows differ by +-1 (J = 3 columns), columns by 0, 2, 4 minus their mean, residual 0
    y = np.array([[0.0, 2.0, 4.0], [2.0, 4.0, 6.0]])
    i, j = np.meshgrid([10, 11], [5, 6, 7], indexing="ij")
    runs = pd.DataFrame({"init_seed": i.ravel(), "order_seed": j.ravel(),
                         "test_acc": y.ravel()})
    result = variance_components(runs, n_draws=1000)
    # MS_rows = 3 * (1 + 1) / 1 = 6, MS_cols = 2 * (4 + 0 + 4) / 2 = 8, MS_res = 0
    assert result.mean_squares["init_seed"] == pytest.approx((6.0, 1))
    assert result.mean_squares["order_seed"] == pytest.approx((8.0, 2))
    assert result["residual"].value.value == pytest.approx(0.0, abs=1e-12)
    assert result["init_seed"].value.value == pytest.approx(2.0)   # (6 - 0) / 3
    assert result["order_seed"].value.value == pytest.approx(4.0)  # (8 - 0) / 2
    assert result["order_seed"].share.value == pytest.approx(4.0 / 6.0)
    assert result.total.value == pytest.approx(6.0)
    assert result.mean == pytest.approx(3.0)


def test_the_intervals_cover_the_truth_and_the_estimates_are_unbiased():
    n_sims = 300
    coverage, share_coverage, means = simulate(n_sims)
    for name in TRUTH:
        assert coverage[name] >= 0.90, (name, coverage)
        assert share_coverage[name] >= 0.90, (name, share_coverage)
    # the untruncated ANOVA estimates are unbiased: their mean is within 4 standard errors
    # (sd of an estimate over simulations / sqrt(n_sims), from a second look at the spread)
    rng = np.random.default_rng(7)
    spread = {name: [] for name in TRUTH}
    for k in range(100):
        result = variance_components(crossed(rng), n_draws=1000, seed=k)
        for name in TRUTH:
            spread[name].append(result[name].untruncated)
    for name, true in TRUTH.items():
        se = np.std(spread[name], ddof=1) / np.sqrt(n_sims)
        assert abs(means[name] - true) < 4 * se, (name, means[name], true, se)


def test_a_component_of_zero_is_covered_and_its_interval_starts_at_zero():
    truth = {"init_seed": 0.0, "order_seed": 0.5, "residual": 2.0}
    coverage, _, means = simulate(200, truth=truth, seed=3)
    assert coverage["init_seed"] >= 0.95  # [0, high] always holds 0 when it starts at 0
    assert abs(means["init_seed"]) < 0.05  # untruncated: unbiased around 0
    rng = np.random.default_rng(11)
    lows = [variance_components(crossed(rng, truth=truth), n_draws=2000)["init_seed"]
            .value.low for _ in range(20)]
    assert sum(low == 0.0 for low in lows) >= 15


def test_a_negative_estimate_is_reported_as_zero_with_the_untruncated_value_kept():
    rng = np.random.default_rng(5)
    truth = {"init_seed": 0.0, "order_seed": 1.0, "residual": 1.0}
    for _ in range(50):
        result = variance_components(crossed(rng, truth=truth), n_draws=1000)
        if result["init_seed"].untruncated < 0:
            break
    component = result["init_seed"]
    assert component.untruncated < 0
    assert component.value.value == 0.0 and component.value.low == 0.0
    assert component.share.value == 0.0
    assert "untruncated" in result.summary()
    assert sum(c.share.value for c in result.components) == pytest.approx(1.0)


def test_derived_quantities_get_their_interval_from_the_same_pivots():
    result = variance_components(crossed(np.random.default_rng(2)), n_draws=5000)
    share = result.derived(lambda c: c[:, 2] / c.sum(axis=1))
    assert share.value == pytest.approx(result["residual"].share.value)
    assert (share.low, share.high) == pytest.approx(
        (result["residual"].share.low, result["residual"].share.high))
    shifted = result.derived(lambda c: c[:, 2] - 1.0)
    assert shifted.low == pytest.approx(result["residual"].value.low - 1.0)


def test_the_monte_carlo_error_of_the_gci_ends_shrinks_with_the_draws_and_carries_to_the_std():
    """The GCI's percentile ends carry the Monte Carlo error of the draws (about 1/sqrt of
    their number: 10x for 100x the draws), and a component's std range covers the square
    roots of its variance's range (low, high, each +- its error)."""
    runs = crossed(np.random.default_rng(6), n_rows=8, n_cols=8)
    few, many = (variance_components(runs, n_draws=n)["residual"] for n in (2000, 200_000))
    assert 5 < few.value.mc_error / many.value.mc_error < 20
    for component in (few, many):
        error, std = component.value.mc_error, component.std
        for end, root in ((component.value.low, std.low), (component.value.high, std.high)):
            for moved in (max(end - error, 0.0), end + error):
                assert abs(np.sqrt(moved) - root) <= std.mc_error * (1 + 1e-12)


def test_the_levels_order_and_the_seed_of_the_draws_do_not_change_the_estimates():
    runs = crossed(np.random.default_rng(4), n_rows=5, n_cols=4)
    a = variance_components(runs, n_draws=2000, seed=1)
    b = variance_components(runs.sample(frac=1, random_state=0), n_draws=2000, seed=1)
    assert a.to_dict() == b.to_dict()
    assert a.n_rows == 5 and a.n_cols == 4
    assert a["init_seed"].df == 4 and a["order_seed"].df == 3 and a["residual"].df == 12
    assert "5 init_seed x 4 order_seed" in a.unit


def student_t5(rng: np.random.Generator, size) -> np.ndarray:
    """Student t effects with 5 df scaled to variance 1 (excess kurtosis 6)."""
    return rng.standard_t(5, size) / np.sqrt(5 / 3)


@pytest.mark.slow
def test_measured_coverage_at_20_x_20():
    """The coverage quoted in docs/analysis.md (2000 normal simulations each, 1000 t_5)."""
    coverage, share_coverage, _ = simulate(2000, seed=21)
    assert min(coverage.values()) >= 0.92 and min(share_coverage.values()) >= 0.92
    no_init = {"init_seed": 0.0, "order_seed": 0.5, "residual": 2.0}
    coverage, share_coverage, _ = simulate(2000, truth=no_init, seed=23)
    assert min(coverage.values()) >= 0.92 and min(share_coverage.values()) >= 0.92
    # heavier-tailed effects (Student t, 5 df, scaled to unit variance): the GCI assumes
    # normal effects, and the residual's interval, resting on many df, loses most coverage
    coverage_t5, _, _ = simulate(1000, seed=22, effects=student_t5)
    assert min(coverage_t5.values()) >= 0.70
    assert coverage_t5["residual"] < 0.90


def frame(cells: list[tuple[int, int]], values=None) -> pd.DataFrame:
    return pd.DataFrame({"init_seed": [c[0] for c in cells],
                         "order_seed": [c[1] for c in cells],
                         "test_acc": values if values is not None
                         else np.linspace(0.9, 0.95, len(cells))})


FULL = [(i, j) for i in range(3) for j in range(3)]


@pytest.mark.parametrize(("runs", "message"), [
    (frame(FULL[:-1]), "unbalanced design: 1 of 9 cells have no value (first: "
                       "init_seed=2, order_seed=2)"),
    (frame([*FULL, (0, 0)]), "cell init_seed=0, order_seed=0 has 2 rows"),
    (frame([(0, j) for j in range(3)]), "column 'init_seed' has 1 level"),
    (frame(FULL).drop(columns="order_seed"), "missing column 'order_seed'"),
    (frame(FULL, [0.9] * 8 + [np.nan]), "column 'test_acc' has 1 NaN/inf"),
    (frame(FULL, [0.9] * 9), "'test_acc' is the same in every cell"),
    (frame(FULL).assign(init_seed=[0, 0, 0, 1, 1, 1, np.nan, np.nan, np.nan]),
     "column 'init_seed' has missing levels"),
])
def test_bad_input_is_one_clear_error(runs, message):
    with pytest.raises(NNLabError, match="variance_components") as err:
        variance_components(runs, n_draws=1000)
    assert message in str(err.value)


def test_bad_settings_name_the_argument():
    runs = frame(FULL)
    with pytest.raises(NNLabError, match="n_draws: expected an integer >= 1000"):
        variance_components(runs, n_draws=10)
    with pytest.raises(NNLabError, match="confidence"):
        variance_components(runs, confidence=1.5)
    with pytest.raises(NNLabError, match="rows and cols are both"):
        variance_components(runs, rows="init_seed", cols="init_seed")
    with pytest.raises(InsufficientData):
        variance_components(frame(FULL, [0.9] * 9))
    with pytest.raises(NNLabError, match="no component 'eta'"):
        variance_components(runs, n_draws=1000)["eta"]
