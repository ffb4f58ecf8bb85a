"""Two sets of restarts (e.g. with and without noise): do their spreads and means differ?

The two sets are independent samples (paired=False: other seeds, or seeds whose shared
value means nothing) or pairs (paired=True: run j of each set has the same seed, so the
same initial weights and data order, and the two results are correlated). Each design has
its own tests: Brown-Forsythe, Fligner-Killeen and Welch's t for independent samples; the
Pitman-Morgan test and the paired t for pairs. Bootstrap intervals resample runs of each
set independently, or seeds (both runs of a pair together); the stds and their ratio for
independent samples have Bonett's closed-form intervals (`nnlab.analysis.intervals`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, scipy_estimate, std_ratio
from nnlab.analysis._checks import (
    check_resampling,
    finite_column,
    finite_values,
    require_columns,
    split_runs,
)
from nnlab.analysis.distribution import HypothesisTest
from nnlab.analysis.intervals import mean_interval, std_interval, std_ratio_interval
from nnlab.analysis.paired import align_pairs, paired_difference, resolve_pairing
from nnlab.errors import ConfigError, DataError, InsufficientData

_WHERE = "compare_variance"
MIN_RUNS = 3


@dataclass(frozen=True)
class CompareResult:
    """Spread and location of sample a against sample b.

    mean_a, mean_b: t intervals; std_a, std_b: Bonett's intervals (`intervals.std_interval`).
    std_ratio: std(a) / std(b), Bonett's interval for independent samples
        (`intervals.std_ratio_interval`), a BCa bootstrap over pairs when paired;
    p_superiority: P(a > b) + P(tie) / 2, for a run of a against a run of b (unpaired) or
        within a pair (paired).
    mean_difference: mean(a) - mean(b): Welch's CI (unpaired) or a BCa bootstrap over pairs
        (paired).
    Unpaired: brown_forsythe, fligner (equal spreads) and welch (equal means); paired
    (paired=True): pitman_morgan (equal variances of paired samples: Pitman 1939, Morgan
    1939, the correlation of a + b with a - b), paired_t (equal means), correlation (of a
    and b over pairs) and n_unpaired (runs without a partner, left out); the other
    design's fields are None.
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
    brown_forsythe: HypothesisTest | None
    fligner: HypothesisTest | None
    welch: HypothesisTest | None
    mean_difference: Estimate
    p_superiority: Estimate
    alpha: float
    paired: bool = False
    pitman_morgan: HypothesisTest | None = None
    paired_t: HypothesisTest | None = None
    correlation: float | None = None
    n_unpaired: tuple[int, int] = (0, 0)

    @property
    def unit(self) -> str:
        """What the bootstrap intervals resample: "run" (each sample's runs on their own)
        or "seed" (pairs: a seed's two runs together)."""
        return "seed" if self.paired else "run"

    @property
    def spread_test(self) -> HypothesisTest:
        """The test that decides whether the spreads differ: Brown-Forsythe, or Pitman-Morgan
        for pairs."""
        return self._test("pitman_morgan" if self.paired else "brown_forsythe")

    @property
    def location_test(self) -> HypothesisTest:
        """The test of equal means: Welch's t, or the paired t for pairs."""
        return self._test("paired_t" if self.paired else "welch")

    def _test(self, name: str) -> HypothesisTest:
        """The test `name`, one of this result's design (paired or not)."""
        test = getattr(self, name)
        if not isinstance(test, HypothesisTest):
            raise ConfigError(f"CompareResult.{name}", f"a HypothesisTest (paired={self.paired})",
                              test)
        return test

    @property
    def spreads_differ(self) -> bool:
        """The spread test (`spread_test`) rejects equal spreads at level alpha."""
        return self.spread_test.p_value < self.alpha

    def test_lines(self) -> list[str]:
        """The tests in a few lines, for figures: spread, then location."""
        if self.paired:
            return [f"Pitman-Morgan {self.spread_test.p_text} (paired, r = "
                    f"{self.correlation:.2f})",
                    f"mean difference {self.mean_difference.format('.3g')} "
                    f"(paired t {self.location_test.p_text})"]
        return [f"Brown-Forsythe {self.spread_test.p_text}, "
                f"Fligner-Killeen {self._test('fligner').p_text}",
                f"mean difference {self.mean_difference.format('.3g')} "
                f"(Welch {self.location_test.p_text})"]

    def summary(self) -> str:
        name_a, name_b = self.names
        verdict = "differ" if self.spreads_differ else "show no significant difference"
        if self.paired:
            design = (f"paired by seed: {self.a.size} pairs, correlation {self.correlation:.2f}"
                      + (f", {self.n_unpaired[0]} + {self.n_unpaired[1]} runs without a "
                         "partner left out" if any(self.n_unpaired) else "")
                      + "; intervals over seeds")
            spread = f"Pitman-Morgan {self.spread_test.p_text}"
            location = f"paired t {self.location_test.p_text}"
            superiority = f"P({name_a} > {name_b} in a pair)"
        else:
            design = "independent samples; intervals over runs"
            spread = (f"Brown-Forsythe {self.spread_test.p_text}, Fligner-Killeen "
                      f"{self._test('fligner').p_text}")
            location = f"Welch {self.location_test.p_text}"
            superiority = f"P({name_a} run > {name_b} run)"
        return (
            f"{name_a} (n={self.a.size}, {self.n_excluded[0]} excluded) vs {name_b} "
            f"(n={self.b.size}, {self.n_excluded[1]} excluded), {design}:\n"
            f"  std {self.std_a} vs {self.std_b}; ratio {self.std_ratio}\n"
            f"  {spread}: the spreads {verdict} at alpha={self.alpha:g}\n"
            f"  mean {self.mean_a.format('.4g')} vs {self.mean_b.format('.4g')}; difference "
            f"{self.mean_difference} ({location})\n"
            f"  {superiority} = {self.p_superiority.format('.2f')}"
        )

    def to_dict(self) -> dict:
        keys = ["mean_a", "mean_b", "std_a", "std_b", "std_ratio"]
        keys += ["pitman_morgan", "paired_t"] if self.paired else [
            "brown_forsythe", "fligner", "welch"]
        paired = {"paired": True, "correlation": self.correlation,
                  "n_unpaired": list(self.n_unpaired)} if self.paired else {}
        return {
            "names": list(self.names),
            "n": [int(self.a.size), int(self.b.size)],
            "n_excluded": list(self.n_excluded),
            "alpha": self.alpha,
            "spreads_differ": self.spreads_differ,
            **paired,
            **{key: getattr(self, key).to_dict()
               for key in [*keys, "mean_difference", "p_superiority"]},
        }


def compare_variance(
    a: object,
    b: object,
    *,
    names: tuple[str, str] = ("a", "b"),
    n_excluded: tuple[int, int] = (0, 0),
    paired: bool = False,
    n_unpaired: tuple[int, int] = (0, 0),
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> CompareResult:
    """Compare two samples of final metrics, a (n_a,) and b (n_b,).

    paired=False: independent samples. Spread: Brown-Forsythe (Levene with median
    centring; Brown & Forsythe 1974), Fligner-Killeen (Conover, Johnson & Johnson 1981),
    and Bonett's (2006) CI of std(a)/std(b), which carries the samples' kurtosis (a BCa
    bootstrap covered 87% at 100 runs a side with excess kurtosis 1.5). Location: Welch's
    t with the CI of the mean difference, and P(a > b) (the Mann-Whitney U / (n_a n_b))
    with a bootstrap CI.
    paired=True: a[j] and b[j] come from one seed (n_a = n_b). Spread: the Pitman-Morgan
    test and the std ratio's BCa bootstrap over pairs. Location: `paired_difference` (BCa
    bootstrap over pairs, paired t) and P(a[j] > b[j]) with a bootstrap over pairs.
    Each sample's mean has a t interval and its std Bonett's interval.
    `n_excluded` and `n_unpaired` are only reported (see `compare_variance_by`).
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if not isinstance(paired, bool):
        raise ConfigError(f"{_WHERE}.paired", "True or False", paired)
    a = finite_values(a, "a", MIN_RUNS, _WHERE)
    b = finite_values(b, "b", MIN_RUNS, _WHERE)
    for name, values in (("a", a), ("b", b)):
        if np.ptp(values) == 0:
            raise InsufficientData(f"{_WHERE}.{name}: all values are equal; a spread needs "
                                   "variation")
    if paired and a.size != b.size:
        raise DataError(f"{_WHERE}: paired=True needs one value of a and of b per seed, got "
                        f"{a.size} and {b.size} values")
    boot: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    common: dict[str, Any] = {
        "names": (str(names[0]), str(names[1])),
        "a": a,
        "b": b,
        "n_excluded": (int(n_excluded[0]), int(n_excluded[1])),
        "mean_a": mean_interval(a, confidence),
        "mean_b": mean_interval(b, confidence),
        "std_a": std_interval(a, confidence),
        "std_b": std_interval(b, confidence),
        "std_ratio": (scipy_estimate((a, b), std_ratio, **boot, paired=True) if paired
                      else std_ratio_interval(a, b, confidence)),
        "alpha": alpha,
    }
    if paired:
        pitman_morgan = stats.pearsonr(a + b, a - b)
        difference = paired_difference(a, b, **boot)
        return CompareResult(
            **common,
            brown_forsythe=None,
            fligner=None,
            welch=None,
            mean_difference=difference.difference,
            p_superiority=scipy_estimate((a, b), _pair_wins, **boot, paired=True),
            paired=True,
            pitman_morgan=HypothesisTest("Pitman-Morgan", float(pitman_morgan.statistic),
                                         float(pitman_morgan.pvalue)),
            paired_t=difference.t_test,
            correlation=float(stats.pearsonr(a, b).statistic),
            n_unpaired=(int(n_unpaired[0]), int(n_unpaired[1])),
        )
    brown_forsythe = stats.levene(a, b, center="median")
    fligner = stats.fligner(a, b, center="median")
    welch = stats.ttest_ind(a, b, equal_var=False)
    welch_interval = welch.confidence_interval(confidence)
    return CompareResult(
        **common,
        brown_forsythe=HypothesisTest(
            "Brown-Forsythe", float(brown_forsythe.statistic), float(brown_forsythe.pvalue)
        ),
        fligner=HypothesisTest("Fligner-Killeen", float(fligner.statistic), float(fligner.pvalue)),
        welch=HypothesisTest("Welch t", float(welch.statistic), float(welch.pvalue)),
        mean_difference=Estimate(
            float(a.mean() - b.mean()), float(welch_interval.low), float(welch_interval.high),
            confidence
        ),
        p_superiority=scipy_estimate((a, b), _p_superiority, **boot),
    )


def compare_variance_by(
    trials: pd.DataFrame,
    by: str,
    a: object,
    b: object,
    metric: str = "test_acc",
    *,
    status_col: str | None = "status",
    paired: bool | None = None,
    pair_on: str = "seed",
    **options: Any,
) -> CompareResult:
    """`compare_variance` of the finished runs with `trials[by] == a` against `== b`.

    Diverged runs (`status_col` "diverged") are left out and counted per group; rows with
    another status than "ok" (unfinished trials) are ignored.
    paired: True pairs the runs of the two groups by `pair_on` (runs without a partner are
        left out and counted); False compares them as independent samples; None (the
        default) compares them unpaired when they share no `pair_on` value and is an error
        when they share some (`nnlab.analysis.paired.resolve_pairing`).
    `options` go to `compare_variance` (alpha, n_resamples, seed, confidence).
    """
    require_columns(trials, [by, metric], _WHERE)
    finished, excluded, _ = split_runs(trials, status_col)
    chosen, n_excluded = [], []
    for level in (a, b):
        rows = finished[finished[by] == level]
        if rows.empty:
            raise InsufficientData(
                f"{_WHERE}: no finished run with {by}={level!r}; "
                f"values present: {sorted(map(str, trials[by].unique()))}"
            )
        finite_column(rows, metric, _WHERE)
        chosen.append(rows)
        n_excluded.append(int((excluded[by] == level).sum()))
    names = (f"{by}={a}", f"{by}={b}")
    if pair_on not in trials.columns:
        if paired:
            raise DataError(f"{_WHERE}: paired=True, but there is no column {pair_on!r} to "
                            "pair the runs on")
        paired = False
    elif resolve_pairing(chosen[0][pair_on], chosen[1][pair_on], paired, pair_on, _WHERE):
        _, x, y, unpaired = align_pairs(*(rows.set_index(pair_on)[metric] for rows in chosen))
        return compare_variance(x, y, names=names, n_excluded=(n_excluded[0], n_excluded[1]),
                                paired=True, n_unpaired=unpaired, **options)
    return compare_variance(
        *(rows[metric].to_numpy(dtype=float) for rows in chosen), names=names,
        n_excluded=(n_excluded[0], n_excluded[1]), **options
    )


def _p_superiority(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(A > B) + P(A = B) / 2 from mid-ranks of the pooled samples, along `axis`."""
    n_a, n_b = a.shape[axis], b.shape[axis]
    ranks = stats.rankdata(np.concatenate([a, b], axis=axis), axis=axis)
    rank_sum = np.take(ranks, np.arange(n_a), axis=axis).sum(axis=axis)
    return (rank_sum - n_a * (n_a + 1) / 2) / (n_a * n_b)


def _pair_wins(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Share of pairs with a > b, ties counting half, along `axis`."""
    return np.mean((a > b) + 0.5 * (a == b), axis=axis)
