"""The variance floor with non-normal weights and a profile likelihood-ratio interval that
holds at c = 0, on simulated restarts with a known floor (tests/simulated_restarts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import ProfileFloorFit, variance_vs_n
from nnlab.errors import InsufficientData, NNLabError
from nnlab.study import Study
from tests.simulated_restarts import FLOOR, NS, restart_trials

PROFILE = {"weights": "kurtosis", "floor_interval": "profile", "n_resamples": 200}


def test_the_profile_interval_keeps_the_weighted_fit_and_brackets_it():
    trials = restart_trials(np.random.default_rng(0))
    boot = variance_vs_n(trials, weights="kurtosis", n_resamples=PROFILE["n_resamples"]).fit
    profile = variance_vs_n(trials, **PROFILE).fit
    assert isinstance(profile, ProfileFloorFit) and not isinstance(boot, ProfileFloorFit)
    # maximum likelihood (gamma deviance) against weighted least squares: close, not equal
    assert profile.floor.value == pytest.approx(boot.floor.value, rel=0.1)
    assert profile.exponent.value == pytest.approx(boot.exponent.value, abs=0.2)
    for value in (profile.floor, profile.exponent, profile.scale):
        assert value.low < value.value < value.high
    assert profile.lr_scale_df == pytest.approx(19, abs=6)  # 2 m / (mu8 / mu4^2 - 1), normal
    assert profile.floor_excludes_zero and profile.p_zero < 0.001
    assert not profile.plateau and profile.plateau_reason == ""
    data = profile.to_dict()
    assert data["floor_interval"] == "profile" and data["weights"] == "kurtosis"
    json.dumps(data)


def test_kurtosis_weights_use_each_lengths_excess_kurtosis():
    # uniform runs: excess kurtosis -1.2 (light tails), so Var(s^2) is smaller than normal
    rng = np.random.default_rng(1)
    n = np.repeat(NS, 100)
    spread = np.sqrt(FLOOR + 0.028 * n**-1.1) * np.sqrt(12) * (rng.random(n.size) - 0.5)
    trials = pd.DataFrame({"n_steps": n, "seed": np.tile(np.arange(100), NS.size),
                           "test_acc": 0.966 + spread})
    fit = variance_vs_n(trials, status_col=None, **PROFILE).fit
    assert np.mean(fit.kurtosis) == pytest.approx(-1.2, abs=0.1)
    assert len(fit.kurtosis) == NS.size and min(fit.kurtosis) >= -1.5  # clipped there
    assert variance_vs_n(trials, status_col=None, weights="normal",
                         floor_interval="profile", n_resamples=400).fit.kurtosis is None


def test_the_likelihood_ratio_is_scaled_for_seeds_shared_across_lengths():
    # one run per seed read at every N: the floor parts of a seed are correlated along N,
    # so the N do not inform the floor independently and the sandwich scale exceeds 1
    shared = variance_vs_n(restart_trials(np.random.default_rng(2)), **PROFILE).fit
    independent = variance_vs_n(restart_trials(np.random.default_rng(2), paired=False),
                                **PROFILE).fit
    assert shared.lr_scale > 1.5
    assert 0.6 < independent.lr_scale < 1.6


def test_no_floor_gives_a_large_p_value_and_an_interval_from_zero():
    results = [variance_vs_n(restart_trials(np.random.default_rng(s), floor=0.0), **PROFILE)
               for s in range(3)]
    assert all(r.fit.floor.low == 0 and r.fit.floor.contains(0.0) for r in results)
    assert sum(r.fit.p_zero > 0.05 for r in results) >= 2
    assert "The floor's interval includes 0" in results[0].summary()


def test_a_slow_decline_without_a_floor_is_called_a_plateau():
    trials = restart_trials(np.random.default_rng(3), floor=0.0, scale=4e-5, exponent=0.1)
    result = variance_vs_n(trials, **PROFILE)
    assert result.fit.plateau
    assert "lower bound" in result.fit.plateau_reason or "holds both 0" in (
        result.fit.plateau_reason)
    assert "Plateau: the fit does not separate a floor from a slow decline" in result.summary()
    assert result.to_dict()["fit"]["plateau"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weights": "robust"}, "weights: expected one of"),
    ({"floor_interval": "bca"}, "floor_interval: expected one of"),
])
def test_bad_floor_options_are_refused(kwargs, message):
    with pytest.raises(NNLabError, match=message):
        variance_vs_n(restart_trials(np.random.default_rng(0), n_seeds=10), **kwargs)


def test_kurtosis_weights_need_four_seeds():
    trials = restart_trials(np.random.default_rng(0), n_seeds=3)
    with pytest.raises(NNLabError, match="'kurtosis' needs at least 4 seeds per length, got 3"):
        variance_vs_n(trials, weights="kurtosis")


def test_an_early_transient_is_flagged_through_the_least_squares_refits():
    # 30x the spread at the shortest N: runs that take off late
    trials = restart_trials(np.random.default_rng(4))
    shortest = trials["n_steps"] == NS[0]
    trials.loc[shortest, "test_acc"] = 0.966 + np.sqrt(30) * (
        trials.loc[shortest, "test_acc"] - 0.966)
    full = variance_vs_n(trials, **PROFILE).fit
    assert full.exponent_at_bound and full.plateau
    assert "upper bound 3" in full.plateau_reason
    later = variance_vs_n(trials, fit_from=float(NS[1]), **PROFILE).fit
    assert not later.exponent_at_bound and later.floor.contains(FLOOR)


def test_a_floor_profile_that_misses_its_fit_is_insufficient_data_not_a_root_error():
    """The digits' best-eta runs: their test_acc variance rises over the first 100 steps
    (chance level) and then falls, which c + a N^-b cannot describe; the floor's profile
    then stays above the joint fit, and the profile interval has no root to find."""
    study = Study.load(Path(__file__).parents[1] / "results" / "digits-eta-vs-n")
    curves, trials = study.curves(), study.trials()
    runs = trials.loc[trials["eta"] == 8.0, ["trial", "seed", "status"]]
    frame = curves.merge(runs, on="trial").rename(columns={"step": "n_steps"})
    frame = frame[frame["n_steps"] > 0]  # the report reads the trained lengths
    with pytest.raises(InsufficientData, match="fit_floor: the profile of the floor c"):
        variance_vs_n(frame, "n_steps", "test_acc", weights="kurtosis",
                      floor_interval="profile")
