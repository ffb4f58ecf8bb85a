"""Figures for questions 2 and 3: the distribution of restarts, and two of them compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from nnlab.analysis import CompareResult, NormalityResult
from nnlab.report.figures._base import MIN_DENSITY_POINTS, finish, new_figure, note, styled


@styled
def normality_figure(result: NormalityResult, *, path: str | Path | None = None) -> Figure:
    """The values with the fitted normal density (left): a histogram with its KDE, or, for
    fewer than MIN_DENSITY_POINTS values, each value as a point (the line "runs") on the
    density; normal QQ plot (right, points labelled "sample", reference line "normal")."""
    figure, (hist_ax, qq_ax) = new_figure(ncols=2, size=(11, 4.8))
    values = result.values
    mean, std = values.mean(), values.std(ddof=1)
    grid = np.linspace(values.min() - std, values.max() + std, 200)
    hist_ax.plot(grid, stats.norm.pdf(grid, mean, std), "--", color="C3", label="normal fit")
    if values.size >= MIN_DENSITY_POINTS:
        sns.histplot(values, stat="density", kde=True, ax=hist_ax, color="C0", alpha=0.4)
        hist_ax.set_title(f"{result.name}: n = {result.n}")
    else:  # a histogram or KDE of a few values shows bins, not the values
        hist_ax.plot(values, stats.norm.pdf(values, mean, std), "o", color="C0", ms=7,
                     mec="black", label="runs")
        hist_ax.set_ylim(bottom=0)
        hist_ax.set_ylabel("normal density")
        hist_ax.set_title(f"{result.name}: n = {result.n}, each run a point")
    hist_ax.set_xlabel(result.name)
    hist_ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # long tick labels must not overlap
    hist_ax.legend(loc="upper right", fontsize="small")
    hist_ax.margins(y=0.3)  # room at the top for the note and the legend
    note(
        hist_ax,
        f"mean {mean:.4g}, std {std:.3g}\nskewness {result.skewness:.2f}\n"
        f"excess kurtosis {result.excess_kurtosis:.2f}",
        loc="upper left",
    )

    (theoretical, ordered), (slope, intercept, _) = stats.probplot(values, dist="norm")
    qq_ax.plot(theoretical, ordered, "o", color="C0", ms=4, label="sample")
    qq_ax.plot(theoretical, intercept + slope * theoretical, color="C3", label="normal")
    qq_ax.set_xlabel("normal quantile")
    qq_ax.set_ylabel(f"{result.name} (ordered)")
    verdict = "not normal" if result.rejects else "no evidence against normality"
    qq_ax.set_title(f"QQ plot: {verdict}")
    power = "\n".join(f"power vs {k}: {100 * p:.0f}%" for k, p in result.power.items())
    note(
        qq_ax,
        f"Shapiro-Wilk {result.shapiro.p_text} (n = {result.n})\n{power}",
        loc="lower right",
    )
    return finish(figure, path)


@styled
def compare_figure(
    result: CompareResult, *, metric: str = "value", path: str | Path | None = None
) -> Figure:
    """The two samples side by side, every run as a point and each sample's mean as a
    short line (labelled "mean"); a violin (quartiles dashed) behind them when both
    samples have at least MIN_DENSITY_POINTS runs."""
    figure, ax = new_figure(size=(10, 5.5))
    samples = (result.a, result.b)
    labels = [f"{name}\n(n={v.size})" for name, v in zip(result.names, samples, strict=True)]
    colours = sns.color_palette(n_colors=2)
    if min(v.size for v in samples) >= MIN_DENSITY_POINTS:
        data = pd.DataFrame({"group": np.repeat(labels, [v.size for v in samples]),
                             metric: np.concatenate(samples)})
        sns.violinplot(data, x="group", y=metric, hue="group", ax=ax, width=0.6, cut=0,
                       inner="quart", alpha=0.35, legend=False)
    # every run as a point, jittered sideways by a fixed stream (seaborn's stripplot draws
    # its jitter from numpy's global state: the figure would change from call to call)
    jitter = np.random.default_rng(0)
    for position, (values, colour) in enumerate(zip(samples, colours, strict=True)):
        ax.scatter(position + jitter.uniform(-0.15, 0.15, values.size), values, s=25,
                   color=colour, edgecolor="black", linewidth=0.5, zorder=3)
        ax.plot([position - 0.25, position + 0.25], [values.mean()] * 2, color="black", lw=2,
                zorder=4, label="mean" if position == 0 else "_mean")
    ax.set_xticks([0, 1], labels)
    ax.set_xlim(-0.6, 1.6)
    ax.set_xlabel("")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: {result.names[0]} vs {result.names[1]}, each run a point")
    ax.legend(loc="upper right", fontsize="small")
    note(
        ax,
        f"std {result.names[0]} {result.std_a.format('.3g')}\n"
        f"std {result.names[1]} {result.std_b.format('.3g')}\n"
        f"std ratio {result.std_ratio.format('.2f')}\n"
        + "".join(f"{line}\n" for line in result.test_lines())
        + f"P({result.names[0]} > {result.names[1]}) = {result.p_superiority.format('.2f')}",
    )
    return finish(figure, path)
