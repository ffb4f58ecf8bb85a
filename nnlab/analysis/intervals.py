"""Closed-form intervals of a mean and of spreads over runs or seeds, valid without normality.

Bootstrap intervals of a standard deviation cover too rarely when runs have heavy tails or
few seeds: at 100 runs with excess kurtosis 1.5 the BCa interval held the true std in
88% of simulations, at 10 runs 74.5-85% (docs/analysis.md). Bonett's intervals estimate
the kurtosis and carry it into the standard error of log s^2, with a small-sample factor
found by simulation, and cover 92-96% in the same simulations:

- Bonett 2006, "Approximate confidence interval for standard deviation of nonnormal
  distributions", Comput. Stat. Data Anal. 50: one std;
- Bonett 2006, "Robust confidence interval for a ratio of standard deviations", Appl.
  Psychol. Meas. 30: the ratio of two independent samples' stds.

The mean's interval is Student's t (the unit is whatever the values are one per: runs or
seeds).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, sample_std


def mean_interval(values: np.ndarray, confidence: float = 0.95,
                  bounds: tuple[float, float] = (-math.inf, math.inf)) -> Estimate:
    """Mean of `values` (n,) with the t interval of the mean (NaN bounds when n < 2), cut
    to `bounds`, the values the quantity can take (a t interval over 2 or 3 seeds easily
    reaches past an accuracy of 1)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return Estimate(mean, math.nan, math.nan, confidence)
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * stats.sem(values)
    return Estimate(mean, max(mean - half, bounds[0]), min(mean + half, bounds[1]), confidence)


def _fourth_moment_sum(values: np.ndarray) -> float:
    """sum (x - m)^4 about Bonett's trimmed mean m (trim proportion 1 / (2 sqrt(n - 4));
    the median for n <= 5)."""
    n = values.size
    centre = (float(np.median(values)) if n <= 5 else
              float(stats.trim_mean(values, 1 / (2 * math.sqrt(n - 4)))))
    return float(np.sum((values - centre) ** 4))


def _log_variance_se(kurtosis: float, n: int) -> float:
    """Bonett's variance of log s^2 for n values of this kurtosis (not excess), at least 0."""
    return max(kurtosis - (n - 3) / n, 0.0) / (n - 1)


def std_interval(values: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Sample std (ddof=1) of `values` (n,) with Bonett's (2006) interval:
    exp(log(c s^2) -+ z c se) for the variance, se^2 = (kurtosis - (n-3)/n) / (n-1), the
    kurtosis n sum (x - m)^4 / (sum (x - mean)^2)^2 about a trimmed mean m, c = n / (n - z);
    square roots for the std. n >= 2; with n <= z the interval is [0, inf]."""
    values = np.asarray(values, dtype=float)
    n = values.size
    s2 = float(sample_std(values)) ** 2  # exactly 0 for equal values
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    if s2 == 0:
        return Estimate(0.0, 0.0, 0.0, confidence)
    if n <= z:
        return Estimate(math.sqrt(s2), 0.0, math.inf, confidence)
    kurtosis = n * _fourth_moment_sum(values) / ((n - 1) * s2) ** 2
    c = n / (n - z)
    half = z * c * math.sqrt(_log_variance_se(kurtosis, n))
    centre = math.log(c * s2)
    return Estimate(math.sqrt(s2), math.exp((centre - half) / 2), math.exp((centre + half) / 2),
                    confidence)


def std_ratio_parts(a: np.ndarray, b: np.ndarray, z: float) -> tuple[float, float]:
    """(log(c s_a^2 / s_b^2), se) of Bonett's (2006) ratio of two independent samples'
    variances: the kurtosis pooled over both samples (about their trimmed means), se^2 the
    sum of each sample's Bonett variance of log s^2, c = (n_a / (n_a - z)) / (n_b / (n_b -
    z)). a (n_a,), b (n_b,), each with n > z values that are not all equal."""
    n_a, n_b = a.size, b.size
    squares = float(np.sum((a - a.mean()) ** 2) + np.sum((b - b.mean()) ** 2))
    kurtosis = (n_a + n_b) * (_fourth_moment_sum(a) + _fourth_moment_sum(b)) / squares**2
    se = math.sqrt(_log_variance_se(kurtosis, n_a) + _log_variance_se(kurtosis, n_b))
    c = (n_a / (n_a - z)) / (n_b / (n_b - z))
    return math.log(c * (sample_std(a) / sample_std(b)) ** 2), se


def std_ratio_interval(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Estimate:
    """std(a) / std(b) of two independent samples with Bonett's (2006) interval
    (`std_ratio_parts`); square roots of the variance ratio's."""
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    centre, se = std_ratio_parts(a, b, z)
    ratio = float(sample_std(a) / sample_std(b))
    return Estimate(ratio, math.exp((centre - z * se) / 2), math.exp((centre + z * se) / 2),
                    confidence)
