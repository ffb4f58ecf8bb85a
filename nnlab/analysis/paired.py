"""Arms that share seeds: how runs pair up, and the paired difference of their means.

Two groups of runs share a seed when the same seed gave them the same initial weights and
data order (noise arms against the noise-free restarts of the same seeds, batch sizes
against each other): their results are then correlated, and a comparison that treats the
groups as independent samples gets its intervals and p-values wrong. Pairing is always
an explicit choice (`paired=`), on a column `pair_on` (e.g. "seed"): `resolve_pairing`
refuses to guess when the groups share seed values, and refuses pairing when they share
none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, scipy_estimate
from nnlab.analysis._checks import check_resampling, finite_values
from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import ConfigError, DataError

_WHERE = "paired_difference"
MIN_PAIRS = 3


def resolve_pairing(keys_a: pd.Series, keys_b: pd.Series, paired: bool | None, pair_on: str,
                    where: str) -> bool:
    """Whether two groups are compared paired, given the `pair_on` values of their runs.

    paired=None decides only when the groups share no value (then unpaired); when they
    share some it is an error asking for paired=True (pair the runs by `pair_on`) or
    paired=False (the shared values mean nothing, e.g. other streams vary with the seed).
    paired=True needs shared values and no value twice within a group.
    """
    if paired is not None and not isinstance(paired, bool):
        raise ConfigError(f"{where}.paired", "True, False or None", paired)
    shared = set(keys_a) & set(keys_b)
    if paired is None and shared:
        raise ConfigError(
            f"{where}.paired", f"paired=True to compare them {pair_on} by {pair_on}, or "
            "paired=False if the shared values mean nothing", problem=f"the two groups share "
            f"{len(shared)} values of {pair_on!r} (runs with the same seed start alike, so "
            "they are not independent)")
    if not paired:
        return False
    if not shared:
        raise DataError(f"{where}: paired=True, but the two groups share no value of "
                        f"{pair_on!r}; compare them unpaired (paired=False)")
    for name, keys in (("a", keys_a), ("b", keys_b)):
        if keys.duplicated().any():
            raise DataError(
                f"{where}.{name}: {pair_on}={keys[keys.duplicated()].iloc[0]} appears twice; "
                f"pairing needs one run per {pair_on} in each group")
    return True


def align_pairs(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                      tuple[int, int]]:
    """(keys, a, b, (unpaired in a, unpaired in b)) for two Series indexed by the pairing
    key: the values of the keys both hold, in key order, and how many each holds alone."""
    keys = a.index.intersection(b.index).sort_values()
    return (keys.to_numpy(), a.loc[keys].to_numpy(dtype=float), b.loc[keys].to_numpy(dtype=float),
            (len(a) - len(keys), len(b) - len(keys)))


def as_pairs(a: object, b: object, where: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(a, b, (unpaired in a, unpaired in b)) as two aligned float arrays of >= MIN_PAIRS
    pairs: two Series are aligned on their index (the pairing key), keys held by one only
    left out and counted; two sequences of equal length are aligned by position. A NaN
    drops its pair."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        _, x, y, unpaired = align_pairs(a.dropna(), b.dropna())
    else:
        x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if x.shape != y.shape or x.ndim != 1:
            raise ConfigError(f"{where}.a, b", "two Series indexed by the pairing key or two "
                              "1-D sequences of equal length", shown=f"shapes {x.shape} and "
                              f"{y.shape}")
        keep = ~(np.isnan(x) | np.isnan(y))
        x, y, unpaired = x[keep], y[keep], (0, 0)
    finite_values(x, "a", MIN_PAIRS, where)
    finite_values(y, "b", MIN_PAIRS, where)
    return x, y, unpaired


@dataclass(frozen=True)
class PairedDifference:
    """Mean over pairs of a - b (e.g. two arms run on the same seeds).

    difference: the mean difference with a BCa bootstrap interval over pairs;
    t_test: the paired t-test of mean difference 0 (scipy.stats.ttest_rel);
    wins / ties: pairs with a > b / a == b; n_unpaired: values of a and of b without a
    partner (left out); unit: what a pair is (its key, e.g. "seed").
    """

    names: tuple[str, str]
    differences: np.ndarray = field(repr=False)
    difference: Estimate
    t_test: HypothesisTest
    wins: int
    ties: int
    n_unpaired: tuple[int, int]
    unit: str

    @property
    def n_pairs(self) -> int:
        return int(self.differences.size)

    def summary(self) -> str:
        name_a, name_b = self.names
        left_out = (f", {self.n_unpaired[0]} + {self.n_unpaired[1]} without a partner left "
                    "out" if any(self.n_unpaired) else "")
        return (f"{name_a} - {name_b}, paired by {self.unit} ({self.n_pairs} pairs{left_out}): "
                f"mean {self.difference} (BCa bootstrap over pairs; paired t "
                f"{self.t_test.p_text}); {name_a} higher in {self.wins}, equal in "
                f"{self.ties}")

    def to_dict(self) -> dict:
        return {"names": list(self.names), "unit": self.unit, "n_pairs": self.n_pairs,
                "n_unpaired": list(self.n_unpaired), "difference": self.difference.to_dict(),
                "t_test": self.t_test.to_dict(), "wins": self.wins, "ties": self.ties}


def paired_difference(
    a: object,
    b: object,
    *,
    names: tuple[str, str] = ("a", "b"),
    unit: str = "seed",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Mean of a - b over pairs, with a BCa bootstrap interval over pairs (Efron & Tibshirani
    1993, ch. 14; scipy.stats.bootstrap, paired) and the paired t-test.

    a, b: pandas Series indexed by the pairing key (e.g. each seed's result in two arms):
        pairs are the keys both hold, the others left out and counted; or two sequences of
        equal length, element j of each from the same pair. NaN values drop their pair.
    unit: the name of what a pair is, for the text ("seed").
    """
    check_resampling(n_resamples, confidence, _WHERE)
    x, y, unpaired = as_pairs(a, b, _WHERE)
    differences = x - y
    t_test = stats.ttest_rel(x, y)
    return PairedDifference(
        names=(str(names[0]), str(names[1])),
        differences=differences,
        difference=scipy_estimate((differences,), np.mean, n_resamples, seed, confidence),
        t_test=HypothesisTest("paired t", float(t_test.statistic), float(t_test.pvalue)),
        wins=int(np.count_nonzero(differences > 0)),
        ties=int(np.count_nonzero(differences == 0)),
        n_unpaired=unpaired,
        unit=unit,
    )
