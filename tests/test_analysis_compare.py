"""compare_variance: detects a 2x spread at n = 30 per group, does not flag equal spreads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnlab.analysis import compare_variance, compare_variance_by
from nnlab.errors import NNLabError


def test_detects_a_two_fold_std_ratio_with_30_runs_per_group():
    results = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(0.95, 0.02, 30), rng.normal(0.95, 0.01, 30)
        results.append(compare_variance(a, b, n_resamples=1000, seed=seed))
    assert np.mean([r.spreads_differ for r in results]) >= 0.8
    assert np.mean([r.std_ratio.low > 1 for r in results]) >= 0.8
    assert np.mean([r.std_ratio.contains(2.0) for r in results]) >= 0.85


def test_does_not_flag_equal_spreads():
    results = []
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        a, b = rng.normal(0.95, 0.01, 30), rng.normal(0.95, 0.01, 30)
        results.append(compare_variance(a, b, n_resamples=1000, seed=seed))
    assert np.mean([r.spreads_differ for r in results]) <= 0.15
    assert np.mean([r.std_ratio.contains(1.0) for r in results]) >= 0.85


def test_numbers_match_scipy_and_a_direct_count():
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 2.0, 25), rng.normal(0.0, 1.0, 40)
    result = compare_variance(a, b, names=("noise", "none"))
    assert result.brown_forsythe.p_value == pytest.approx(
        stats.levene(a, b, center="median").pvalue
    )
    assert result.fligner.p_value == pytest.approx(stats.fligner(a, b).pvalue)
    assert result.welch.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert result.std_ratio.value == pytest.approx(np.std(a, ddof=1) / np.std(b, ddof=1))
    assert result.mean_difference.value == pytest.approx(a.mean() - b.mean())
    direct = np.mean(a[:, None] > b[None, :])  # no ties in continuous data
    assert result.p_superiority.value == pytest.approx(direct)
    assert result.p_superiority.low < direct < result.p_superiority.high
    assert "noise (n=25, 0 excluded) vs none (n=40, 0 excluded)" in result.summary()
    json.dumps(result.to_dict())


def test_p_superiority_counts_ties_as_half():
    result = compare_variance([1.0, 2.0, 3.0], [2.0, 2.5, 0.0], n_resamples=200)
    # pairs a > b: 1>0, 2>0, 3>2, 3>2.5, 3>0 = 5; ties: 2=2 -> 0.5; of 9
    assert result.p_superiority.value == pytest.approx(5.5 / 9)


def test_three_runs_per_group_give_a_wide_finite_ratio_interval():
    # Bonett's interval from 3 runs a side: wide (factor ~55 between its ends), never NaN
    # or a bootstrap's degenerate [0, inf] from resamples that repeat one run
    result = compare_variance([0.90, 0.91, 0.93], [0.88, 0.90, 0.95], n_resamples=2000)
    ratio = result.std_ratio
    assert np.isfinite(ratio.low) and np.isfinite(ratio.high) and ratio.low > 0
    assert ratio.low < ratio.value < ratio.high and ratio.high / ratio.low > 30
    assert "ratio 0.424 [95% CI 0.0569, 3.16]" in result.summary()
    assert 0 < result.std_a.low < result.std_a.value < result.std_a.high


def test_compare_by_column_excludes_and_counts_diverged_runs():
    rng = np.random.default_rng(6)
    trials = pd.DataFrame(
        {
            "noise": ["grad"] * 22 + ["none"] * 20,
            "status": ["ok"] * 20 + ["diverged"] * 2 + ["ok"] * 20,
            "test_acc": np.r_[rng.normal(0.9, 0.02, 20), np.nan, 0.1, rng.normal(0.9, 0.01, 20)],
        }
    )
    result = compare_variance_by(trials, "noise", "grad", "none", n_resamples=500)
    assert result.names == ("noise=grad", "noise=none")
    assert result.n_excluded == (2, 0)
    assert result.a.size == 20 and result.b.size == 20
    direct = compare_variance(trials["test_acc"][:20], trials["test_acc"][22:], n_resamples=500)
    assert result.std_ratio == direct.std_ratio
    with pytest.raises(NNLabError, match="no finished run with noise='weight'"):
        compare_variance_by(trials, "noise", "grad", "weight")


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "a: needs at least 3"),
        ([1.0, 2.0, np.nan], [1.0, 2.0, 3.0], "a: expected finite"),
        ([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], "b: all values are equal"),
    ],
)
def test_rejects_bad_input(a, b, message):
    with pytest.raises(NNLabError, match=message):
        compare_variance(a, b)
