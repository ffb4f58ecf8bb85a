"""What every figure shares: seaborn style, figure creation, annotation, PNG output.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot): no global state, no
GUI backend, nothing to close; saving renders with Agg.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec

import matplotlib as mpl
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DPI = 150
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
