"""The gradient noise scale along training and the batch ratios of the best learning rate it
predicts (McCandlish et al. 2018, 'An Empirical Model of Large-Batch Training').

Runs that record the noise scale's parts (TrainConfig.noise_scale_examples: the curve's
grad_sq = |G|^2 and noise_trace = tr(Sigma)) give B_simple = noise_trace / grad_sq at each
evaluation. Runs of several constant learning rates are compared at one learning-rate time
T = eta x step: each run's log B_simple is interpolated linearly in log step at step = T /
eta, averaged over the learning rates (a geometric mean), and its interval comes from a
bootstrap over seeds (every learning rate's run of a resampled seed comes along), widened by
t_(n-1) / z for the few seeds.

The model's best step for batch B, eta_opt(B) = eta_max / (1 + B_noise / B), gives the
ratio to batch `reference`'s at one state of training, `batch_ratio`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnlab.analysis.power_law import t_over_z
from nnlab.errors import ConfigError, InsufficientData

COLUMNS = ("eta", "seed", "step", "grad_sq", "noise_trace")


def batch_ratio(b_noise: float | np.ndarray, batch: float, reference: float = 100.0
                ) -> float | np.ndarray:
    """eta_opt(batch) / eta_opt(reference) = (batch / reference) (B_noise + reference) /
    (B_noise + batch): 1 for B_noise << both, batch / reference (linear scaling) for
    B_noise >> both."""
    return (batch / reference) * (b_noise + reference) / (b_noise + batch)


def log_b_simple(curves: pd.DataFrame) -> pd.DataFrame:
    """`curves` (COLUMNS, one row per evaluation) with log_b = log(noise_trace / grad_sq),
    the steps > 0 only; ConfigError naming a missing column."""
    missing = [c for c in COLUMNS if c not in curves]
    if missing:
        raise ConfigError("curves", f"columns {', '.join(COLUMNS)} (a study run with "
                          "noise_scale_examples > 0)", problem=f"missing {missing}")
    kept = curves.loc[curves["step"] > 0, list(COLUMNS)]
    return kept.assign(log_b=np.log(kept["noise_trace"] / kept["grad_sq"]))


def at_time(runs: pd.DataFrame, time: float) -> pd.DataFrame:
    """Each run's log B_simple at learning-rate time `time` (step = time / eta), linear in
    log step between the two evaluations around it: (seeds, etas) table of log_b.
    InsufficientData when a run's evaluations do not bracket its step."""
    values = {}
    for (eta, seed), run in runs.groupby(["eta", "seed"]):
        eta = float(eta)  # type: ignore[arg-type]  # a group key of the float column
        steps = np.log(run["step"].to_numpy(dtype=float))
        at = np.log(time / eta)
        if not steps.min() <= at <= steps.max():
            raise InsufficientData(f"the run at eta = {eta:g}, seed {seed} is evaluated at "
                                   f"steps {run['step'].min()}..{run['step'].max()}, not "
                                   f"around step {time / eta:g} (T = {time:g})")
        values[(seed, eta)] = float(np.interp(at, steps, run["log_b"].to_numpy()))
    table = pd.Series(values).unstack()
    if table.isna().any().any():
        raise InsufficientData("not every seed has a run at every eta")
    return table


@dataclass(frozen=True)
class NoiseScaleAtTime:
    """B_simple at learning-rate time `time`: the geometric mean over the etas and seeds
    (value) with its 95% interval over seeds; boot_log: (n_resamples,) replicates of log
    value, already widened by t/z; per_eta: eta -> (value, low, high) the same way."""

    time: float
    value: float
    low: float
    high: float
    n_seeds: int
    etas: list[float]
    per_eta: dict[float, tuple[float, float, float]]
    boot_log: np.ndarray

    def to_dict(self) -> dict:
        return {"time": self.time, "value": self.value, "low": self.low, "high": self.high,
                "n_seeds": self.n_seeds, "etas": self.etas,
                "per_eta": [{"eta": eta, "value": v, "low": lo, "high": hi}
                            for eta, (v, lo, hi) in self.per_eta.items()]}


def seed_bootstrap(table: pd.DataFrame, n_resamples: int, seed: int, confidence: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means of `table` (seeds, columns) and their replicates (n_resamples, columns)
    from resampled seeds, widened about the means by t_(n-1) / z; with the interval bounds
    (2, columns)."""
    values = table.to_numpy()
    n = len(values)
    if n < 2:
        raise InsufficientData(f"{n} seed(s): an interval over seeds needs at least 2")
    rows = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    means = values.mean(axis=0)
    boot = means + t_over_z(n - 1, confidence) * (values[rows].mean(axis=1) - means)
    tail = 50 * (1 - confidence)
    return means, boot, np.percentile(boot, [tail, 100 - tail], axis=0)


def noise_scale_at(curves: pd.DataFrame, time: float, n_resamples: int = 2000,
                   seed: int = 0, confidence: float = 0.95) -> NoiseScaleAtTime:
    """B_simple at learning-rate time `time` from `curves` (COLUMNS), see the module
    docstring."""
    table = at_time(log_b_simple(curves), time)
    table["mean"] = table.mean(axis=1)
    means, boot, bounds = seed_bootstrap(table, n_resamples, seed, confidence)
    per_eta = {float(eta): (float(np.exp(means[i])), float(np.exp(bounds[0, i])),
                            float(np.exp(bounds[1, i])))
               for i, eta in enumerate(table.columns[:-1])}
    return NoiseScaleAtTime(time, float(np.exp(means[-1])), float(np.exp(bounds[0, -1])),
                            float(np.exp(bounds[1, -1])), len(table),
                            [float(e) for e in table.columns[:-1]], per_eta, boot[:, -1])


def along_training(curves: pd.DataFrame, n_resamples: int = 2000, seed: int = 0,
                   confidence: float = 0.95) -> pd.DataFrame:
    """B_simple at each evaluation of each eta: eta, step, time (eta x step), b_simple (the
    geometric mean over seeds), low, high (over seeds, widened by t/z), n_seeds."""
    runs = log_b_simple(curves)
    rows = []
    for eta, group in runs.groupby("eta"):
        table = group.pivot(index="seed", columns="step", values="log_b").dropna(axis=1)
        means, _, bounds = seed_bootstrap(table, n_resamples, seed, confidence)
        for i, step in enumerate(table.columns.to_numpy(dtype=int)):
            rows.append({"eta": float(eta), "step": int(step),  # type: ignore[arg-type]
                         "time": float(eta) * int(step),  # type: ignore[arg-type]
                         "b_simple": float(np.exp(means[i])),
                         "low": float(np.exp(bounds[0, i])), "high": float(np.exp(bounds[1, i])),
                         "n_seeds": len(table)})
    return pd.DataFrame(rows)
