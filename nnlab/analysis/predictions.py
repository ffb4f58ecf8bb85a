"""What the errors look like: second guesses, confidence, calibration, confusions.

The same test images recur in every run, and runs tend to get the same images wrong, so
the predictions of k runs on n images are not k * n independent draws. `error_analysis`
says which unit its intervals resample (`unit`):
- "run": each run's own rate (second guess, confidence, ECE, ...) is one value, and the
  interval is a bootstrap over runs of their mean: what a run of this configuration gives
  on this test set, run to run;
- "run x image": the pooled rates with a two-way bootstrap that resamples runs and test
  images independently (Owen 2007, "The pigeonhole bootstrap"; runs and images as persons
  and items, Brennan 2001, "Generalizability theory", ch. 6): the rate in the population
  of runs and of images the test set was drawn from;
- "prediction": every prediction an independent draw (exact binomial and t intervals, a
  multinomial bootstrap for the ECE), as in earlier versions; kept so that earlier
  results reproduce, and too narrow whenever runs share a test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, estimate, scipy_estimate, two_way_sums
from nnlab.analysis._checks import check_resampling, finite_column, require_columns, run_table
from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import ConfigError, DataError, InsufficientData

_WHERE = "error_analysis"
UNITS = {
    "prediction": "predictions, pooled as if independent",
    "run": "runs (the mean of each run's own value; the test set fixed)",
    "run x image": "runs and test images (two-way bootstrap)",
}
RATES = ("accuracy", "second_guess_rate", "confident_error_share", "confidence_wrong",
         "confidence_right", "auc", "ece")


@dataclass(frozen=True)
class ErrorAnalysisResult:
    """Errors of the predictions of one or more runs on one test set.

    Point values pool all rows (all trials, when concatenated), except with unit="run",
    where each is the mean over runs of the run's own value; intervals resample `unit`.
    second_guess_rate: share of wrong answers whose second guess (top2) is right;
        second_guess_test: against chance 1/(n_classes - 1) (binomial test of the pooled
        errors for unit "prediction", t over runs for "run", z with the two-way bootstrap
        standard error for "run x image").
    confidence_wrong / confidence_right: mean top-1 probability of wrong / right answers;
        confidence_test: do wrong answers carry less confidence (Mann-Whitney U of the
        pooled confidences for "prediction"; AUC against 0.5 otherwise, tested as above).
    auc: P(a wrong answer's confidence < a right one's) + ties / 2, pooled;
        auc_ci: its estimate with an interval (units "run" and "run x image").
    n_confident_errors: wrong answers with confidence >= `confident`;
        confident_error_share: their share of all errors.
    ece: expected calibration error over `bins` (equal width).
    bins: one row per bin: low, high, count, confidence (mean), accuracy (pooled).
    confusion: (n_classes, n_classes) counts, rows true class, columns predicted.
    top_pairs: the most frequent (true, predicted) errors: true, predicted, count, share.
    confidence_hist: counts of top-1 confidence in 20 equal bins for right and wrong.
    unit: what the intervals resample (UNITS); "image" when "run x image" was asked of a
        single run (then only images are resampled).
    per_run: one row per run with its own rates (RATES) and n_wrong (units "run" and
        "run x image"; None for "prediction").
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
    unit: str = "prediction"
    auc_ci: Estimate | None = None
    per_run: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def chance(self) -> float:
        """Chance that a random other class is the true one: 1 / (n_classes - 1)."""
        return 1 / (self.n_classes - 1)

    @property
    def unit_text(self) -> str:
        """What the intervals resample, in words."""
        return UNITS.get(self.unit, "test images (one run)")

    def summary(self) -> str:
        pairs = ", ".join(
            f"{r.true}->{r.predicted} ({r.count})" for r in self.top_pairs.head(5).itertuples()
        )
        auc = f"{self.auc:.2f}" if self.auc_ci is None else self.auc_ci.format(".3f")
        return (
            f"errors of {self.n} predictions ({self.n_trials} trial(s)): accuracy "
            f"{self.accuracy.format('.2f', 100, '%')}, {self.n_wrong} wrong; "
            f"intervals over {self.unit_text}\n"
            f"  second guess right in {self.n_second_right} of {self.n_wrong} errors: "
            f"{self.second_guess_rate.format('.1f', 100, '%')} vs chance "
            f"{100 * self.chance:.1f}% ({self.second_guess_test.name} "
            f"{self.second_guess_test.p_text})\n"
            f"  mean confidence wrong {self.confidence_wrong.format('.3f')} vs right "
            f"{self.confidence_right.format('.3f')} ({self.confidence_test.name} "
            f"{self.confidence_test.p_text}, P(wrong < right) = {auc})\n"
            f"  {self.n_confident_errors} errors at confidence >= {self.confident:g} "
            f"({self.confident_error_share.format('.1f', 100, '%')} of errors; "
            f"{self.n_confident} predictions that confident)\n"
            f"  ECE ({len(self.bins)} bins) {self.ece.format('.4f')}\n"
            f"  most confused (true->predicted): {pairs}"
        )

    def to_dict(self) -> dict:
        new_units = {}
        if self.unit != "prediction":
            # set for every unit but "prediction"
            assert self.auc_ci is not None and self.per_run is not None
            new_units = {
                "unit": self.unit,
                "auc_ci": self.auc_ci.to_dict(),
                "per_run": self.per_run.to_dict(orient="records"),
            }
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
            **new_units,
        }


def error_analysis(
    predictions: pd.DataFrame,
    *,
    n_classes: int | None = None,
    n_bins: int = 15,
    confident: float = 0.99,
    n_pairs: int = 10,
    trial_col: str = "trial",
    index_col: str = "index",
    unit: str = "prediction",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> ErrorAnalysisResult:
    """Analyse the errors in compact predictions (columns y_true, top1, top2, p1).

    predictions: one row per (trial, test example); rows of several trials are pooled.
    n_classes: number of classes (default: largest label + 1).
    unit: what the intervals resample (see the module docstring): "run" (>= 2 runs) or
        "run x image" need `trial_col` and `index_col`, every run predicting the same test
        images once. With "run" the intervals are BCa bootstraps over runs of the mean of
        the runs' own values (scipy.stats.bootstrap); with "run x image", percentile
        intervals of the pigeonhole bootstrap of the pooled rates, the AUC's resamples
        taken from its linearisation by placement values (DeLong, DeLong &
        Clarke-Pearson 1988), exact to first order. "prediction" (the default, as in
        earlier versions): exact binomial and t intervals, and an ECE interval from a
        multinomial over the cells bin x right/wrong, each cell keeping its mean
        confidence; they treat every prediction as independent.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if unit not in UNITS:
        raise ConfigError(f"{_WHERE}.unit", f"one of {list(UNITS)}", unit)
    require_columns(predictions, ["y_true", "top1", "top2", "p1"], _WHERE)
    labels = {c: _labels(predictions, c) for c in ("y_true", "top1", "top2")}
    p1 = finite_column(predictions, "p1", _WHERE)
    if np.any((p1 < 0) | (p1 > 1)):
        raise DataError(f"{_WHERE}: column 'p1' must hold probabilities in [0, 1]")
    largest = int(max(v.max() for v in labels.values()))
    n_classes = largest + 1 if n_classes is None else n_classes
    if n_classes < 3 or n_classes <= largest:
        raise ConfigError(f"{_WHERE}.n_classes", "an integer >= 3 above every label",
                          shown=f"{n_classes}")
    if not 0.5 <= confident < 1:
        raise ConfigError(f"{_WHERE}.confident", "a level in [0.5, 1)", shown=f"{confident}")
    y, top1, top2 = labels["y_true"], labels["top1"], labels["top2"]
    right = top1 == y
    n, n_wrong = y.size, int(np.count_nonzero(~right))
    if n_wrong == 0 or n_wrong == n:
        raise InsufficientData(
            f"{_WHERE}: needs both right and wrong predictions, got {n_wrong} wrong of {n}"
        )
    n_trials = predictions[trial_col].nunique() if trial_col in predictions.columns else 1

    n_second = int(np.count_nonzero(top2[~right] == y[~right]))
    confident_wrong = int(np.count_nonzero(p1[~right] >= confident))
    bins, ece = _calibration(p1, right, n_bins, n_resamples, seed, confidence)
    if unit == "prediction":
        second = stats.binomtest(n_second, n_wrong, p=1 / (n_classes - 1))
        mann_whitney = stats.mannwhitneyu(p1[~right], p1[right], alternative="two-sided")
        intervals: dict[str, Any] = {
            "auc": float(1 - mann_whitney.statistic / (n_wrong * (n - n_wrong))),
            "accuracy": _proportion(int(right.sum()), n, confidence),
            "second_guess_rate": _proportion(n_second, n_wrong, confidence),
            "confident_error_share": _proportion(confident_wrong, n_wrong, confidence),
            "confidence_wrong": _mean(p1[~right], confidence),
            "confidence_right": _mean(p1[right], confidence),
            "ece": ece,
            "second_guess_test": HypothesisTest(
                "binomial", float(second.statistic), float(second.pvalue)),
            "confidence_test": HypothesisTest(
                "Mann-Whitney U", float(mann_whitney.statistic), float(mann_whitney.pvalue)),
        }
    else:
        options = {"n_classes": n_classes, "n_bins": n_bins, "confident": confident,
                   "n_resamples": n_resamples, "seed": seed, "confidence": confidence}
        intervals = _by_unit(predictions, unit, trial_col, index_col, options)
    confusion = np.bincount(y * n_classes + top1, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )
    hist_edges = np.linspace(0, 1, 21)
    return ErrorAnalysisResult(
        n=n,
        n_trials=int(n_trials),
        n_classes=n_classes,
        n_wrong=n_wrong,
        n_second_right=n_second,
        confident=confident,
        n_confident=int(np.count_nonzero(p1 >= confident)),
        n_confident_errors=confident_wrong,
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
        **intervals,
    )


def _by_unit(predictions: pd.DataFrame, unit: str, trial_col: str, index_col: str,
             options: dict[str, Any]) -> dict[str, Any]:
    """The intervals, tests, auc_ci, per_run and unit fields for unit "run" or
    "run x image" (see `error_analysis`)."""
    min_runs = 2 if unit == "run" else 1
    _, table = run_table(predictions, ["top1", "top2", "p1"], trial_col=trial_col,
                         index_col=index_col, y_col="y_true", min_runs=min_runs,
                         purpose=f"unit={unit!r}", where=_WHERE)
    runs = np.sort(predictions[trial_col].unique())
    cells = _cells(table, options["n_bins"], options["confident"])
    per_run = _per_run(table, cells, runs)
    chance = 1 / (options["n_classes"] - 1)
    confidence = options["confidence"]
    pooled = _rates(cells.sum(axis=(1, 2)))
    if unit == "run":
        for name in ("second_guess_rate", "confidence_wrong", "confidence_right"):
            if per_run[name].isna().any():
                raise InsufficientData(
                    f"{_WHERE}: unit='run' needs right and wrong answers in every run; run "
                    f"{per_run.loc[per_run[name].isna(), 'trial'].iloc[0]} has none of one "
                    "kind (unit='run x image' pools the runs)")
        boot = {"n_resamples": options["n_resamples"], "seed": options["seed"],
                "confidence": confidence}
        found = {name: scipy_estimate((per_run[name].to_numpy(),), np.mean, **boot)
                 for name in RATES}
        t_tests = {"second_guess_test": stats.ttest_1samp(per_run["second_guess_rate"], chance),
                   "confidence_test": stats.ttest_1samp(per_run["auc"], 0.5)}
        tests = {key: HypothesisTest("t over runs", float(t.statistic), float(t.pvalue))
                 for key, t in t_tests.items()}
    else:
        rng = np.random.default_rng(options["seed"])
        boot = _rates(two_way_sums(cells, options["n_resamples"], rng), auc=pooled["auc"])
        found = {name: estimate(float(pooled[name]), boot[name][np.isfinite(boot[name])],
                                confidence)
                 for name in RATES}  # a resample of few runs may hold no error: 0/0
        tests = {"second_guess_test": _z_test(found["second_guess_rate"].value, chance,
                                              boot["second_guess_rate"]),
                 "confidence_test": _z_test(found["auc"].value, 0.5, boot["auc"])}
        if len(runs) == 1:
            unit = "image"
    auc_ci = found.pop("auc")
    return {**found, **tests, "auc": float(pooled["auc"]), "auc_ci": auc_ci,
            "per_run": per_run, "unit": unit}


def _cells(table: dict[str, np.ndarray], n_bins: int, confident: float) -> np.ndarray:
    """(8 + n_bins, n_runs, n_images) quantities per prediction whose sums give every rate
    (`_rates`): right, wrong, second guess right when wrong, wrong at >= `confident`,
    confidence when wrong, confidence when right, the AUC's placement value when wrong and
    when right, then right - confidence in each calibration bin."""
    y, p1 = table["y_true"], table["p1"].astype(float)
    right = (table["top1"] == y).astype(float)
    wrong = 1 - right
    placement = _placements(p1, right.astype(bool))
    in_bin = bin_index(p1, n_bins)[None] == np.arange(n_bins)[:, None, None]
    return np.concatenate([
        np.stack([right, wrong, wrong * (table["top2"] == y), wrong * (p1 >= confident),
                  wrong * p1, right * p1, wrong * placement, right * placement]),
        in_bin * (right - p1)[None],
    ])


def _placements(p1: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Placement value of each prediction (DeLong et al. 1988): for a wrong answer, the
    share of right answers more confident than it (ties count half); for a right answer,
    the share of wrong answers less confident. Their mean over the wrong answers, and over
    the right ones, is the pooled AUC. p1, right: (n_runs, n_images)."""
    order = np.argsort(p1, axis=None, kind="stable")
    p = p1.ravel()[order]  # sorted queries: searchsorted then walks the arrays once
    is_right = right.ravel()[order]
    sorted_right, sorted_wrong = p[is_right], p[~is_right]

    def share(sorted_values: np.ndarray, above: bool) -> np.ndarray:
        below = np.searchsorted(sorted_values, p, side="left")
        ties = np.searchsorted(sorted_values, p, side="right") - below
        beyond = sorted_values.size - below - ties if above else below
        return (beyond + ties / 2) / sorted_values.size

    placement = np.empty(p.size)
    placement[order] = np.where(is_right, share(sorted_wrong, above=False),
                                share(sorted_right, above=True))
    return placement.reshape(p1.shape)


def _rates(sums: np.ndarray, auc: float | np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each rate of RATES from the sums (..., 8 + n_bins) of the `_cells` quantities.
    The AUC is the mean placement over wrong plus over right answers, less `auc` (the
    pooled AUC: its linearisation, for resamples, kept within [0, 1]), or the mean
    placement over wrong answers when `auc` is None."""
    right, wrong, second, confident, conf_wrong, conf_right, place_wrong, place_right = (
        sums[..., k] for k in range(8))
    with np.errstate(divide="ignore", invalid="ignore"):
        placements = (place_wrong / wrong, place_right / right)
        return {
            "accuracy": right / (right + wrong),
            "second_guess_rate": second / wrong,
            "confident_error_share": confident / wrong,
            "confidence_wrong": conf_wrong / wrong,
            "confidence_right": conf_right / right,
            "auc": placements[0] if auc is None else np.clip(
                placements[0] + placements[1] - auc, 0, 1),
            "ece": np.abs(sums[..., 8:]).sum(axis=-1) / (right + wrong),
        }


def _per_run(table: dict[str, np.ndarray], cells: np.ndarray, runs: np.ndarray
             ) -> pd.DataFrame:
    """Each run's own rates (its AUC from its own confidences), one row per run."""
    rates = _rates(cells.sum(axis=2).T)
    right = table["top1"] == table["y_true"]
    ranks = stats.rankdata(table["p1"], axis=1)
    n_wrong = np.count_nonzero(~right, axis=1)
    n_right = right.shape[1] - n_wrong
    with np.errstate(divide="ignore", invalid="ignore"):
        wrong_above = (np.sum(ranks * ~right, axis=1) - n_wrong * (n_wrong + 1) / 2) / (
            n_wrong * n_right)
    rates["auc"] = 1 - wrong_above
    return pd.DataFrame({"trial": runs, **rates, "n_wrong": n_wrong})


def _z_test(value: float, null: float, boot: np.ndarray) -> HypothesisTest:
    """Two-sided z test of value = null with the standard error of its resamples `boot`."""
    z = (value - null) / np.std(boot[np.isfinite(boot)], ddof=1)
    return HypothesisTest("z (two-way bootstrap SE)", float(z), float(2 * stats.norm.sf(abs(z))))


def _labels(predictions: pd.DataFrame, column: str) -> np.ndarray:
    """Column `column` as int64 class labels (an integer column is taken as is)."""
    labels = predictions[column]
    if pd.api.types.is_integer_dtype(labels.dtype) and not labels.hasnans:
        values = labels.to_numpy(dtype=np.int64)
    else:
        values = finite_column(predictions, column, _WHERE)
        if np.any(values != np.round(values)):
            raise DataError(f"{_WHERE}: column {column!r} must hold class labels 0, 1, 2, ...")
    if np.any(values < 0):
        raise DataError(f"{_WHERE}: column {column!r} must hold class labels 0, 1, 2, ...")
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
    """Reliability table and ECE = sum_b (n_b / n) |accuracy_b - confidence_b|, with the
    interval of unit "prediction"."""
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
