"""The intervals of means and spreads the reports print over runs or seeds cover the truth at
the studies' sizes: Student's t for a seed mean, Bonett's for a std and a ratio of two
stds, and what `variance_vs_n` and `compare_variance` build from them; also for left-skewed
(gamma) and heavy-tailed (t_5) runs, where bootstrap intervals of a std did not (0.75-0.88,
docs/analysis.md). The default suite runs fewer simulations with a looser bar; `-m slow`
runs 1000 (or 200 for the bootstrap-based ones) and checks >= 0.9."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nnlab.analysis import compare_variance, end_mc_error, tost_std_ratio, variance_vs_n
from nnlab.analysis.intervals import mean_interval, std_interval, std_ratio_interval
from nnlab.errors import NNLabError
from tests.simulated_restarts import EXPONENT, FLOOR, NS, SCALE, restart_trials

SHAPES = ("normal", "skewed", "t5")
SIZES = (3, 5, 10, 100)  # seeds or runs per configuration in the committed studies


def draw(rng: np.random.Generator, shape: str, n: int) -> tuple[np.ndarray, float, float]:
    """(n values, true mean, true std): normal, minus a gamma of shape 4 (skewness -1,
    excess kurtosis 1.5: left-skewed like short runs) or Student t_5 (excess kurtosis 6)."""
    if shape == "normal":
        return rng.normal(size=n), 0.0, 1.0
    if shape == "skewed":
        return -rng.gamma(4.0, size=n), -4.0, 2.0
    return rng.standard_t(5, size=n), 0.0, math.sqrt(5 / 3)


def closed_form_coverage(n_sims: int) -> dict[str, float]:
    """Shares of simulations whose 95% interval holds the truth: the mean's t interval and
    Bonett's std interval at each size and shape, Bonett's ratio of two independent samples
    of 50 and 100 (true ratio 1.2), and the 95% interval of its TOST (alpha 0.025)."""
    hits: dict[str, list] = {}
    for sim in range(n_sims):
        rng = np.random.default_rng(sim)
        for shape in SHAPES:
            for n in SIZES:
                x, mean, sd = draw(rng, shape, n)
                hits.setdefault(f"mean n={n} {shape}", []).append(
                    mean_interval(x).contains(mean))
                if n >= 10:
                    hits.setdefault(f"std n={n} {shape}", []).append(
                        std_interval(x).contains(sd))
            for n in (50, 100):
                a, b = draw(rng, shape, n)[0], draw(rng, shape, n)[0]
                hits.setdefault(f"ratio n={n} {shape}", []).append(
                    std_ratio_interval(1.2 * a, b).contains(1.2))
                tost = tost_std_ratio(1.2 * a, b, None, method="bonett", alpha=0.025)
                hits.setdefault(f"tost ratio n={n} {shape}", []).append(
                    tost.interval.contains(1.2))
    return {key: float(np.mean(found)) for key, found in hits.items()}


def variance_table_coverage(n_sims: int, n_seeds: int, df: float | None,
                            n_resamples: int) -> dict[str, float]:
    """Shares of `variance_vs_n`'s per-N intervals (11 lengths, one run per seed read at
    every N) holding the true mean and std, pooled over the lengths."""
    truth = np.sqrt(FLOOR + SCALE * NS.astype(float) ** -EXPONENT)
    hits: dict[str, list] = {"mean": [], "std": []}
    for sim in range(n_sims):
        trials = restart_trials(np.random.default_rng(sim), n_seeds=n_seeds, df=df)
        table = variance_vs_n(trials, fit=False, n_resamples=n_resamples, seed=sim).table
        hits["mean"] += list((table["mean_low"] <= 0.966) & (0.966 <= table["mean_high"]))
        hits["std"] += list((table["std_low"] <= truth) & (truth <= table["std_high"]))
    return {key: float(np.mean(found)) for key, found in hits.items()}


def comparison_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Shares of `compare_variance`'s 95% intervals holding the truth, two arms of 100 runs:
    independent left-skewed samples (std ratio 1.2, mean difference -0.2), and pairs
    sharing a seed effect (P(a > b) in a pair: the seed effect cancels, Phi(0.1 / (0.6
    sqrt 2))); P(a > b) of the independent samples by a large simulation."""
    big = np.random.default_rng(10_000)
    superiority = float(np.mean(-big.gamma(4.0, size=1_000_000) * 0.6 + 0.2
                                > -big.gamma(4.0, size=1_000_000) * 0.5))
    pair_superiority = float(stats.norm.cdf(0.1 / (0.6 * math.sqrt(2))))
    hits: dict[str, list] = {key: [] for key in ("std ratio", "mean difference",
                                                 "P(a > b)", "mean a", "std a",
                                                 "P(a > b) paired")}
    for sim in range(n_sims):
        rng = np.random.default_rng(sim)
        a = -rng.gamma(4.0, size=100) * 0.6 + 0.2
        b = -rng.gamma(4.0, size=100) * 0.5
        result = compare_variance(a, b, n_resamples=n_resamples, seed=sim)
        hits["std ratio"].append(result.std_ratio.contains(1.2))
        hits["mean difference"].append(result.mean_difference.contains(-0.2))
        hits["P(a > b)"].append(result.p_superiority.contains(superiority))
        hits["mean a"].append(result.mean_a.contains(-2.2))
        hits["std a"].append(result.std_a.contains(1.2))
        seed_effect = rng.normal(size=100)
        x = seed_effect + 0.6 * rng.normal(size=100) + 0.1
        y = seed_effect + 0.6 * rng.normal(size=100)
        paired = compare_variance(x, y, paired=True, n_resamples=n_resamples, seed=sim)
        hits["P(a > b) paired"].append(paired.p_superiority.contains(pair_superiority))
    return {key: float(np.mean(found)) for key, found in hits.items()}


def test_bonett_std_interval_is_the_published_formula():
    x = np.array([0.951, 0.957, 0.949, 0.962, 0.955, 0.958, 0.944, 0.960, 0.953, 0.950])
    n, z = x.size, stats.norm.ppf(0.975)
    m = stats.trim_mean(x, 1 / (2 * math.sqrt(n - 4)))
    kurtosis = n * np.sum((x - m) ** 4) / np.sum((x - x.mean()) ** 2) ** 2
    c = n / (n - z)
    se = c * math.sqrt((kurtosis - (n - 3) / n) / (n - 1))
    low, high = np.sqrt(np.exp(np.log(c * x.var(ddof=1)) + np.array([-z, z]) * se))
    found = std_interval(x)
    assert found.value == pytest.approx(x.std(ddof=1))
    assert (found.low, found.high) == (pytest.approx(low), pytest.approx(high))
    assert std_interval(np.array([0.7, 0.7, 0.7])).high == 0.0  # np.var: 1.2e-32
    assert std_interval(np.array([0.9, 0.91]), 0.99).high == math.inf  # n <= z: no bound


def test_the_bonett_tost_agrees_with_its_interval_and_is_for_independent_samples():
    rng = np.random.default_rng(3)
    a, b = 1.1 * rng.normal(size=80), rng.normal(size=80)
    result = tost_std_ratio(a, b, 1.6, method="bonett")
    assert result.method == "bonett" and result.unit == "run"
    assert result.interval.confidence == 0.9
    assert result.equivalent == (1 / 1.6 < result.interval.low and result.interval.high < 1.6)
    wider = tost_std_ratio(a, b, (1 / result.bound - 1e-9, result.bound + 1e-9),
                           method="bonett")
    assert wider.p_value == pytest.approx(0.05, abs=1e-6)  # the bound is the TOST's edge
    with pytest.raises(NNLabError, match="'bonett' compares independent samples"):
        tost_std_ratio(a, b, 1.6, paired=True, method="bonett")


def test_closed_form_intervals_cover_at_the_studies_sizes_fast():
    found = closed_form_coverage(50)
    assert min(found.values()) >= 0.82, found


def test_variance_table_intervals_cover_per_length_fast():
    found = variance_table_coverage(20, 10, 5.0, 300)
    assert min(found.values()) >= 0.85, found


def test_comparison_intervals_cover_for_skewed_runs_fast():
    found = comparison_coverage(25, 300)
    assert min(found.values()) >= 0.8, found


@pytest.mark.slow
def test_closed_form_intervals_cover_at_the_studies_sizes():
    found = closed_form_coverage(1000)
    print("closed form", found)
    assert min(found.values()) >= 0.9, found


@pytest.mark.slow
@pytest.mark.parametrize(("n_seeds", "df"), [(10, None), (10, 5.0), (100, None), (100, 5.0)])
def test_variance_table_intervals_cover_per_length(n_seeds, df):
    found = variance_table_coverage(200, n_seeds, df, 1000)
    print("variance table", n_seeds, df, found)
    assert min(found.values()) >= 0.9, found


@pytest.mark.slow
def test_comparison_intervals_cover_for_skewed_runs():
    found = comparison_coverage(200, 1000)
    print("comparison", found)
    assert min(found.values()) >= 0.9, found


def test_an_ends_monte_carlo_error_covers_where_unlimited_resamples_put_it():
    """Percentile intervals from 2000 normal replicates, 1000 times: the true 2.5% and 97.5%
    quantiles (the ends unlimited resamples give) lie within end_mc_error of the ends in at
    least 95% of them (the order-statistic interval is exact, the larger distance makes it
    conservative: 97.6% here), and the error is 1 to 1.6 times the 95% half-width of one
    quantile's sampling distribution, 1.96 sqrt(p (1 - p) / R) / phi(z_p) = 0.117 (it is
    the largest of four distances), shrinking as 1 / sqrt(R)."""
    rng = np.random.default_rng(3)
    z = stats.norm.ppf(0.975)
    covered, errors = 0, []
    for _ in range(1000):
        replicates = rng.normal(size=2000)
        low, high = np.percentile(replicates, [2.5, 97.5])
        error = end_mc_error(replicates, [low, high])
        errors.append(error)
        covered += abs(low + z) <= error and abs(high - z) <= error
    assert 0.95 <= covered / 1000 <= 0.995
    half_width = 1.96 * math.sqrt(0.025 * 0.975 / 2000) / stats.norm.pdf(z)
    assert half_width == pytest.approx(0.117, abs=0.001)
    assert half_width <= np.median(errors) <= 1.6 * half_width
    many = rng.normal(size=200_000)  # 100 times the replicates: a tenth of the error
    assert half_width / 10 <= end_mc_error(many, np.percentile(many, [2.5, 97.5])) <= (
        1.6 * half_width / 10)


def test_an_end_inside_an_atom_of_the_replicates_has_no_monte_carlo_error():
    """A variance truncated at 0 in 30% of the replicates: its 2.5% end is 0 whatever the
    draws, and so it is judged; an end at the atom's edge keeps a positive error."""
    rng = np.random.default_rng(8)
    replicates = np.maximum(rng.normal(0.5, 1.0, 2000), 0.0)
    low, high = np.percentile(replicates, [2.5, 97.5])
    assert low == 0.0 and end_mc_error(replicates, [low]) == 0.0
    assert 0 < end_mc_error(replicates, [high]) < 0.3


def test_an_end_past_every_replicate_has_an_unbounded_monte_carlo_error():
    replicates = np.arange(10.0)
    assert end_mc_error(replicates, [2.0, 20.0]) == math.inf
    assert end_mc_error(np.array([1.0]), [1.0]) == math.inf
    assert math.isfinite(end_mc_error(np.append(np.arange(1000.0), np.nan), [25.0, 975.0]))


@pytest.mark.parametrize("n", [50, 2000, 20001])
def test_an_ends_monte_carlo_error_is_scipys_order_statistic_interval(n):
    """The ranks end_mc_error takes are those of scipy.stats.quantile_test's interval at
    the end's level (the middle of the levels of the replicates it equals, as here at the
    median of 20001), and an end whose interval has no finite side there is inf here."""
    values = np.sort(np.random.default_rng(n).normal(size=n))
    for end in np.quantile(values, [0.1, 0.3, 0.5, 0.9]):
        ties = np.searchsorted(values, end, "left") + np.searchsorted(values, end, "right")
        level = min(max(ties / (2 * n), 0.5 / n), 1 - 0.5 / n)
        bracket = stats.quantile_test(values, q=end, p=level).confidence_interval(0.95)
        expected = max(end - bracket.low, bracket.high - end)
        assert end_mc_error(values[::-1], [end]) == pytest.approx(expected, rel=1e-12)
