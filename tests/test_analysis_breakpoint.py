"""fit_broken_power_law finds a known breakpoint and slopes; extrapolation_check tells a
power law that carries on from one that bends past the fitted range."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnlab.analysis import extrapolation_check, fit_broken_power_law
from nnlab.errors import NNLabError

XS = np.geomspace(32, 1e5, 15)


def broken(x: np.ndarray, x_b: float = 3000.0, before: float = 0.0, after: float = 1.0):
    """y = 3 (x / x_b)^-before up to x_b, 3 (x / x_b)^-after after it."""
    return 3.0 * (x / x_b) ** -np.where(x <= x_b, before, after)


def replicates(seed: int, n: int = 10, sigma: float = 0.15, truth=broken):
    """n log-normal replicates of truth at each x (x repeated)."""
    rng = np.random.default_rng(seed)
    x = np.repeat(XS, n)
    return x, truth(x) * np.exp(sigma * rng.normal(size=x.size))


def test_an_exact_broken_power_law_is_recovered():
    fit = fit_broken_power_law(XS, broken(XS), n_resamples=200)
    assert fit.breakpoint.value == pytest.approx(3000, rel=1e-8)
    assert fit.exponent_before.value == pytest.approx(0.0, abs=1e-10)
    assert fit.exponent_after.value == pytest.approx(1.0, rel=1e-10)
    assert fit.value_at_break.value == pytest.approx(3.0, rel=1e-10)
    np.testing.assert_allclose(fit.predict(XS), broken(XS), rtol=1e-10)
    assert (fit.n_before, fit.n_after) == (8, 7) and fit.r_squared == pytest.approx(1.0)


def test_breakpoint_and_slopes_intervals_cover_the_truth_from_replicates():
    fits = [fit_broken_power_law(*replicates(s), n_resamples=500, seed=s) for s in range(30)]
    assert fits[0].resampling == "replicates within each x"
    assert np.mean([f.breakpoint.contains(3000) for f in fits]) >= 0.85
    assert np.mean([f.exponent_after.contains(1.0) for f in fits]) >= 0.85
    assert np.mean([f.exponent_before.contains(0.0) for f in fits]) >= 0.85
    low, high = fits[0].band(XS)
    assert np.all(low <= fits[0].predict(XS)) and np.all(fits[0].predict(XS) <= high)
    assert "breakpoint x_b =" in fits[0].summary() and json.dumps(fits[0].to_dict())


def test_one_point_per_x_resamples_residuals_and_short_segments_are_exploratory():
    fits = [fit_broken_power_law(
        XS, broken(XS) * np.exp(0.05 * np.random.default_rng(s).normal(size=XS.size)),
        n_resamples=500, seed=s) for s in range(20)]
    assert np.mean([f.breakpoint.contains(3000) for f in fits]) >= 0.85  # 94% of 100
    fit = fits[0]
    assert fit.resampling == "residuals"
    late = broken(XS, x_b=30_000)  # 2 points after the break
    assert fit_broken_power_law(XS, late, min_segment=2, n_resamples=200).exploratory
    assert not fit.exploratory


def test_extrapolation_holds_for_a_power_law_and_fails_where_it_bends():
    straight = [extrapolation_check(*replicates(s, truth=lambda x: broken(x, x_b=10.0)),
                                    n_resamples=500, seed=s) for s in range(20)]
    assert np.mean([c.holds for c in straight]) >= 0.8
    # fitted on 32..31623 where eta falls as x^-1 from 3000 on, then steepening to x^-2
    bends = [extrapolation_check(*replicates(s, truth=lambda x: broken(x, 1.0, 1.0, 1.0)
                                             * np.where(x > 4e4, (x / 4e4) ** -1.0, 1.0)),
                                 n_held_out=1, n_resamples=500, seed=s) for s in range(10)]
    assert np.mean([c.holds for c in bends]) <= 0.2
    check = straight[0]
    row = check.table.iloc[0]
    assert row["x"] == XS[-1] and row["predicted_low"] < row["predicted"] < row["predicted_high"]
    assert "held-out check" in check.summary() and json.dumps(check.to_dict())
    assert check.fit.x.max() == XS[-2]


def test_extrapolation_from_propagated_replicates():
    rng = np.random.default_rng(3)
    y_boot = broken(XS, x_b=10.0) * np.exp(0.1 * rng.normal(size=(500, XS.size)))
    check = extrapolation_check(XS, broken(XS, x_b=10.0), y_boot=y_boot, n_held_out=2)
    assert len(check.table) == 2 and check.holds
    np.testing.assert_allclose(check.table["ratio"], 1.0, rtol=1e-8)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: fit_broken_power_law(XS[:4], broken(XS[:4])), "needs at least 5 values"),
    (lambda: fit_broken_power_law(XS, broken(XS), min_segment=1), "min_segment: expected"),
    (lambda: fit_broken_power_law(XS, -broken(XS)), "y: expected positive"),
    (lambda: fit_broken_power_law(XS, broken(XS), y_boot=np.ones((5, 15))), "y_boot"),
    (lambda: extrapolation_check(XS, broken(XS)), "y_boot: one y per x needs"),
    (lambda: extrapolation_check(XS, broken(XS), n_held_out=0), "n_held_out: expected"),
])
def test_bad_input_is_refused_with_the_parameter_named(call, message):
    with pytest.raises(NNLabError, match=message):
        call()
