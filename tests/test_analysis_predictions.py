"""error_analysis on constructed predictions: counts, ECE and confusions computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnlab.analysis import error_analysis
from nnlab.errors import NNLabError

# y_true, top1, top2, p1: ten predictions, five of them wrong
ROWS = [
    (0, 0, 6, 0.95),
    (1, 1, 7, 0.95),
    (2, 2, 3, 0.995),
    (3, 5, 3, 0.995),  # wrong at >= 99%, second guess right
    (4, 9, 4, 0.5),  # wrong, second guess right
    (4, 9, 1, 0.5),  # wrong
    (5, 5, 3, 0.5),
    (7, 1, 2, 0.3),  # wrong
    (8, 8, 0, 0.7),
    (9, 4, 9, 0.7),  # wrong, second guess right
]


def hand_made() -> pd.DataFrame:
    y, top1, top2, p1 = map(np.array, zip(*ROWS, strict=True))
    return pd.DataFrame(
        {
            "index": np.arange(10, dtype=np.int32),
            "y_true": y.astype(np.int16),
            "top1": top1.astype(np.int16),
            "top2": top2.astype(np.int16),
            "top3": ((top2 + 1) % 10).astype(np.int16),
            "p1": p1.astype(np.float32),
            "p2": (0.9 * (1 - p1)).astype(np.float32),
            "p3": (0.05 * (1 - p1)).astype(np.float32),
        }
    )


def test_counts_ece_and_confusion_match_a_hand_computation():
    result = error_analysis(hand_made(), n_resamples=200)
    assert (result.n, result.n_classes, result.n_wrong, result.n_second_right) == (10, 10, 5, 3)
    assert result.accuracy.value == 0.5
    assert result.second_guess_rate.value == pytest.approx(3 / 5)
    assert result.second_guess_test.p_value == pytest.approx(stats.binomtest(3, 5, 1 / 9).pvalue)
    assert result.n_confident_errors == 1 and result.n_confident == 2
    assert result.confident_error_share.value == pytest.approx(1 / 5)
    assert result.confidence_wrong.value == pytest.approx((0.995 + 0.5 + 0.5 + 0.3 + 0.7) / 5)
    assert result.confidence_right.value == pytest.approx((0.95 + 0.95 + 0.995 + 0.5 + 0.7) / 5)

    # ECE by hand: bins (14/15, 1], (7/15, 8/15], (4/15, 5/15], (10/15, 11/15]
    gaps = {
        14: (4, 3 / 4, (0.95 + 0.95 + 0.995 + 0.995) / 4),
        7: (3, 1 / 3, 0.5),
        4: (1, 0.0, 0.3),
        10: (2, 1 / 2, 0.7),
    }
    ece = sum(n * abs(acc - conf) for n, acc, conf in gaps.values()) / 10
    assert result.ece.value == pytest.approx(ece, abs=1e-6)
    bins = result.bins
    assert len(bins) == 15 and bins["count"].sum() == 10
    for b, (n, acc, conf) in gaps.items():
        assert bins.loc[b, "count"] == n
        assert bins.loc[b, "accuracy"] == pytest.approx(acc)
        assert bins.loc[b, "confidence"] == pytest.approx(conf, abs=1e-6)

    confusion = np.zeros((10, 10), dtype=int)
    for y, top1, _, _ in ROWS:
        confusion[y, top1] += 1
    np.testing.assert_array_equal(result.confusion, confusion)
    pairs = result.top_pairs
    assert list(zip(pairs["true"], pairs["predicted"], pairs["count"], strict=True)) == [
        (4, 9, 2),
        (3, 5, 1),
        (7, 1, 1),
        (9, 4, 1),
    ]
    assert pairs["share"].iloc[0] == pytest.approx(2 / 5)
    assert result.confidence_hist["wrong"].sum() == 5 and result.confidence_hist["right"].sum() == 5
    assert "second guess right in 3 of 5 errors" in result.summary()
    json.dumps(result.to_dict())


def simulated(seed: int, n: int, second_right: float, overconfidence: float) -> pd.DataFrame:
    """Predictions whose top-1 is right with probability p1 - overconfidence; when wrong,
    the second guess is right with probability `second_right`, else a random other class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    p1 = rng.uniform(0.3, 1.0, n)
    right = rng.random(n) < np.clip(p1 - overconfidence, 0, 1)
    top1 = np.where(right, y, (y + rng.integers(1, 10, n)) % 10)
    other = (top1 + rng.integers(1, 10, n)) % 10  # uniform over classes != top1
    top2 = np.where(~right & (rng.random(n) < second_right), y, other)
    top2 = np.where(right, (y + 1) % 10, top2)
    return pd.DataFrame({"y_true": y, "top1": top1, "top2": top2, "p1": p1})


def test_second_guess_at_chance_is_not_flagged_and_a_calibrated_model_has_small_ece():
    result = error_analysis(simulated(0, 20000, second_right=0.0, overconfidence=0.0))
    assert result.second_guess_rate.contains(1 / 9)
    assert result.second_guess_test.p_value > 0.01
    assert result.ece.value < 0.02
    assert result.confidence_test.p_value < 1e-10  # wrong answers do have lower p1


def test_overconfidence_is_measured_by_ece_and_a_useful_second_guess_is_found():
    result = error_analysis(simulated(1, 20000, second_right=0.6, overconfidence=0.1))
    assert result.ece.contains(0.1)
    assert result.second_guess_rate.low > 0.55
    assert result.second_guess_test.p_value < 1e-10


def test_trials_are_pooled_and_counted():
    one = hand_made()
    both = pd.concat([one.assign(trial=0), one.assign(trial=1)])
    result = error_analysis(both, n_resamples=200)
    assert (result.n, result.n_trials, result.n_wrong) == (20, 2, 10)
    np.testing.assert_array_equal(
        result.confusion, 2 * error_analysis(one, n_resamples=200).confusion
    )


def test_rejects_bad_input():
    data = hand_made()
    with pytest.raises(NNLabError, match="missing column 'p1'"):
        error_analysis(data.drop(columns="p1"))
    with pytest.raises(NNLabError, match="probabilities"):
        error_analysis(data.assign(p1=data["p1"] * 2))
    with pytest.raises(NNLabError, match="both right and wrong"):
        error_analysis(data.assign(top1=data["y_true"]))
    with pytest.raises(NNLabError, match="'top2' has 1 NaN"):
        error_analysis(data.assign(top2=data["top2"].where(data.index != 2)))
    with pytest.raises(NNLabError, match="'top1' has 1 NaN"):
        error_analysis(data.assign(top1=data["top1"].astype("Int64").where(data.index != 2)))
    with pytest.raises(NNLabError, match="'y_true' must hold class labels"):
        error_analysis(data.assign(y_true=data["y_true"] - 1))
    with pytest.raises(NNLabError, match="n_classes"):
        error_analysis(data, n_classes=5)
