"""TOST: one-sided p-values and 90% intervals as Schuirmann's procedure defines them;
intervals that cover the truth at 100 runs or seeds; equivalence declared only inside the
margins, with the equivalence bound the interval implies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from nnlab.analysis import pitman_morgan_interval, tost_mean_difference, tost_std_ratio
from nnlab.errors import NNLabError


def pairs(rng: np.random.Generator, n: int, ratio: float, correlation: float = 0.7,
          shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Bivariate normal pairs: std(a)/std(b) = ratio, corr(a, b) = correlation."""
    z = rng.normal(size=(2, n))
    b = z[0]
    a = ratio * (correlation * z[0] + np.sqrt(1 - correlation**2) * z[1]) + shift
    return a, b


def test_mean_difference_tost_is_two_one_sided_t_tests():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.02, 1, 100), rng.normal(0, 1, 80)
    result = tost_mean_difference(a, b, 0.5, names=("noise", "none"))
    p_low = stats.ttest_ind(a + 0.5, b, equal_var=False, alternative="greater").pvalue
    p_high = stats.ttest_ind(a - 0.5, b, equal_var=False, alternative="less").pvalue
    assert result.p_value == pytest.approx(max(p_low, p_high))
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    assert (result.interval.low, result.interval.high) == pytest.approx((ci.low, ci.high))
    assert result.interval.confidence == pytest.approx(0.90)
    assert result.bound == pytest.approx(max(-ci.low, ci.high))
    # equivalent exactly when the 90% interval lies inside the margins
    assert result.equivalent == (-0.5 < ci.low and ci.high < 0.5)
    assert tost_mean_difference(a, b, result.bound * 1.001).equivalent
    assert not tost_mean_difference(a, b, result.bound * 0.999).equivalent
    assert "differences beyond +-" in result.summary()
    json.dumps(result.to_dict())


def test_paired_tost_uses_the_differences():
    a, b = pairs(np.random.default_rng(1), 100, 1.0, shift=0.05)
    result = tost_mean_difference(a, b, (-0.2, 0.3), paired=True)
    d = a - b
    p_low = stats.ttest_1samp(d, -0.2, alternative="greater").pvalue
    p_high = stats.ttest_1samp(d, 0.3, alternative="less").pvalue
    assert result.p_value == pytest.approx(max(p_low, p_high))
    assert result.unit == "seed" and result.method == "paired t"
    # pairing removes the shared part: far narrower than the Welch interval here
    unpaired = tost_mean_difference(a, b, (-0.2, 0.3))
    assert result.bound < 0.7 * unpaired.bound


def test_std_ratio_tost_by_pitman_morgan_and_by_bootstrap_agree_on_normal_pairs():
    a, b = pairs(np.random.default_rng(2), 100, 1.05)
    exact = tost_std_ratio(a, b, 1.4, paired=True, method="pitman-morgan")
    boot = tost_std_ratio(a, b, 1.4, paired=True, n_resamples=4000)
    assert exact.value == boot.value == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1))
    for end in ("low", "high"):
        assert getattr(boot.interval, end) == pytest.approx(getattr(exact.interval, end),
                                                            rel=0.03)
    assert exact.equivalent and boot.equivalent
    assert exact.bound == pytest.approx(max(1 / exact.interval.low, exact.interval.high))
    # the Pitman-Morgan p-value at a margin equals its test of that ratio
    f = np.var(a, ddof=1) / np.var(b, ddof=1)
    r = np.corrcoef(a, b)[0, 1]
    t_high = (f - 1.4**2) * np.sqrt(98) / (2 * np.sqrt(1.4**2 * f * (1 - r**2)))
    t_low = (f - 1.4**-2) * np.sqrt(98) / (2 * np.sqrt(1.4**-2 * f * (1 - r**2)))
    assert exact.p_value == pytest.approx(max(stats.t.cdf(t_high, 98), stats.t.sf(t_low, 98)))
    assert "ratios outside [" in exact.summary()


def test_bad_margins_and_methods_are_refused():
    a, b = pairs(np.random.default_rng(3), 20, 1.0)
    with pytest.raises(NNLabError, match="margins: expected a ratio m > 1"):
        tost_std_ratio(a, b, 0.8)
    with pytest.raises(NNLabError, match=r"margins: expected a number m > 0 or a pair"):
        tost_mean_difference(a, b, (0.1, 0.2))
    with pytest.raises(NNLabError, match="'pitman-morgan' compares paired samples"):
        tost_std_ratio(a, b, 1.25, method="pitman-morgan")
    with pytest.raises(NNLabError, match="alpha: expected a level"):
        tost_mean_difference(a, b, 0.1, alpha=0.5)


def interval_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Share of 95% intervals (the TOST procedures' intervals at alpha = 0.025) holding the
    truth, 100 pairs per simulation: mean difference 0.1, std ratio 1.2."""
    hits = {"mean, paired": [], "mean, Welch": [], "ratio, Pitman-Morgan": [],
            "ratio, paired bootstrap": [], "ratio, bootstrap": []}
    for sim in range(n_sims):
        rng = np.random.default_rng(sim)
        a, b = pairs(rng, 100, 1.2, shift=0.1)
        options = {"alpha": 0.025, "n_resamples": n_resamples, "seed": sim}
        found = {
            "mean, paired": tost_mean_difference(a, b, 1.0, paired=True, alpha=0.025),
            "mean, Welch": tost_mean_difference(a, rng.normal(size=100), 1.0, alpha=0.025),
            "ratio, Pitman-Morgan": tost_std_ratio(a, b, 2.0, paired=True,
                                                   method="pitman-morgan", **options),
            "ratio, paired bootstrap": tost_std_ratio(a, b, 2.0, paired=True, **options),
            "ratio, bootstrap": tost_std_ratio(a, rng.normal(size=100), 2.0, **options),
        }
        for key, result in found.items():
            truth = 0.1 if key.startswith("mean") else 1.2
            hits[key].append(result.interval.contains(truth))
    return {key: float(np.mean(h)) for key, h in hits.items()}


def test_tost_intervals_cover_at_100_runs():
    found = interval_coverage(200, 1000)
    assert min(found.values()) >= 0.9, found


def test_pitman_morgan_interval_is_exact_for_normal_pairs():
    covered = []
    for sim in range(2000):
        a, b = pairs(np.random.default_rng(sim), 30, 1.5)
        low, high = pitman_morgan_interval(a, b, 0.95)
        covered.append(low <= 1.5 <= high)
    assert abs(np.mean(covered) - 0.95) < 0.015  # binomial sd over 2000 is 0.005


@pytest.mark.slow
def test_tost_intervals_cover_in_400_simulations():
    found = interval_coverage(400, 4000)
    print("tost", found)
    assert min(found.values()) >= 0.92, found


def test_without_margins_the_interval_and_its_bound_are_given_but_no_test():
    a, b = pairs(np.random.default_rng(4), 50, 1.0)
    result = tost_std_ratio(a, b, None, paired=True, method="pitman-morgan")
    assert result.margins is None and np.isnan(result.p_value) and not result.equivalent
    assert "TOST" not in result.summary() and "ratios outside" in result.summary()
    assert result.to_dict()["p_value"] is None
    with_margins = tost_std_ratio(a, b, 1.5, paired=True, method="pitman-morgan")
    assert with_margins.interval == result.interval and with_margins.bound == result.bound
