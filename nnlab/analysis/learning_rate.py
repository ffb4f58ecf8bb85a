"""The best learning rate per training length: eta_best(N) with a bootstrap CI over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import (
    few_seeds_warning,
    interval,
    metric_bounds,
    order_by_seed,
    resample_groups,
)
from nnlab.analysis._checks import (
    check_resampling,
    finite_column,
    require_columns,
    split_runs,
)
from nnlab.analysis.power_law import PowerLawFit, fit_power_law
from nnlab.errors import NNLabError

_WHERE = "eta_best"


@dataclass(frozen=True)
class EtaBestResult:
    """eta_best for each training length N.

    table: one row per N: `n_col`, eta_best, low, high (CI), eta_grid (best grid point),
        metric_at_grid (its seed mean), n_eta, n_runs, n_diverged, min_seeds, bracketed
        (False when the best grid point is at the edge of the eta grid), cliff (a grid
        neighbour of the best point holds diverged runs: the parabola then leans away from
        that side, by at most half a grid step).
    curves: one row per (N, eta): `n_col`, `eta_col`, mean, low, high (CI of the seed mean),
        n_runs, n_diverged.
    boot_log_eta: (n_resamples, n_N) bootstrap replicates of log eta_best, columns in
        table order.
    """

    table: pd.DataFrame
    curves: pd.DataFrame
    n_unfinished: int
    n_col: str
    eta_col: str
    metric: str
    maximize: bool
    resampling: str
    confidence: float
    boot_log_eta: np.ndarray = field(repr=False)

    def power_law(
        self,
        method: str = "ols",
        bracketed_only: bool = True,
        seed: int = 0,
        confidence: float | None = None,
    ) -> PowerLawFit:
        """Fit eta_best = a * N^-b; the bootstrap over seeds propagates into a and b.

        `bracketed_only` leaves out N whose optimum sits at the edge of the eta grid (their
        eta_best is only a bound). "wls" weights each N by its inverse bootstrap variance.
        """
        bracketed = self.table["bracketed"].to_numpy()
        keep = bracketed if bracketed_only else np.ones_like(bracketed)
        if keep.sum() < 3:
            raise NNLabError(
                f"{_WHERE}.power_law: {keep.sum()} value(s) of {self.n_col!r} have their "
                "optimum inside the eta grid; a fit needs 3 (widen the grid or pass "
                "bracketed_only=False)"
            )
        return fit_power_law(
            self.table[self.n_col].to_numpy(dtype=float)[keep],
            self.table["eta_best"].to_numpy()[keep],
            method=method,
            y_boot=np.exp(self.boot_log_eta[:, keep]),
            n_resamples=self.boot_log_eta.shape[0],
            seed=seed,
            confidence=confidence or self.confidence,
        )

    def summary(self) -> str:
        goal = "maximised" if self.maximize else "minimised"
        lines = [
            f"eta_best per {self.n_col} ({self.metric} {goal}; vertex of a parabola in "
            f"log {self.eta_col} around the best grid point; {100 * self.confidence:g}% CI by "
            f"bootstrap of {self.resampling}, {self.boot_log_eta.shape[0]} resamples):"
        ]
        if self.n_unfinished:
            lines.append(f"  ({self.n_unfinished} unfinished trials ignored)")
        lines.append(few_seeds_warning(int(self.table["min_seeds"].min())))
        for row in self.table.itertuples(index=False):
            row = row._asdict()
            edge = "" if row["bracketed"] else " (!) optimum at the grid edge"
            if row["cliff"]:
                edge += " (!) a neighbour diverged: eta_best leans away from it"
            lines.append(
                f"  {self.n_col}={row[self.n_col]:g}: eta_best = {row['eta_best']:.3g} "
                f"[{row['low']:.3g}, {row['high']:.3g}] (grid best {row['eta_grid']:.3g}, "
                f"{self.metric} {row['metric_at_grid']:.4g}; {row['n_eta']} etas, "
                f"{row['n_runs']} runs, {row['n_diverged']} diverged){edge}"
            )
        return "\n".join(line for line in lines if line)

    def to_dict(self) -> dict:
        return {
            "n_col": self.n_col,
            "eta_col": self.eta_col,
            "metric": self.metric,
            "maximize": self.maximize,
            "resampling": self.resampling,
            "confidence": self.confidence,
            "n_resamples": int(self.boot_log_eta.shape[0]),
            "n_unfinished": self.n_unfinished,
            "table": self.table.to_dict(orient="records"),
            "curves": self.curves.to_dict(orient="records"),
        }


def eta_best(
    trials: pd.DataFrame,
    n_col: str = "n_steps",
    eta_col: str = "eta",
    metric: str = "val_acc",
    *,
    maximize: bool = True,
    seed_col: str | None = "seed",
    status_col: str | None = "status",
    window: int = 1,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> EtaBestResult:
    """Best learning rate per training length N, with a bootstrap CI over seeds.

    trials: one row per run with columns `n_col`, `eta_col`, `metric` (and `seed_col`,
        `status_col` when present). For each N the metric is averaged over seeds at each
        eta; a parabola in log eta is fitted to the best grid point and `window` neighbours
        on each side, and its vertex (kept within those points) is eta_best. A parabola that
        does not curve the right way gives the grid point itself, and so does a best point
        at the edge of the grid (flagged `bracketed=False`: eta_best is only a bound).
    Diverged runs (`status_col` "diverged") keep their metric as recorded: a diverged run is
    a bad result for its eta; one without a finite metric gets the worst value in the table.
    Rows with another status than "ok" (unfinished trials) are ignored.
    Bootstrap: resamples seeds; when every (N, eta) cell holds the same seeds the same
    resampled seeds are used in every cell (a seed's runs are correlated), otherwise each
    cell is resampled on its own.
    """
    check_resampling(n_resamples, confidence, _WHERE)
    if not isinstance(window, int) or window < 1:
        raise NNLabError(f"{_WHERE}.window: expected an integer >= 1, got {window!r}")
    require_columns(trials, [n_col, eta_col, metric], _WHERE)
    data, n_unfinished = _with_filled_metric(trials, metric, status_col, maximize)
    for column in (n_col, eta_col):
        values = finite_column(data, column, _WHERE)
        if np.any(values <= 0):
            raise NNLabError(f"{_WHERE}: column {column!r} must be positive, got {values.min()}")
    data = data.astype({n_col: float, eta_col: float})
    paired, data = order_by_seed(data, [n_col, eta_col], seed_col)

    cells = data.groupby([n_col, eta_col], sort=True)
    counts = cells.size()
    if counts.min() < 2:
        (n, eta) = counts.idxmin()
        raise NNLabError(
            f"{_WHERE}: {n_col}={n:g}, {eta_col}={eta:g} has {counts.min()} run; a CI over "
            "seeds needs at least 2 seeds per cell"
        )
    values = [group[metric].to_numpy(dtype=float) for _, group in cells]
    rng = np.random.default_rng(seed)
    resamples = resample_groups(values, n_resamples, rng, paired)
    means = np.column_stack([r.mean(axis=1) for r in resamples])
    low, high = np.clip(interval(means, confidence), *metric_bounds(metric))
    curves = cells.agg(
        n_runs=(metric, "size"), mean=(metric, "mean"), n_diverged=("_diverged", "sum")
    )
    curves = curves.assign(low=low, high=high).reset_index()
    curves = curves[[n_col, eta_col, "mean", "low", "high", "n_runs", "n_diverged"]]

    rows, boot = [], []
    sign = 1.0 if maximize else -1.0
    for n, curve in curves.groupby(n_col, sort=True):
        if len(curve) < 3:
            raise NNLabError(
                f"{_WHERE}: {n_col}={n:g} has {len(curve)} values of {eta_col!r}; a parabola "
                "needs at least 3"
            )
        log_eta = np.log(curve[eta_col].to_numpy())
        observed = sign * curve["mean"].to_numpy()[None, :]
        best_log, grid_index = _parabola_vertex(log_eta, observed, window)
        boot_log, _ = _parabola_vertex(log_eta, sign * means[:, curve.index], window)
        boot.append(boot_log)
        k = int(grid_index[0])
        b_low, b_high = interval(boot_log, confidence)
        rows.append(
            {
                n_col: n,
                "eta_best": float(np.exp(best_log[0])),
                "low": float(np.exp(b_low)),
                "high": float(np.exp(b_high)),
                "eta_grid": float(np.exp(log_eta[k])),
                "metric_at_grid": float(curve["mean"].iloc[k]),
                "n_eta": len(curve),
                "n_runs": int(curve["n_runs"].sum()),
                "n_diverged": int(curve["n_diverged"].sum()),
                "min_seeds": int(curve["n_runs"].min()),
                "bracketed": bool(0 < k < len(curve) - 1),
                "cliff": bool(curve["n_diverged"].iloc[max(k - 1, 0) : k + 2].sum() > 0),
            }
        )
    return EtaBestResult(
        table=pd.DataFrame(rows),
        curves=curves,
        n_unfinished=n_unfinished,
        n_col=n_col,
        eta_col=eta_col,
        metric=metric,
        maximize=maximize,
        resampling="seeds, shared across cells" if paired else "seeds within each cell",
        confidence=confidence,
        boot_log_eta=np.column_stack(boot),
    )


def _with_filled_metric(
    trials: pd.DataFrame, metric: str, status_col: str | None, maximize: bool
) -> tuple[pd.DataFrame, int]:
    """(finished and diverged runs with a boolean `_diverged` column, number of unfinished
    rows dropped); a diverged run's missing or infinite metric becomes the worst value."""
    finished, diverged, n_unfinished = split_runs(trials, status_col)
    data = pd.concat([finished.assign(_diverged=False), diverged.assign(_diverged=True)])
    values = pd.to_numeric(data[metric], errors="coerce")
    missing = ~np.isfinite(values) & data["_diverged"]
    if missing.any():
        finite = values[np.isfinite(values)]
        if finite.empty:
            raise NNLabError(f"{_WHERE}: column {metric!r} has no finite value")
        values = values.where(~missing, finite.min() if maximize else finite.max())
    data[metric] = values
    finite_column(data, metric, _WHERE)
    return data, n_unfinished


def _parabola_vertex(log_eta: np.ndarray, scores: np.ndarray, window: int) -> tuple:
    """Vertex of a parabola through the best grid point and its neighbours, per row.

    log_eta: (n,) sorted grid; scores: (R, n) seed means, higher is better.
    Returns (log eta_best (R,), index of the best grid point (R,)). The parabola is fitted
    by least squares to 2*window+1 points (shifted inward near the grid edges); its vertex
    is kept within those points. A parabola opening upwards, or a best point at the edge of
    the grid (the optimum is not bracketed), gives the grid point itself.
    """
    n = log_eta.size
    best = np.argmax(scores, axis=1)
    width = min(2 * window + 1, n)
    start = np.clip(best - window, 0, n - width)
    index = start[:, None] + np.arange(width)
    u = log_eta[index] - log_eta[best][:, None]
    y = np.take_along_axis(scores, index, axis=1)
    design = np.stack([np.ones_like(u), u, u**2], axis=-1)
    gram = design.transpose(0, 2, 1) @ design
    coef = np.linalg.solve(gram, design.transpose(0, 2, 1) @ y[..., None])[..., 0]
    slope, curvature = coef[:, 1], coef[:, 2]
    concave = curvature < 0
    vertex = np.where(concave, -slope / (2 * np.where(concave, curvature, -1.0)), 0.0)
    vertex = np.clip(vertex, u[:, 0], u[:, -1])
    at_edge = (best == 0) | (best == n - 1)
    return log_eta[best] + np.where(at_edge, 0.0, vertex), best
