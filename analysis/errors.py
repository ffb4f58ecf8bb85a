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

import numpy as np
import pandas as pd
from common import (
    N_TEST,
    SCALE_UP,
    claims_table,
    figure_path,
    has_runs,
    load,
    not_archived,
    quoted,
    run,
    write_findings,
)
from matplotlib.figure import Figure

from nnlab.analysis import ErrorAnalysisResult, Family, error_analysis
from nnlab.data import load_mnist
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
    for ax, row in zip(axes, shown.itertuples(index=False), strict=False):
        ax.imshow(images[row.index].reshape(28, 28), cmap="gray_r")
        ax.set_title(f"#{row.index}: {row.y_true} -> {row.predicted}\n"
                     f"{row.n_runs}/{n_runs} runs, p {row.confidence:.3f}", fontsize=8)
    figure.suptitle(f"Test images answered wrongly with >= {CONFIDENT:.0%} confidence "
                    "(true -> predicted; in how many runs; mean confidence)")
    save_figure(figure, path)


def rate(result: ErrorAnalysisResult, field: str, scale: float = 100, unit: str = "%",
         fmt: str = ".1f") -> str:
    return getattr(result, field).format(fmt, scale, unit)


def main() -> None:
    sets, missing = prediction_sets()
    analysed = {label: analyse_set(p) for label, p in sets.items()}
    main_label = next(iter(sets))
    both, runs = analysed[main_label]["run x image"], analysed[main_label]["run"]
    examples = confident_errors(sets[main_label])
    n_main_runs = int(sets[main_label]["trial"].nunique())
    reliability_figure(both, path=figure_path(NAME, "reliability.png"))
    confusion_figure(both, path=figure_path(NAME, "confusion.png"))
    confused_pairs_figure(both, path=figure_path(NAME, "confused_pairs.png"))
    confidence_figure(both, path=figure_path(NAME, "confidence.png"))
    if len(examples):
        gallery_figure(examples, n_main_runs, figure_path(NAME, "confident_errors.png"))
    for label, results in analysed.items():
        for r in results.values():
            print(f"== {label}\n{r.summary()}")

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
    claim_lines, claim_records = claims_table(family, claims)

    rows = ["| predictions | unit | runs | accuracy | second guess right when wrong | "
            "errors at >= 99% confidence (share of errors) | ECE |",
            "|---|---|---|---|---|---|---|"]
    for label, results in analysed.items():
        for unit, r in results.items():
            rows.append(f"| {label} | {unit} | {r.n_trials} | {rate(r, 'accuracy', 1, '', '.4f')}"
                        f" | {rate(r, 'second_guess_rate')} | "
                        f"{rate(r, 'confident_error_share')} | {rate(r, 'ece', 1, '', '.4f')} |")
    pairs = ", ".join(f"{t.true}->{t.predicted} ({t.share:.1%})"
                      for t in both.top_pairs.head(5).itertuples(index=False))
    per_run = runs.per_run
    cnn = quoted("cnn")["second_guess_per_run"]
    text = [
        "# errors: is the second guess right, and is the net ever confidently wrong?",
        "",
        "**Exploratory**: no prediction was written before these runs. Test predictions "
        "(top-3 classes and probabilities for the 10k test images) of the runs of questions "
        f"1-3. Main set: {main_label}, {both.n_trials} runs x {N_TEST} test images = "
        f"{both.n} predictions, {both.n_wrong} of them wrong. Each rate is given with two "
        "95% intervals: over runs and test images resampled together (unit run x image, "
        "the two-way bootstrap; Owen 2007), for the population of images the test set "
        "stands for, and over runs with the test set fixed (unit run), for how much one "
        "run varies on these images. Pooling the predictions as independent draws would "
        "give intervals several times too narrow (docs/analysis.md, Coverage).",
        "",
        "## Answers",
        "",
        f"**Second guess.** When the net is wrong its second most probable class is right "
        f"{rate(both, 'second_guess_rate')} of the time (run x image; over runs "
        f"{rate(runs, 'second_guess_rate')}; runs range "
        f"{per_run['second_guess_rate'].min():.1%}-{per_run['second_guess_rate'].max():.1%}"
        f"), against the {both.chance:.1%} of a random other class "
        f"({family.p_text(f'{main_label}: second guess vs chance')}).",
        "",
        f"**Confidence.** Wrong answers carry a mean top-1 probability of "
        f"{rate(both, 'confidence_wrong', 1, '', '.3f')}, right ones "
        f"{rate(both, 'confidence_right', 1, '', '.3f')}; a wrong answer's confidence is "
        f"below a right one's with probability {both.auc_ci.format('.3f')} (AUC; "
        f"{family.p_text(f'{main_label}: confidence wrong vs right')}). At >= "
        f"{CONFIDENT:.0%} confidence the net still makes {both.n_confident_errors} errors "
        f"over {both.n_trials} runs (~{both.n_confident_errors / both.n_trials:.1f} per run "
        f"of {N_TEST} images), {rate(both, 'confident_error_share')} of all errors (run x "
        f"image; over runs {rate(runs, 'confident_error_share')}), on {len(examples)} "
        "distinct test images; the most frequent are shown in "
        "findings/confident_errors.png.",
        "",
        f"**Calibration.** ECE = {rate(both, 'ece', 1, '', '.4f')} over the pooled "
        f"predictions (15 equal-width bins; run x image); the mean of the runs' own ECEs is "
        f"{rate(runs, 'ece', 1, '', '.4f')} (unit run; one run's ECE is larger than the "
        "pooled one because each run's bins hold fewer predictions). findings/reliability.png. "
        f"Most confused pairs (true->predicted, share of errors): {pairs}.",
        "",
        f"**The CNN** (results/cnn, {cnn['n_runs']} runs): its second guess is right in "
        f"{cnn['mean']:.1%} [{cnn['low']:.1%}, {cnn['high']:.1%}] of its errors (mean over "
        f"runs, t interval; unit run) ({not_archived(['cnn'])}).",
        "",
        *rows,
        "",
        "## Tests of this finding, adjusted together (Holm)",
        "",
        *claim_lines,
        "",
        "## Where each number comes from",
        "",
        "- Re-derived from a clone: " + ", ".join(sets) + " (their archives).",
        "- Left out, their predictions not archived: " + (", ".join(missing) or "none")
        + "; the earlier findings' numbers for them pooled predictions as independent "
        "draws and are not quoted, except the CNN's second guess, which was over runs.",
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
    numbers = {label: set_numbers(r) for label, r in analysed.items()}
    numbers["confident_errors"] = examples.to_dict(orient="records")
    numbers["cnn_quoted"] = cnn
    numbers["left_out"] = missing
    numbers["claims"] = claim_records
    numbers["family"] = family.to_dict()
    write_findings(NAME, "\n".join(text), numbers)


if __name__ == "__main__":
    run(main)
