"""What the errors look like: second guesses, confidence, calibration, confusions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, estimate
from nnlab.analysis._checks import check_resampling, finite_column, require_columns
from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import NNLabError

_WHERE = "error_analysis"


@dataclass(frozen=True)
class ErrorAnalysisResult:
    """Errors of the predictions pooled over all rows (all trials, when concatenated).

    second_guess_rate: share of wrong answers whose second guess (top2) is right, exact
        binomial CI; second_guess_test: binomial test against chance 1/(n_classes - 1).
    confidence_wrong / confidence_right: mean top-1 probability with t CIs;
        confidence_test: Mann-Whitney U of wrong against right confidences;
        auc: P(a wrong answer's confidence < a right one's) + ties / 2.
    n_confident_errors: wrong answers with confidence >= `confident`;
        confident_error_share: their share of all errors (exact CI).
    ece: expected calibration error over `bins` (equal width), bootstrap CI.
    bins: one row per bin: low, high, count, confidence (mean), accuracy.
    confusion: (n_classes, n_classes) counts, rows true class, columns predicted.
    top_pairs: the most frequent (true, predicted) errors: true, predicted, count, share.
    confidence_hist: counts of top-1 confidence in 20 equal bins for right and wrong.
    """

    n: int
    n_trials: int
    n_classes: int
    accuracy: Estimate
    n_wrong: int
    n_second_right: int
    second_guess_rate: Estimate
    second_guess_test: HypothesisTest
    confidence_wrong: Estimate
    confidence_right: Estimate
    confidence_test: HypothesisTest
    auc: float
    confident: float
    n_confident: int
    n_confident_errors: int
    confident_error_share: Estimate
    ece: Estimate
    bins: pd.DataFrame = field(repr=False)
    confusion: np.ndarray = field(repr=False)
    top_pairs: pd.DataFrame = field(repr=False)
    confidence_hist: pd.DataFrame = field(repr=False)

    @property
    def chance(self) -> float:
        """Chance that a random other class is the true one: 1 / (n_classes - 1)."""
        return 1 / (self.n_classes - 1)

    def summary(self) -> str:
        pairs = ", ".join(
            f"{r.true}->{r.predicted} ({r.count})" for r in self.top_pairs.head(5).itertuples()
        )
        return (
            f"errors of {self.n} predictions ({self.n_trials} trial(s)): accuracy "
            f"{self.accuracy.format('.2f', 100, '%')}, {self.n_wrong} wrong\n"
            f"  second guess right in {self.n_second_right} of {self.n_wrong} errors: "
            f"{self.second_guess_rate.format('.1f', 100, '%')} vs chance "
            f"{100 * self.chance:.1f}% (binomial {self.second_guess_test.p_text})\n"
            f"  mean confidence wrong {self.confidence_wrong.format('.3f')} vs right "
            f"{self.confidence_right.format('.3f')} (Mann-Whitney "
            f"{self.confidence_test.p_text}, P(wrong < right) = {self.auc:.2f})\n"
            f"  {self.n_confident_errors} errors at confidence >= {self.confident:g} "
            f"({self.confident_error_share.format('.1f', 100, '%')} of errors; "
            f"{self.n_confident} predictions that confident)\n"
            f"  ECE ({len(self.bins)} bins) {self.ece.format('.4f')}\n"
            f"  most confused (true->predicted): {pairs}"
        )

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "n_trials": self.n_trials,
            "n_classes": self.n_classes,
            "accuracy": self.accuracy.to_dict(),
            "n_wrong": self.n_wrong,
            "n_second_right": self.n_second_right,
            "second_guess_rate": self.second_guess_rate.to_dict(),
            "chance": self.chance,
            "second_guess_test": self.second_guess_test.to_dict(),
            "confidence_wrong": self.confidence_wrong.to_dict(),
            "confidence_right": self.confidence_right.to_dict(),
            "confidence_test": self.confidence_test.to_dict(),
            "auc": self.auc,
            "confident": self.confident,
            "n_confident": self.n_confident,
            "n_confident_errors": self.n_confident_errors,
            "confident_error_share": self.confident_error_share.to_dict(),
            "ece": self.ece.to_dict(),
            "bins": self.bins.to_dict(orient="records"),
            "confusion": self.confusion.tolist(),
            "top_pairs": self.top_pairs.to_dict(orient="records"),
        }


def error_analysis(
    predictions: pd.DataFrame,
    *,
    n_classes: int | None = None,
    n_bins: int = 15,
    confident: float = 0.99,
    n_pairs: int = 10,
    trial_col: str = "trial",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ErrorAnalysisResult:
    """Analyse the errors in compact predictions (columns y_true, top1, top2, p1).

    predictions: one row per (trial, test example); rows of several trials are pooled.
    n_classes: number of classes (default: largest label + 1).
    The ECE interval resamples predictions (a multinomial over the cells bin x right/wrong,
    each cell keeping its mean confidence), which is exact for counts and accuracies.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    require_columns(predictions, ["y_true", "top1", "top2", "p1"], _WHERE)
    labels = {c: _labels(predictions, c) for c in ("y_true", "top1", "top2")}
    p1 = finite_column(predictions, "p1", _WHERE)
    if np.any((p1 < 0) | (p1 > 1)):
        raise NNLabError(f"{_WHERE}: column 'p1' must hold probabilities in [0, 1]")
    largest = int(max(v.max() for v in labels.values()))
    n_classes = largest + 1 if n_classes is None else n_classes
    if n_classes < 3 or n_classes <= largest:
        raise NNLabError(
            f"{_WHERE}.n_classes: expected an integer >= 3 above every label, got {n_classes}"
        )
    if not 0.5 <= confident < 1:
        raise NNLabError(f"{_WHERE}.confident: expected a level in [0.5, 1), got {confident}")
    y, top1, top2 = labels["y_true"], labels["top1"], labels["top2"]
    right = top1 == y
    n, n_wrong = y.size, int(np.count_nonzero(~right))
    if n_wrong == 0 or n_wrong == n:
        raise NNLabError(
            f"{_WHERE}: needs both right and wrong predictions, got {n_wrong} wrong of {n}"
        )
    n_trials = predictions[trial_col].nunique() if trial_col in predictions.columns else 1

    n_second = int(np.count_nonzero(top2[~right] == y[~right]))
    second = stats.binomtest(n_second, n_wrong, p=1 / (n_classes - 1))
    mann_whitney = stats.mannwhitneyu(p1[~right], p1[right], alternative="two-sided")
    confident_wrong = int(np.count_nonzero(p1[~right] >= confident))
    bins, ece = _calibration(p1, right, n_bins, n_resamples, seed, confidence)
    confusion = np.bincount(y * n_classes + top1, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )
    hist_edges = np.linspace(0, 1, 21)
    return ErrorAnalysisResult(
        n=n,
        n_trials=int(n_trials),
        n_classes=n_classes,
        accuracy=_proportion(int(right.sum()), n, confidence),
        n_wrong=n_wrong,
        n_second_right=n_second,
        second_guess_rate=_proportion(n_second, n_wrong, confidence),
        second_guess_test=HypothesisTest("binomial", float(second.statistic), float(second.pvalue)),
        confidence_wrong=_mean(p1[~right], confidence),
        confidence_right=_mean(p1[right], confidence),
        confidence_test=HypothesisTest(
            "Mann-Whitney U", float(mann_whitney.statistic), float(mann_whitney.pvalue)
        ),
        auc=float(1 - mann_whitney.statistic / (n_wrong * (n - n_wrong))),
        confident=confident,
        n_confident=int(np.count_nonzero(p1 >= confident)),
        n_confident_errors=confident_wrong,
        confident_error_share=_proportion(confident_wrong, n_wrong, confidence),
        ece=ece,
        bins=bins,
        confusion=confusion,
        top_pairs=_top_pairs(confusion, n_wrong, n_pairs),
        confidence_hist=pd.DataFrame(
            {
                "low": hist_edges[:-1],
                "high": hist_edges[1:],
                "right": np.histogram(p1[right], hist_edges)[0],
                "wrong": np.histogram(p1[~right], hist_edges)[0],
            }
        ),
    )


def _labels(predictions: pd.DataFrame, column: str) -> np.ndarray:
    """Column `column` as int64 class labels (an integer column is taken as is)."""
    labels = predictions[column]
    if pd.api.types.is_integer_dtype(labels.dtype) and not labels.hasnans:
        values = labels.to_numpy(dtype=np.int64)
    else:
        values = finite_column(predictions, column, _WHERE)
        if np.any(values != np.round(values)):
            raise NNLabError(f"{_WHERE}: column {column!r} must hold class labels 0, 1, 2, ...")
    if np.any(values < 0):
        raise NNLabError(f"{_WHERE}: column {column!r} must hold class labels 0, 1, 2, ...")
    return values.astype(np.int64)


def _proportion(k: int, n: int, confidence: float) -> Estimate:
    """k/n with the exact (Clopper-Pearson) interval."""
    ci = stats.binomtest(k, n).proportion_ci(confidence, method="exact")
    return Estimate(k / n, float(ci.low), float(ci.high), confidence)


def _mean(values: np.ndarray, confidence: float) -> Estimate:
    """Mean with a t interval (a single value gives an interval of NaN)."""
    mean = float(values.mean())
    if values.size < 2:
        return Estimate(mean, float("nan"), float("nan"), confidence)
    low, high = stats.t.interval(confidence, values.size - 1, mean, stats.sem(values))
    return Estimate(mean, float(low), float(high), confidence)


def bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each probability: bin b holds (b/n_bins, (b+1)/n_bins], 0 in bin 0."""
    return np.clip(np.ceil(p * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def _calibration(
    p1: np.ndarray, right: np.ndarray, n_bins: int, n_resamples: int, seed: int, confidence
) -> tuple[pd.DataFrame, Estimate]:
    """Reliability table and ECE = sum_b (n_b / n) |accuracy_b - confidence_b|."""
    cell = 2 * bin_index(p1, n_bins) + right  # cells (bin, wrong/right)
    counts = np.bincount(cell, minlength=2 * n_bins).astype(float)
    sums = np.bincount(cell, weights=p1, minlength=2 * n_bins)
    mean_conf = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    rng = np.random.default_rng(seed)
    resampled = rng.multinomial(p1.size, counts / p1.size, size=n_resamples)
    cell_counts = np.vstack([counts, resampled]).reshape(-1, n_bins, 2)  # row 0 = data
    n_bin = cell_counts.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = cell_counts[..., 1] / n_bin
        conf = (cell_counts * mean_conf.reshape(n_bins, 2)).sum(axis=2) / n_bin
    gaps = np.where(n_bin > 0, np.abs(accuracy - conf), 0.0)
    ece = (n_bin * gaps).sum(axis=1) / p1.size
    edges = np.linspace(0, 1, n_bins + 1)
    bins = pd.DataFrame(
        {
            "low": edges[:-1],
            "high": edges[1:],
            "count": n_bin[0].astype(int),
            "confidence": conf[0],
            "accuracy": accuracy[0],
        }
    )
    return bins, estimate(ece[0], ece[1:], confidence)


def _top_pairs(confusion: np.ndarray, n_wrong: int, n_pairs: int) -> pd.DataFrame:
    """The n_pairs most frequent off-diagonal (true, predicted) cells, most frequent first."""
    errors = confusion.copy()
    np.fill_diagonal(errors, 0)
    true, predicted = np.nonzero(errors)
    count = errors[true, predicted]
    order = np.lexsort((predicted, true, -count))[:n_pairs]
    return pd.DataFrame(
        {
            "true": true[order],
            "predicted": predicted[order],
            "count": count[order],
            "share": count[order] / n_wrong,
        }
    )
