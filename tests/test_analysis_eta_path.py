"""eta_path: the argmax path of a smooth surface over (log eta, log N) recovers a known
optimum, also where a per-N parabola leans on an asymmetric bowl."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nnlab.analysis import eta_best, eta_path
from nnlab.errors import NNLabError
from tests.simulated_eta import eta_trials, power_law

NS = np.round(np.geomspace(3162, 1e5, 7))
TRUTH = power_law()


def noiseless(skew: float = -0.6):
    trials = eta_trials(np.random.default_rng(0), NS, TRUTH, skew=skew, seed_sd=0.0,
                        run_sd=1e-7)
    return eta_best(trials, stalled_at=0.2, n_resamples=200)


def test_the_cubic_path_finds_the_optimum_of_an_asymmetric_bowl():
    result = noiseless()
    error = np.log(eta_path(result).table["eta_path"] / TRUTH(NS))
    assert np.abs(error).max() < 0.03  # a grid step is log 2 = 0.69
    leaning = np.log(eta_path(result, cubic=False).table["eta_path"] / TRUTH(NS))
    assert leaning.min() > 0.1  # a parabola through 5 points leans to the shallow side
    assert np.abs(np.log(result.table["eta_best"] / TRUTH(NS))).max() < 0.06


def test_each_n_on_its_own_with_three_points_is_the_per_n_parabola():
    # the path works on the seed means' resamples, before eta_best's t/z widening
    result = eta_best(eta_trials(np.random.default_rng(1), NS, TRUTH), small_sample=False,
                      n_resamples=300)
    path = eta_path(result, window=1, degree=NS.size - 1, cubic=False)
    np.testing.assert_allclose(path.table["eta_path"], result.table["eta_best"], rtol=1e-8)
    np.testing.assert_allclose(np.exp(path.boot_log_eta), np.exp(result.boot_log_eta),
                               rtol=1e-6)


def test_path_band_and_its_power_law_cover_the_truth():
    result = eta_best(eta_trials(np.random.default_rng(2), NS, TRUTH), stalled_at=0.2,
                      n_resamples=1000, seed=2)
    path = eta_path(result)
    table = path.table
    inside = (table["low"] <= TRUTH(NS)) & (TRUTH(NS) <= table["high"])
    assert inside.sum() >= 6 and not table["excluded"].any()
    fit = path.power_law()
    assert fit.exponent.contains(1.04) and fit.n == NS.size
    assert path.power_law(keep=NS >= 10_000).n == 4
    assert "eta_path per n_steps (argmax of a surface cubic" in path.summary()
    json.dumps(path.to_dict())


def test_cells_of_stalled_runs_stay_out_and_a_path_beyond_the_grid_is_excluded():
    # eta* falls from 30 to 0.5: beyond the cliff (16, stalled) at the shortest N, beside
    # it at the next two, then well inside the grid
    truth = power_law(a=30 * 3162**1.2, b=1.2)
    trials = eta_trials(np.random.default_rng(3), NS, truth)
    result = eta_best(trials, stalled_at=0.2, n_resamples=300)
    table = eta_path(result).table
    assert table["excluded"].iloc[:2].all() and not table["excluded"].iloc[-3:].any()
    assert (table["outside_share"].iloc[:2] == 1).all()
    assert (table["outside_share"].iloc[-3:] < 0.1).all()
    assert eta_path(result).power_law().exponent.contains(1.2)


def test_eta_path_rejects_bad_input():
    result = noiseless()
    with pytest.raises(NNLabError, match="result: expected an EtaBestResult"):
        eta_path(result.table)
    with pytest.raises(NNLabError, match="degree: expected an integer in 0..6"):
        eta_path(result, degree=7)
    with pytest.raises(NNLabError, match="window >= 2 with cubic=True"):
        eta_path(result, window=1)
    with pytest.raises(NNLabError, match="window: expected an integer >= 1"):
        eta_path(result, window=0, cubic=False)
    with pytest.raises(NNLabError, match="max_share"):
        eta_path(result, max_share=2)
