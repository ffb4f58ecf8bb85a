"""Question 4: when the net is wrong, is its second guess usually right? Is it ever
confidently wrong? How well calibrated is it?

The test predictions of the runs of questions 1-3 and of the CNN (results/cnn) -> figures in
results/errors/findings/ and results/errors/findings.md. Main set: the restarts at their
final step (results/restarts).

    python analysis/errors.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import N_TEST, SCALE_UP, figure_path, load, load_if_run, run, write_findings
from matplotlib.figure import Figure
from scipy import stats

from nnlab.analysis import ErrorAnalysisResult, error_analysis
from nnlab.data import load_mnist
from nnlab.report.figures import (
    confidence_figure,
    confused_pairs_figure,
    confusion_figure,
    reliability_figure,
    save_figure,
)

NAME = "errors"
LONG = "restarts-long"  # the restarts' seeds trained 10x longer
CONFIDENT = 0.99
CNN_LABEL = "cnn (conv-pool-conv-pool-dense, 8 epochs)"


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[(trials["state"] == "COMPLETE") & (trials["status"] == "ok")]


def n_steps_text(trials: pd.DataFrame) -> str:
    """'N 10000': the steps the finished runs trained (their predictions' step)."""
    return "N " + "/".join(str(n) for n in sorted(finished(trials)["steps_run"].unique()))


def prediction_sets() -> dict[str, pd.DataFrame]:
    """{label: concatenated predictions} for the studies that have run."""
    restarts = load("restarts")
    sets = {f"restarts (eta 1, {n_steps_text(restarts.trials())})": restarts.predictions()}
    eta_study = load("eta-vs-n")
    trials = finished(eta_study.trials())
    best = trials.groupby("eta")["val_acc"].mean().idxmax()  # chosen on val
    chosen = trials[trials["eta"] == best]
    sets[f"eta-vs-n (best eta on val = {best:g}, {n_steps_text(chosen)})"] = (
        eta_study.predictions(chosen["trial"]))
    for name in (LONG, "noise-grad", "noise-weight", "cnn"):
        study = load_if_run(name)
        if study is None:
            continue
        label = CNN_LABEL if name == "cnn" else f"{name} ({n_steps_text(study.trials())})"
        sets[label] = study.predictions()
    return sets


def per_run(predictions: pd.DataFrame) -> dict:
    """Second-guess rate per run, and its mean over runs with a t CI (runs are the
    independent units; pooled rows of one test set are not)."""
    wrong = predictions[predictions["top1"] != predictions["y_true"]]
    rates = (wrong["top2"] == wrong["y_true"]).groupby(wrong["trial"]).mean().to_numpy()
    low, high = stats.t.interval(0.95, rates.size - 1, rates.mean(), stats.sem(rates))
    return {"mean": float(rates.mean()), "low": float(low), "high": float(high),
            "n_runs": int(rates.size), "min": float(rates.min()), "max": float(rates.max())}


def analyse_set(predictions: pd.DataFrame) -> tuple[ErrorAnalysisResult, dict]:
    """The error analysis of one prediction set and its second-guess rate per run."""
    return error_analysis(predictions, n_classes=10, confident=CONFIDENT), per_run(predictions)


def set_numbers(result: ErrorAnalysisResult, runs: dict) -> dict:
    """What findings.json keeps of one prediction set (`analyse_set`)."""
    return {**result.to_dict(), "second_guess_per_run": runs}


def confident_errors(predictions: pd.DataFrame) -> pd.DataFrame:
    """Test examples answered wrongly with p1 >= CONFIDENT in some run: index, true label,
    the most common wrong answer, in how many runs, and the mean confidence then."""
    rows = predictions[(predictions["top1"] != predictions["y_true"])
                       & (predictions["p1"] >= CONFIDENT)]
    return (rows.groupby("index")
            .agg(y_true=("y_true", "first"), predicted=("top1", lambda s: s.mode().iloc[0]),
                 n_runs=("trial", "nunique"), confidence=("p1", "mean"))
            .sort_values(["n_runs", "confidence"], ascending=False).reset_index())


def longer_text(long_label: str, long, long_runs: dict, main_label: str, main,
                main_runs: dict) -> str:
    """The main set's seeds trained longer against the main set: second guess, confidence,
    confident errors, calibration."""
    return (
        f"**Trained longer.** {long_label}, the main set's seeds carried on at the same eta: "
        f"accuracy {long.accuracy.format('.4f')} (main set {main.accuracy.format('.4f')}); "
        f"second guess right {long_runs['mean']:.1%} [{long_runs['low']:.1%}, "
        f"{long_runs['high']:.1%}] of the errors ({main_runs['mean']:.1%}); mean confidence of "
        f"wrong answers {long.confidence_wrong.format('.3f')} "
        f"({main.confidence_wrong.value:.3f}), of right ones "
        f"{long.confidence_right.format('.3f')} ({main.confidence_right.value:.3f}); errors at "
        f">= {CONFIDENT:.0%} confidence {long.confident_error_share.format('.1f', 100, '%')} of "
        f"all errors ({main.confident_error_share.value:.1%}); ECE {long.ece.format('.4f')} "
        f"({main.ece.value:.4f}; findings/reliability_long.png). In brackets: {main_label}.")


def gallery_figure(examples: pd.DataFrame, n_runs: int, path, n_show: int = 16) -> None:
    images = load_mnist().test.x
    shown = examples.head(n_show)
    figure = Figure(figsize=(12, 2.3 * int(np.ceil(len(shown) / 8))), layout="constrained")
    axes = np.atleast_1d(figure.subplots(int(np.ceil(len(shown) / 8)), 8)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, row in zip(axes, shown.itertuples(index=False), strict=False):
        ax.imshow(images[row.index].reshape(28, 28), cmap="gray_r")
        ax.set_title(f"#{row.index}: {row.y_true} -> {row.predicted}\n"
                     f"{row.n_runs}/{n_runs} runs, p {row.confidence:.3f}", fontsize=8)
    figure.suptitle(f"Test images answered wrongly with >= {CONFIDENT:.0%} confidence "
                    "(true -> predicted; in how many runs; mean confidence)")
    save_figure(figure, path)


def main() -> None:
    sets = prediction_sets()
    analysed = {label: analyse_set(p) for label, p in sets.items()}
    results = {label: result for label, (result, _) in analysed.items()}
    runs = {label: rates for label, (_, rates) in analysed.items()}
    main_label = next(iter(sets))
    main = results[main_label]
    examples = confident_errors(sets[main_label])
    n_main_runs = int(sets[main_label]["trial"].nunique())
    n_test = main.n // main.n_trials
    reliability_figure(main, path=figure_path(NAME, "reliability.png"))
    confusion_figure(main, path=figure_path(NAME, "confusion.png"))
    confused_pairs_figure(main, path=figure_path(NAME, "confused_pairs.png"))
    confidence_figure(main, path=figure_path(NAME, "confidence.png"))
    if len(examples):
        gallery_figure(examples, n_main_runs, figure_path(NAME, "confident_errors.png"))
    for label, r in results.items():
        print(f"== {label}\n{r.summary()}\nper run: {runs[label]}")

    rows = ["| predictions | runs | accuracy | second guess right when wrong (per-run mean "
            "[95% t CI]) | confidence wrong / right | errors at >= 99% | ECE [95% CI] |",
            "|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        s = runs[label]
        rows.append(
            f"| {label} | {r.n_trials} | {r.accuracy.format('.4f')} | {s['mean']:.3f} "
            f"[{s['low']:.3f}, {s['high']:.3f}] | {r.confidence_wrong.value:.3f} / "
            f"{r.confidence_right.value:.3f} | {r.n_confident_errors} of {r.n_wrong} "
            f"({r.confident_error_share.format('.1f', 100, '%')}) | {r.ece.format('.4f')} |")
    pairs = ", ".join(f"{t.true}->{t.predicted} ({t.share:.1%})"
                      for t in main.top_pairs.head(5).itertuples(index=False))
    s = runs[main_label]
    per_run_confident = main.n_confident_errors / main.n_trials
    long_label = next((label for label in sets if label.startswith(LONG)), None)
    long_text = []
    if long_label is not None:
        reliability_figure(results[long_label], path=figure_path(NAME, "reliability_long.png"))
        long_text = ["", longer_text(long_label, results[long_label], runs[long_label],
                                     main_label, main, s)]
    cnn_text = []
    if CNN_LABEL in sets:
        cnn, c = results[CNN_LABEL], runs[CNN_LABEL]
        cnn_examples = confident_errors(sets[CNN_LABEL])
        n_cnn_runs = int(sets[CNN_LABEL]["trial"].nunique())
        if len(cnn_examples):
            gallery_figure(cnn_examples, n_cnn_runs, figure_path(NAME, "cnn_confident_errors.png"))
        shared = set(cnn_examples["index"]) & set(examples["index"])
        cnn_wrong = set(sets[CNN_LABEL].loc[sets[CNN_LABEL]["top1"]
                                            != sets[CNN_LABEL]["y_true"], "index"])
        mlp_confident_also_cnn = len(set(examples["index"]) & cnn_wrong)
        cnn_text = [
            "",
            f"**The CNN** ({n_cnn_runs} runs, accuracy {cnn.accuracy.format('.4f')}) makes "
            f"{cnn.n_wrong / cnn.n_trials:.0f} errors per run against the MLP's "
            f"{main.n_wrong / main.n_trials:.0f}, and its second guess is right in "
            f"{c['mean']:.1%} of them (95% CI [{c['low']:.1%}, {c['high']:.1%}]): "
            + ("about as often as the MLP's" if c["low"] <= s["mean"] <= c["high"]
               or s["low"] <= c["mean"] <= s["high"] else
               ("more often than" if c["mean"] > s["mean"] else "less often than")
               + " the MLP's")
            + f". It is confidently wrong (p1 >= 99%) {cnn.n_confident_errors} times over its "
            f"{cnn.n_trials} runs ({cnn.confident_error_share.format('.1f', 100, '%')} of its "
            f"errors) on {len(cnn_examples)} distinct images, {len(shared)} of them among the "
            f"MLP's {len(examples)} confidently wrong images; of those {len(examples)}, the "
            f"CNN gets {mlp_confident_also_cnn} wrong in at least one run. ECE "
            f"{cnn.ece.format('.4f')}. Its confident errors: findings/cnn_confident_errors.png.",
        ]
    text = [
        "# errors: is the second guess right, and is the net ever confidently wrong?",
        "",
        f"Test predictions (top-3 classes and probabilities for the 10k test images) of the "
        f"runs of questions 1-3. Main set: {main_label}, {main.n_trials} runs x {N_TEST} test "
        f"images = {main.n} predictions, {main.n_wrong} of them wrong.",
        "",
        "## Answers",
        "",
        f"**Second guess.** When the net is wrong its second most probable class is right "
        f"{s['mean']:.1%} of the time (mean over {s['n_runs']} runs, 95% CI "
        f"[{s['low']:.1%}, {s['high']:.1%}]; runs range {s['min']:.1%}-{s['max']:.1%}), "
        f"against the {1 / 9:.1%} of a random other class (binomial test on the pooled "
        f"errors {main.second_guess_test.p_text}).",
        "",
        f"**Confidence.** Wrong answers carry a mean top-1 probability of "
        f"{main.confidence_wrong.format('.3f')}, right ones {main.confidence_right.format('.3f')}"
        f"; a wrong answer's confidence is below a right one's with probability "
        f"{main.auc:.3f} (Mann-Whitney {main.confidence_test.p_text}). At >= 99% "
        f"confidence the net still makes {main.n_confident_errors} errors over "
        f"{main.n_trials} runs (~{per_run_confident:.1f} per run of {N_TEST} images; "
        f"{main.confident_error_share.format('.1f', 100, '%')} of all errors), on "
        f"{len(examples)} distinct test images; the most frequent are shown in "
        "findings/confident_errors.png.",
        "",
        f"**Calibration.** ECE = {main.ece.format('.4f')} (15 equal-width bins; "
        "findings/reliability.png). Most confused pairs (true->predicted, share of errors): "
        f"{pairs}.",
        *long_text,
        *cnn_text,
        "",
        *rows,
        "",
        "The second-guess CI is over runs (each run is one independent network; the pooled "
        f"binomial CI would treat the {n_test} images of one test set in {n_main_runs} runs "
        f"as {n_test * n_main_runs} independent draws).",
        "",
        "Figures: findings/reliability.png, findings/confusion.png, "
        "findings/confused_pairs.png, findings/confidence.png, findings/confident_errors.png.",
        "",
        "## Reproduce",
        "",
        "    python analysis/errors.py    # after questions 1-3 and studies/cnn.toml",
        "",
        SCALE_UP,
    ]
    numbers = {label: set_numbers(r, runs[label]) for label, r in results.items()}
    numbers["confident_errors"] = examples.to_dict(orient="records")
    write_findings(NAME, "\n".join(text), numbers)


if __name__ == "__main__":
    run(main)
