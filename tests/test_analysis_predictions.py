"""error_analysis on constructed predictions: counts, ECE and confusions computed by hand;
intervals per unit (run, run x image) that cover the truth in simulations of runs erring on
the same images, where the pooled intervals do not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from nnlab.analysis import error_analysis
from nnlab.errors import NNLabError
from tests.simulated_predictions import images, population_rates, predictions

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


# --- units of replication: per run, and runs x images ------------------------------------

RATES = ["accuracy", "second_guess_rate", "confident_error_share", "confidence_wrong",
         "confidence_right", "auc_ci", "ece"]


def two_runs() -> pd.DataFrame:
    """hand_made() as run 0, and run 1 with rows 0-4 made right and row 9 left wrong."""
    one = hand_made()
    other = one.copy()
    other.loc[:4, "top1"] = other.loc[:4, "y_true"]
    return pd.concat([one.assign(trial=0), other.assign(trial=1)], ignore_index=True)


def test_per_run_values_are_each_runs_own_analysis_and_the_run_unit_averages_them():
    data = two_runs()
    result = error_analysis(data, unit="run", n_resamples=200)
    assert result.unit == "run" and "intervals over runs" in result.summary()
    per_run = result.per_run.set_index("trial")
    for trial, rows in data.groupby("trial"):
        alone = error_analysis(rows, n_resamples=200)  # one run: pooled = its own values
        row = per_run.loc[trial]
        assert row["n_wrong"] == alone.n_wrong
        for name in ("accuracy", "second_guess_rate", "confident_error_share",
                     "confidence_wrong", "confidence_right", "ece"):
            assert row[name] == pytest.approx(getattr(alone, name).value, abs=1e-6), name
        assert row["auc"] == pytest.approx(alone.auc)
    for name in ("second_guess_rate", "ece"):
        assert getattr(result, name).value == pytest.approx(per_run[name].mean())
    assert result.auc_ci.value == pytest.approx(per_run["auc"].mean())
    assert result.second_guess_test.name == "t over runs"
    data_dict = result.to_dict()
    assert data_dict["unit"] == "run" and len(data_dict["per_run"]) == 2
    json.dumps(data_dict)


def test_two_way_point_values_are_the_pooled_ones_and_only_new_units_add_keys():
    data = two_runs()
    pooled = error_analysis(data, n_resamples=200)
    two_way = error_analysis(data, unit="run x image", n_resamples=200)
    for name in RATES[:-2] + ["ece"]:
        assert getattr(two_way, name).value == pytest.approx(getattr(pooled, name).value)
    assert two_way.auc == pytest.approx(pooled.auc)
    assert two_way.auc_ci.value == pytest.approx(pooled.auc)
    assert two_way.second_guess_test.name == "z (two-way bootstrap SE)"
    # the default unit keeps the fields and keys of earlier versions
    assert pooled.unit == "prediction" and pooled.auc_ci is None and pooled.per_run is None
    assert set(two_way.to_dict()) - set(pooled.to_dict()) == {"unit", "auc_ci", "per_run"}
    assert "intervals over runs and test images (two-way bootstrap)" in two_way.summary()
    assert "pooled as if independent" in pooled.summary()
    one_run = error_analysis(data[data["trial"] == 0], unit="run x image", n_resamples=200)
    assert one_run.unit == "image" and "test images (one run)" in one_run.summary()


def test_units_reject_what_they_cannot_use():
    data = two_runs()
    with pytest.raises(NNLabError, match="unit: expected one of"):
        error_analysis(data, unit="image")
    with pytest.raises(NNLabError, match="holds 1 run; unit='run' needs at least 2"):
        error_analysis(data[data["trial"] == 0], unit="run")
    with pytest.raises(NNLabError, match="missing column 'index'"):
        error_analysis(data.drop(columns="index"), unit="run x image")
    with pytest.raises(NNLabError, match="every run must predict the same test set"):
        error_analysis(data.iloc[1:], unit="run x image")
    all_right = data.assign(top1=np.where(data["trial"] == 1, data["y_true"], data["top1"]))
    with pytest.raises(NNLabError, match="unit='run' needs right and wrong answers in every"):
        error_analysis(all_right, unit="run")


def coverage(unit: str, n_runs: int, n_images: int, n_sims: int, truth: dict,
             test_set: dict | None = None, n_resamples: int = 200) -> dict[str, float]:
    """Share of simulations (tests/simulated_predictions.py) whose 95% interval of each
    rate holds `truth`."""
    hits = {name: [] for name in RATES}
    for sim in range(n_sims):
        rng = np.random.default_rng(sim)
        result = error_analysis(predictions(rng, n_runs, n_images, test_set), unit=unit,
                                n_resamples=n_resamples, seed=sim)
        for name in RATES:
            estimate = getattr(result, name)
            if estimate is not None:
                hits[name].append(estimate.contains(truth[name.removesuffix("_ci")]))
    return {name: float(np.mean(h)) for name, h in hits.items() if h}


def run_unit_truth(test_set: dict, n_runs: int, chunk: int = 1000) -> dict[str, float]:
    """The mean over runs of each run's rates on one test set (Monte Carlo over n_runs
    runs, drawn `chunk` at a time)."""
    per_run = [error_analysis(predictions(np.random.default_rng(10**6 + start), chunk,
                                          test_set["y"].size, test_set),
                              unit="run", n_resamples=100).per_run
               for start in range(0, n_runs, chunk)]
    return pd.concat(per_run).drop(columns=["trial", "n_wrong"]).mean().to_dict()


def test_two_way_intervals_cover_population_rates_where_pooled_ones_do_not():
    # 40 runs x 250 images that err together: the two-way bootstrap covers the population
    # rates; the pooled intervals of unit "prediction" (exact binomial, t, multinomial)
    # treat the 10^4 predictions as independent and miss (0.32-0.75 here)
    truth = population_rates()
    two_way = coverage("run x image", 40, 250, 60, truth)
    pooled = coverage("prediction", 40, 250, 60, truth)
    assert min(two_way.values()) >= 0.85, two_way
    assert max(pooled.values()) < 0.85, pooled


def test_run_intervals_cover_the_mean_over_runs_on_a_fixed_test_set():
    test_set = images(np.random.default_rng(99), 250)
    found = coverage("run", 40, 250, 60, run_unit_truth(test_set, 4000), test_set)
    assert min(found.values()) >= 0.85, found


@pytest.mark.slow
def test_two_way_coverage_at_the_studies_size():
    # 100 runs x 10^4 images, as the restarts' predictions; 200 simulations
    truth = population_rates()
    two_way = coverage("run x image", 100, 10_000, 200, truth, n_resamples=500)
    pooled = coverage("prediction", 100, 10_000, 200, truth, n_resamples=500)
    print("two-way", two_way, "pooled", pooled)
    assert min(two_way.values()) >= 0.9, two_way
    assert max(pooled.values()) < 0.9, pooled


@pytest.mark.slow
def test_run_coverage_at_the_studies_size():
    test_set = images(np.random.default_rng(99), 10_000)
    truth = run_unit_truth(test_set, 2000, chunk=100)
    found = coverage("run", 100, 10_000, 200, truth, test_set, n_resamples=500)
    print("run", found)
    assert min(found.values()) >= 0.9, found


def test_two_way_intervals_do_not_depend_on_the_machines_blas_threads():
    # a report re-derives on any machine: threaded, OpenBLAS cut the resample sums over
    # 10,000 images into other blocks, and the intervals moved in their 9th digit
    data = predictions(np.random.default_rng(3), n_runs=20, n_images=10_000)
    found = set()
    for threads in (1, 2, 8):  # OpenBLAS starts as many threads as asked, cores or not
        with threadpool_limits(limits=threads, user_api="blas"):
            found.add(json.dumps(error_analysis(data, unit="run x image",
                                                n_resamples=200).to_dict()))
    assert len(found) == 1
