"""Figure for question 2: mean and std of restarts vs N, with the fitted variance floor."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nnlab.analysis import ProfileFloorFit, TestSetVarianceResult, VarianceVsNResult
from nnlab.report.figures._base import finish, new_figure, note, seeds_text, styled, value_axis


@styled
def variance_figure(
    result: VarianceVsNResult,
    *,
    test_set: TestSetVarianceResult | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Mean vs N (left) and std vs N (right) with CIs over seeds; the fit sqrt(c + a N^-b)
    (line "fit") with its band, the floor sqrt(c) (line "floor") with its CI, and with
    `test_set` the std a finite test set alone gives (line "test set"). Each axis is
    logarithmic where what it shows spans more than a decade (the std's: its CIs too, so
    an interval reaching 0 keeps the std axis linear); a few N get a tick each."""
    figure, (mean_ax, std_ax) = new_figure(ncols=2, size=(15, 4.8))
    table, n_col = result.table, result.n_col
    n = table[n_col].to_numpy()
    mean_ax.errorbar(
        n,
        table["mean"],
        yerr=[table["mean"] - table["mean_low"], table["mean_high"] - table["mean"]],
        fmt="o-",
        capsize=3,
        label="mean",
    )
    value_axis(mean_ax, n, ticks=True)
    mean_ax.set_xlabel(n_col)
    mean_ax.set_ylabel(f"{result.metric} (mean over seeds)")
    mean_ax.set_title(f"mean {result.metric} vs {n_col}")
    excluded = int(table["n_excluded"].sum())
    level = f"{100 * result.confidence:g}%"
    note(
        mean_ax,
        f"bars: {level} CI over {seeds_text(table['n_runs'])}\nper {n_col}; "
        f"{excluded} diverged excluded",
        loc="lower right",
    )

    std_ax.errorbar(
        n,
        table["std"],
        yerr=[table["std"] - table["std_low"], table["std_high"] - table["std"]],
        fmt="o",
        capsize=3,
        color="C0",
        label="std",
    )
    lines = [f"{level} CIs: bootstrap of {result.resampling}",
             f"over {seeds_text(table['n_runs'])} per {n_col}"]
    if result.fit is not None:
        fit = result.fit
        grid = np.geomspace(fit.n_from, n.max() * 4, 200)
        low, high = fit.band(grid)
        std_ax.fill_between(
            grid,
            np.sqrt(np.clip(low, 0, None)),
            np.sqrt(np.clip(high, 0, None)),
            color="C0",
            alpha=0.15,
            lw=0,
        )
        std_ax.plot(grid, np.sqrt(np.clip(fit.predict(grid), 0, None)), color="C0", label="fit")
        floor_low, floor_high = (math.sqrt(max(v, 0.0)) for v in (fit.floor.low, fit.floor.high))
        std_ax.axhspan(floor_low, floor_high, color="C3", alpha=0.12, lw=0)
        if fit.floor.value > 0:
            std_ax.axhline(math.sqrt(fit.floor.value), color="C3", ls="--", label="floor")
        lines += [
            f"var = c + a N^-b, b = {fit.exponent.format('.2f')}"
            + (f", N >= {fit.n_from:g}" if fit.n_left_out else ""),
            f"floor c = {fit.floor}",
            "floor excludes 0" if fit.floor_excludes_zero else "floor CI includes 0",
        ]
        if isinstance(fit, ProfileFloorFit) and fit.plateau:
            lines.append("plateau: floor and slow decline\nnot separated")
    if test_set is not None:
        std_ax.axhline(
            math.sqrt(max(test_set.test_set.value, 0.0)), color="0.4", ls=":", label="test set"
        )
        lines.append(
            f"test-set std {math.sqrt(max(test_set.test_set.value, 0)):.3g} "
            f"({test_set.n_test} examples)"
        )
    value_axis(std_ax, n, ticks=True)
    value_axis(std_ax, table[["std", "std_low", "std_high"]].to_numpy(), "y")
    std_ax.set_xlabel(n_col)
    std_ax.set_ylabel(f"std of {result.metric} over seeds")
    std_ax.set_title(f"spread of restarts vs {n_col}")
    std_ax.legend(loc="upper right", fontsize="small")
    note(std_ax, "\n".join(lines))  # beside the axes: inside it hid the points of large N
    return finish(figure, path)
