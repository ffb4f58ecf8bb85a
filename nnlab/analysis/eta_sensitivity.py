"""How much the exponent b of eta_best = a N^-b owes to the estimator and the eta grid.

The bootstrap CI of b covers seed noise only. The estimator of the optimum between grid
points (a parabola through 3 or 5 of them, or the smooth surface of `eta_path`) and the
grid's spacing move b too; this table refits b under each, on the same seed resamples, so
its spread can be read beside the headline b (a multiverse-style sensitivity analysis:
Steegen et al. 2016, "Increasing transparency through a multiverse analysis", Perspect.
Psychol. Sci. 11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nnlab.analysis._checks import finite_column, require_columns
from nnlab.analysis.eta_path import eta_path
from nnlab.analysis.learning_rate import EDGE_SHARE_MAX, eta_best
from nnlab.analysis.power_law import PowerLawFit, fit_power_law
from nnlab.errors import ConfigError, InsufficientData, is_number

_WHERE = "eta_sensitivity"
ESTIMATORS = {"3-point parabola": 1, "5-point parabola": 2, "smooth path": None}
GRIDS = ("full", "thinned by 2 (odd etas)", "thinned by 2 (even etas)")
# On a grid thinned by 2, five points span a factor 4^4 = 256 in eta: not a local
# estimator any more (its span on the full grid is what the 3-point parabola spans there).
THINNED_ESTIMATORS = ("3-point parabola", "smooth path")


@dataclass(frozen=True)
class SensitivityResult:
    """b under each estimator and grid, one row each: estimator, grid, n_etas, b, low, high
    (CI over seeds), n_lengths (the N the fit used), exploratory (fewer than 5 lengths, a
    CI wider than b or R^2 below 0.9: `PowerLawFit.exploratory`), headline (the 3-point
    parabola on the full grid), and the reason a row has no fit ("" otherwise)."""

    table: pd.DataFrame
    n_col: str
    n_from: float
    n_to: float
    confidence: float

    @property
    def headline(self) -> pd.Series:
        return self.table[self.table["headline"]].iloc[0]

    @property
    def spread(self) -> tuple[float, float]:
        """(min, max) of b over the rows that are fitted and not exploratory."""
        fitted = self.table[~self.table["exploratory"] & self.table["b"].notna()]
        if fitted.empty:
            return np.nan, np.nan
        return float(fitted["b"].min()), float(fitted["b"].max())

    def summary(self) -> str:
        level = f"{100 * self.confidence:g}%"
        head = self.headline
        low, high = self.spread
        lines = [f"b of eta_best = a {self.n_col}^-b over {self.n_col} = {self.n_from:g}.."
                 f"{self.n_to:g} by estimator and eta grid ({level} CIs over seeds, the same "
                 f"resamples): headline {head['b']:.2f} [{head['low']:.2f}, "
                 f"{head['high']:.2f}]; the estimator and the grid move it over "
                 f"{low:.2f}..{high:.2f}"]
        for row in self.table.to_dict("records"):
            if np.isnan(row["b"]):
                lines.append(f"  {row['estimator']}, {row['grid']}: no fit ({row['note']})")
                continue
            flag = " (exploratory)" if row["exploratory"] else ""
            lines.append(f"  {row['estimator']}, {row['grid']} ({row['n_etas']} etas): b = "
                         f"{row['b']:.2f} [{row['low']:.2f}, {row['high']:.2f}], "
                         f"{row['n_lengths']} lengths{flag}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        low, high = self.spread
        return {"n_col": self.n_col, "n_from": self.n_from, "n_to": self.n_to,
                "confidence": self.confidence, "spread": [low, high],
                "table": self.table.to_dict(orient="records")}


def eta_sensitivity(
    trials: pd.DataFrame,
    n_col: str = "n_steps",
    eta_col: str = "eta",
    metric: str = "val_acc",
    *,
    n_from: float | None = None,
    n_to: float | None = None,
    maximize: bool = True,
    seed_col: str | None = "seed",
    status_col: str | None = "status",
    stalled_at: float | None = None,
    max_edge_share: float = EDGE_SHARE_MAX,
    small_sample: bool = True,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> SensitivityResult:
    """b of eta_best = a N^-b over N = n_from..n_to under each estimator and eta grid.

    trials: as for `eta_best` (one row per run). Estimators: the parabola through the best
    grid point and 1 or 2 neighbours each side (`eta_best`, window 1 or 2) and the smooth
    path (`eta_path`); grids: the full one and every other eta (two ways; there without the
    5-point parabola, which would span a factor 256 in eta). Each fit leaves
    out the N whose optimum is at the grid edge or a cliff in more than `max_edge_share` of
    the replicates. The unit of replication is the seed; every row uses the same resamples
    (`seed`), so rows differ by the estimator and the grid only.
    """
    for name, value in (("n_from", n_from), ("n_to", n_to)):
        if value is not None and not is_number(value):
            raise ConfigError(f"{_WHERE}.{name}", "a number or None", value)
    require_columns(trials, [n_col, eta_col], _WHERE)
    etas = np.sort(np.asarray(pd.unique(trials[eta_col].astype(float))))
    if etas.size < 6:
        raise InsufficientData(f"{_WHERE}: {etas.size} values of {eta_col!r}; a grid thinned by 2 "
                               "needs 6")
    kwargs: dict[str, Any] = {
        "n_col": n_col, "eta_col": eta_col, "metric": metric, "maximize": maximize,
        "seed_col": seed_col, "status_col": status_col, "stalled_at": stalled_at,
        "small_sample": small_sample, "n_resamples": n_resamples, "seed": seed,
        "confidence": confidence}
    subsets = {"full": etas, GRIDS[1]: etas[0::2], GRIDS[2]: etas[1::2]}
    rows = []
    n_range = (-np.inf if n_from is None else n_from, np.inf if n_to is None else n_to)
    n_values = finite_column(trials, n_col, _WHERE)  # the path is fitted over the range only
    trials = trials[(n_values >= n_range[0]) & (n_values <= n_range[1])]
    if trials.empty:
        raise InsufficientData(f"{_WHERE}: no {n_col!r} within n_from..n_to = {n_range[0]:g}.."
                               f"{n_range[1]:g}")
    for grid, subset in subsets.items():
        chosen = trials[np.isin(trials[eta_col].astype(float), subset)]
        estimators = ESTIMATORS if grid == "full" else {
            name: ESTIMATORS[name] for name in THINNED_ESTIMATORS}
        results = {w: eta_best(chosen, window=w, **kwargs)
                   for w in {window or 1 for window in estimators.values()}}
        for estimator, window in estimators.items():
            row = {"estimator": estimator, "grid": grid, "n_etas": int(subset.size),
                   "headline": grid == "full" and window == 1}
            try:
                fit = _fit(results[window or 1], window, max_edge_share, seed)
            except InsufficientData as err:
                rows.append({**row, "b": np.nan, "low": np.nan, "high": np.nan,
                             "n_lengths": 0, "exploratory": True, "note": str(err)})
                continue
            b = fit.exponent
            rows.append({**row, "b": b.value, "low": b.low, "high": b.high,
                         "n_lengths": fit.n, "exploratory": fit.exploratory,
                         "note": ""})
    lengths = trials[n_col].astype(float)
    return SensitivityResult(table=pd.DataFrame(rows), n_col=n_col,
                             n_from=float(lengths.min()), n_to=float(lengths.max()),
                             confidence=confidence)


def _fit(result, window: int | None, max_edge_share: float, seed: int) -> PowerLawFit:
    """The power law of one estimator (window None: the smooth path)."""
    if window is None:
        return eta_path(result, max_share=max_edge_share).power_law(seed=seed)
    n = result.table[result.n_col].to_numpy(dtype=float)
    keep = result.fit_mask(True, max_edge_share)
    if keep.sum() < 3:
        raise InsufficientData(f"{keep.sum()} lengths with the optimum inside the grid; a fit "
                               "needs 3")
    return fit_power_law(n[keep], result.table["eta_best"].to_numpy()[keep],
                         y_boot=np.exp(result.boot_log_eta[:, keep]), boot_unit="seeds",
                         seed=seed,
                         confidence=result.confidence)
