"""Paired designs: runs pair up by seed only when asked, paired intervals cover the truth
of arms that share seeds (100 seeds, as the studies), and the paired tests are the ones
pairs call for."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnlab.analysis import compare_variance, compare_variance_by, paired_difference
from nnlab.errors import NNLabError

SHAPE = 2.0  # the seed effect: minus a gamma of this shape (left-skewed, like short runs)


def shared_seeds(rng: np.random.Generator, n: int, shift: float = 0.0, scale_a: float = 1.2
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Two arms on the same n seeds: a = s + scale_a e_a + shift, b = s + e_b, with one
    left-skewed seed effect s (variance 1) and unit-variance noise e."""
    s = -(rng.gamma(SHAPE, size=n) - SHAPE) / np.sqrt(SHAPE)
    return s + scale_a * rng.normal(size=n) + shift, s + rng.normal(size=n)


TRUE_STD_RATIO = np.sqrt((1 + 1.2**2) / 2)


def arms_table(a: np.ndarray, b: np.ndarray, seeds_b: np.ndarray | None = None) -> pd.DataFrame:
    seeds = np.arange(a.size)
    return pd.DataFrame({"noise": ["grad"] * a.size + ["none"] * b.size,
                         "seed": np.r_[seeds, seeds if seeds_b is None else seeds_b],
                         "status": "ok", "test_acc": np.r_[a, b]})


def test_arms_that_share_seeds_are_refused_unless_the_pairing_is_said():
    a, b = shared_seeds(np.random.default_rng(0), 20)
    trials = arms_table(a, b)
    with pytest.raises(NNLabError, match=r"share 20 values of 'seed'.*paired=True.*"
                                         "paired=False"):
        compare_variance_by(trials, "noise", "grad", "none")
    unpaired = compare_variance_by(trials, "noise", "grad", "none", paired=False,
                                   n_resamples=200)
    assert not unpaired.paired and unpaired.brown_forsythe is not None
    other_seeds = arms_table(a, b, seeds_b=np.arange(100, 120))
    assert not compare_variance_by(other_seeds, "noise", "grad", "none", n_resamples=200).paired
    with pytest.raises(NNLabError, match="paired=True, but the two groups share no value"):
        compare_variance_by(other_seeds, "noise", "grad", "none", paired=True)
    twice = arms_table(a, b, seeds_b=np.r_[np.arange(19), 0])
    with pytest.raises(NNLabError, match="b: seed=0 appears twice"):
        compare_variance_by(twice, "noise", "grad", "none", paired=True)
    with pytest.raises(NNLabError, match="no column 'run_seed'"):
        compare_variance_by(trials, "noise", "grad", "none", paired=True, pair_on="run_seed")


def test_pairs_are_matched_by_seed_whatever_the_row_order_and_partners_missing_are_counted():
    a, b = shared_seeds(np.random.default_rng(1), 30)
    trials = arms_table(a, b)
    trials.loc[trials.index[-1], "status"] = "diverged"  # seed 29 of "none"
    shuffled = trials.sample(frac=1, random_state=0)
    result = compare_variance_by(shuffled, "noise", "grad", "none", paired=True,
                                 n_resamples=300)
    assert result.paired and result.n_excluded == (0, 1) and result.n_unpaired == (1, 0)
    np.testing.assert_array_equal(result.a, a[:29])
    np.testing.assert_array_equal(result.b, b[:29])
    direct = compare_variance(a[:29], b[:29], paired=True, n_resamples=300)
    assert result.std_ratio == direct.std_ratio
    # the paired tests: Pitman-Morgan (corr of a + b with a - b), paired t
    r, p = stats.pearsonr(a[:29] + b[:29], a[:29] - b[:29])
    assert result.pitman_morgan.statistic == pytest.approx(r)
    assert result.pitman_morgan.p_value == pytest.approx(p)
    assert result.spread_test is result.pitman_morgan
    assert result.paired_t.p_value == pytest.approx(stats.ttest_rel(a[:29], b[:29]).pvalue)
    assert result.brown_forsythe is None and result.welch is None
    assert result.p_superiority.value == pytest.approx(np.mean(a[:29] > b[:29]))
    assert "paired by seed: 29 pairs" in result.summary() and result.unit == "seed"
    assert "1 + 0 runs without a partner" in result.summary()
    data = result.to_dict()
    assert data["paired"] and "pitman_morgan" in data and "brown_forsythe" not in data
    json.dumps(data)


def test_unpaired_results_keep_their_fields_and_keys():
    a, b = shared_seeds(np.random.default_rng(2), 30)
    result = compare_variance(a, b)
    assert list(result.to_dict()) == [
        "names", "n", "n_excluded", "alpha", "spreads_differ", "mean_a", "mean_b", "std_a",
        "std_b", "std_ratio", "brown_forsythe", "fligner", "welch", "mean_difference",
        "p_superiority"]
    assert result.spread_test is result.brown_forsythe
    with pytest.raises(NNLabError, match="paired=True needs one value of a and of b per seed"):
        compare_variance(a, b[:-1], paired=True)


def test_paired_difference_aligns_series_on_their_keys():
    a = pd.Series([0.90, 0.91, 0.93, 0.95, np.nan], index=[3, 1, 2, 0, 4])
    b = pd.Series([0.88, 0.90, 0.92, 0.91, 0.5], index=[0, 1, 2, 3, 9])
    result = paired_difference(a, b, names=("noise", "none"), n_resamples=200)
    np.testing.assert_allclose(result.differences, [0.95 - 0.88, 0.91 - 0.90, 0.93 - 0.92,
                                                    0.90 - 0.91])
    assert result.n_unpaired == (0, 1) and result.wins == 3 and result.ties == 0
    assert result.difference.value == pytest.approx(np.mean(result.differences))
    assert result.t_test.p_value == pytest.approx(
        stats.ttest_1samp(result.differences, 0).pvalue)
    assert "noise - none, paired by seed (4 pairs, 0 + 1 without a partner" in result.summary()
    json.dumps(result.to_dict())
    with pytest.raises(NNLabError, match="two 1-D sequences of equal length"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(NNLabError, match="needs at least 3"):
        paired_difference([1.0, 2.0], [1.0, 3.0])


def paired_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Share of simulated pairs of arms (100 shared seeds, a skewed seed effect) whose 95%
    intervals hold the true mean difference (0.01) and std ratio; and the mean width of the
    ratio's interval, paired and unpaired."""
    hits, widths = {"difference": [], "std_ratio": []}, {"paired": [], "unpaired": []}
    for sim in range(n_sims):
        a, b = shared_seeds(np.random.default_rng(1000 + sim), 100, shift=0.01)
        hits["difference"].append(
            paired_difference(a, b, n_resamples=n_resamples, seed=sim).difference.contains(0.01))
        paired = compare_variance(a, b, paired=True, n_resamples=n_resamples, seed=sim)
        unpaired = compare_variance(a, b, n_resamples=n_resamples, seed=sim)
        hits["std_ratio"].append(paired.std_ratio.contains(TRUE_STD_RATIO))
        for key, result in (("paired", paired), ("unpaired", unpaired)):
            widths[key].append(np.log(result.std_ratio.high / result.std_ratio.low))
    return {**{k: float(np.mean(v)) for k, v in hits.items()},
            **{f"width_{k}": float(np.mean(v)) for k, v in widths.items()}}


def test_paired_intervals_cover_at_100_seeds_and_are_narrower_than_unpaired_ones():
    found = paired_coverage(60, 500)
    assert found["difference"] >= 0.85 and found["std_ratio"] >= 0.85, found
    # the seed effect is about half the variance: the unpaired interval, which ignores the
    # correlation, is ~20% wider here
    assert found["width_paired"] < 0.9 * found["width_unpaired"], found


@pytest.mark.slow
def test_paired_coverage_in_200_simulations():
    found = paired_coverage(200, 2000)
    print("paired", found)
    assert found["difference"] >= 0.9 and found["std_ratio"] >= 0.9, found
