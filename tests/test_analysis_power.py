"""Simulated power: the level at no effect, the textbook power where there is one, and a
minimum detectable effect at which the power is the target."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from nnlab.analysis import minimum_detectable_effect, power, shapiro_power
from nnlab.analysis.power import TESTS
from nnlab.errors import NNLabError


@pytest.mark.parametrize("test", ["brown-forsythe", "fligner-killeen", "pitman-morgan",
                                  "shapiro-skewness", "shapiro-tails", "paired-t", "welch"])
def test_no_effect_is_rejected_at_about_alpha(test):
    correlation = 0.6 if test == "pitman-morgan" else None
    found = power(test, 50, TESTS[test].null, n_sim=2000, correlation=correlation, seed=1)
    assert abs(found - 0.05) < 0.015  # binomial sd over 2000 is 0.005


def test_t_tests_have_the_power_of_the_noncentral_t():
    n, d = 30, 0.5
    one_sample = stats.nct.sf(stats.t.ppf(0.975, n - 1), n - 1, d * np.sqrt(n))
    assert power("paired-t", n, d, n_sim=4000) == pytest.approx(one_sample, abs=0.03)
    two_sample = stats.nct.sf(stats.t.ppf(0.975, 2 * n - 2), 2 * n - 2, d * np.sqrt(n / 2))
    assert power("welch", n, d, n_sim=4000) == pytest.approx(two_sample, abs=0.03)


def test_power_grows_with_the_effect_and_with_pairing():
    ratios = [1.0, 1.2, 1.5, 2.0]
    found = [power("brown-forsythe", 100, r, n_sim=500) for r in ratios]
    assert found == sorted(found) and found[-1] > 0.99
    # pairs that share most of their variance pin the ratio better than independent runs
    assert power("pitman-morgan", 100, 1.2, correlation=0.8, n_sim=500) > power(
        "brown-forsythe", 100, 1.2, n_sim=500) + 0.1


def test_minimum_detectable_effect_is_where_power_reaches_the_target():
    for test, n in (("brown-forsythe", 100), ("welch", 100), ("shapiro-skewness", 100)):
        mde = minimum_detectable_effect(test, n, n_sim=400, seed=3)
        assert power(test, n, mde, n_sim=400, seed=3) >= 0.8
        below = TESTS[test].null + 0.97 * (mde - TESTS[test].null)
        assert power(test, n, below, n_sim=400, seed=3) < 0.8
    # the textbook answer: d = 0.40 for two samples of 100 at 80% power
    assert minimum_detectable_effect("welch", 100, n_sim=2000) == pytest.approx(0.40, abs=0.02)


def test_shapiro_power_against_skewness_1_matches_normality_s_own():
    # normality's skewed alternative is chi-square(8), a gamma of skewness 1
    assert power("shapiro-skewness", 100, 1.0, n_sim=1000) == pytest.approx(
        shapiro_power(100, 0.05, 1000)["skewed"], abs=0.04)
    assert power("shapiro-tails", 100, 1 / 5, n_sim=1000) == pytest.approx(
        shapiro_power(100, 0.05, 1000)["heavy-tailed"], abs=0.05)


def test_the_bootstrap_ratio_test_is_simulated_with_its_own_interval():
    found = power("std-ratio-bootstrap", 40, 1.0, n_sim=100)
    assert found <= 0.12
    assert power("std-ratio-bootstrap", 40, 2.0, n_sim=100) > 0.8


def test_bad_arguments_name_the_parameter():
    with pytest.raises(NNLabError, match="test: expected one of"):
        power("levene", 10, 1.0)
    with pytest.raises(NNLabError, match="effect: expected a std ratio in"):
        power("brown-forsythe", 10, 0.5)
    with pytest.raises(NNLabError, match="correlation: 'pitman-morgan' compares pairs"):
        power("pitman-morgan", 10, 1.2)
    with pytest.raises(NNLabError, match="correlation: expected None"):
        power("welch", 10, 0.5, correlation=0.5)
    with pytest.raises(NNLabError, match="n: expected an integer >= 3"):
        power("welch", 2, 0.5)
    with pytest.raises(NNLabError, match="target: expected a power"):
        minimum_detectable_effect("welch", 10, target=1.5)
