"""How much of the spread of test accuracy over restarts is the finite test set's doing.

Jordan (2023), "Calibrated chaos" (arXiv 2304.01910): with eps_i the error rate of example
i over runs, a finite test set of n examples alone gives test error a variance of
(1/n^2) sum_i eps_i (1 - eps_i) if examples err independently; what the observed variance
has beyond that, times n/(n-1), estimates the run-to-run variance of the error on the whole
data distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import Estimate, estimate
from nnlab.analysis._checks import check_resampling, require_columns
from nnlab.errors import NNLabError

_WHERE = "test_set_variance"


@dataclass(frozen=True)
class TestSetVarianceResult:
    """Split of the variance over runs of test accuracy (all variances of accuracy).

    observed: sample variance over runs (ddof=1).
    test_set: the part a finite test set gives when examples err independently,
        (1/n^2) sum_i Var_runs(error_i).
    distribution: n/(n-1) (observed - test_set), the unbiased estimate of the variance over
        runs of the accuracy on the whole data distribution (can come out below 0).
    share_test_set: test_set / observed.
    example_error_rate: (n_test,) error rate of each test example over the runs.
    """

    n_runs: int
    n_test: int
    mean_accuracy: Estimate
    observed: Estimate
    test_set: Estimate
    distribution: Estimate
    share_test_set: Estimate
    example_error_rate: np.ndarray = field(repr=False)
    __test__ = False  # a result, not a pytest test class

    def summary(self) -> str:
        std = math.sqrt(self.observed.value)
        test_std = math.sqrt(max(self.test_set.value, 0.0))
        return (
            f"test accuracy over {self.n_runs} runs on {self.n_test} test examples: mean "
            f"{self.mean_accuracy.format('.4g')}, std {std:.3g}; variance {self.observed}; "
            f"finite-test-set part {self.test_set} (std {test_std:.3g}, "
            f"{self.share_test_set.format('.0f', 100, '%')} of the variance); "
            f"distribution-wise part {self.distribution}."
        )

    def to_dict(self) -> dict:
        return {
            "n_runs": self.n_runs,
            "n_test": self.n_test,
            "mean_accuracy": self.mean_accuracy.to_dict(),
            "observed": self.observed.to_dict(),
            "test_set": self.test_set.to_dict(),
            "distribution": self.distribution.to_dict(),
            "share_test_set": self.share_test_set.to_dict(),
        }


def test_set_variance(
    predictions: pd.DataFrame,
    *,
    trial_col: str = "trial",
    index_col: str = "index",
    y_col: str = "y_true",
    pred_col: str = "top1",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> TestSetVarianceResult:
    """Decompose the variance over runs of test accuracy (Jordan 2023).

    predictions: compact predictions of several runs of one configuration, concatenated,
        columns `trial_col`, `index_col`, `y_col`, `pred_col`; every run must cover the same
        test examples once. CIs come from a bootstrap over runs.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    errors = _error_matrix(predictions, trial_col, index_col, y_col, pred_col)
    n_runs, n_test = errors.shape
    run_errors = errors.sum(axis=1, dtype=np.float64)  # (k,)
    gram = (errors.astype(np.float32) @ errors.T.astype(np.float32)).astype(np.float64)
    rng = np.random.default_rng(seed)
    counts = np.vstack(
        [
            np.ones(n_runs),
            rng.multinomial(n_runs, np.full(n_runs, 1 / n_runs), size=n_resamples),
        ]
    )  # row 0: the data itself; then (n_resamples, k) bootstrap counts per run
    error_rate = run_errors / n_test
    mean_error = counts @ error_rate / n_runs
    observed = (counts @ error_rate**2 - n_runs * mean_error**2) / (n_runs - 1)
    sum_rate = counts @ run_errors / n_runs  # sum_i eps_i
    sum_rate_sq = np.sum((counts @ gram) * counts, axis=1) / n_runs**2  # sum_i eps_i^2
    test_set = n_runs / (n_runs - 1) * (sum_rate - sum_rate_sq) / n_test**2
    # a resample repeats runs, which shrinks its variances by (k-1)/k on average: undo that
    # so the bootstrap distribution is centred on the estimate
    centring = np.r_[1.0, np.full(n_resamples, n_runs / (n_runs - 1))]
    observed, test_set = observed * centring, test_set * centring
    distribution = n_test / (n_test - 1) * (observed - test_set)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = test_set / observed

    def est(values: np.ndarray) -> Estimate:
        return estimate(values[0], values[1:][np.isfinite(values[1:])], confidence)

    return TestSetVarianceResult(
        n_runs=n_runs,
        n_test=n_test,
        mean_accuracy=est(1 - mean_error),
        observed=est(observed),
        test_set=est(test_set),
        distribution=est(distribution),
        share_test_set=est(share),
        example_error_rate=errors.mean(axis=0),
    )


def _error_matrix(
    predictions: pd.DataFrame, trial_col: str, index_col: str, y_col: str, pred_col: str
) -> np.ndarray:
    """(n_runs, n_test) bool: run j got test example i wrong; examples in index order."""
    require_columns(predictions, [trial_col, index_col, y_col, pred_col], _WHERE)
    data = predictions.sort_values([trial_col, index_col], kind="stable")
    sizes = data.groupby(trial_col, sort=True).size()
    if sizes.size < 2:
        raise NNLabError(
            f"{_WHERE}: column {trial_col!r} holds {sizes.size} run; a variance over runs "
            "needs at least 2"
        )
    if sizes.nunique() != 1:
        raise NNLabError(
            f"{_WHERE}: runs in {trial_col!r} cover different numbers of test examples "
            f"({sizes.min()} to {sizes.max()}); every run must predict the same test set"
        )
    shape = (sizes.size, int(sizes.iloc[0]))
    index = data[index_col].to_numpy().reshape(shape)
    labels = data[y_col].to_numpy().reshape(shape)
    if not (np.all(index == index[0]) and np.all(labels == labels[0])):
        raise NNLabError(
            f"{_WHERE}: columns {index_col!r}/{y_col!r} differ between runs; every run must "
            "predict the same test examples"
        )
    if np.any(np.diff(index[0]) == 0):
        raise NNLabError(f"{_WHERE}: column {index_col!r} repeats a test example within a run")
    if shape[1] < 2:
        raise NNLabError(f"{_WHERE}: needs at least 2 test examples, got {shape[1]}")
    return data[pred_col].to_numpy().reshape(shape) != labels


test_set_variance.__test__ = False  # a library function, not a pytest test
