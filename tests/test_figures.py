"""Each figure renders a non-blank PNG, and what it plots comes from the result object."""

from __future__ import annotations

import io

import matplotlib.image
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
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


# --- small studies: 2-3 seeds, 1-3 configurations, few evaluation points ---------------------


def violins(ax) -> list:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


@pytest.mark.parametrize(("n", "density"), [(3, False), (9, False), (10, True), (25, True)])
def test_normality_figure_shows_a_few_values_as_points_and_many_as_a_histogram(n, density):
    values = np.random.default_rng(5).normal(0.95, 0.01, n)
    figure = figures.normality_figure(analysis.normality(values, name="test_acc"))
    text = render(figure)
    hist_ax = figure.axes[0]
    assert bool(hist_ax.patches) is density  # histogram bars
    points = [ln for ln in hist_ax.get_lines() if ln.get_label() == "runs"]
    if density:
        assert not points
    else:
        np.testing.assert_allclose(np.sort(points[0].get_xdata()), np.sort(values))
        assert f"n = {n}, each run a point" in text
    assert f"n = {n}" in text


@pytest.mark.parametrize(("n", "violin"), [(3, False), (9, False), (10, True)])
def test_compare_figure_draws_a_violin_only_over_enough_runs(n, violin):
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.95, 0.02, n), rng.normal(0.95, 0.01, n)
    result = analysis.compare_variance(a, b, names=("noise", "none"), n_resamples=200)
    figure = figures.compare_figure(result, metric="test_acc")
    text = render(figure)
    ax = figure.axes[0]
    assert bool(violins(ax)) is violin
    points = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections
                             if isinstance(c, PathCollection)])
    np.testing.assert_allclose(np.sort(points), np.sort(np.r_[a, b]))
    means = [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_label() in ("mean", "_mean")]
    np.testing.assert_allclose(means, [a.mean(), b.mean()])
    assert f"noise\n(n={n})" in text


@pytest.mark.parametrize(("values", "scale", "labels"), [
    ([0.3, 1.0, 3.0], "linear", ["0.3", "1", "3"]),             # one decade: linear
    ([100, 300, 1000], "linear", ["100", "300", "1000"]),
    ([0.3, 1.0, 3.0, 10.0], "log", ["0.3", "1", "3", "10"]),    # more: log, a tick each
    (np.geomspace(1e-3, 1, 12), "log", None),                   # many values: default ticks
    ([0.0, 0.001, 0.5], "linear", None),                        # a zero: never log
])
def test_value_axis_is_log_only_past_a_decade_and_ticks_a_few_values(values, scale, labels):
    from nnlab.report.figures._base import new_figure, value_axis

    figure, ax = new_figure()
    ax.plot(values, np.ones(len(values)), "o")
    assert value_axis(ax, values, ticks=True) == scale
    assert ax.get_xscale() == scale
    figure.canvas.draw()
    if labels is not None:
        assert [t.get_text() for t in ax.get_xticklabels()] == labels


def bands_of(n_seeds: int, steps: list[int], configs: list[str]) -> pd.DataFrame:
    """curve_bands-like rows: every config, metric and step, n seeds each."""
    rows = [{"config": config, "metric": metric, "step": step, "mean": 0.5 + 0.1 * i,
             "std": 0.01 if n_seeds > 1 else np.nan, "n": n_seeds}
            for i, config in enumerate(configs)
            for metric in ("val_acc", "train_loss", "val_loss") for step in steps]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("n_seeds", "title"), [(1, "1 seed: no spread"),
                                                (2, "mean +- std over 2 seeds"),
                                                (3, "mean +- std over 3 seeds")])
def test_learning_curves_say_over_how_many_seeds(n_seeds, title):
    from nnlab.report.figures.curves import learning_curves_figure

    figure = learning_curves_figure(bands_of(n_seeds, [0, 10, 100], ["eta=0.5", "eta=2"]))
    text = render(figure)
    assert title in figure.axes[0].get_title()
    assert f"eta=0.5 (n={n_seeds})" in text


@pytest.mark.parametrize(("steps", "marked"), [([0, 17, 300], True),
                                               (list(range(100, 1001, 60)), False)])
def test_learning_curves_mark_each_of_a_few_evaluation_steps(steps, marked):
    from nnlab.report.figures.curves import learning_curves_figure

    figure = learning_curves_figure(bands_of(2, steps, ["base config"]))
    (curve,) = [ln for ln in figure.axes[0].get_lines() if ln.get_label() == "base config"]
    assert (curve.get_marker() not in (None, "None", "")) is marked
    assert figure.axes[0].get_xscale() == ("symlog" if marked else "linear")


def test_variance_figure_of_three_seeds_keeps_a_std_axis_that_shows_its_intervals():
    rng = np.random.default_rng(7)
    trials = pd.DataFrame({"n_steps": np.repeat([100, 300, 1000], 3),
                           "seed": np.tile(np.arange(3), 3),
                           "test_acc": 0.95 + 0.004 * rng.normal(size=9)})
    result = analysis.variance_vs_n(trials, status_col=None, n_resamples=200, fit=False)
    figure = figures.variance_figure(result)
    text = render(figure)
    mean_ax, std_ax = figure.axes[:2]
    assert (result.table["std_low"] >= 0).all()
    # the n_steps span one decade: linear; the std axis is logarithmic only where the
    # intervals (Bonett's, above 0 for 3 seeds) span more than a decade
    assert mean_ax.get_xscale() == std_ax.get_xscale() == "linear"
    low, high = result.table["std_low"].min(), result.table["std_high"].max()
    assert std_ax.get_yscale() == ("log" if low > 0 and high / low > 10 else "linear")
    assert std_ax.get_ylim()[0] <= low and std_ax.get_ylim()[1] >= high  # every interval shows
    assert [t.get_text() for t in mean_ax.get_xticklabels()] == ["100", "300", "1000"]
    assert "95% CI over 3 seeds" in text and "over 3 seeds per n_steps" in text


def test_the_variance_figure_of_many_lengths_keeps_log_axes():
    rng = np.random.default_rng(3)
    ns = np.repeat([100, 400, 1600, 6400, 25600], 20)
    trials = pd.DataFrame({"n_steps": ns, "seed": np.tile(np.arange(20), 5),
                           "test_acc": 0.95 + np.sqrt(4e-4 + 5 * ns**-1.5) * rng.normal(
                               size=ns.size)})
    result = analysis.variance_vs_n(trials, status_col=None, n_resamples=200)
    std_ax = figures.variance_figure(result).axes[1]
    assert std_ax.get_xscale() == "log"
    assert std_ax.get_yscale() == ("log" if result.table["std_low"].min() > 0 and (
        result.table["std_high"].max() / result.table["std_low"].min() > 10) else "linear")


def sweep_of(etas: list[float], n: int) -> pd.DataFrame:
    return pd.DataFrame([{"eta": eta, "metric": metric, "mean": 0.9, "low": 0.85,
                          "high": 0.95, "n": n}
                         for eta in etas for metric in ("test_acc", "val_acc")])


def test_lr_sweep_labels_its_bands_with_the_seeds_and_an_edge_optimum_as_a_bound():
    from nnlab.analysis import Estimate
    from nnlab.report.figures.classic import lr_sweep_figure

    at_edge = lr_sweep_figure(sweep_of([0.3, 1.0, 3.0], 2), Estimate(3.0000000000000004, 3, 3))
    text = render(at_edge)
    assert "val_acc (seed mean, 95% CI over 2 seeds)" in text
    assert "the grid's edge: a bound" in text and at_edge.axes[0].get_xscale() == "linear"
    inside = lr_sweep_figure(sweep_of([0.1, 0.3, 1.0, 3.0], 3), Estimate(0.5, 0.4, 0.7))
    text = render(inside)
    assert "vertex of a parabola" in text and "grid's edge" not in text
    assert inside.axes[0].get_xscale() == "log"
    assert "95% CI over 3 seeds" in text


def test_power_law_figure_leaves_out_empty_legend_entries_and_names_its_bars(eta_result):
    figure = figures.power_law_figure(eta_result.power_law(), eta_best=eta_result)
    text = render(figure)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "in fit" in labels and "left out" not in labels  # every N is in the fit
    assert "bars: 95% CI of eta_best, bootstrap\nover 3 seeds per cell" in text
    assert ax.get_xscale() == "log"  # N = 100..10000


def test_reliability_counts_are_log_scaled_only_past_a_decade(errors):
    assert figures.reliability_figure(errors).axes[1].get_yscale() == ("log" if (
        errors.bins.loc[errors.bins["count"] > 0, "count"].pipe(lambda c: c.max() / c.min())
        > 10) else "linear")
    rng = np.random.default_rng(8)
    y = rng.integers(0, 10, 400)
    p1 = rng.uniform(0.5, 0.99, 400)  # about even counts over the bins
    top1 = np.where(rng.random(400) < p1, y, (y + 1) % 10)
    even = pd.DataFrame({"y_true": y, "top1": top1, "top2": (top1 + 1) % 10, "p1": p1})
    result = analysis.error_analysis(even, n_resamples=100)
    figure = figures.reliability_figure(result)
    assert figure.axes[1].get_yscale() == "linear"
    assert "of 1 run" in render(figure)


@pytest.mark.parametrize(("k", "columns"), [(3, 3), (8, 8), (20, 8)])
def test_the_gallery_of_a_few_errors_has_no_empty_panels(k, columns):
    from nnlab.report.figures.classic import gallery_figure

    rng = np.random.default_rng(9)
    images = rng.integers(0, 256, (k, 784))
    errors = pd.DataFrame({"y_true": rng.integers(0, 10, k), "top1": rng.integers(0, 10, k),
                           "p1": 0.9, "top2": rng.integers(0, 10, k), "p2": 0.05})
    figure = gallery_figure(images, errors, (1, 28, 28))
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == k
    assert len(figure.axes) == columns * -(-k // columns)  # only the last row has blanks


def test_log_axes_label_their_ticks_as_plain_numbers():
    from nnlab.report.figures.curves import learning_curves_figure

    figure = learning_curves_figure(bands_of(2, [0, 1, 10, 100, 1000], ["base config"]))
    figure.canvas.draw()
    ax = figure.axes[0]
    assert ax.get_xscale() == "symlog"
    shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert shown == ["0", "1", "10", "100", "1000"]


def test_the_seed_count_of_a_grid_title_skips_cells_no_run_reached():
    """A sweep whose largest etas diverge has no rows at the later epochs there: their
    cells' counts are NaN, and the title gives the range over the cells that exist."""
    from nnlab.report.figures.classic import _span

    counts = np.array([[20.0, 20.0, np.nan], [19.0, 20.0, np.nan]])
    assert _span(counts) == "19-20"
    assert _span(np.array([20.0, np.nan])) == "20"
