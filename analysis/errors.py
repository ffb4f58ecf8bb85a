"""Question 4: when the net is wrong, is its second guess usually right? Is it ever
confidently wrong? How well calibrated is it?

The test predictions of the runs of questions 1-3 and of the CNN (results/cnn) -> figures in
results/errors/findings/ and results/errors/findings.md. Main set: the restarts at their
final step (results/restarts). Every rate has two intervals: over runs and test images
together (unit "run x image", the two-way bootstrap: what the net does on the population
of images the test set was drawn from) and over runs with the test set fixed (unit "run":
how far one run of this configuration varies on these 10,000 images). A study whose
predictions are not archived is left out and named.

    python analysis/errors.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from common import (
    N_TEST,
    SCALE_UP,
    as_written,
    ci,
    claims_lines,
    claims_table,
    figure_path,
    has_runs,
    load,
    p_text,
    run,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure

from nnlab.analysis import ErrorAnalysisResult, Family, error_analysis
from nnlab.data import load_mnist
from nnlab.errors import NNLabError
from nnlab.report.figures import (
    confidence_figure,
    confused_pairs_figure,
    confusion_figure,
    reliability_figure,
    save_figure,
)

NAME = "errors"
CONFIDENT = 0.99
OTHERS = ("restarts-long", "noise-grad", "noise-weight", "cnn")  # read when archived
UNITS = ("run x image", "run")


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[(trials["state"] == "COMPLETE") & (trials["status"] == "ok")]


def n_steps_text(trials: pd.DataFrame) -> str:
    """'N 10000': the steps the finished runs trained (their predictions' step)."""
    return "N " + "/".join(str(n) for n in sorted(finished(trials)["steps_run"].unique()))


def prediction_sets() -> tuple[dict[str, pd.DataFrame], list[str]]:
    """({label: concatenated predictions} of the studies whose predictions are here, the
    studies left out because they are not archived)."""
    restarts = load("restarts")
    sets = {f"restarts (eta 1, {n_steps_text(restarts.trials())})": restarts.predictions()}
    eta_study = load("eta-vs-n")
    trials = finished(eta_study.trials())
    best = trials.groupby("eta")["val_acc"].mean().idxmax()  # chosen on val
    chosen = trials[trials["eta"] == best]
    sets[f"eta-vs-n (best eta on val = {best:g}, {n_steps_text(chosen)})"] = (
        eta_study.predictions(chosen["trial"]))
    missing = []
    for name in OTHERS:
        if not has_runs(name):
            missing.append(name)
            continue
        study = load(name)
        sets[f"{name} ({n_steps_text(study.trials())})"] = study.predictions()
    return sets, missing


def analyse_set(predictions: pd.DataFrame) -> dict[str, ErrorAnalysisResult]:
    """The error analysis of one prediction set in each unit of UNITS."""
    return {unit: error_analysis(predictions, n_classes=10, confident=CONFIDENT, unit=unit)
            for unit in UNITS}


def set_numbers(results: dict[str, ErrorAnalysisResult]) -> dict:
    """What findings.json keeps of one prediction set (`analyse_set`)."""
    return {unit: {k: v for k, v in r.to_dict().items() if k != "per_run"}
            for unit, r in results.items()}


def confident_errors(predictions: pd.DataFrame) -> pd.DataFrame:
    """Test examples answered wrongly with p1 >= CONFIDENT in some run: index, true label,
    the most common wrong answer, in how many runs, and the mean confidence then."""
    rows = predictions[(predictions["top1"] != predictions["y_true"])
                       & (predictions["p1"] >= CONFIDENT)]
    return (rows.groupby("index")
            .agg(y_true=("y_true", "first"), predicted=("top1", lambda s: s.mode().iloc[0]),
                 n_runs=("trial", "nunique"), confidence=("p1", "mean"))
            .sort_values(["n_runs", "confidence"], ascending=False).reset_index())


def gallery_figure(examples: pd.DataFrame, n_runs: int, path, n_show: int = 16) -> None:
    images = load_mnist().test.x
    shown = examples.head(n_show)
    figure = Figure(figsize=(12, 2.3 * int(np.ceil(len(shown) / 8))), layout="constrained")
    axes = np.atleast_1d(figure.subplots(int(np.ceil(len(shown) / 8)), 8)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, row in zip(axes, shown.to_dict("records"), strict=False):
        ax.imshow(images[row["index"]].reshape(28, 28), cmap="gray_r")
        ax.set_title(f"#{row['index']}: {row['y_true']} -> {row['predicted']}\n"
                     f"{row['n_runs']}/{n_runs} runs, p {row['confidence']:.3f}", fontsize=8)
    figure.suptitle(f"Test images answered wrongly with >= {CONFIDENT:.0%} confidence "
                    "(true -> predicted; in how many runs; mean confidence)")
    save_figure(figure, path)


def compute() -> dict:
    """Every number of this finding from the studies in results/ (read only): {"numbers":
    what findings.json holds, "text": what findings.md says besides (the range of the main
    set's per-run second-guess rates), "figures": what the figures draw}."""
    sets, missing = prediction_sets()
    analysed = {label: analyse_set(p) for label, p in sets.items()}
    main_label = next(iter(sets))
    examples = confident_errors(sets[main_label])
    family = Family("finding 4: errors")
    claims = {}
    for label, results in analysed.items():
        r = results["run x image"]
        family.add(f"{label}: second guess vs chance", r.second_guess_test)
        claims[f"{label}: second guess vs chance"] = (
            f"{label}: the second guess is right more often than chance")
        family.add(f"{label}: confidence wrong vs right", r.confidence_test)
        claims[f"{label}: confidence wrong vs right"] = (
            f"{label}: wrong answers carry less confidence than right ones")
    numbers: dict[str, Any] = {label: set_numbers(r) for label, r in analysed.items()}
    numbers["confident_errors"] = examples.to_dict(orient="records")
    numbers["left_out"] = missing
    numbers["claims"] = claims_table(family, claims)
    numbers["family"] = family.to_dict()
    runs = analysed[main_label]["run"].per_run
    assert runs is not None  # unit "run" keeps each run's rates
    per_run = runs["second_guess_rate"]
    return {"numbers": numbers,
            "text": {"second_guess_per_run": [float(per_run.min()), float(per_run.max())]},
            "figures": {"main": analysed[main_label]["run x image"], "examples": examples,
                        "n_runs": int(sets[main_label]["trial"].nunique()),
                        "summaries": [f"== {label}\n{r.summary()}"
                                      for label, results in analysed.items()
                                      for r in results.values()]}}


def draw(figures: dict) -> None:
    """findings/reliability.png, confusion.png, confused_pairs.png, confidence.png and
    confident_errors.png of the main prediction set."""
    main = figures["main"]
    reliability_figure(main, path=figure_path(NAME, "reliability.png"))
    confusion_figure(main, path=figure_path(NAME, "confusion.png"))
    confused_pairs_figure(main, path=figure_path(NAME, "confused_pairs.png"))
    confidence_figure(main, path=figure_path(NAME, "confidence.png"))
    if len(figures["examples"]):
        gallery_figure(figures["examples"], figures["n_runs"],
                       figure_path(NAME, "confident_errors.png"))


def render(numbers: dict, text: dict) -> str:
    """findings.md from findings.json's `numbers` and `compute`'s `text`
    (templates/errors.md)."""
    labels = [k for k in numbers if k not in
              ("confident_errors", "left_out", "claims", "family")]
    main_label = labels[0]
    both, runs = numbers[main_label]["run x image"], numbers[main_label]["run"]
    family = numbers["family"]
    cnn_label = next((label for label in labels if label.startswith("cnn ")), None)
    if cnn_label is None:
        raise NNLabError("results/cnn: its predictions are not archived; findings.md's CNN "
                         "sentence needs them")
    cnn = numbers[cnn_label]["run"]
    rows = [f"| {label} | {unit} | {r['n_trials']} | {ci(r['accuracy'], '.4f')} | "
            f"{ci(r['second_guess_rate'], '.1f', 100, '%')} | "
            f"{ci(r['confident_error_share'], '.1f', 100, '%')} | {ci(r['ece'], '.4f')} |"
            for label in labels for unit, r in numbers[label].items()]
    low, high = text["second_guess_per_run"]
    values = {
        "main_label": main_label, "n_trials": both["n_trials"], "n_test": N_TEST,
        "n": both["n"], "n_wrong": both["n_wrong"],
        "second_guess": ci(both["second_guess_rate"], ".1f", 100, "%"),
        "second_guess_runs": ci(runs["second_guess_rate"], ".1f", 100, "%"),
        "per_run_range": f"{low:.1%}-{high:.1%}", "chance": f"{both['chance']:.1%}",
        "p_second_guess": p_text(family, f"{main_label}: second guess vs chance"),
        "confidence_wrong": ci(both["confidence_wrong"], ".3f"),
        "confidence_right": ci(both["confidence_right"], ".3f"),
        "auc": ci(both["auc_ci"], ".3f"),
        "p_confidence": p_text(family, f"{main_label}: confidence wrong vs right"),
        "confident": f"{CONFIDENT:.0%}", "n_confident_errors": both["n_confident_errors"],
        "per_run": f"{both['n_confident_errors'] / both['n_trials']:.1f}",
        "confident_share": ci(both["confident_error_share"], ".1f", 100, "%"),
        "confident_share_runs": ci(runs["confident_error_share"], ".1f", 100, "%"),
        "n_images": len(numbers["confident_errors"]),
        "ece": ci(both["ece"], ".4f"), "ece_runs": ci(runs["ece"], ".4f"),
        "pairs": ", ".join(f"{t['true']}->{t['predicted']} ({t['share']:.1%})"
                           for t in both["top_pairs"][:5]),
        "cnn_runs": cnn["n_trials"],
        "cnn": ci(cnn["second_guess_rate"], ".1f", 100, "%"),
        "cnn_both": ci(numbers[cnn_label]["run x image"]["second_guess_rate"], ".1f", 100, "%"),
        "rows": "\n".join(rows), "claims": claims_lines(numbers["claims"]),
        "sets": ", ".join(labels), "left_out": (
            f"Left out, their predictions not archived: {', '.join(numbers['left_out'])}; the "
            "earlier findings' numbers for them pooled predictions as independent draws and "
            "are not quoted." if numbers["left_out"] else
            "Left out: none; every study whose predictions this page reads is archived."),
        "scale_up": SCALE_UP,
    }
    return render_template("errors", values)


def main() -> None:
    found = compute()
    draw(found["figures"])
    print(*found["figures"]["summaries"], sep="\n")
    numbers = as_written(found["numbers"])
    write_findings(NAME, render(numbers, found["text"]), numbers)


if __name__ == "__main__":
    run(main)
