"""Two arms of a study compared by a fitted quantity: the variance floor, or eta_best.

The bootstraps of `variance_vs_n` and `eta_best` resample seeds with one index array
drawn first from `numpy.random.default_rng(seed)` whenever every cell of an arm holds the
same seeds (`nnlab.analysis._bootstrap.resample_groups`). Two arms run on the same seeds,
restricted to the seeds both hold and analysed with the same `seed`, therefore draw the
same resampled seeds: each resample of the difference takes a seed's runs in both arms
together, as a paired design needs. Unpaired arms are resampled independently (seeds
`seed` and `seed + 1`). Pairing follows `nnlab.analysis.paired.resolve_pairing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import Estimate, end_mc_error, estimate, interval
from nnlab.analysis._checks import require_columns
from nnlab.analysis.learning_rate import eta_best
from nnlab.analysis.paired import resolve_pairing
from nnlab.analysis.variance import variance_vs_n
from nnlab.errors import ConfigError, DataError, InsufficientData


@dataclass(frozen=True)
class ArmDifference:
    """A fitted quantity in arm a against arm b.

    a, b: each arm's estimate with its own interval; difference: a - b, its interval from
    the two bootstraps (paired: the same resampled seeds in both arms); n_seeds: seeds per
    arm used; unit: what the bootstrap resamples.
    """

    quantity: str
    names: tuple[str, str]
    a: Estimate
    b: Estimate
    difference: Estimate
    paired: bool
    n_seeds: tuple[int, int]

    @property
    def unit(self) -> str:
        return "seed (pairs: both arms together)" if self.paired else "seed (each arm alone)"

    def summary(self) -> str:
        design = f"paired by seed, {self.n_seeds[0]} seeds" if self.paired else (
            f"independent arms, {self.n_seeds[0]} and {self.n_seeds[1]} seeds")
        return (f"{self.quantity}: {self.names[0]} {self.a.format('.3g')} vs {self.names[1]} "
                f"{self.b.format('.3g')}; difference {self.difference.format('.3g')} "
                f"({design}; bootstrap over {self.unit})")

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "names": list(self.names), "a": self.a.to_dict(),
                "b": self.b.to_dict(), "difference": self.difference.to_dict(),
                "paired": self.paired, "unit": self.unit, "n_seeds": list(self.n_seeds)}


@dataclass(frozen=True)
class EtaBestRatio:
    """eta_best of arm a over arm b at each training length both arms hold.

    table: one row per N: `n_col`, ratio, low, high (interval of the ratio from the two
    bootstraps of log eta_best; paired: the same resampled seeds in both arms), mc_error
    (the Monte Carlo error of low and high, `end_mc_error`).
    """

    table: pd.DataFrame
    names: tuple[str, str]
    n_col: str
    paired: bool
    n_seeds: tuple[int, int]
    confidence: float

    def summary(self) -> str:
        design = "paired by seed" if self.paired else "independent arms"
        rows = "; ".join(f"{self.n_col}={r[self.n_col]:g}: {r['ratio']:.3g} "
                         f"[{r['low']:.3g}, {r['high']:.3g}]"
                         for r in self.table.to_dict("records"))
        return (f"eta_best {self.names[0]} / {self.names[1]} ({design}, "
                f"{self.n_seeds[0]}/{self.n_seeds[1]} seeds, {100 * self.confidence:g}% CIs "
                f"by bootstrap over seeds): {rows}")

    def to_dict(self) -> dict:
        return {"names": list(self.names), "n_col": self.n_col, "paired": self.paired,
                "n_seeds": list(self.n_seeds), "confidence": self.confidence,
                "table": self.table.to_dict(orient="records")}


def floor_difference(
    trials_a: pd.DataFrame,
    trials_b: pd.DataFrame,
    n_col: str = "n_steps",
    metric: str = "test_acc",
    *,
    paired: bool | None = None,
    pair_on: str = "seed",
    names: tuple[str, str] = ("a", "b"),
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    **fit: Any,
) -> ArmDifference:
    """The variance floor c of var(N) = c + a N^-b (`variance_vs_n`) in arm a minus arm b.

    trials_a, trials_b: one row per run and N, as `variance_vs_n` takes them. paired: as in
    `compare_variance_by` (True: pair the arms' seeds, keeping the seeds both hold; every N
    of each arm must then hold all of them). `fit` goes to `variance_vs_n` (fit_from,
    exponent_range, status_col).
    """
    where = "floor_difference"
    arms, paired = _arms(trials_a, trials_b, [n_col, metric], paired, pair_on, where)
    shared: dict[str, Any] = {"seed_col": pair_on, "n_resamples": n_resamples,
                              "confidence": confidence}
    fits = [variance_vs_n(arm, n_col, metric, seed=seed + (0 if paired else k), **shared,
                          **fit) for k, arm in enumerate(arms)]
    if paired:
        _check_joint(fits, "seeds, shared across N", where, n_col)
    fit_a, fit_b = (f.fit for f in fits)
    if fit_a is None or fit_b is None:
        raise ConfigError(f"{where}.fit", "True (the floor is the fit's)", False)
    difference = estimate(fit_a.floor.value - fit_b.floor.value,
                          fit_a.boot[:, 0] - fit_b.boot[:, 0], confidence)
    return ArmDifference("variance floor", (str(names[0]), str(names[1])), fit_a.floor,
                         fit_b.floor, difference, paired, _n_seeds(arms, pair_on))


def eta_best_ratio(
    trials_a: pd.DataFrame,
    trials_b: pd.DataFrame,
    n_col: str = "n_steps",
    eta_col: str = "eta",
    metric: str = "val_acc",
    *,
    paired: bool | None = None,
    pair_on: str = "seed",
    names: tuple[str, str] = ("a", "b"),
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    **options: Any,
) -> EtaBestRatio:
    """eta_best in arm a over arm b (`eta_best`), at each N both arms hold.

    paired: as in `floor_difference` (True: every (N, eta) cell of each arm must hold all
    the shared seeds). `options` go to `eta_best` (maximize, window, status_col).
    """
    where = "eta_best_ratio"
    arms, paired = _arms(trials_a, trials_b, [n_col, eta_col, metric], paired, pair_on, where)
    results = [eta_best(arm, n_col, eta_col, metric, seed_col=pair_on,
                        seed=seed + (0 if paired else k), n_resamples=n_resamples,
                        confidence=confidence, **options) for k, arm in enumerate(arms)]
    if paired:
        _check_joint(results, "seeds, shared across cells", where, f"({n_col}, {eta_col})")
    a, b = (r.table[n_col].to_numpy() for r in results)
    common = np.intersect1d(a, b)
    if common.size == 0:
        raise InsufficientData(f"{where}: the two arms hold no value of {n_col!r} in common")
    log_a, log_b = (np.log(r.table["eta_best"].to_numpy()[np.isin(n, common)])
                    for r, n in zip(results, (a, b), strict=True))
    boot = (results[0].boot_log_eta[:, np.isin(a, common)]
            - results[1].boot_log_eta[:, np.isin(b, common)])
    low, high = interval(boot, confidence)
    mc_error = [end_mc_error(np.exp(boot[:, j]), np.exp([low[j], high[j]]))
                for j in range(common.size)]
    table = pd.DataFrame({n_col: common, "ratio": np.exp(log_a - log_b), "low": np.exp(low),
                          "high": np.exp(high), "mc_error": mc_error})
    return EtaBestRatio(table, (str(names[0]), str(names[1])), n_col, paired,
                        _n_seeds(arms, pair_on), confidence)


def _arms(trials_a: pd.DataFrame, trials_b: pd.DataFrame, columns: list[str],
          paired: bool | None, pair_on: str, where: str) -> tuple[list[pd.DataFrame], bool]:
    """([arm a, arm b], paired): with paired, each arm kept to the seeds both hold."""
    for trials in (trials_a, trials_b):
        require_columns(trials, [*columns, pair_on], where)
    seeds = [pd.Series(t[pair_on].unique()) for t in (trials_a, trials_b)]
    if not resolve_pairing(seeds[0], seeds[1], paired, pair_on, where):
        return [trials_a, trials_b], False
    shared = set(seeds[0]) & set(seeds[1])
    return [t[t[pair_on].isin(shared)] for t in (trials_a, trials_b)], True


def _check_joint(results: list, resampling: str, where: str, cells: str) -> None:
    """Both arms resampled their seeds jointly across cells (else they cannot pair):
    their `resampling` texts start with `resampling` (eta_best's may add ", widened by
    t/z")."""
    if any(not r.resampling.startswith(resampling) for r in results):
        raise DataError(f"{where}: paired=True needs every {cells} of both arms to hold the "
                        "same seeds (a diverged or missing run breaks that); compare the "
                        "arms unpaired (paired=False)")


def _n_seeds(arms: list[pd.DataFrame], pair_on: str) -> tuple[int, int]:
    return int(arms[0][pair_on].nunique()), int(arms[1][pair_on].nunique())
