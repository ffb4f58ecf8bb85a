"""Figures for question 4: calibration, confusions, and the confidence of errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure

from nnlab.analysis import ErrorAnalysisResult
from nnlab.report.figures._base import finish, new_figure, note, styled, value_axis


@styled
def reliability_figure(result: ErrorAnalysisResult, *, path: str | Path | None = None) -> Figure:
    """Reliability diagram: accuracy per confidence bin (bars) against the diagonal (top);
    predictions per bin (bottom), on a log scale where the counts span more than a
    decade."""
    figure, (acc_ax, count_ax) = new_figure(
        nrows=2, size=(9.5, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    bins = result.bins
    filled = bins[bins["count"] > 0]
    width = float(bins["high"].iloc[0] - bins["low"].iloc[0])
    centre = (filled["low"] + filled["high"]) / 2
    acc_ax.bar(
        centre,
        filled["accuracy"],
        width=width * 0.95,
        color="C0",
        alpha=0.8,
        edgecolor="black",
        label="accuracy",
    )
    acc_ax.plot(
        filled["confidence"], filled["accuracy"], "o", color="C1", ms=4, label="mean confidence"
    )
    acc_ax.plot([0, 1], [0, 1], "--", color="0.3", label="perfect calibration")
    acc_ax.set_xlim(0, 1)
    acc_ax.set_ylim(0, 1)
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_title(f"reliability diagram ({len(bins)} equal-width bins)")
    acc_ax.legend(loc="upper left", fontsize="small")
    note(acc_ax, f"ECE = {result.ece.format('.4f')}\nn = {result.n} predictions\n"
                 f"of {_runs(result)}")
    count_ax.bar(centre, filled["count"], width=width * 0.95, color="0.5")
    value_axis(count_ax, filled["count"], "y")
    count_ax.set_xlabel("confidence (top-1 probability)")
    count_ax.set_ylabel("predictions")
    return finish(figure, path)


@styled
def confusion_figure(result: ErrorAnalysisResult, *, path: str | Path | None = None) -> Figure:
    """Confusion matrix heat map of the errors (diagonal masked, its accuracy in the row
    labels), every off-diagonal count written in its cell."""
    figure, ax = new_figure(size=(8.5, 7))
    confusion = result.confusion
    classes = np.arange(result.n_classes)
    right_share = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    sns.heatmap(
        confusion,
        mask=np.eye(result.n_classes, dtype=bool),
        annot=True,
        fmt="d",
        cmap="rocket_r",
        vmin=0,
        cbar_kws={"label": "errors"},
        linewidths=0.5,
        linecolor="0.9",
        ax=ax,
        xticklabels=classes,
        yticklabels=[
            f"{c}: {100 * s:.1f}% right" for c, s in zip(classes, right_share, strict=True)
        ],
    )
    ax.grid(False)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(
        f"confusions: {result.n_wrong} errors of {result.n} ({_runs(result)}; "
        f"accuracy {result.accuracy.format('.2f', 100, '%')})"
    )
    return finish(figure, path)


@styled
def confused_pairs_figure(result: ErrorAnalysisResult, *, path: str | Path | None = None) -> Figure:
    """The most frequent (true -> predicted) errors as horizontal bars."""
    figure, ax = new_figure(size=(7, 5))
    pairs = result.top_pairs
    labels = [f"{t} -> {p}" for t, p in zip(pairs["true"], pairs["predicted"], strict=True)]
    ax.barh(labels, pairs["count"], color="C3", alpha=0.8)
    ax.invert_yaxis()
    for y, (count, share) in enumerate(zip(pairs["count"], pairs["share"], strict=True)):
        ax.text(count, y, f" {count} ({100 * share:.1f}%)", va="center", fontsize="small")
    ax.set_xlabel("errors")
    ax.set_ylabel("true -> predicted")
    ax.set_title(f"most confused pairs ({result.n_wrong} errors, n = {result.n} of "
                 f"{_runs(result)})")
    ax.margins(x=0.2)
    return finish(figure, path)


@styled
def confidence_figure(result: ErrorAnalysisResult, *, path: str | Path | None = None) -> Figure:
    """Distribution of top-1 confidence for right and wrong answers (share per bin)."""
    figure, ax = new_figure(size=(11, 5))
    hist = result.confidence_hist
    centre = (hist["low"] + hist["high"]) / 2
    width = float(hist["high"].iloc[0] - hist["low"].iloc[0])
    for offset, column, colour in ((-0.2, "right", "C0"), (0.2, "wrong", "C3")):
        share = hist[column] / hist[column].sum()
        ax.bar(
            centre + offset * width,
            share,
            width=0.4 * width,
            color=colour,
            alpha=0.85,
            label=f"{column} (n={hist[column].sum()})",
        )
    for estimate, colour in ((result.confidence_right, "C0"), (result.confidence_wrong, "C3")):
        ax.axvline(estimate.value, color=colour, ls="--")
    ax.set_xlim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("share of answers")
    ax.set_title("how confident are wrong answers?")
    ax.legend(loc="upper left", fontsize="small")
    note(
        ax,
        f"mean confidence wrong {result.confidence_wrong.format('.3f')}\n"
        f"right {result.confidence_right.format('.3f')}\n"
        f"Mann-Whitney {result.confidence_test.p_text}\n"
        f"errors at >= {result.confident:g}: {result.n_confident_errors} "
        f"({result.confident_error_share.format('.1f', 100, '%')} of errors)\n"
        f"second guess right when wrong: {result.second_guess_rate.format('.1f', 100, '%')}\n"
        f"(chance {100 * result.chance:.1f}%, n = {result.n_wrong} errors)",
    )
    return finish(figure, path)


def _runs(result: ErrorAnalysisResult) -> str:
    """'3 runs' (or '1 run'): how many runs' predictions the result pools."""
    return f"{result.n_trials} run{'' if result.n_trials == 1 else 's'}"
