"""Take-off: the step at which a run's accuracy leaves the chance plateau, per learning rate,
and how that step scales with the learning rate.

A run takes off where its validation accuracy first reaches the threshold half way from
chance to the best final accuracy of the runs compared (`takeoff_threshold`), interpolated
linearly in log step between the two evaluations around it (`takeoff_step`). Per learning
rate the take-off step is summarised by its geometric mean over seeds with a t interval
(the steps are log-spaced), and where it falls as a power of eta, by the power law
step = a * eta^-k fitted to the runs (`fit_power_law`, CI by bootstrap over runs). The
critical learning rate is the smallest from which on every run takes off within its
budget: where the power law holds it is a matter of the budget N, eta = (a / N)^(1/k).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._checks import require_columns
from nnlab.analysis.power_law import PowerLawFit, fit_power_law
from nnlab.errors import ConfigError, InsufficientData

_WHERE = "takeoff"
SCALING_CLEARANCE = 3.0
"""The take-off power law is fitted where take-off comes at least this many times later
than the fastest: near the fastest, larger steps stop shortening it (seed-000's net at
batch 100: eta * step ~36 from eta 0.003 to 0.1, 40 at 0.3, 48 at 1, 114 at 3)."""


@dataclass(frozen=True)
class TakeoffResult:
    """When the runs of each learning rate take off.

    threshold, chance: the accuracy a run must reach, and chance (1 / n_classes).
    runs: one row per run: `eta_col`, trial, step (the take-off step; NaN: never within its
        budget), first_eval (its first evaluation after step 0), early (took off by then:
        its step is only an upper bound).
    table: one row per learning rate: `eta_col`, mean, low, high (geometric mean of the
        take-off steps over the runs that take off, `confidence` t interval in log step),
        n, n_never, n_early, first_eval (the latest first evaluation of its runs).
    critical_eta: the smallest learning rate above every one with a run that never takes
        off; None when no run stays at chance (the critical one is at or below the grid's
        smallest) or when the largest learning rate has such a run (none in the grid).
    scaling: the power law step = a * eta^-k over the learning rates where every run takes
        off after its first evaluation, below the fastest take-off and at least
        SCALING_CLEARANCE times later than it (None: fewer than 3 such learning rates).
    """

    threshold: float
    chance: float
    runs: pd.DataFrame
    table: pd.DataFrame
    critical_eta: float | None
    scaling: PowerLawFit | None
    eta_col: str
    confidence: float

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "chance": self.chance,
                "critical_eta": self.critical_eta,
                "takeoff": self.table.to_dict(orient="records"),
                "scaling": None if self.scaling is None else self.scaling.to_dict(),
                "confidence": self.confidence}


def takeoff_step(steps: np.ndarray, val_acc: np.ndarray, threshold: float) -> float:
    """The step (float) at which val_acc first reaches `threshold`, linear in log step
    between the evaluations around it (the earlier one's step when it is step 0); NaN if it
    never does. steps, val_acc: (n_evals,), steps increasing."""
    reached = np.flatnonzero(val_acc >= threshold)
    if not reached.size:
        return np.nan
    i = reached[0]
    if i == 0 or steps[i - 1] <= 0:
        return float(steps[i])
    share = (threshold - val_acc[i - 1]) / (val_acc[i] - val_acc[i - 1])
    log_before, log_after = np.log(steps[i - 1]), np.log(steps[i])
    return float(np.exp(log_before + share * (log_after - log_before)))


def takeoff_threshold(best: float, n_classes: int) -> float:
    """Half way from chance (1 / n_classes) to the best final accuracy `best`."""
    if not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise ConfigError(f"{_WHERE}.n_classes", "an integer >= 2", n_classes)
    chance = 1 / n_classes
    return chance + 0.5 * (best - chance)


def takeoff(
    curves: pd.DataFrame,
    n_classes: int,
    eta_col: str = "eta",
    metric: str = "val_acc",
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> TakeoffResult:
    """The take-off of every run in `curves`, per learning rate, and its power law in eta.

    curves: one row per (run, evaluation): `eta_col`, trial, step, `metric`; each run's
        last evaluation is its final accuracy, and the threshold is half way from chance to
        the best of them. n_resamples, seed: the bootstrap over runs of the power law.
    """
    require_columns(curves, [eta_col, "trial", "step", metric], _WHERE)
    if curves.empty:
        raise InsufficientData(f"{_WHERE}: no curve rows")
    final = curves.loc[curves.groupby("trial")["step"].idxmax()]
    threshold = takeoff_threshold(float(final[metric].max()), n_classes)
    runs = pd.DataFrame([
        {eta_col: eta, "trial": trial,
         "step": takeoff_step(run["step"].to_numpy(), run[metric].to_numpy(), threshold),
         "first_eval": run.loc[run["step"] > 0, "step"].min()}
        for (eta, trial), run in curves.sort_values("step").groupby([eta_col, "trial"])])
    runs["early"] = runs["step"] == runs["first_eval"]  # took off by the first evaluation
    table = pd.DataFrame([
        {eta_col: eta, **_geometric_mean(group["step"].dropna().to_numpy(), confidence),
         "n": len(group), "n_never": int(group["step"].isna().sum()),
         "n_early": int(group["early"].sum()), "first_eval": float(group["first_eval"].max())}
        for eta, group in runs.groupby(eta_col)])
    stuck = table.loc[table["n_never"] > 0, eta_col]
    above = table.loc[table[eta_col] > (stuck.max() if len(stuck) else np.inf), eta_col]
    return TakeoffResult(
        threshold=threshold, chance=1 / n_classes, runs=runs, table=table,
        critical_eta=float(above.min()) if len(above) else None,
        scaling=_scaling(runs, table, eta_col, n_resamples, seed, confidence),
        eta_col=eta_col, confidence=confidence)


def _geometric_mean(steps: np.ndarray, confidence: float) -> dict[str, float]:
    """mean, low, high: the geometric mean of `steps` (n,) with the t interval of the mean
    of log10 steps (NaN bounds for fewer than 2 steps, all NaN for none)."""
    if not steps.size:
        return {"mean": np.nan, "low": np.nan, "high": np.nan}
    log = np.log10(steps.astype(float))
    mean = float(log.mean())
    if log.size < 2:
        return {"mean": 10**mean, "low": np.nan, "high": np.nan}
    half = stats.t.ppf(0.5 + confidence / 2, log.size - 1) * stats.sem(log)
    return {"mean": 10**mean, "low": 10 ** (mean - half), "high": 10 ** (mean + half)}


def _scaling(runs: pd.DataFrame, table: pd.DataFrame, eta_col: str, n_resamples: int,
             seed: int, confidence: float) -> PowerLawFit | None:
    """The power law step = a * eta^-k fitted to the runs' take-off steps over the learning
    rates below the fastest take-off where every run takes off after its first evaluation
    and the take-off step (geometric mean) is at least SCALING_CLEARANCE times the fastest;
    None when fewer than 3 learning rates qualify."""
    falling = table[(table["n_never"] == 0) & (table["n_early"] == 0)].sort_values(eta_col)
    if len(falling) < 3:
        return None
    fastest = int(np.argmin(falling["mean"].to_numpy()))
    falling = falling.iloc[:fastest]
    falling = falling[falling["mean"] >= SCALING_CLEARANCE * table["mean"].min()]
    if len(falling) < 3:
        return None
    used = runs[runs[eta_col].isin(falling[eta_col]) & (runs["step"] > 0)]
    return fit_power_law(used[eta_col].to_numpy(), used["step"].to_numpy(),
                         n_resamples=n_resamples, seed=seed, confidence=confidence)

