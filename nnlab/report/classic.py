"""The seed projects' classic experiments as report sections, each shown when it applies.

- epochs and overfitting: curves evaluated at >= 3 whole epochs;
- learning rate x epochs (heat map and animated GIF): eta varied and >= 2 whole epochs;
- take-off at a critical learning rate: eta varied, curves with >= 5 evaluations (the
  analysis is `nnlab.analysis.takeoff`; this section writes and draws it);
- misclassified images with the net's top-2 guesses: stored test predictions, of images
  (examples of at least 2 x 2; several channels are shown as their mean);
- the inverse query: an all-sigmoid MLP (seed-002's net). The study keeps no weights, so
  the report trains the best configuration once more with the study's first seed, the same
  run bit for bit (seconds for one epoch of seed-002; skipped with `train=False`); its
  figure, for images only.

Every section reads the study's curves and predictions (its per-trial files or its
archive) and trains nothing, except the inverse query: it needs a trained net's weights,
which a study does not record (it keeps curves, final metrics and test predictions), so
that one network is retrained here.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast

import numpy as np
import pandas as pd

from nnlab.analysis import Estimate
from nnlab.analysis.takeoff import SCALING_CLEARANCE, takeoff
from nnlab.report.figures.classic import (
    gallery_figure,
    inverse_query_figure,
    lr_epochs_animation,
    lr_epochs_heatmap_figure,
    overfit_figure,
    takeoff_figure,
)
from nnlab.report.sections import (
    FigureItem,
    NotApplicable,
    Options,
    Section,
    Table,
    best_config,
    best_trials,
    finished,
    fmt,
    fmt_ci,
    length_column,
    seed_mean,
)
from nnlab.report.study_data import data_record, is_images, load_data
from nnlab.report.summaries import (
    StudyResults,
    curve_bands,
    mean_ci,
    ranked_configs,
)
from nnlab.study.spec import StudySpec
from nnlab.train import train
from nnlab.train_config import TrainConfig

MAX_OVERFIT_CONFIGS = 3
GALLERY_SIZE = 24
INVERSE_RANGE = (0.01, 0.99)  # activations the inverse query works in (logit stays finite)


def whole_epochs(curves: pd.DataFrame, at_least: int) -> pd.DataFrame:
    """Curve rows evaluated at a whole epoch >= 1, of the runs with >= `at_least` of them;
    NotApplicable when no run has that many."""
    epoch = curves["epoch"].to_numpy(dtype=float)
    rows = curves[(epoch >= 1) & np.isclose(epoch, np.round(epoch))]
    counts = rows.groupby("trial")["epoch"].transform("nunique")
    rows = rows[counts >= at_least]
    if rows.empty:
        raise NotApplicable(f"no run is evaluated at >= {at_least} whole epochs (set "
                            "eval_steps to the epoch boundaries)")
    return rows


# --- epochs ----------------------------------------------------------------------------------


def overfit_section(results: StudyResults, options: Options) -> Section:
    """Train vs validation loss and accuracy per epoch; where validation accuracy peaks."""
    rows = whole_epochs(results.curves, at_least=3)
    configs = [c for c in ranked_configs(results) if c in set(rows["config"])]
    configs = configs[:MAX_OVERFIT_CONFIGS]
    section = Section(
        "overfit", "Epochs: where overfitting starts",
        "Loss and accuracy after each epoch, seed means +- std. Overfitting shows as the "
        "validation loss rising (or validation accuracy falling) while the training loss "
        f"keeps falling. The epoch of the best validation accuracy is a seed mean with its "
        f"{options.level} t interval (cut to the evaluated epochs).")
    if len(configs) < rows["config"].nunique():
        section.notes.append(f"Showing the best {len(configs)} configurations.")
    rows = rows[rows["config"].isin(configs)]
    best_epochs, table = {}, []
    for config in configs:
        runs = rows[rows["config"] == config]
        peak = runs.loc[runs.groupby("trial")["val_acc"].idxmax()]
        lowest = runs.loc[runs.groupby("trial")["val_loss"].idxmin()]
        last = runs.loc[runs.groupby("trial")["epoch"].idxmax()]
        span = runs["epoch"].min(), runs["epoch"].max()
        best = mean_ci(peak["epoch"].to_numpy(), options.confidence, span)
        least_loss = mean_ci(lowest["epoch"].to_numpy(), options.confidence, span)
        best_epochs[config] = best
        at_peak, at_end = seed_mean(peak, "val_acc", options), seed_mean(last, "val_acc", options)
        section.findings.append(
            f"{config}: validation accuracy peaks at epoch {fmt_ci(best, '.2g')} (per seed: "
            f"{', '.join(f'{e:g}' for e in peak['epoch'])}; n={len(peak)}) at val_acc "
            f"{fmt_ci(at_peak)}, against {fmt_ci(at_end)} after the last epoch "
            f"({last['epoch'].max():g}); validation loss lowest at epoch "
            f"{fmt_ci(least_loss, '.2g')}.")
        section.data.setdefault("best_epoch", []).append(
            {"config": config, "epoch": best.to_dict(), "val_acc_at_peak": at_peak.to_dict(),
             "val_acc_at_end": at_end.to_dict(), "n": len(peak)})
    bands = curve_bands(rows)
    for epoch, group in rows[rows["config"] == configs[0]].groupby("epoch"):
        table.append({"epoch": f"{epoch:g}", "n": len(group), **{
            f"{m} [{options.level} CI]": fmt_ci(seed_mean(group, m, options))
            for m in ("train_loss", "val_loss", "val_acc", "test_acc")}})
    section.tables.append(Table(f"{configs[0]}: per epoch (train_loss: mean over the epoch's "
                                "steps)", pd.DataFrame(table)))
    section.figures.append(FigureItem.of(
        "overfit", "Loss (left) and accuracy (right) per epoch; vertical lines: the epoch "
        "of the best validation accuracy.", overfit_figure(bands, best_epochs)))
    return section


# --- learning rate x epochs ------------------------------------------------------------------


def lr_epochs_section(results: StudyResults, options: Options) -> Section:
    """Test accuracy by learning rate and epoch: heat map and an animated GIF."""
    if "eta" not in results.varied or results.complete["eta"].nunique() < 3:
        raise NotApplicable("eta is not varied over >= 3 values")
    rows = _best_group(results, whole_epochs(results.curves, at_least=2), exclude=("eta",))
    if rows["eta"].nunique() < 3:
        raise NotApplicable("fewer than 3 learning rates evaluated at whole epochs")
    objective = results.objective
    maximize = results.spec.direction == "maximize"
    cells = rows.groupby(["epoch", "eta"])
    means = cells["test_acc"].mean().unstack("eta")
    counts = cells.size().unstack("eta")
    chosen = cells[objective].mean()
    best = cast(tuple[float, float],  # (epoch, eta)
                chosen.idxmax() if maximize else chosen.idxmin())
    section = Section(
        "lr_epochs", "Learning rate x epochs",
        f"Test accuracy (seed mean) after each epoch for each learning rate; the cell with "
        f"the best {objective} is outlined. The animation shows accuracy vs learning rate "
        f"as epochs grow, with the {options.level} CI of the seed mean as a band.")
    group = rows[(rows["epoch"] == best[0]) & (rows["eta"] == best[1])]
    section.findings.append(
        f"Best on {objective}: eta={best[1]:g} after {best[0]:g} epochs — {objective} "
        f"{fmt_ci(seed_mean(group, objective, options))}, test_acc "
        f"{fmt_ci(seed_mean(group, 'test_acc', options))} "
        f"(seed means, {options.level} CI, n={len(group)}).")
    for epoch in sorted({means.index.min(), means.index.max()}):
        at = rows[rows["epoch"] == epoch].groupby("eta")[objective].mean()
        eta = at.idxmax() if maximize else at.idxmin()
        section.findings.append(f"After {epoch:g} epoch(s) the best learning rate on "
                                f"{objective} is {eta:g} (n={int(counts.loc[epoch, eta])} "
                                "seeds per cell).")
    section.data.update(best={"epoch": float(best[0]), "eta": float(best[1])},
                        test_acc=means.to_dict())
    sweep_rows: list[dict[str, Any]] = []
    for (epoch, eta), group in cells:
        estimate = seed_mean(group, "test_acc", options)
        sweep_rows.append({"epoch": epoch, "eta": eta, "mean": estimate.value, "low": estimate.low,
                      "high": estimate.high, "n": len(group)})
    sweep = pd.DataFrame(sweep_rows)
    section.tables.append(Table(
        f"test_acc, seed mean [{options.level} t CI] (rows: epoch, columns: eta; "
        f"n = {sweep['n'].min()}..{sweep['n'].max()} seeds per cell)",
        sweep.assign(cell=[fmt_ci(Estimate(r["mean"], r["low"], r["high"])) for r in
                           sweep_rows])
        .pivot(index="epoch", columns="eta", values="cell")
        .rename(columns=lambda eta: f"eta={eta:g}").reset_index()
        .assign(epoch=lambda t: t["epoch"].map(lambda e: f"{e:g}"))))
    section.figures += [
        FigureItem.of("lr_epochs_heatmap", f"Test accuracy by learning rate and epoch "
                      f"(outlined: best on {objective}).",
                      lr_epochs_heatmap_figure(means, counts, best, chosen_on=objective)),
        FigureItem("lr_epochs", "Accuracy vs learning rate, one frame per epoch (animated "
                   "GIF).", lambda path: lr_epochs_animation(sweep, path), suffix=".gif"),
    ]
    return section


def _best_group(results: StudyResults, frame: pd.DataFrame, exclude: tuple[str, ...]
                ) -> pd.DataFrame:
    """Rows of `frame` whose varied fields other than `exclude` equal the best
    configuration's."""
    others = [v for v in results.varied if v not in exclude]
    if not others:
        return frame
    best = best_trials(results)[others].iloc[0]
    keep = np.logical_and.reduce([frame[name] == best[name] for name in others])
    return frame[keep]


# --- take-off at a critical learning rate ----------------------------------------------------


def _takeoff_text(row: dict[Hashable, Any]) -> str:
    """One learning rate's take-off for the findings: 'eta=0.1: 369 [323, 422] (n=5, never
    0, early 0)', or '<= 1000' when every run took off by its first evaluation."""
    if row["n_early"] == row["n"]:
        return (f"eta={row['eta']:g}: <= {row['first_eval']:g} (n={row['n']}, all by the first "
                "evaluation)")
    return (f"eta={row['eta']:g}: {fmt_ci(Estimate(row['mean'], row['low'], row['high']), '.3g')} "
            f"(n={row['n']}, never {row['n_never']}, early {row['n_early']})")


def takeoff_section(results: StudyResults, options: Options) -> Section:
    """Accuracy vs step per learning rate, and the step at which accuracy takes off."""
    if "eta" not in results.varied or results.complete["eta"].nunique() < 3:
        raise NotApplicable("eta is not varied over >= 3 values")
    curves = results.curves
    n_col = length_column(results)
    if n_col is not None:  # the longest budget shows the whole take-off
        curves = curves[curves[n_col] == curves[n_col].max()]
    curves = _best_group(results, curves, exclude=("eta", n_col or "eta"))
    if curves.groupby("trial")["step"].nunique().min() < 5:
        raise NotApplicable("fewer than 5 evaluations per run")
    found = takeoff(curves[["eta", "trial", "step", "val_acc"]],
                    data_record(results)["n_classes"], n_resamples=options.n_resamples,
                    seed=options.seed, confidence=options.confidence)
    if found.runs["early"].all():
        raise NotApplicable("every run takes off before its first evaluation after step 0 "
                            "(evaluations too sparse to time the take-off)")
    threshold, chance, critical = found.threshold, found.chance, found.critical_eta
    table, scaling = found.table, found.scaling
    section = Section(
        "takeoff", "Take-off: accuracy vs step at each learning rate",
        "Validation accuracy during training for each learning rate (seed means). A run "
        f"takes off where val_acc first reaches {threshold:.3f}, half way from chance "
        f"({chance:g}) to the best final accuracy (interpolated linearly in log step between "
        "the evaluations around it). The critical learning rate is the smallest from which "
        "on every run takes off within the budget: below it runs stay on the chance "
        "plateau, from it on accuracy jumps. Where the take-off step falls as a power of "
        "eta, the critical learning rate is a matter of the budget, and the fit gives it "
        "for any budget.")
    if critical is not None:
        verdict = f"Critical learning rate: {critical:g}"
    elif table["n_never"].any():
        verdict = "No critical learning rate in the grid: the largest has runs that never take off"
    else:
        verdict = ("Every learning rate takes off within the budget: the critical one is at "
                   f"or below {table['eta'].min():g}")
    section.findings.append(
        f"{verdict}. Take-off step per learning rate (geometric mean over seeds "
        f"[{options.level} CI]; runs that never take off; runs that took off by their first "
        "evaluation after step 0, whose step is only an upper bound): "
        + "; ".join(_takeoff_text(r) for r in table.to_dict("records")))
    if scaling is not None:
        budgets = sorted({float(curves["step"].max()), 1e3, 1e5})
        label = (f"Exploratory ({', '.join(scaling.exploratory_reasons)}): "
                 if scaling.exploratory else "")
        section.findings.append(
            f"{label}The take-off step falls as a power of eta: step = a * eta^-k with "
            f"k = {fmt_ci(scaling.exponent)}, a = {fmt_ci(scaling.prefactor, '.3g')} (R^2 = "
            f"{scaling.r_squared:.3f}; {scaling.n} runs at eta {scaling.x.min():g}.."
            f"{scaling.x.max():g}, where take-off comes at least {SCALING_CLEARANCE:g}x later "
            f"than the fastest; CI by bootstrap of {scaling.resampling}). So runs take off "
            "within N steps from eta = (a / N)^(1/k) on: "
            + "; ".join(f"{fmt_ci(scaling.inverse(n), '.3g')} for N = {n:g}" for n in budgets)
            + ".")
    section.data.update(threshold=threshold, critical_eta=critical,
                        takeoff=table.to_dict(orient="records"),
                        scaling=None if scaling is None else scaling.to_dict())
    bands = curve_bands(curves, metrics=("val_acc",), by=("config", "eta"))
    section.figures.append(FigureItem.of(
        "takeoff", "Accuracy vs step per learning rate (left) and the take-off step "
        "(right), the critical learning rate dashed, the power-law fit of the take-off step "
        "with its band where there is one.",
        takeoff_figure(bands, table, critical, threshold=threshold, scaling=scaling,
                       confidence=options.confidence)))
    return section


# --- misclassified images --------------------------------------------------------------------


def gallery_section(results: StudyResults, options: Options) -> Section:
    """The most confident errors of one run of the best configuration, with its top-2."""
    predictions = results.best_predictions
    if predictions.empty:
        raise NotApplicable("no test predictions stored")
    shape = data_record(results)["image_shape"]
    if not is_images(shape):
        raise NotApplicable(f"the examples are not images ({'x'.join(map(str, shape))}); the "
                            "gallery shows images only")
    first = finished(best_trials(results)).sort_values("seed")
    if first.empty:
        raise NotApplicable("the best configuration has no finished run")
    trial = first.iloc[0]
    run = predictions[predictions["trial"] == trial["trial"]]
    wrong = run[run["top1"] != run["y_true"]].sort_values("p1", ascending=False)
    if wrong.empty:
        raise NotApplicable("the run makes no error")
    shown = wrong.head(GALLERY_SIZE)
    test = load_data(results.spec.data).test.x
    images = test[shown["index"].to_numpy()]
    second = int((wrong["top2"] == wrong["y_true"]).sum())
    section = Section(
        "gallery", "Misclassified images",
        f"Test images that run #{trial['trial']} ({best_config(results)}, seed "
        f"{trial['seed']}) gets wrong, most confident errors first: the true label, then the "
        "net's first and second guesses with their probabilities.")
    section.findings.append(
        f"{len(wrong)} errors of {len(run)} test images (one run, n={len(run)}); the second "
        f"guess is right in {second} of the {len(wrong)} errors; shown: the {len(shown)} "
        f"most confident (p1 {shown['p1'].min():.2f} to {shown['p1'].max():.2f}).")
    section.data.update(trial=int(trial["trial"]), n_errors=len(wrong), n=len(run),
                        shown=shown["index"].tolist())
    section.figures.append(FigureItem.of(
        "gallery", f"The {len(shown)} most confident errors of run #{trial['trial']}.",
        gallery_figure(images, shown, tuple(shape),
                       grey_range=(0, 255) if test.dtype == np.uint8 else (test.min(), test.max()),
                       title="misclassified test images (true label; guess: probability)")))
    return section


# --- inverse query ---------------------------------------------------------------------------


def inverse_query_section(results: StudyResults, options: Options) -> Section:
    """Run a trained sigmoid net backwards from each one-hot output."""
    trials = best_trials(results)
    if trials.empty:
        raise NotApplicable("no complete trial")
    config = run_config(results, trials.iloc[0], results.spec.seed)
    if not (config.model == "mlp" and config.activation == "sigmoid"
            and config.output == "sigmoid"):
        raise NotApplicable("the net is not an all-sigmoid MLP (activation and output "
                            "sigmoid), so its layers cannot be inverted by logits")
    if not options.train:
        raise NotApplicable("training disabled (--no-train)")
    data = load_data(results.spec.data)
    run = train(config, data)
    test_acc = run.metrics["test_acc"]
    model = run.model
    assert model is not None  # train() returns the trained model
    images = inverse_query(model.params, data.n_classes)
    proba = model.predict_proba(images)
    recognised = int((proba.argmax(axis=1) == np.arange(data.n_classes)).sum())
    stored = finished(trials[trials["seed"] == results.spec.seed])["test_acc"]
    section = Section(
        "inverse_query", "Inverse query: what the trained net imagines",
        f"The best configuration ({best_config(results)}) trained once more with seed "
        f"{results.spec.seed} (the study keeps no weights), then run backwards: each one-hot "
        f"target ({INVERSE_RANGE[0]}/{INVERSE_RANGE[1]}) is turned into the output layer's "
        "inputs by the logit, minus the biases, through the transposed weights, rescaled into "
        f"({INVERSE_RANGE[0]}, {INVERSE_RANGE[1]}) for the next layer's logit, down to the "
        "input, shown rescaled to the pixel range.")
    section.findings.append(
        f"The retrained net: test_acc {fmt(test_acc)} (one run, n=1"
        + (f"; the study's run with this seed: {fmt(float(stored.iloc[0]))}" if len(stored)
           else "") + f"). Fed back into the net, {recognised} of {data.n_classes} imagined "
        f"images are classified as the class they were drawn from (mean sigmoid output of "
        f"that class {fmt(float(np.diag(proba).mean()), '.3f')}).")
    section.data.update(test_acc=test_acc, recognised=recognised,
                        proba_own_class=np.diag(proba).tolist())
    if not is_images(data.image_shape):
        section.notes.append(f"The examples are not images "
                             f"({'x'.join(map(str, data.image_shape))}): no figure.")
        return section
    section.figures.append(FigureItem.of(
        "inverse_query", "The input each output class asks for (dark = high).",
        inverse_query_figure(images, data.image_shape)))
    return section


def run_config(results: StudyResults, trial: pd.Series, seed: int) -> TrainConfig:
    """The TrainConfig of `trial`'s configuration with `seed`: the base config the study
    started with (when its storage keeps it: a preset may have changed since), the trial's
    varied fields as Optuna stores them, and the seed."""
    spec = results.spec
    if results.base_config is not None:
        base = {name: value for name, value in results.base_config.items()
                if value is not None and name != "seed" and name not in results.varied}
        spec = StudySpec.from_dict({**spec.to_dict(), "base": base})
    params = {name: trial[name] for name in results.varied}
    return spec.config_for({name: v.item() if isinstance(v, np.generic) else v
                            for name, v in params.items()}, seed)


def inverse_query(params: list[dict], n_classes: int) -> np.ndarray:
    """(n_classes, n_features) images in [0, 1]: for each class, the one-hot target run
    backwards through a sigmoid MLP with params [{"W": (n_in, n_out), "b": (n_out,)}, ...].

    Each layer: pre-activation = logit(activation) - b; the layer below's activation =
    pre-activation @ W.T, rescaled per image into INVERSE_RANGE; the input rescaled to
    [0, 1]."""
    low, high = INVERSE_RANGE
    activation = np.full((n_classes, n_classes), low) + (high - low) * np.eye(n_classes)
    for index, layer in enumerate(reversed(params)):
        pre = np.log(activation / (1 - activation)) - layer["b"].astype(np.float64)
        below = pre @ layer["W"].astype(np.float64).T
        span = below.max(axis=1, keepdims=True) - below.min(axis=1, keepdims=True)
        unit = (below - below.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1)
        last = index == len(params) - 1
        activation = unit if last else low + (high - low) * unit
    return activation


CLASSIC_SECTIONS = (overfit_section, lr_epochs_section, takeoff_section, gallery_section,
                    inverse_query_section)
