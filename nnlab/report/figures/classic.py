"""The seed projects' classic pictures: accuracy vs learning rate, epochs and overfitting,
learning rate x epochs (heat map and animation), the take-off of accuracy at a critical
learning rate, the inverse query of a trained net, and a gallery of misclassified digits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from nnlab.analysis import Estimate, PowerLawFit
from nnlab.report.figures._base import (
    STYLE,
    finish,
    new_figure,
    note,
    seeds_text,
    styled,
    value_axis,
)
from nnlab.report.figures.curves import palette, step_axis


def _ci_line(ax, x, rows: pd.DataFrame, colour, label: str, style: str = "o-") -> None:
    """Seed means (line) with their CI as a band; rows: mean, low, high."""
    ax.plot(x, rows["mean"], style, color=colour, ms=4, label=label)
    ax.fill_between(x, rows["low"], rows["high"], color=colour, alpha=0.2, lw=0)


@styled
def lr_sweep_figure(
    sweep: pd.DataFrame,
    best: Estimate,
    *,
    eta_col: str = "eta",
    chosen_on: str = "val_acc",
    path: str | Path | None = None,
) -> Figure:
    """Test and validation accuracy vs learning rate, seed means with their CIs as bands
    (the legend says over how many seeds); the best learning rate (chosen on `chosen_on`)
    with its CI as a shaded span, said to be a bound when it is the grid's smallest or
    largest eta. The eta axis is logarithmic where the grid spans more than a decade, with
    a tick at each of a few etas.

    sweep: long table: `eta_col`, metric ("test_acc" / "val_acc"), mean, low, high, n.
    Lines are labelled "<metric> (...)"; the best learning rate is the line "eta_best".
    """
    figure, ax = new_figure(size=(11, 5.5))
    level = f"{100 * best.confidence:g}%"
    for metric, colour, style in (("test_acc", "C0", "o-"), ("val_acc", "C1", "s--")):
        rows = sweep[sweep["metric"] == metric].sort_values(eta_col)
        _ci_line(ax, rows[eta_col], rows, colour,
                 f"{metric} (seed mean, {level} CI over {seeds_text(rows['n'])})", style)
    ax.axvspan(best.low, best.high, color="C2", alpha=0.15, lw=0)
    ax.axvline(best.value, color="C2", lw=2, label="eta_best")
    value_axis(ax, sweep[eta_col], ticks=True)
    ax.set_xlabel(f"learning rate ({eta_col})")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy vs learning rate")
    ax.legend(loc="lower left", bbox_to_anchor=(1.02, 0), fontsize="small")
    etas = sweep[eta_col]
    edge = bool(np.isclose(best.value, [etas.min(), etas.max()], rtol=1e-9).any())
    how = ("the grid's edge: a bound, the best\nmay lie beyond it" if edge
           else f"vertex of a parabola in log {eta_col}")
    note(ax, f"best learning rate, chosen on {chosen_on}:\n{best.format('.3g')}\n({how})\n"
             f"bands: {level} CI of the seed mean\nseeds per point: {_span(sweep['n'])}")
    return finish(figure, path)


@styled
def overfit_figure(
    bands: pd.DataFrame,
    best_epochs: dict[str, Estimate],
    *,
    path: str | Path | None = None,
) -> Figure:
    """Loss (left: train solid, validation dashed) and accuracy (right: validation solid,
    test dotted) per epoch, seed means +- std, one colour per configuration; the epoch of
    the best validation accuracy (seed mean with CI) as a vertical line "best epoch".

    bands: `curve_bands` rows at whole epochs with a `config` column.
    """
    figure, (loss_ax, acc_ax) = new_figure(ncols=2, size=(13, 5))
    colours = palette(list(dict.fromkeys(bands["config"])))
    for config, colour in colours.items():
        rows = bands[bands["config"] == config]
        for ax, metric, style in ((loss_ax, "train_loss", "o-"), (loss_ax, "val_loss", "s--"),
                                  (acc_ax, "val_acc", "o-"), (acc_ax, "test_acc", "s:")):
            part = rows[rows["metric"] == metric].sort_values("epoch")
            spread = np.nan_to_num(part["std"].to_numpy())
            ax.plot(part["epoch"], part["mean"], style, color=colour, ms=4,
                    label=f"{config} {metric}")
            ax.fill_between(part["epoch"], part["mean"] - spread, part["mean"] + spread,
                            color=colour, alpha=0.15, lw=0)
        best = best_epochs[config]
        for ax in (loss_ax, acc_ax):
            ax.axvline(best.value, color=colour, lw=1.2, alpha=0.8, label="best epoch")
    lines = [f"{config}: best val_acc at epoch {best.format('.2g')}"
             for config, best in best_epochs.items()]
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("train loss (solid) vs validation loss (dashed)")
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title("validation (solid) and test (dotted) accuracy")
    handles = [Line2D([], [], color=colour, lw=2.5, label=config)
               for config, colour in colours.items()]
    figure.legend(handles=handles, loc="outside right upper", fontsize="small")
    n = bands.loc[bands["epoch"] > 0, "n"]
    note(acc_ax, "\n".join(lines) + f"\n(mean over seeds, {100 * best.confidence:g}% CI)\n"
         f"bands: +- 1 std over {_span(n)} seeds\n"
         "train loss: mean over the epoch's steps", loc="lower right")
    return finish(figure, path)


@styled
def lr_epochs_heatmap_figure(
    means: pd.DataFrame,
    counts: pd.DataFrame,
    best: tuple[float, float],
    *,
    metric: str = "test_acc",
    chosen_on: str = "val_acc",
    path: str | Path | None = None,
) -> Figure:
    """Heat map of the seed-mean `metric` (rows: epoch, columns: learning rate), every cell
    annotated; the cell chosen on `chosen_on` (`best` = (epoch, eta)) outlined.

    means, counts: epoch x eta tables of the seed mean and the number of runs."""
    figure, ax = new_figure(size=(10, 6.5))
    sns.heatmap(means, annot=True, fmt=".4f", cmap="viridis", ax=ax, linewidths=0.5,
                linecolor="white", cbar_kws={"label": metric},
                xticklabels=[f"{eta:g}" for eta in means.columns],
                yticklabels=[f"{epoch:g}" for epoch in means.index])
    ax.grid(False)
    row = list[Any](means.index).index(best[0])
    column = list[Any](means.columns).index(best[1])
    ax.add_patch(mpl.patches.Rectangle((column, row), 1, 1, fill=False, edgecolor="red", lw=3))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("epoch")
    ax.set_title(f"{metric}, mean over {_span(counts.to_numpy().ravel())} seeds, by learning "
                 f"rate and epoch (red: best on {chosen_on})", fontsize="medium")
    return finish(figure, path)


def lr_epochs_animation(
    sweep: pd.DataFrame,
    path: str | Path,
    *,
    metric: str = "test_acc",
    eta_col: str = "eta",
    fps: float = 1.5,
) -> Path:
    """Write an animated GIF (Pillow writer): `metric` vs learning rate, one frame per
    epoch, earlier epochs fading; seed means with their CI band.

    sweep: long table: epoch, `eta_col`, mean, low, high, n (one row per epoch and eta).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs = sorted(sweep["epoch"].unique())
    with mpl.rc_context(STYLE):
        figure = Figure(figsize=(7.5, 4.6), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.subplots()
        colours = palette(epochs)
        low, high = sweep["low"].min(), sweep["high"].max()
        margin = 0.05 * (high - low)

        def draw(frame: int) -> None:
            ax.clear()
            for epoch in epochs[:frame + 1]:
                rows = sweep[sweep["epoch"] == epoch].sort_values(eta_col)
                current = epoch == epochs[frame]
                ax.plot(rows[eta_col], rows["mean"], "o-", color=colours[epoch],
                        alpha=1.0 if current else 0.35, lw=2.5 if current else 1,
                        label=f"epoch {epoch:g}")
                if current:
                    ax.fill_between(rows[eta_col], rows["low"], rows["high"],
                                    color=colours[epoch], alpha=0.2, lw=0)
            value_axis(ax, sweep[eta_col], ticks=True)
            ax.set_ylim(low - margin, high + margin)
            ax.set_xlabel("learning rate")
            ax.set_ylabel(f"{metric} (mean over seeds)")
            ax.set_title(f"{metric} vs learning rate after {epochs[frame]:g} epoch(s)")
            ax.legend(loc="lower left", fontsize="small")

        animation = FuncAnimation(figure, draw, frames=len(epochs))
        # a float frame rate works; matplotlib's stubs say int
        animation.save(path, writer=PillowWriter(fps=fps), dpi=90)  # type: ignore[arg-type]
    return path


@styled
def takeoff_figure(
    bands: pd.DataFrame,
    takeoff: pd.DataFrame,
    critical: float | None,
    *,
    eta_col: str = "eta",
    threshold: float,
    scaling: PowerLawFit | None = None,
    confidence: float = 0.95,
    path: str | Path | None = None,
) -> Figure:
    """Validation accuracy vs step for each learning rate (left, seed means), and the step
    at which accuracy first reaches `threshold` (right: geometric seed mean with CI; runs
    that never do are counted on top), with the critical learning rate marked and, if
    given, the power law `scaling` of the take-off step with its band.

    bands: `curve_bands` rows of metric val_acc with an `eta_col` column.
    takeoff: one row per eta: `eta_col`, mean, low, high (steps), n, n_never, n_early (runs
        that took off by their first evaluation after step 0) and first_eval (its step).
    critical: the critical learning rate, or None when the grid has none.
    """
    figure, (curve_ax, step_ax) = new_figure(ncols=2, size=(13, 5))
    etas = sorted(takeoff[eta_col])
    colours = palette(etas)
    for eta in etas:
        rows = bands[bands[eta_col] == eta].sort_values("step")
        curve_ax.plot(rows["step"], rows["mean"], color=colours[eta], lw=1.8, label=f"{eta:g}")
    curve_ax.axhline(threshold, color="0.4", ls=":", lw=1)
    step_axis(curve_ax, bands["step"].to_numpy())
    curve_ax.set_ylabel(f"val_acc (mean over {seeds_text(takeoff['n'])})")
    curve_ax.set_title("accuracy vs step for each learning rate")
    curve_ax.legend(title=eta_col, fontsize="small", title_fontsize="small", loc="upper left")

    early = takeoff["n_early"] == takeoff["n"]
    reached = takeoff[(takeoff["n"] > takeoff["n_never"]) & ~early]
    step_ax.errorbar(reached[eta_col], reached["mean"],
                     yerr=[reached["mean"] - reached["low"], reached["high"] - reached["mean"]],
                     fmt="o-", capsize=3, color="C0", label="take-off step")
    if early.any():
        step_ax.plot(takeoff.loc[early, eta_col], takeoff.loc[early, "first_eval"], "v",
                     color="0.5", label="by the first evaluation (upper bound)")
    never = takeoff[takeoff["n_never"] > 0]
    if len(never):
        step_ax.plot(never[eta_col], np.full(len(never), 0.97), "v", color="C3",
                     transform=step_ax.get_xaxis_transform(), label="runs that never take off")
    for row in never.itertuples(index=False):  # beside its marker, never on it
        step_ax.annotate(f"{row.n_never}/{row.n}", (getattr(row, eta_col), 0.97),
                         xycoords=("data", "axes fraction"), xytext=(7, 0),
                         textcoords="offset points", ha="left", va="center",
                         fontsize="small", color="C3")
    step_ax.set_xlim(min(etas) / 1.5, max(etas) * 1.5)
    if scaling is not None:
        x = np.geomspace(scaling.x.min(), scaling.x.max(), 50)
        low, high = scaling.band(x)
        step_ax.fill_between(x, low, high, color="C1", alpha=0.25, lw=0)
        step_ax.plot(x, scaling.predict(x), color="C1", lw=1.5,
                     label=f"step = a eta^-k, k = {scaling.exponent.value:.2f}")
    if critical is not None:
        step_ax.axvline(critical, color="C3", ls="--", label="critical eta")
    value_axis(step_ax, etas, ticks=True)
    shown = pd.concat([reached["low"], reached["high"], takeoff.loc[early, "first_eval"]])
    if value_axis(step_ax, shown, "y") == "log":  # room below the points for the note,
        step_ax.set_ylim(shown.min() / 3, shown.max() * 3)  # above for the legend
    elif shown.notna().any():
        step_ax.margins(y=0.4)
    step_ax.set_xlabel(eta_col)
    step_ax.set_ylabel(f"take-off step (val_acc reaches {threshold:.3g})")
    step_ax.set_title("when does accuracy take off?")
    step_ax.legend(loc="best", fontsize="small")
    level = f"{100 * confidence:g}%"
    if critical is not None:
        verdict = f"= {critical:g}"
    elif len(never):
        verdict = "(none in the grid)"
    else:
        verdict = f"<= {min(etas):g} (all take off)"
    note(step_ax, "critical eta: the smallest from which on\nevery run takes off\n" + verdict
         + f"\nbars: geometric mean, {level} CI\nover {_span(takeoff['n'])} seeds",
         loc="lower left")
    return finish(figure, path)


@styled
def inverse_query_figure(
    images: np.ndarray,
    image_shape: tuple[int, ...],
    *,
    path: str | Path | None = None,
) -> Figure:
    """The images (n_classes, n_features) a trained net "imagines" for each class, one
    panel per class titled with it (grey scale, dark = high input; several channels
    shown as their mean). image_shape: (channels, height, width)."""
    n = images.shape[0]
    figure = Figure(figsize=(2.0 * n / 2 + 0.5, 5), layout="constrained")
    axes = figure.subplots(2, (n + 1) // 2)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < n:
            ax.imshow(_grey(images[k], image_shape), cmap="Greys", vmin=0, vmax=1)
            ax.set_title(str(k))
    figure.suptitle("inverse query: the input each output class asks for")
    return finish(figure, path)


@styled
def gallery_figure(
    images: np.ndarray,
    errors: pd.DataFrame,
    image_shape: tuple[int, ...],
    *,
    n_columns: int = 8,
    grey_range: tuple[float, float] = (0, 255),
    title: str = "misclassified test images",
    path: str | Path | None = None,
) -> Figure:
    """Misclassified test images (k, n_features) with their label and the net's top-2
    guesses, `n_columns` to a row (fewer when there are fewer images). errors: k rows of
    y_true, top1, p1, top2, p2 (one per image). image_shape: (channels, height, width),
    several channels shown as their mean; grey_range: the values drawn white and black
    (uint8 pixels: 0 and 255)."""
    k = len(errors)
    n_columns = max(1, min(n_columns, k))  # a few errors: no empty panels beside them
    n_rows = max(1, -(-k // n_columns))
    figure = Figure(figsize=(1.55 * n_columns + 0.4, 1.95 * n_rows + 0.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_columns)).ravel()
    for ax, image, row in zip(axes, images, errors.itertuples(index=False), strict=False):
        ax.imshow(_grey(image, image_shape), cmap="Greys", vmin=grey_range[0],
                  vmax=grey_range[1])
        p1, p2 = (float(getattr(row, name)) for name in ("p1", "p2"))
        ax.set_title(f"true {row.y_true}\n{row.top1}: {100 * p1:.0f}%  "
                     f"{row.top2}: {100 * p2:.0f}%", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    figure.suptitle(title, fontsize="medium")
    return finish(figure, path)


def _grey(image: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """One flat example (n_features,) as a (height, width) image: its channels' mean."""
    return image.reshape(image_shape).mean(axis=0) if len(image_shape) == 3 and (
        image_shape[0] > 1) else image.reshape(image_shape[-2:])


def _span(counts) -> str:
    """The range of seed counts over a grid's cells; a cell no run reached is NaN."""
    counts = np.asarray(counts, dtype=float)
    low, high = int(np.nanmin(counts)), int(np.nanmax(counts))
    return f"{low}" if low == high else f"{low}-{high}"
