"""Figures for question 1: metric vs eta per N, and the power law eta_best(N)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from nnlab.analysis import BrokenPowerLawFit, EtaBestResult, PowerLawFit
from nnlab.report.figures._base import finish, new_figure, note, styled, value_axis


@styled
def eta_curves_figure(result: EtaBestResult, *, path: str | Path | None = None) -> Figure:
    """Seed-mean metric vs eta for each N with its CI band; eta_best marked with its CI
    (lines labelled "_eta_best"; curves labelled "<n_col>=<N>"). The eta axis is
    logarithmic where the grid spans more than a decade, with a tick at each of a few etas;
    the note says over how many seeds the bands are."""
    figure, ax = new_figure(size=(11, 5.5))
    table, curves = result.table, result.curves
    colours = sns.color_palette("viridis", len(table))
    for colour, row in zip(colours, table.itertuples(index=False), strict=True):
        n = getattr(row, result.n_col)
        curve = curves[curves[result.n_col] == n]
        eta = curve[result.eta_col].to_numpy()
        ax.plot(eta, curve["mean"], "o-", color=colour, ms=4, label=f"{result.n_col}={n:g}")
        ax.fill_between(eta, curve["low"], curve["high"], color=colour, alpha=0.2, lw=0)
        best, low, high = (float(getattr(row, name)) for name in ("eta_best", "low", "high"))
        at_best = np.interp(np.log(best), np.log(eta), curve["mean"])
        marker = ax.errorbar(
            best,
            at_best,
            xerr=[[best - low], [high - best]],
            fmt="D" if row.bracketed else "X",
            color=colour,
            mec="black",
            ms=8,
            capsize=4,
        )
        marker.lines[0].set_label("_eta_best")
    value_axis(ax, curves[result.eta_col], ticks=True)
    ax.set_xlabel(result.eta_col)
    ax.set_ylabel(f"{result.metric} (mean over seeds)")
    ax.set_title(f"{result.metric} vs {result.eta_col} for each {result.n_col}")
    ax.legend(title=result.n_col, fontsize="small", loc="lower left", bbox_to_anchor=(1.02, 0))
    level = f"{100 * result.confidence:g}%"
    note(
        ax,
        f"eta_best: vertex of a parabola in log eta\n(diamond, {level} CI; X = grid edge)\n"
        f"bands: {level} CI of the seed mean\n(bootstrap over seeds)\n"
        f"seeds per point: {_span(result.curves['n_runs'])}",
    )
    return finish(figure, path)


@styled
def power_law_figure(
    fit: PowerLawFit,
    *,
    eta_best: EtaBestResult | None = None,
    broken: BrokenPowerLawFit | None = None,
    xlabel: str = "N",
    ylabel: str = "eta_best",
    path: str | Path | None = None,
) -> Figure:
    """The points, the fitted y = a x^-b and its bootstrap band; each axis logarithmic
    where its points span more than a decade (a power law is a line on log-log axes).

    With `eta_best`, points carry their CIs (the note says over how many seeds) and N left
    out of the fit (optimum at the grid edge) are drawn hollow. The fitted curve is the
    line labelled "fit"; with `broken`, the broken power law is the line "broken fit" and
    its breakpoint's CI a shaded span.
    """
    figure, ax = new_figure(size=(11, 5.5))
    x_grid = np.geomspace(fit.x.min() / 1.3, fit.x.max() * 1.3, 200)
    low, high = fit.band(x_grid)
    ax.fill_between(x_grid, low, high, color="C0", alpha=0.2, lw=0, label="band")
    ax.plot(x_grid, fit.predict(x_grid), color="C0", label="fit")
    if eta_best is None:
        ax.plot(fit.x, fit.y, "o", color="C1", label="data")
    else:
        table = eta_best.table
        used = table[eta_best.n_col].isin(fit.x)
        for subset, face, label in (
            (table[used], "C1", "in fit"),
            (table[~used], "none", "left out"),
        ):
            if subset.empty:  # no legend entry for what is not drawn
                continue
            ax.errorbar(
                subset[eta_best.n_col],
                subset["eta_best"],
                yerr=[subset["eta_best"] - subset["low"], subset["high"] - subset["eta_best"]],
                fmt="o",
                color="C1",
                mfc=face,
                capsize=3,
                label=label,
            )
    text = (f"b = {fit.exponent}\na = {fit.prefactor}\nR^2 = {fit.r_squared:.3f}, n = {fit.n} "
            f"points\n{fit.method}; band: bootstrap of {fit.resampling}")
    if eta_best is not None:
        text += (f"\nbars: {100 * eta_best.confidence:g}% CI of {ylabel}, bootstrap\nover "
                 f"{_span(eta_best.table['min_seeds'])} seeds per cell")
    if broken is not None:
        ax.plot(x_grid, broken.predict(x_grid), color="C2", ls="--", label="broken fit")
        ax.axvspan(broken.breakpoint.low, broken.breakpoint.high, color="C2", alpha=0.12, lw=0)
        text += (f"\nbroken fit: breakpoint {broken.breakpoint}\nb = "
                 f"{broken.exponent_before.format('.2f')} before,\n"
                 f"{broken.exponent_after.format('.2f')} after")
    points = (fit.x, fit.y) if eta_best is None else (
        eta_best.table[eta_best.n_col], eta_best.table["eta_best"])
    value_axis(ax, points[0], ticks=True)
    value_axis(ax, points[1], "y")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{ylabel} = a {xlabel}^-b")
    ax.legend(loc="lower left", fontsize="small")
    note(ax, text)
    return finish(figure, path)


def _span(counts) -> str:
    """'3' or '3-5': the range of a count column."""
    low, high = int(counts.min()), int(counts.max())
    return f"{low}" if low == high else f"{low}-{high}"
