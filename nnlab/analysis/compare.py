"""Two sets of restarts (e.g. with and without noise): do their spreads and means differ?"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, sample_std, scipy_estimate
from nnlab.analysis._checks import (
    check_resampling,
    finite_column,
    finite_values,
    require_columns,
    split_runs,
)
from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import NNLabError

_WHERE = "compare_variance"
MIN_RUNS = 3


@dataclass(frozen=True)
class CompareResult:
    """Spread and location of sample a against sample b (independent runs).

    std_ratio: std(a) / std(b); p_superiority: P(a run of a > a run of b) + P(tie) / 2.
    mean_difference: mean(a) - mean(b) with Welch's CI.
    """

    names: tuple[str, str]
    a: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    n_excluded: tuple[int, int]
    mean_a: Estimate
    mean_b: Estimate
    std_a: Estimate
    std_b: Estimate
    std_ratio: Estimate
    brown_forsythe: HypothesisTest
    fligner: HypothesisTest
    welch: HypothesisTest
    mean_difference: Estimate
    p_superiority: Estimate
    alpha: float

    @property
    def spreads_differ(self) -> bool:
        """Brown-Forsythe rejects equal spreads at level alpha."""
        return self.brown_forsythe.p_value < self.alpha

    def summary(self) -> str:
        name_a, name_b = self.names
        verdict = "differ" if self.spreads_differ else "show no significant difference"
        return (
            f"{name_a} (n={self.a.size}, {self.n_excluded[0]} excluded) vs {name_b} "
            f"(n={self.b.size}, {self.n_excluded[1]} excluded):\n"
            f"  std {self.std_a} vs {self.std_b}; ratio {self.std_ratio}\n"
            f"  Brown-Forsythe {self.brown_forsythe.p_text}, Fligner-Killeen "
            f"{self.fligner.p_text}: the spreads {verdict} at alpha={self.alpha:g}\n"
            f"  mean {self.mean_a.format('.4g')} vs {self.mean_b.format('.4g')}; difference "
            f"{self.mean_difference} (Welch {self.welch.p_text})\n"
            f"  P({name_a} run > {name_b} run) = {self.p_superiority.format('.2f')}"
        )

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "n": [int(self.a.size), int(self.b.size)],
            "n_excluded": list(self.n_excluded),
            "alpha": self.alpha,
            "spreads_differ": self.spreads_differ,
            **{
                key: getattr(self, key).to_dict()
                for key in (
                    "mean_a",
                    "mean_b",
                    "std_a",
                    "std_b",
                    "std_ratio",
                    "brown_forsythe",
                    "fligner",
                    "welch",
                    "mean_difference",
                    "p_superiority",
                )
            },
        }


def compare_variance(
    a: object,
    b: object,
    *,
    names: tuple[str, str] = ("a", "b"),
    n_excluded: tuple[int, int] = (0, 0),
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> CompareResult:
    """Compare two independent samples of final metrics, a (n_a,) and b (n_b,).

    Spread: Brown-Forsythe (Levene with median centring), Fligner-Killeen, and a BCa
    bootstrap CI of std(a)/std(b). Location: Welch's t with the CI of the mean difference,
    and P(a > b) (the Mann-Whitney U / (n_a n_b)) with a bootstrap CI. `n_excluded` is only
    reported (see `compare_variance_by`).
    """
    check_resampling(n_resamples, confidence, _WHERE)
    a = finite_values(a, "a", MIN_RUNS, _WHERE)
    b = finite_values(b, "b", MIN_RUNS, _WHERE)
    for name, values in (("a", a), ("b", b)):
        if np.ptp(values) == 0:
            raise NNLabError(f"{_WHERE}.{name}: all values are equal; a spread needs variation")
    boot = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    brown_forsythe = stats.levene(a, b, center="median")
    fligner = stats.fligner(a, b, center="median")
    welch = stats.ttest_ind(a, b, equal_var=False)
    difference = welch.confidence_interval(confidence)
    return CompareResult(
        names=(str(names[0]), str(names[1])),
        a=a,
        b=b,
        n_excluded=(int(n_excluded[0]), int(n_excluded[1])),
        mean_a=scipy_estimate((a,), np.mean, **boot),
        mean_b=scipy_estimate((b,), np.mean, **boot),
        std_a=scipy_estimate((a,), sample_std, **boot),
        std_b=scipy_estimate((b,), sample_std, **boot),
        std_ratio=scipy_estimate((a, b), _std_ratio, **boot),
        brown_forsythe=HypothesisTest(
            "Brown-Forsythe", float(brown_forsythe.statistic), float(brown_forsythe.pvalue)
        ),
        fligner=HypothesisTest("Fligner-Killeen", float(fligner.statistic), float(fligner.pvalue)),
        welch=HypothesisTest("Welch t", float(welch.statistic), float(welch.pvalue)),
        mean_difference=Estimate(
            float(a.mean() - b.mean()), float(difference.low), float(difference.high), confidence
        ),
        p_superiority=scipy_estimate((a, b), _p_superiority, **boot),
        alpha=alpha,
    )


def compare_variance_by(
    trials: pd.DataFrame,
    by: str,
    a: object,
    b: object,
    metric: str = "test_acc",
    *,
    status_col: str | None = "status",
    **options: object,
) -> CompareResult:
    """`compare_variance` of the finished runs with `trials[by] == a` against `== b`.

    Diverged runs (`status_col` "diverged") are left out and counted per group; rows with
    another status than "ok" (unfinished trials) are ignored.
    `options` go to `compare_variance` (alpha, n_resamples, seed, confidence).
    """
    require_columns(trials, [by, metric], _WHERE)
    finished, excluded, _ = split_runs(trials, status_col)
    samples, n_excluded = [], []
    for level in (a, b):
        chosen = finished[finished[by] == level]
        if chosen.empty:
            raise NNLabError(
                f"{_WHERE}: no finished run with {by}={level!r}; "
                f"values present: {sorted(map(str, trials[by].unique()))}"
            )
        samples.append(finite_column(chosen, metric, _WHERE))
        n_excluded.append(int((excluded[by] == level).sum()))
    return compare_variance(
        *samples, names=(f"{by}={a}", f"{by}={b}"), n_excluded=tuple(n_excluded), **options
    )


def _std_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return sample_std(a, axis) / sample_std(b, axis)


def _p_superiority(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A > B) + P(A = B) / 2 from mid-ranks of the pooled samples, along `axis`."""
    n_a, n_b = a.shape[axis], b.shape[axis]
    ranks = stats.rankdata(np.concatenate([a, b], axis=axis), axis=axis)
    rank_sum = np.take(ranks, np.arange(n_a), axis=axis).sum(axis=axis)
    return (rank_sum - n_a * (n_a + 1) / 2) / (n_a * n_b)
