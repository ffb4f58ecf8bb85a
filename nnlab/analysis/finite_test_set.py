"""How much of the spread of test accuracy over restarts is the finite test set's doing.

Jordan (2023), "On the variance of neural network training with respect to test sets and
distributions" (arXiv 2304.01910). With eps_i the share of runs that get test example i
wrong, the variance over runs of test error splits into two parts:
- the test-set part, (1/n^2) sum_i eps_i (1 - eps_i): it exists because runs err on
  different examples (an example that every run gets wrong, or none, adds nothing) and
  shrinks as the runs come to agree on which examples they get wrong;
- the distribution-wise part, n/(n-1) (observed - test-set part): the variance over runs
  of each run's population accuracy (its accuracy on the whole data distribution), i.e. how
  far apart the solutions the runs reach are.
The test-set part is not the binomial p (1 - p) / n of one model's accuracy: that measures
how one model's accuracy moves between test sets drawn anew, and bounds the test-set part
from above (runs that agree leave less).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import Estimate, estimate, two_way_counts
from nnlab.analysis._checks import check_resampling, run_table
from nnlab.errors import ConfigError, InsufficientData

_WHERE = "test_set_variance"
UNITS = {
    "run": "runs (the test set fixed)",
    "run x example": "runs and test examples (two-way)",
}


@dataclass(frozen=True)
class TestSetVarianceResult:
    """Split of the variance over runs of test accuracy (all variances of accuracy).

    observed: sample variance over runs (ddof=1).
    test_set: the part due to runs erring on different test examples,
        (1/n^2) sum_i Var_runs(error_i); 0 when all runs err on the same examples.
    distribution: n/(n-1) (observed - test_set), the unbiased estimate of the variance over
        runs of the runs' population accuracy (can come out below 0).
    share_test_set: test_set / observed.
    example_error_rate: (n_test,) error rate of each test example over the runs.
    unit: what the intervals resample: "run" (runs, the test set fixed: how well these
        runs pin the split on this test set) or "run x example" (runs and test examples
        independently: the split for the population of runs and of examples).
    """

    n_runs: int
    n_test: int
    mean_accuracy: Estimate
    observed: Estimate
    test_set: Estimate
    distribution: Estimate
    share_test_set: Estimate
    example_error_rate: np.ndarray = field(repr=False)
    unit: str = "run"
    __test__ = False  # a result, not a pytest test class

    def summary(self) -> str:
        std = math.sqrt(max(self.observed.value, 0.0))
        test_std = math.sqrt(max(self.test_set.value, 0.0))
        return (
            f"test accuracy over {self.n_runs} runs on {self.n_test} test examples: mean "
            f"{self.mean_accuracy.format('.4g')}, std {std:.3g}; variance {self.observed}; "
            f"test-set part (runs erring on different examples) {self.test_set} (std "
            f"{test_std:.3g}, {self.share_test_set.format('.0f', 100, '%')} of the variance); "
            f"distribution-wise part (spread of the runs' population accuracy) "
            f"{self.distribution}. Intervals by bootstrap over {UNITS[self.unit]}."
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
            **({} if self.unit == "run" else {"unit": self.unit}),
        }


def test_set_variance(
    predictions: pd.DataFrame,
    *,
    trial_col: str = "trial",
    index_col: str = "index",
    y_col: str = "y_true",
    pred_col: str = "top1",
    unit: str = "run",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> TestSetVarianceResult:
    """Decompose the variance over runs of test accuracy (Jordan 2023).

    predictions: compact predictions of several runs of one configuration, concatenated,
        columns `trial_col`, `index_col`, `y_col`, `pred_col`; every run must cover the same
        test examples once.
    unit: "run" bootstraps runs with the test set fixed (the intervals of earlier versions);
        "run x example" resamples runs and test examples independently (the pigeonhole
        bootstrap, Owen 2007; runs and examples as persons and items in Brennan 2001,
        "Generalizability theory", ch. 6), for the split in the population the test set was
        drawn from; each resample's parts are those of a test set of distinct examples
        (`_two_way_resamples`), so the resamples centre on the estimates. It is
        conservative for the variance parts: the runs' disagreement on single examples
        enters under both resamplings (Brennan's boot-p,i overestimates the standard
        error of the runs' variance component; see docs/analysis.md for coverage).
    Runs that all make the same number of errors (a small test set) leave no variance to
    split: InsufficientData. A resample whose variance is 0 (it repeats runs of equal
    accuracy) or, two-way, not above 0, has no share of it: its share is left out.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if unit not in UNITS:
        raise ConfigError(f"{_WHERE}.unit", f"one of {list(UNITS)}", unit)
    _, table = run_table(predictions, [pred_col], trial_col=trial_col, index_col=index_col,
                         y_col=y_col, min_runs=2, purpose="a variance over runs",
                         where=_WHERE)
    errors = table[pred_col] != table[y_col]
    n_runs, n_test = errors.shape
    n_errors = errors.sum(axis=1)
    if np.all(n_errors == n_errors[0]):
        raise InsufficientData(
            f"{_WHERE}: all {n_runs} runs have the same test accuracy "
            f"({1 - n_errors[0] / n_test:.4g} on {n_test} examples): no variance over runs to "
            "split (a larger test set would tell them apart)")
    rng = np.random.default_rng(seed)
    if unit == "run":
        mean_error, observed, test_set = _run_resamples(errors, n_resamples, rng)
    else:
        mean_error, observed, test_set = _two_way_resamples(errors, n_resamples, rng)
    distribution = n_test / (n_test - 1) * (observed - test_set)
    # half the smallest variance accuracies on this test set can have (one of the runs off
    # by one example): below it a resample's variance is 0 up to rounding
    zero = 0.5 / (n_test**2 * n_runs)
    share = np.where(observed > zero, test_set / np.maximum(observed, zero), np.nan)

    def est(values: np.ndarray) -> Estimate:
        """The estimate with the interval of its finite resamples (NaN when none is: a
        share of a variance of 0)."""
        finite = values[1:][np.isfinite(values[1:])]
        if finite.size == 0:
            return Estimate(float(values[0]), math.nan, math.nan, confidence)
        return estimate(values[0], finite, confidence)

    return TestSetVarianceResult(
        n_runs=n_runs,
        n_test=n_test,
        mean_accuracy=est(1 - mean_error),
        observed=est(observed),
        test_set=est(test_set),
        distribution=est(distribution),
        share_test_set=est(share),
        example_error_rate=errors.mean(axis=0),
        unit=unit,
    )


def _run_resamples(errors: np.ndarray, n_resamples: int, rng: np.random.Generator) -> tuple:
    """(mean error, observed variance, test-set part), each (1 + n_resamples,): row 0 the
    data, then bootstrap resamples of the runs of `errors` (n_runs, n_test) bool."""
    n_runs, n_test = errors.shape
    run_errors = errors.sum(axis=1, dtype=np.float64)  # (k,)
    gram = (errors.astype(np.float32) @ errors.T.astype(np.float32)).astype(np.float64)
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
    return mean_error, observed * centring, test_set * centring


def _two_way_resamples(errors: np.ndarray, n_resamples: int, rng: np.random.Generator) -> tuple:
    """As `_run_resamples`, resampling runs and test examples independently. An example
    drawn v times brings v copies that err together, which adds (v^2 - v) times its
    variance over runs to the variance of the resample's accuracy; that excess is taken
    out, so each resample's parts are those of a test set of distinct examples and centre
    on the estimates."""
    n_runs, n_test = errors.shape
    wrong = errors.astype(np.float64)
    blocks = [(np.ones((1, n_runs)), np.ones((1, n_test)))]
    blocks += list(two_way_counts(n_runs, n_test, n_resamples, rng))
    parts = []
    for w, v in blocks:
        rate = v @ wrong.T / n_test  # (c, k): each run's error on the resampled test set
        mean = np.sum(w * rate, axis=1) / n_runs
        observed = (np.sum(w * rate**2, axis=1) - n_runs * mean**2) / (n_runs - 1)
        eps = w @ wrong / n_runs  # (c, n): each example's error rate over resampled runs
        variance = n_runs / (n_runs - 1) * eps * (1 - eps) / n_test**2
        test_set = np.sum(v * variance, axis=1)
        duplicates = np.sum((v**2 - v) * variance, axis=1)
        parts.append((mean, observed - duplicates, test_set))
    mean, observed, test_set = (np.concatenate(p) for p in zip(*parts, strict=True))
    centring = np.r_[1.0, np.full(n_resamples, n_runs / (n_runs - 1))]  # as in _run_resamples
    return mean, observed * centring, test_set * centring


test_set_variance.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
