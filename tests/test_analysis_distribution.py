"""normality: rejects clearly non-normal samples, keeps its level on normal ones, states power."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from nnlab.analysis import normality, shapiro_power
from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import NNLabError


@pytest.mark.parametrize("draw", ["uniform", "exponential"])
def test_rejects_clearly_non_normal_samples_of_200(draw: str):
    for seed in range(5):
        values = getattr(np.random.default_rng(seed), draw)(size=200)
        result = normality(values)
        assert result.rejects
        assert result.dagostino.p_value < 0.05
        assert result.verdict.startswith("Not normal: with n=200")


def test_normal_samples_are_rejected_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    rejected = [normality(rng.normal(0.95, 0.01, size=200)).rejects for _ in range(200)]
    assert np.mean(rejected) <= 0.09  # alpha = 0.05; binomial sd over 200 is 0.015


def test_moments_and_tests_match_scipy():
    values = np.random.default_rng(1).gamma(4.0, size=60)
    result = normality(values, name="test_acc")
    assert result.n == 60
    assert result.shapiro.p_value == pytest.approx(stats.shapiro(values).pvalue)
    assert result.dagostino.statistic == pytest.approx(stats.normaltest(values).statistic)
    assert result.skewness == pytest.approx(stats.skew(values, bias=False))
    assert result.excess_kurtosis == pytest.approx(stats.kurtosis(values, bias=False))
    assert "normality of test_acc (n=60)" in result.summary()
    assert json.loads(json.dumps(result.to_dict()))["n"] == 60


def test_small_samples_are_reported_with_their_low_power():
    result = normality(np.random.default_rng(2).normal(size=6))
    assert result.dagostino is None  # needs n >= 8
    assert "D'Agostino-Pearson needs n >= 8" in result.summary()
    assert max(result.power.values()) < 0.2
    assert "little power" in result.verdict and "n=6" in result.verdict


def test_simulated_power_grows_with_n_and_matches_a_direct_simulation():
    small, large = shapiro_power(10, 0.05), shapiro_power(300, 0.05)
    assert small["skewed"] < 0.3 < 0.95 < large["skewed"]
    assert small["heavy-tailed"] < large["heavy-tailed"]
    # chi-square(8) at n=50: an independent simulation gives the same power within noise
    rng = np.random.default_rng(123)
    direct = np.mean([stats.shapiro(rng.chisquare(8, 50)).pvalue < 0.05 for _ in range(400)])
    assert shapiro_power(50, 0.05)["skewed"] == pytest.approx(direct, abs=0.1)


@pytest.mark.parametrize(
    ("values", "message"),
    [([1.0, 2.0], "at least 3"), ([1.0, np.nan, 2.0, 3.0], "NaN"), ([2.0] * 5, "all 5 values")],
)
def test_rejects_bad_input(values, message):
    with pytest.raises(NNLabError, match=message):
        normality(values)


@pytest.mark.parametrize(("p_value", "text"), [
    (0.0321, "p=0.032"), (1e-300, "p=1e-300"), (2.6e-314, "p<1e-300"), (0.0, "p<1e-300")])
def test_p_values_below_1e_300_read_as_a_bound_not_as_subnormal_digits(p_value, text):
    assert HypothesisTest("Welch", 5.0, p_value).p_text == text
