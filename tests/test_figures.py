"""Each figure renders a non-blank PNG, and what it plots comes from the result object."""

from __future__ import annotations

import io

import matplotlib.image
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from nnlab import analysis
from nnlab.report import figures


def render(figure: Figure) -> str:
    """Render to PNG, check the image is readable-sized and not blank; return all its text."""
    width, height = figure.get_size_inches()
    assert width >= 7 and height >= 4.5  # >= 1050 x 675 px at the saved 150 dpi
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    buffer.seek(0)
    pixels = matplotlib.image.imread(buffer, format="png")
    assert pixels[..., :3].var() > 0
    return "\n".join(t.get_text() for t in figure.findobj(matplotlib.text.Text))


def line(ax, label: str):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def errorbar_points(ax, label: str) -> np.ndarray:
    (found,) = [c for c in ax.containers if c.get_label() == label]
    return np.asarray(found.lines[0].get_ydata(), dtype=float)


@pytest.fixture(scope="module")
def eta_result() -> analysis.EtaBestResult:
    rng = np.random.default_rng(0)
    rows = [
        {"n_steps": n, "eta": eta, "seed": s, "status": "ok",
         "val_acc": 0.9 - 0.02 * np.log(eta * n**0.5 / 2) ** 2 + 0.003 * rng.normal()}
        for n in (100, 1000, 10000) for eta in np.geomspace(1e-3, 1, 7) for s in range(3)
    ]  # fmt: skip
    return analysis.eta_best(pd.DataFrame(rows), n_resamples=200)


@pytest.fixture(scope="module")
def errors() -> analysis.ErrorAnalysisResult:
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.integers(0, 10, n)
    p1 = rng.uniform(0.2, 1.0, n)
    right = rng.random(n) < p1
    top1 = np.where(right, y, (y + rng.integers(1, 4, n)) % 10)
    top2 = np.where(right, (y + 1) % 10, y)
    predictions = pd.DataFrame({"y_true": y, "top1": top1, "top2": top2, "p1": p1})
    return analysis.error_analysis(predictions, n_resamples=200)


def test_eta_curves_plot_the_seed_means_and_mark_eta_best(eta_result, tmp_path):
    figure = figures.eta_curves_figure(eta_result, path=tmp_path / "eta.png")
    text = render(figure)
    assert (tmp_path / "eta.png").stat().st_size > 10_000
    ax = figure.axes[0]
    curve = eta_result.curves[eta_result.curves["n_steps"] == 1000]
    np.testing.assert_allclose(line(ax, "n_steps=1000").get_ydata(), curve["mean"])
    marked = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_label() == "_eta_best"]
    np.testing.assert_allclose(marked, eta_result.table["eta_best"])
    assert "seeds per point: 3" in text


def test_power_law_figure_draws_the_fit_its_band_and_the_points(eta_result):
    fit = eta_result.power_law()
    figure = figures.power_law_figure(fit, eta_best=eta_result, xlabel="n_steps")
    text = render(figure)
    ax = figure.axes[0]
    fitted = line(ax, "fit")
    np.testing.assert_allclose(fitted.get_ydata(), fit.predict(fitted.get_xdata()))
    np.testing.assert_allclose(errorbar_points(ax, "in fit"), eta_result.table["eta_best"])
    assert f"b = {fit.exponent}" in text and "n = 3 points" in text


def test_normality_figure_shows_the_sample_quantiles(tmp_path):
    values = np.random.default_rng(2).normal(0.95, 0.01, 25)
    result = analysis.normality(values, name="test_acc")
    figure = figures.normality_figure(result)
    text = render(figure)
    qq_ax = figure.axes[1]
    np.testing.assert_allclose(line(qq_ax, "sample").get_ydata(), np.sort(values))
    assert "n = 25" in text and result.shapiro.p_text in text
    assert f"{100 * result.power['skewed']:.0f}%" in text


def test_variance_figure_plots_std_fit_floor_and_test_set_line():
    rng = np.random.default_rng(3)
    ns = np.repeat([100, 400, 1600, 6400, 25600], 20)
    trials = pd.DataFrame(
        {
            "n_steps": ns,
            "seed": np.tile(np.arange(20), 5),
            "test_acc": 0.95 + np.sqrt(4e-4 + 5 * ns**-1.5) * rng.normal(size=ns.size),
        }
    )
    result = analysis.variance_vs_n(trials, status_col=None, n_resamples=300)
    wrong = rng.random((5, 400)) < 0.1
    test_set = analysis.test_set_variance(
        pd.DataFrame(
            {
                "trial": np.repeat(np.arange(5), 400),
                "index": np.tile(np.arange(400), 5),
                "y_true": 0,
                "top1": wrong.ravel().astype(int),
            }
        ),
        n_resamples=200,
    )
    figure = figures.variance_figure(result, test_set=test_set)
    text = render(figure)
    mean_ax, std_ax = figure.axes[:2]
    np.testing.assert_allclose(errorbar_points(std_ax, "std"), result.table["std"])
    np.testing.assert_allclose(errorbar_points(mean_ax, "mean"), result.table["mean"])
    fitted = line(std_ax, "fit")
    np.testing.assert_allclose(fitted.get_ydata(), np.sqrt(result.fit.predict(fitted.get_xdata())))
    assert line(std_ax, "floor").get_ydata()[0] == pytest.approx(np.sqrt(result.fit.floor.value))
    assert line(std_ax, "test set").get_ydata()[0] == pytest.approx(
        np.sqrt(test_set.test_set.value)
    )
    assert f"floor c = {result.fit.floor}" in text


def test_compare_figure_shows_every_run_of_both_groups():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.95, 0.02, 30), rng.normal(0.95, 0.01, 25)
    result = analysis.compare_variance(a, b, names=("noise", "none"), n_resamples=300)
    figure = figures.compare_figure(result, metric="test_acc")
    text = render(figure)
    ax = figure.axes[0]
    strips = [c for c in ax.collections if isinstance(c, PathCollection)]  # the run points
    points = np.concatenate([c.get_offsets()[:, 1] for c in strips])
    np.testing.assert_allclose(np.sort(points), np.sort(np.r_[a, b]))
    assert f"std ratio {result.std_ratio.format('.2f')}" in text
    assert "noise\n(n=30)" in text and "none\n(n=25)" in text
    # the sideways jitter comes from a fixed stream, not numpy's global state
    again = figures.compare_figure(result, metric="test_acc").axes[0]
    np.testing.assert_array_equal(
        np.concatenate([c.get_offsets() for c in again.collections
                        if isinstance(c, PathCollection)]),
        np.concatenate([c.get_offsets() for c in strips]))


def test_reliability_figure_bars_are_the_bin_accuracies(errors):
    figure = figures.reliability_figure(errors)
    text = render(figure)
    acc_ax, count_ax = figure.axes[:2]
    filled = errors.bins[errors.bins["count"] > 0]
    np.testing.assert_allclose([p.get_height() for p in acc_ax.patches], filled["accuracy"])
    np.testing.assert_allclose([p.get_height() for p in count_ax.patches], filled["count"])
    assert f"ECE = {errors.ece.format('.4f')}" in text


def test_confusion_figure_colours_the_off_diagonal_counts(errors):
    figure = figures.confusion_figure(errors)
    text = render(figure)
    mesh = figure.axes[0].collections[0].get_array()
    off_diagonal = ~np.eye(10, dtype=bool)
    np.testing.assert_array_equal(
        mesh.reshape(10, 10)[off_diagonal], errors.confusion[off_diagonal]
    )
    assert np.ma.getmaskarray(mesh).reshape(10, 10)[np.eye(10, dtype=bool)].all()
    assert f"{errors.n_wrong} errors of {errors.n}" in text


def test_confused_pairs_figure_bars_are_the_top_pair_counts(errors):
    figure = figures.confused_pairs_figure(errors)
    text = render(figure)
    bars = figure.axes[0].patches
    np.testing.assert_array_equal([p.get_width() for p in bars], errors.top_pairs["count"])
    true, predicted = errors.top_pairs[["true", "predicted"]].to_numpy()[0]
    assert f"{true} -> {predicted}" in text


def test_confidence_figure_shows_both_distributions_and_the_means(errors):
    figure = figures.confidence_figure(errors)
    text = render(figure)
    ax = figure.axes[0]
    hist = errors.confidence_hist
    heights = np.array([p.get_height() for p in ax.patches]).reshape(2, -1)
    np.testing.assert_allclose(heights[0], hist["right"] / hist["right"].sum())
    np.testing.assert_allclose(heights[1], hist["wrong"] / hist["wrong"].sum())
    assert errors.confidence_wrong.format(".3f") in text
    assert f"n = {errors.n_wrong} errors" in text
