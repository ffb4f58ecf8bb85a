"""eta_sensitivity: b under each estimator and eta grid, on a simulated study whose
eta*(N) = 9.5e3 N^-1.04 is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnlab.analysis import eta_best, eta_sensitivity
from nnlab.errors import NNLabError
from tests.simulated_eta import ETAS, eta_trials, power_law

NS = np.round(np.geomspace(1000, 1e5, 9))


@pytest.fixture(scope="module")
def trials():
    return eta_trials(np.random.default_rng(4), NS, power_law())


def test_every_estimator_and_grid_gets_a_row_and_the_headline_is_eta_best(trials):
    result = eta_sensitivity(trials, n_from=3000, stalled_at=0.2, n_resamples=500, seed=1)
    table = result.table
    assert list(table["estimator"]) == ["3-point parabola", "5-point parabola", "smooth path",
                                        "3-point parabola", "smooth path", "3-point parabola",
                                        "smooth path"]
    assert list(table["n_etas"]) == [11, 11, 11, 6, 6, 5, 5]
    head = result.headline
    in_range = trials[trials["n_steps"] >= 3000]
    direct = eta_best(in_range, stalled_at=0.2, n_resamples=500, seed=1).power_law(
        max_edge_share=0.1, seed=1)
    assert (head["b"], head["low"], head["high"]) == pytest.approx(
        (direct.exponent.value, direct.exponent.low, direct.exponent.high))
    assert result.n_from == NS[NS >= 3000].min() and result.n_to == 1e5
    low, high = result.spread
    assert low <= head["b"] <= high and high - low < 0.3
    full = table[table["grid"] == "full"]
    assert (full["low"] <= 1.04).sum() >= 2 and (full["high"] >= 1.04).sum() >= 2
    assert not table["exploratory"].any()
    assert "the estimator and the grid move it over" in result.summary()
    json.dumps(result.to_dict())


def test_a_row_that_cannot_be_fitted_says_why(trials):
    # from N = 56234 on only 2 lengths are left
    result = eta_sensitivity(trials, n_from=50_000, n_resamples=200)
    assert result.table["b"].isna().all() and result.table["exploratory"].all()
    assert "no fit (2 lengths" in result.summary()


def test_eta_sensitivity_rejects_bad_input(trials):
    with pytest.raises(NNLabError, match="n_from: expected a number"):
        eta_sensitivity(trials, n_from="3000")
    with pytest.raises(NNLabError, match="a grid thinned by 2 needs 6"):
        eta_sensitivity(trials[trials["eta"].isin(ETAS[:5])])
    with pytest.raises(NNLabError, match="no 'n_steps' within n_from..n_to"):
        eta_sensitivity(trials, n_from=2e5)
    with pytest.raises(NNLabError, match="missing column 'lr'"):
        eta_sensitivity(trials, eta_col="lr")
