"""Mean and spread of restarts as training grows: var(N) = floor + scale * N^-exponent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis._bootstrap import (
    few_seeds_warning,
    metric_bounds,
    order_by_seed,
    resample_groups,
    sample_std,
)
from nnlab.analysis._checks import (
    check_resampling,
    finite_column,
    require_columns,
    split_runs,
)
from nnlab.analysis.floor import (
    FloorFit,
    ProfileFloorFit,
    check_floor_options,
    fit_floor,
    scale_df,
)
from nnlab.analysis.intervals import mean_interval, std_interval
from nnlab.errors import ConfigError, DataError, InsufficientData, is_number

_WHERE = "variance_vs_n"
MIN_N_VALUES_FOR_FIT = 4


@dataclass(frozen=True)
class VarianceVsNResult:
    """Mean and standard deviation of `metric` over restarts, per training length N.

    table: one row per N: `n_col`, n_runs, n_excluded (diverged runs left out),
        mean, mean_low, mean_high, std, std_low, std_high.
    fit: the variance floor fit (None when not requested).
    """

    table: pd.DataFrame
    fit: FloorFit | None
    n_unfinished: int
    n_col: str
    metric: str
    resampling: str
    confidence: float
    n_resamples: int

    def summary(self) -> str:
        level = f"{100 * self.confidence:g}%"
        lines = [
            f"{self.metric} over restarts per {self.n_col} ({level} CIs over seeds: the "
            "mean's Student's t, the std's Bonett's, with the seeds' kurtosis; the fit's by "
            f"bootstrap of {self.resampling}, {self.n_resamples} resamples):"
        ]
        if self.n_unfinished:
            lines.append(f"  ({self.n_unfinished} unfinished trials ignored)")
        lines.append(few_seeds_warning(int(self.table["n_runs"].min())))
        for row in self.table.to_dict("records"):
            lines.append(
                f"  {self.n_col}={row[self.n_col]:g}: n={row['n_runs']} "
                f"({row['n_excluded']} excluded), mean {row['mean']:.4g} "
                f"[{row['mean_low']:.4g}, {row['mean_high']:.4g}], std {row['std']:.3g} "
                f"[{row['std_low']:.3g}, {row['std_high']:.3g}]"
            )
        if self.fit is not None:
            fit = self.fit
            runs = self.table["n_runs"].iloc[fit.n_left_out:]
            seeds = (f"{runs.min()}" if runs.min() == runs.max() else
                     f"{runs.min()}..{runs.max()}")
            lines.append(
                f"var(N) = c + a N^-b{fit.range_text(self.n_col)} ({fit.n_lengths} lengths, "
                f"{seeds} seeds each; unit seed): "
                f"floor c = {fit.floor}, b = {fit.exponent.format('.2f')}"
                + (f" (exploratory: {fit.n_lengths} lengths for 3 parameters)"
                   if fit.exploratory else "")
            )
            if fit.exponent_at_bound:
                lines.append(
                    f"  b's interval reaches its bound {fit.exponent_max:g}: too few seeds "
                    "to pin b, or over some N the variance falls faster than the model "
                    "follows (an early transient), which biases the floor; compare a fit "
                    "from a later N (fit_from)."
                )
            if isinstance(fit, ProfileFloorFit):
                kurtosis = ("" if fit.kurtosis is None else
                            f" (excess kurtosis {min(fit.kurtosis):.2f}..{max(fit.kurtosis):.2f}"
                            " over the fitted N)")
                lines.append(
                    f"  floor interval: profile likelihood ratio, valid at c = 0 (Self & Liang "
                    f"mixture: p(no floor) = {fit.p_zero:.2g}); {fit.weights} weights"
                    f"{kurtosis}; LR scaled by {fit.lr_scale:.2f} for the seeds shared "
                    f"across N and the tails, F(1, {fit.lr_scale_df:.0f}) for that scale's "
                    "own noise")
            if isinstance(fit, ProfileFloorFit) and fit.plateau:
                lines.append(f"  Plateau: the fit does not separate a floor from a slow "
                             f"decline ({fit.plateau_reason}); the variance levels off, but "
                             f"whether it stays (floor c = {fit.floor}) or keeps falling "
                             "slowly is not told by these lengths.")
            elif fit.floor_excludes_zero:
                lines.append(
                    f"  The floor's interval excludes 0: the variance tends to a constant "
                    f"(std floor {math.sqrt(fit.floor.value):.3g}); runs settle in different "
                    "solutions."
                )
            else:
                bound = math.sqrt(max(fit.floor.high, 0.0))
                lines.append(
                    "  The floor's interval includes 0: consistent with the variance going to "
                    f"zero; a floor above std {bound:.3g} is ruled out."
                )
        return "\n".join(line for line in lines if line)

    def to_dict(self) -> dict:
        return {
            "n_col": self.n_col,
            "metric": self.metric,
            "resampling": self.resampling,
            "confidence": self.confidence,
            "n_resamples": self.n_resamples,
            "table": self.table.to_dict(orient="records"),
            "fit": self.fit.to_dict() if self.fit else None,
            "n_unfinished": self.n_unfinished,
        }


def variance_vs_n(
    trials: pd.DataFrame,
    n_col: str = "n_steps",
    metric: str = "test_acc",
    *,
    seed_col: str | None = "seed",
    status_col: str | None = "status",
    fit: bool = True,
    exponent_range: tuple[float, float] = (0.1, 3.0),
    fit_from: float | None = None,
    weights: str = "normal",
    floor_interval: str = "bootstrap",
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> VarianceVsNResult:
    """Mean and std of `metric` per N with CIs, and the variance floor.

    trials: one row per run of one configuration at several N (`n_col`); restarts differ by
        `seed_col`. Diverged runs (`status_col` "diverged") are left out and counted: their
        metric measures the divergence, not the spread of trained networks. Rows with any
        other status than "ok" (unfinished trials) are ignored.
    fit: fit var(N) = c + a N^-b (b within `exponent_range`, c, a >= 0) by least squares
        weighted by the inverse sampling variance of each N's variance, 2 var^2 / (m - 1),
        with var from a first fit; the floor c's CI decides "to zero" (includes 0) against
        "to a constant" (excludes 0). Needs at least 4 values of N (>= fit_from).
    fit_from: fit only N >= fit_from (the table keeps every N): an early transient, such as
        runs that take off late, falls faster than any power law in `exponent_range`, and
        a fit that includes it biases the floor (`FloorFit.exponent_at_bound` flags it).
    weights: the sampling variance of each N's variance the fit weights by (nnlab.analysis.
        floor): "normal" (normal theory), "kurtosis" (with each N's excess kurtosis; needs
        >= 4 seeds per N) or "bootstrap".
    floor_interval: "bootstrap" (percentile interval of refits, `FloorFit`) or "profile"
        (profile likelihood ratio valid at the boundary c = 0, with the p-value of "no floor"
        and the plateau flag, `ProfileFloorFit`).
    Per N, the mean's CI is Student's t and the std's Bonett's (2006,
    `nnlab.analysis.intervals`), which carries the runs' kurtosis: percentile bootstrap
    intervals covered 91.5% (mean) and 79-83% (std) at 10 seeds per N (docs/analysis.md).
    Bootstrap (the fit): seeds are resampled jointly across N when every N holds the same
    seeds, within each N otherwise.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    check_floor_options(weights, floor_interval, _WHERE)
    if fit_from is not None and not is_number(fit_from):
        raise ConfigError(f"{_WHERE}.fit_from", "a number (the shortest N to fit) or None",
                          fit_from)
    require_columns(trials, [n_col, metric], _WHERE)
    finished, excluded, n_unfinished = split_runs(trials, status_col)
    finite_column(finished, metric, _WHERE)
    if np.any(finite_column(finished, n_col, _WHERE) <= 0):
        raise DataError(f"{_WHERE}: column {n_col!r} must be positive")
    paired, finished = order_by_seed(finished, [n_col], seed_col)
    groups: dict[Any, np.ndarray] = {n: g[metric].to_numpy(dtype=float)
                                     for n, g in finished.groupby(n_col, sort=True)}
    for n, values in groups.items():
        if values.size < 2:
            raise InsufficientData(
                f"{_WHERE}: {n_col}={n:g} has {values.size} finished run; a variance needs at "
                "least 2 seeds"
            )
    ns = np.array(list(groups), dtype=float)
    start = 0 if fit_from is None else int(np.searchsorted(ns, fit_from))
    if fit and ns.size - start < MIN_N_VALUES_FOR_FIT:
        raise InsufficientData(
            f"{_WHERE}: the floor fit needs at least {MIN_N_VALUES_FOR_FIT} values of "
            f"{n_col!r}" + ("" if fit_from is None else f" >= fit_from={fit_from:g}")
            + f", got {ns.size - start} (pass fit=False for the table only)"
        )

    rng = np.random.default_rng(seed)
    resamples = resample_groups(list(groups.values()), n_resamples, rng, paired)
    boot_var = np.column_stack([sample_std(r, axis=1) for r in resamples]) ** 2
    # per N, closed-form intervals: the percentile bootstrap of the std covered 79-83% at
    # 10 seeds (0.905 at 100 with t_5 runs), of the mean 91.5%; Bonett's and Student's t
    bounds = metric_bounds(metric)
    means = [mean_interval(v, confidence, bounds) for v in groups.values()]
    spreads = [std_interval(v, confidence) for v in groups.values()]
    n_excluded = excluded[n_col].value_counts() if len(excluded) else pd.Series(dtype=int)
    table = pd.DataFrame(
        {
            n_col: ns,
            "n_runs": [v.size for v in groups.values()],
            "n_excluded": [int(n_excluded.get(n, 0)) for n in groups],
            "mean": [e.value for e in means],
            "mean_low": [e.low for e in means],
            "mean_high": [e.high for e in means],
            "std": [float(sample_std(v)) for v in groups.values()],
            "std_low": [e.low for e in spreads],
            "std_high": [e.high for e in spreads],
        }
    )

    floor_fit = None
    if fit:
        variance = table["std"].to_numpy() ** 2
        if np.any(variance == 0):
            raise InsufficientData(f"{_WHERE}: {metric!r} is constant at some {n_col}; nothing "
                                   "to fit")
        per_length = list(groups.values())
        kurtosis = _kurtosis(per_length) if weights == "kurtosis" else None
        df = scale_df(per_length[start:]) if floor_interval == "profile" else None
        floor_fit = fit_floor(ns, variance, table["n_runs"].to_numpy(), boot_var, start,
                              exponent_range, confidence, weights, floor_interval, kurtosis,
                              df)
    return VarianceVsNResult(
        table=table,
        fit=floor_fit,
        n_unfinished=n_unfinished,
        n_col=n_col,
        metric=metric,
        resampling="seeds, shared across N" if paired else "seeds within each N",
        confidence=confidence,
        n_resamples=n_resamples,
    )


def _kurtosis(groups: list[np.ndarray]) -> np.ndarray:
    """(k,) the unbiased sample excess kurtosis (G2) of each group."""
    if min(g.size for g in groups) < 4:
        raise InsufficientData(f"{_WHERE}.weights: 'kurtosis' needs at least 4 seeds per length, "
                               f"got {min(g.size for g in groups)}")
    return np.array([stats.kurtosis(g, bias=False) for g in groups])
