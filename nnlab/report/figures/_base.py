"""What every figure shares: seaborn style, figure creation, annotation, axis scales, PNG
output.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot): no global state, no
GUI backend, nothing to close; saving renders with Agg.

Small studies read right too: an axis is logarithmic only where its values span more than
a decade (`value_axis`); a few values of a varied field get a tick each; a distribution of
fewer than MIN_DENSITY_POINTS values is drawn as its points (a histogram, KDE or violin of 2
or 3 values shows nothing that is there); every band and error bar says what it is and
over how many seeds (`seeds_text`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec

import matplotlib as mpl
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, NullFormatter

DPI = 150
MIN_DENSITY_POINTS = 10  # fewer values: drawn as points, never as a histogram, KDE or violin
MAX_TICKED_VALUES = 8  # up to this many values of a varied field get a tick each
DECADE = 10.0  # an axis is logarithmic only where its values span more than this factor
STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook")}
P = ParamSpec("P")


def styled(draw: Callable[P, Figure]) -> Callable[P, Figure]:
    """Run a figure function inside the seaborn style (rc settings apply at creation)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Figure:
        with mpl.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def finish(figure: Figure, path: str | Path | None) -> Figure:
    """Save `figure` as PNG when a path is given; return it."""
    if path is not None:
        save_figure(figure, path)
    return figure


def new_figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (8, 5), **kwargs):
    """(Figure, axes) with constrained layout; axes as `Figure.subplots` returns them."""
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots(nrows, ncols, squeeze=True, **kwargs)


def note(ax: Axes, text: str, loc: str = "outside") -> None:
    """A boxed annotation (numbers with CIs and n): right of the axes ("outside", kept in
    the layout) or inside at "upper left", "lower center", ..."""
    if loc == "outside":
        x, y, ha, va = 1.03, 1.0, "left", "top"
    else:
        vertical, horizontal = loc.split()
        x, ha = {"left": (0.02, "left"), "center": (0.5, "center"), "right": (0.98, "right")}[
            horizontal
        ]
        y, va = (0.97, "top") if vertical == "upper" else (0.03, "bottom")
    ax.text(
        x,
        y,
        text,
        transform=ax.transAxes,
        ha=ha,
        va=va,
        fontsize="small",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "0.7"},
    )


def save_figure(figure: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write `figure` as a PNG at `path` (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def spans_decades(values: object) -> bool:
    """Whether the positive finite `values` span more than a decade (max / min > 10);
    False if any value is <= 0 (a log axis could not show it)."""
    found = np.asarray(values, dtype=float).ravel()
    found = found[np.isfinite(found)]
    return bool(found.size and found.min() > 0 and found.max() / found.min() > DECADE)


def value_axis(ax: Axes, values: object, which: str = "x", *, ticks: bool = False) -> str:
    """Scale the `which` axis ("x" or "y") of `ax` for `values`: logarithmic where they span
    more than a decade (`spans_decades`), else linear. `ticks`: the values are the settings
    of a varied field (eta, n_steps): with at most MAX_TICKED_VALUES distinct ones, a tick
    at each, labelled as plain numbers (0.3, 1, 3). Returns the scale, "log" or "linear"."""
    scale = "log" if spans_decades(values) else "linear"
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)(scale)
    found = np.unique(np.asarray(values, dtype=float).ravel())
    found = found[np.isfinite(found)]
    if ticks and 0 < found.size <= MAX_TICKED_VALUES:
        axis.set_major_locator(FixedLocator(found))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    elif scale == "log":
        plain_log_labels(axis)
    return scale


class _Plain(Formatter):
    """Labels the ticks `inner` (a log axis's formatter) labels, as plain numbers: 0.2, 3,
    100 instead of 2 x 10^-1, 3 x 10^0, 10^2."""

    def __init__(self, inner: Formatter) -> None:
        self.inner = inner

    def set_axis(self, axis: Any) -> None:  # an Axis (or matplotlib's stand-ins)
        super().set_axis(axis)
        self.inner.set_axis(axis)

    def set_locs(self, locs) -> None:
        super().set_locs(locs)
        self.inner.set_locs(locs)

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if self.inner(x, pos) else ""


def plain_log_labels(axis: Axis) -> None:
    """Plain numbers on the (sym)log `axis`, at the ticks matplotlib would label."""
    axis.set_major_formatter(_Plain(axis.get_major_formatter()))
    axis.set_minor_formatter(_Plain(axis.get_minor_formatter()))


def seeds_text(counts: object) -> str:
    """'3 seeds', '2-3 seeds' or '1 seed': the range of a count of seeds (runs) per point."""
    found = np.asarray(counts, dtype=float).ravel()
    low, high = int(np.nanmin(found)), int(np.nanmax(found))
    return f"{low}{'' if low == high else f'-{high}'} seed{'' if high == 1 else 's'}"
