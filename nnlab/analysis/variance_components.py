"""Variance components of a two-way crossed design with one run per cell.

Rows and columns are two random factors, e.g. init seeds x order seeds, every row crossed
with every column once. The model (a two-way random-effects ANOVA without replication):

    y_ij = mu + a_i + b_j + e_ij,   a_i ~ N(0, s2_rows), b_j ~ N(0, s2_cols),
                                    e_ij ~ N(0, s2_residual), all independent,

where e_ij is the interaction (ab)_ij plus any within-cell variation: with one observation
per cell the two cannot be told apart (that needs a second observation of some cells).
For a run that is deterministic given its two seeds the within-cell part is 0 and the
residual is the interaction.

Point estimates: the ANOVA (method-of-moments, expected-mean-squares) estimators. With I
rows, J columns and the mean squares MS_rows (I - 1 df), MS_cols (J - 1 df), MS_residual
((I - 1)(J - 1) df), E[MS_rows] = s2_residual + J s2_rows, E[MS_cols] = s2_residual +
I s2_cols, E[MS_residual] = s2_residual, so s2_rows = (MS_rows - MS_residual) / J, s2_cols =
(MS_cols - MS_residual) / I, s2_residual = MS_residual: unbiased, but a main-effect
estimate comes out below 0 when its mean square falls under the residual's. It is then
reported as 0 (`value`), with the untruncated estimate kept (`untruncated`), the one to
average over studies.

Intervals: generalized confidence intervals (GCI; Weerahandi 1993, "Generalized confidence
intervals", JASA 88; for this design Hamada & Weerahandi 2000, "Measurement system
assessment via generalized inference", J. Quality Technology 32; compared with the
modified large-sample intervals in Burdick, Borror & Montgomery 2005, "Design and analysis
of gauge R&R studies", ch. 3-4). Each expected mean square has the generalized pivotal
quantity ss_k / U_k, U_k ~ chi-square(df_k), independent across k; a component's pivot is
the same linear combination of these as its estimator, truncated at 0, and any function of
the components (shares of the total, ratios, a difference with another quantity) gets its
interval from the percentiles of the function of the pivots (`derived`). At the boundary:
when more than (1 - confidence) / 2 of a main effect's pivots are 0 its interval starts at
exactly 0, i.e. the data do not exclude a component of 0. The interval's unit is the
levels of the two factors: the row component's interval rests on I levels (I - 1 df), the
column component's on J, the residual's on (I - 1)(J - 1) df; they assume normal effects.
Coverage measured by simulation at 20 x 20 is in docs/analysis.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnlab.analysis._bootstrap import Estimate, end_mc_error
from nnlab.analysis._checks import finite_column, require_columns
from nnlab.errors import InsufficientData, NNLabError

_WHERE = "variance_components"
RESIDUAL = "residual"
METHOD = ("ANOVA (expected mean squares) estimates; generalized confidence intervals from "
          "the mean squares' chi-square pivots (Hamada & Weerahandi 2000)")


@dataclass(frozen=True)
class Component:
    """One variance component (a variance of the metric).

    value: the ANOVA estimate truncated at 0, with its GCI; `untruncated`: the estimate
    before truncation (unbiased, may be < 0). share: value / the total of the truncated
    components, with its GCI. df: the degrees of freedom of its mean square.
    """

    name: str
    value: Estimate
    untruncated: float
    share: Estimate
    df: int

    @property
    def std(self) -> Estimate:
        """The component as a standard deviation (square roots of value and interval; the
        Monte Carlo error the largest move of a root's end within the variance's)."""
        value, low, high = (math.sqrt(v) for v in (self.value.value, self.value.low,
                                                   self.value.high))
        error = self.value.mc_error
        mc_error = max(max(math.sqrt(end + error) - math.sqrt(end),
                           math.sqrt(end) - math.sqrt(max(end - error, 0.0)))
                       for end in (self.value.low, self.value.high))
        return Estimate(value, low, high, self.value.confidence, mc_error)

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value.to_dict(),
                "untruncated": self.untruncated, "std": self.std.to_dict(),
                "share": self.share.to_dict(), "df": self.df}


@dataclass(frozen=True)
class VarianceComponentsResult:
    """The variance components of `metric` over a rows x columns crossed design.

    components: (rows' factor, columns' factor, residual), named by the row and column
    columns and RESIDUAL. total: the sum of the truncated components with its GCI.
    mean_squares: {name: (mean square, df)}. draws: (n_draws, 3) pivots of the three
    components (truncated at 0), for intervals of other functions of them (`derived`).
    """

    metric: str
    n_rows: int
    n_cols: int
    mean: float
    components: tuple[Component, Component, Component]
    total: Estimate
    mean_squares: dict[str, tuple[float, int]]
    draws: np.ndarray = field(repr=False)
    confidence: float = 0.95

    @property
    def unit(self) -> str:
        """What the intervals rest on."""
        rows, cols = (c.name for c in self.components[:2])
        return (f"the levels of both factors: {self.n_rows} {rows} x {self.n_cols} {cols} "
                f"({self.n_rows * self.n_cols} cells, one observation each)")

    def __getitem__(self, name: str) -> Component:
        for component in self.components:
            if component.name == name:
                return component
        raise NNLabError(f"{_WHERE}: no component {name!r}; the components are "
                         f"{[c.name for c in self.components]}")

    def derived(self, function: Callable[[np.ndarray], np.ndarray]) -> Estimate:
        """A function of the components with its GCI: `function` maps an (m, 3) array of
        components (rows, columns, residual) to (m,) values; the point value is the function
        of the truncated estimates, the interval the percentiles of the function of the
        pivots."""
        point = np.array([[c.value.value for c in self.components]])
        return _interval(float(function(point)[0]), function(self.draws), self.confidence)

    def summary(self) -> str:
        parts = [f"{c.name} {c.value.format('.3g')} (std {c.std.value:.3g}, "
                 f"{c.share.format('.0f', 100, '%')} of the total"
                 + (f"; untruncated {c.untruncated:.3g}" if c.untruncated < 0 else "") + ")"
                 for c in self.components]
        return (f"variance components of {self.metric} (mean {self.mean:.4g}): "
                + "; ".join(parts) + f"; total {self.total.format('.3g')}. Intervals: GCI "
                f"over {self.unit}; the residual is the interaction plus any within-cell "
                "variation, which one observation per cell cannot separate.")

    def to_dict(self) -> dict:
        return {"metric": self.metric, "n_rows": self.n_rows, "n_cols": self.n_cols,
                "n": self.n_rows * self.n_cols, "mean": self.mean,
                "components": [c.to_dict() for c in self.components],
                "total": self.total.to_dict(),
                "mean_squares": {k: {"value": ms, "df": df}
                                 for k, (ms, df) in self.mean_squares.items()},
                "unit": self.unit, "method": METHOD, "n_draws": int(self.draws.shape[0])}


def variance_components(
    runs: pd.DataFrame,
    metric: str = "test_acc",
    rows: str = "init_seed",
    cols: str = "order_seed",
    *,
    n_draws: int = 20000,
    confidence: float = 0.95,
    seed: int = 0,
) -> VarianceComponentsResult:
    """The variance components of `metric` in a balanced crossed design (module docstring).

    runs: one row per cell, columns `rows`, `cols` (the two factors' levels) and `metric`;
        every level of `rows` must meet every level of `cols` exactly once.
    n_draws: pivot draws behind the intervals (their Monte Carlo error in a 95% limit is
        about 1% of the interval's width at 20000).
    """
    table = _cell_table(runs, metric, rows, cols)
    if not isinstance(n_draws, int | np.integer) or n_draws < 1000:
        raise NNLabError(f"{_WHERE}.n_draws: expected an integer >= 1000, got {n_draws!r}")
    if not 0.5 <= confidence < 1:
        raise NNLabError(f"{_WHERE}.confidence: expected a level in [0.5, 1), got "
                         f"{confidence!r}")
    if np.ptp(table) == 0:
        raise InsufficientData(f"{_WHERE}: {metric!r} is the same in every cell; there is "
                               "no variance to split")
    n_rows, n_cols = table.shape
    grand = table.mean()
    row_means, col_means = table.mean(axis=1), table.mean(axis=0)
    residuals = table - row_means[:, None] - col_means[None, :] + grand
    ss = np.array([n_cols * np.sum((row_means - grand) ** 2),
                   n_rows * np.sum((col_means - grand) ** 2),
                   np.sum(residuals ** 2)])
    df = np.array([n_rows - 1, n_cols - 1, (n_rows - 1) * (n_cols - 1)])
    untruncated = _components(ss / df, n_rows, n_cols)
    rng = np.random.default_rng(seed)
    draws = np.maximum(_components(ss / rng.chisquare(df, size=(n_draws, 3)), n_rows,
                                   n_cols), 0.0)
    point = np.maximum(untruncated, 0.0)
    total_draws = draws.sum(axis=1)
    names = (rows, cols, RESIDUAL)

    def component(k: int) -> Component:
        return Component(names[k], _interval(point[k], draws[:, k], confidence),
                         float(untruncated[k]), _interval(point[k] / point.sum(),
                                                          draws[:, k] / total_draws, confidence),
                         int(df[k]))

    return VarianceComponentsResult(
        metric, n_rows, n_cols, float(grand), (component(0), component(1), component(2)),
        _interval(float(point.sum()), total_draws, confidence),
        {name: (float(ss[k] / df[k]), int(df[k])) for k, name in enumerate(names)},
        draws, confidence)


def _components(mean_squares: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """(..., 3) mean squares (rows, columns, residual) -> (..., 3) untruncated components."""
    ms_rows, ms_cols, ms_res = np.moveaxis(mean_squares, -1, 0)
    return np.stack([(ms_rows - ms_res) / n_cols, (ms_cols - ms_res) / n_rows, ms_res],
                    axis=-1)


def _interval(value: float, draws: np.ndarray, confidence: float) -> Estimate:
    """The point value with the central `confidence` percentile interval of `draws`."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Estimate(float(value), float(low), float(high), confidence,
                    end_mc_error(draws, [low, high]))


def _cell_table(runs: pd.DataFrame, metric: str, rows: str, cols: str) -> np.ndarray:
    """(n_rows, n_cols) table of `metric`, levels sorted; errors for anything but a full,
    balanced crossing with one value per cell and at least 2 levels of each factor."""
    require_columns(runs, [rows, cols, metric], _WHERE)
    if rows == cols:
        raise NNLabError(f"{_WHERE}: rows and cols are both {rows!r}; expected two factors")
    values = finite_column(runs, metric, _WHERE)
    for factor in (rows, cols):
        if runs[factor].isna().any():
            raise NNLabError(f"{_WHERE}: column {factor!r} has missing levels (NaN)")
        n_levels = runs[factor].nunique()
        if n_levels < 2:
            raise InsufficientData(f"{_WHERE}: column {factor!r} has {n_levels} level; a "
                                   "variance component needs at least 2")
    repeated = runs[runs.duplicated([rows, cols])]
    if len(repeated):
        row, col = repeated[rows].iloc[0], repeated[cols].iloc[0]
        n = int(((runs[rows] == row) & (runs[cols] == col)).sum())
        raise NNLabError(f"{_WHERE}: cell {rows}={row}, {cols}={col} has {n} rows; expected "
                         "one observation per cell")
    table = pd.Series(values, index=pd.MultiIndex.from_frame(runs[[rows, cols]])).unstack()
    missing = table.isna()
    if missing.to_numpy().any():
        row, col = missing.stack()[lambda s: s].index[0]
        raise NNLabError(f"{_WHERE}: unbalanced design: {int(missing.to_numpy().sum())} of "
                         f"{table.size} cells have no value (first: {rows}={row}, "
                         f"{cols}={col}); expected every {rows} crossed with every {cols}")
    return table.sort_index().sort_index(axis=1).to_numpy(dtype=float)
