"""Mean and spread of restarts as training grows: var(N) = floor + scale * N^-exponent."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import (
    Estimate,
    estimate,
    few_seeds_warning,
    interval,
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
from nnlab.errors import NNLabError, is_number

_WHERE = "variance_vs_n"
MIN_N_VALUES_FOR_FIT = 4


@dataclass(frozen=True)
class FloorFit:
    """var(N) = floor + scale * N^-exponent by weighted least squares, over N >= n_from.

    boot: (n_resamples, 3) bootstrap fits (floor, scale, exponent) behind the intervals.
    exponent_max: the largest exponent the fit may take; n_left_out: how many of the
    shortest N the fit leaves out (`variance_vs_n`'s fit_from).
    """

    floor: Estimate
    scale: Estimate
    exponent: Estimate
    boot: np.ndarray = field(repr=False)
    n_from: float
    exponent_max: float
    n_left_out: int

    def range_text(self, n_col: str) -> str:
        """'' when every N is fitted, else ' over n_steps >= 316'."""
        return f" over {n_col} >= {self.n_from:g}" if self.n_left_out else ""

    @property
    def exponent_at_bound(self) -> bool:
        """True when the exponent's interval reaches the largest value the fit allows: b is
        not pinned by the data (few seeds), or over some of the fitted N the variance falls
        faster than the model can follow (an early transient, such as runs taking off
        late), and the floor takes up what the power law cannot."""
        return self.exponent.high >= self.exponent_max

    @property
    def floor_excludes_zero(self) -> bool:
        """True when the floor's interval lies above 0: the variance tends to a constant."""
        return self.floor.low > 0

    def floor_difference(self, other: FloorFit) -> Estimate:
        """This floor minus `other`'s, for fits to two independent groups of runs (other
        seeds, or another setting), with the interval of the difference of their bootstrap
        floors; both fits need the same number of resamples and confidence."""
        if not isinstance(other, FloorFit):
            raise NNLabError(f"FloorFit.floor_difference: other: expected a FloorFit, got "
                             f"{type(other).__name__}")
        if (other.boot.shape != self.boot.shape
                or other.floor.confidence != self.floor.confidence):
            raise NNLabError(
                "FloorFit.floor_difference: other: expected a fit with the same resamples "
                f"and confidence ({len(self.boot)}, {self.floor.confidence:g}), got "
                f"({len(other.boot)}, {other.floor.confidence:g})")
        return estimate(self.floor.value - other.floor.value,
                        self.boot[:, 0] - other.boot[:, 0], self.floor.confidence)

    def predict(self, n: np.ndarray) -> np.ndarray:
        """Fitted variance at N (any shape)."""
        return self.floor.value + self.scale.value * np.asarray(n, dtype=float) ** (
            -self.exponent.value
        )

    def band(self, n: np.ndarray, confidence: float | None = None) -> tuple:
        """Pointwise bootstrap band (low, high) of the fitted variance at N (m,)."""
        n = np.asarray(n, dtype=float)
        floor, scale, exponent = (self.boot[:, i, None] for i in range(3))
        return interval(floor + scale * n**-exponent, confidence or self.floor.confidence)

    def to_dict(self) -> dict:
        return {
            "floor": self.floor.to_dict(),
            "scale": self.scale.to_dict(),
            "exponent": self.exponent.to_dict(),
            "floor_excludes_zero": self.floor_excludes_zero,
            "n_from": self.n_from,
            "n_left_out": self.n_left_out,
            "exponent_at_bound": self.exponent_at_bound,
        }


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
            f"{self.metric} over restarts per {self.n_col} ({level} CIs by bootstrap of "
            f"{self.resampling}, {self.n_resamples} resamples):"
        ]
        if self.n_unfinished:
            lines.append(f"  ({self.n_unfinished} unfinished trials ignored)")
        lines.append(few_seeds_warning(int(self.table["n_runs"].min())))
        for row in self.table.itertuples(index=False):
            row = row._asdict()
            lines.append(
                f"  {self.n_col}={row[self.n_col]:g}: n={row['n_runs']} "
                f"({row['n_excluded']} excluded), mean {row['mean']:.4g} "
                f"[{row['mean_low']:.4g}, {row['mean_high']:.4g}], std {row['std']:.3g} "
                f"[{row['std_low']:.3g}, {row['std_high']:.3g}]"
            )
        if self.fit is not None:
            fit = self.fit
            lines.append(
                f"var(N) = c + a N^-b{fit.range_text(self.n_col)}: floor c = {fit.floor}, "
                f"b = {fit.exponent.format('.2f')}"
            )
            if fit.exponent_at_bound:
                lines.append(
                    f"  b's interval reaches its bound {fit.exponent_max:g}: too few seeds "
                    "to pin b, or over some N the variance falls faster than the model "
                    "follows (an early transient), which biases the floor; compare a fit "
                    "from a later N (fit_from)."
                )
            if fit.floor_excludes_zero:
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
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> VarianceVsNResult:
    """Mean and std of `metric` per N with bootstrap CIs, and the variance floor.

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
    Bootstrap: seeds are resampled jointly across N when every N holds the same seeds,
    within each N otherwise.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if fit_from is not None and not is_number(fit_from):
        raise NNLabError(f"{_WHERE}: fit_from: expected a number (the shortest N to fit) or "
                         f"None, got {fit_from!r}")
    require_columns(trials, [n_col, metric], _WHERE)
    finished, excluded, n_unfinished = split_runs(trials, status_col)
    finite_column(finished, metric, _WHERE)
    if np.any(finite_column(finished, n_col, _WHERE) <= 0):
        raise NNLabError(f"{_WHERE}: column {n_col!r} must be positive")
    paired, finished = order_by_seed(finished, [n_col], seed_col)
    groups = {n: g[metric].to_numpy(dtype=float) for n, g in finished.groupby(n_col, sort=True)}
    for n, values in groups.items():
        if values.size < 2:
            raise NNLabError(
                f"{_WHERE}: {n_col}={n:g} has {values.size} finished run; a variance needs at "
                "least 2 seeds"
            )
    ns = np.array(list(groups), dtype=float)
    start = 0 if fit_from is None else int(np.searchsorted(ns, fit_from))
    if fit and ns.size - start < MIN_N_VALUES_FOR_FIT:
        raise NNLabError(
            f"{_WHERE}: the floor fit needs at least {MIN_N_VALUES_FOR_FIT} values of "
            f"{n_col!r}" + ("" if fit_from is None else f" >= fit_from={fit_from:g}")
            + f", got {ns.size - start} (pass fit=False for the table only)"
        )

    rng = np.random.default_rng(seed)
    resamples = resample_groups(list(groups.values()), n_resamples, rng, paired)
    boot_mean = np.column_stack([r.mean(axis=1) for r in resamples])
    boot_std = np.column_stack([sample_std(r, axis=1) for r in resamples])
    boot_var = boot_std**2
    # the modified residuals can carry a resampled mean past what the metric can take
    mean_low, mean_high = np.clip(interval(boot_mean, confidence), *metric_bounds(metric))
    std_low, std_high = interval(boot_std, confidence)
    n_excluded = excluded[n_col].value_counts() if len(excluded) else pd.Series(dtype=int)
    table = pd.DataFrame(
        {
            n_col: ns,
            "n_runs": [v.size for v in groups.values()],
            "n_excluded": [int(n_excluded.get(n, 0)) for n in groups],
            "mean": [v.mean() for v in groups.values()],
            "mean_low": mean_low,
            "mean_high": mean_high,
            "std": [float(sample_std(v)) for v in groups.values()],
            "std_low": std_low,
            "std_high": std_high,
        }
    )

    floor_fit = None
    if fit:
        variance = table["std"].to_numpy() ** 2
        if np.any(variance == 0):
            raise NNLabError(f"{_WHERE}: {metric!r} is constant at some {n_col}; nothing to fit")
        dof = table["n_runs"].to_numpy() - 1
        floor_fit = _weighted_floor_fit(ns, variance, dof, boot_var, start, exponent_range,
                                        confidence)
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


def _weighted_floor_fit(ns: np.ndarray, variance: np.ndarray, dof: np.ndarray,
                        boot_var: np.ndarray, start: int, exponent_range: tuple[float, float],
                        confidence: float) -> FloorFit:
    """The floor fit of `variance` (k,) at `ns` (k,) from index `start` on, weighted as
    `variance_vs_n` says, with intervals from the bootstrap variances boot_var (R, k)."""
    ns, variance, dof, boot_var = ns[start:], variance[start:], dof[start:], boot_var[:, start:]
    grid = np.linspace(*exponent_range, 291)
    first = _fit_floor(ns, variance[None, :], dof / variance**2, grid)
    fitted = first[0] + first[1] * ns ** -first[2]
    weights = dof / np.where(fitted > 0, fitted, variance) ** 2
    point = _fit_floor(ns, variance[None, :], weights, grid)
    boot = np.column_stack(_fit_floor(ns, boot_var, weights, grid))
    return FloorFit(*(estimate(point[i][0], boot[:, i], confidence) for i in range(3)),
                    boot=boot, n_from=float(ns[0]), exponent_max=float(grid[-1]),
                    n_left_out=start)


def _fit_floor(ns: np.ndarray, variance: np.ndarray, weights: np.ndarray, grid: np.ndarray):
    """Weighted LS of variance (R, k) on c + a N^-b with c, a >= 0, for each row.

    Returns (c, a, b), each (R,). For each b on `grid` the model is linear in (c, a): the
    best non-negative pair is the unconstrained solution when it is feasible, else the
    better of the two edges (c = 0 or a = 0); the b with the smallest weighted residual sum
    of squares is kept.
    """
    w = weights / weights.sum()
    z = ns[None, :] ** -grid[:, None]  # (G, k)
    s_z, s_zz = z @ w, (z**2) @ w  # (G,)
    s_v, s_vv = variance @ w, variance**2 @ w  # (R,)
    s_vz = variance @ (w * z).T  # (R, G)
    s_v, s_vv = s_v[:, None], s_vv[:, None]

    def sse(c: np.ndarray, a: np.ndarray) -> np.ndarray:
        return s_vv - 2 * c * s_v - 2 * a * s_vz + c**2 + 2 * a * c * s_z + a**2 * s_zz

    scale = (s_vz - s_v * s_z) / (s_zz - s_z**2)
    floor = s_v - scale * s_z
    candidates = [
        (floor, scale),
        (np.zeros_like(scale), np.maximum(s_vz / s_zz, 0)),
        (np.broadcast_to(np.maximum(s_v, 0), scale.shape), np.zeros_like(scale)),
    ]
    losses = np.stack([sse(c, a) for c, a in candidates])  # (3, R, G)
    losses[0][(floor < 0) | (scale < 0)] = np.inf
    choice = np.argmin(losses, axis=0)  # (R, G)
    loss = np.take_along_axis(losses, choice[None], axis=0)[0]
    best = np.argmin(loss, axis=1)
    rows = np.arange(variance.shape[0])
    pick = choice[rows, best]
    c = np.stack([np.broadcast_to(c, scale.shape) for c, _ in candidates])[pick, rows, best]
    a = np.stack([a for _, a in candidates])[pick, rows, best]
    return c, a, grid[best]
