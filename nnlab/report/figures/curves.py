"""Learning curves: seed mean +- std per configuration, accuracy and losses vs step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nnlab.report.figures._base import (
    finish,
    plain_log_labels,
    seeds_text,
    spans_decades,
    styled,
)

LOSS_STYLES = {"train_loss": "-", "val_loss": "--"}
MAX_UNMARKED_STEPS = 12  # fewer evaluation steps: each is marked on its line


def palette(values: list) -> dict:
    """A colour per value: viridis for numbers (in order), tab10 otherwise."""
    numeric = all(isinstance(v, int | float | np.number) for v in values)
    colours = sns.color_palette("viridis" if numeric else "tab10", len(values))
    return dict(zip(values, colours, strict=True))


def step_axis(ax: Axes, steps: np.ndarray, column: str = "step") -> None:
    """Symlog x axis (step 0 included) when the positive evaluation steps span more than a
    decade, else linear."""
    positive = steps[steps > 0]
    if spans_decades(positive):
        ax.set_xscale("symlog", linthresh=max(1.0, float(positive.min())))
        plain_log_labels(ax.xaxis)
    ax.set_xlabel(column)
    ax.set_xlim(left=0)


@styled
def learning_curves_figure(
    bands: pd.DataFrame,
    *,
    hue: str = "config",
    facet: str | None = None,
    accuracy: str = "val_acc",
    path: str | Path | None = None,
) -> Figure:
    """Accuracy (left) and train/val loss (right) vs step, one colour per value of `hue`,
    one row per value of `facet` (its values title the rows, in order of appearance);
    lines are seed means, bands +- 1 std over seeds, the number of seeds in the titles and
    per configuration in the legend (one seed: no band, and the titles say so). With few
    evaluation steps (at most MAX_UNMARKED_STEPS) each is marked on its line. The loss axis
    is logarithmic when the losses span more than a factor 10.

    bands: `nnlab.report.summaries.curve_bands` output with the `hue` (and `facet`) column.
    Lines are labelled "<hue value>" (accuracy) and "<hue value> <loss name>" (losses).
    """
    facets = [None] if facet is None else list(dict.fromkeys(bands[facet]))
    figure, axes = _grid(len(facets))
    colours = palette(sorted(bands[hue].unique(), key=_sort_key))
    runs = bands.groupby(hue)["n"].max()
    lines = bands.groupby([c for c in (hue, facet) if c] + ["metric"])["step"].nunique()
    marker = "o" if lines.max() <= MAX_UNMARKED_STEPS else None
    for (acc_ax, loss_ax), value in zip(axes, facets, strict=True):
        data = bands if facet is None else bands[bands[facet] == value]
        for key, colour in colours.items():
            group = data[data[hue] == key]
            if group.empty:
                continue
            _band(acc_ax, group[group["metric"] == accuracy], colour, f"{key}", marker=marker)
            for loss, style in LOSS_STYLES.items():
                _band(loss_ax, group[group["metric"] == loss], colour, f"{key} {loss}", style,
                      marker)
        steps = data["step"].to_numpy()
        for ax in (acc_ax, loss_ax):
            step_axis(ax, steps)
        acc_ax.set_ylabel(accuracy)
        loss_ax.set_ylabel("loss")
        losses = data.loc[data["metric"].isin(list(LOSS_STYLES)), "mean"]
        if spans_decades(losses):
            loss_ax.set_yscale("log")
            plain_log_labels(loss_ax.yaxis)
        where = "" if facet is None else f"{value}: "
        seeds = seeds_text(data.groupby(hue)["n"].max())
        spread = f"mean +- std over {seeds}" if data["n"].max() > 1 else "1 seed: no spread"
        acc_ax.set_title(f"{where}{accuracy} ({spread})", fontsize="medium")
        loss_ax.set_title(f"{where}train loss (solid), val loss (dashed)", fontsize="medium")
    handles = [Line2D([], [], color=colour, lw=2.5, label=f"{key} (n={runs[key]})")
               for key, colour in colours.items()]
    figure.legend(handles=handles, title=hue, loc="outside right upper", fontsize="small",
                  title_fontsize="small")
    return finish(figure, path)


def _grid(n_rows: int) -> tuple[Figure, np.ndarray]:
    """A figure with n_rows x 2 axes (accuracy, loss), legend space on the right."""
    figure = Figure(figsize=(13, 3.9 * n_rows + 0.6), layout="constrained")
    return figure, figure.subplots(n_rows, 2, squeeze=False)


def _band(ax: Axes, rows: pd.DataFrame, colour, label: str, style: str = "-",
          marker: str | None = None) -> None:
    if rows.empty:
        return
    x, mean = rows["step"].to_numpy(), rows["mean"].to_numpy()
    spread = np.nan_to_num(rows["std"].to_numpy())
    ax.plot(x, mean, style, color=colour, lw=1.6, label=label, marker=marker, ms=4)
    ax.fill_between(x, mean - spread, mean + spread, color=colour, alpha=0.18, lw=0)


def _sort_key(value):
    return (0, value, "") if isinstance(value, int | float | np.number) else (1, 0, str(value))
