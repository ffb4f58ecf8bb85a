"""Question 1, the batch ratio of eta_best: does the gradient noise scale set it?

results/noise-scale (B_simple = tr(Sigma) / |G|^2 along seed-000's training at batch 100,
5 constant learning rates x 4 seeds) -> B_simple along training with seed CIs, B_noise =
B_simple at the learning-rate time T* = 7000 where batch 100's eta_best runs end, the batch
ratios of eta_best McCandlish et al.'s model predicts from it, r(B) = (B / 100) (B_noise +
100) / (B_noise + B), against the ratios finding 1 observes at equal examples (from the
eta-vs-n studies' archives, as analysis/eta_vs_n.py computes them); the hypotheses declared
in studies/noise-scale.toml (postdictions for batch 25 and 400) and in
studies/eta-vs-n-b1600.toml (the prediction for batch 1600, judged once that study has run)
-> results/noise-scale/findings.md, findings.json, findings/noise_scale.png.

    python analysis/noise_scale.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import eta_vs_n
import numpy as np
from common import (
    as_written,
    figure_path,
    has_runs,
    hypothesis_records,
    load,
    log2_statistic,
    percentile_interval,
    replicate_interval,
    run,
    statistic,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure

from nnlab.analysis.noise_scale import (
    COLUMNS,
    NoiseScaleAtTime,
    along_training,
    batch_ratio,
    noise_scale_at,
)
from nnlab.report.figures import save_figure
from nnlab.study import StudySpec
from nnlab.study.hypotheses import Estimate, evaluate_all

STUDY = "noise-scale"
B1600 = "eta-vs-n-b1600"
B1600_SPEC = Path(__file__).resolve().parent.parent / "studies" / f"{B1600}.toml"
T_STAR = 7000.0  # learning-rate time at which batch 100's eta_best runs end (spec header)
T_EARLY = T_STAR / 100  # the early time the growth of the noise scale is read against
CONFIDENCE = 0.95
BATCHES = (25, 400, 1600)


# --- compute ----------------------------------------------------------------------------------

def observed(batch: int, b100: dict) -> dict:
    """Finding 1's ratio of eta_best at equal examples for `batch`, the geometric mean over
    the lengths where batch 100's optimum falls (eta_vs_n's functions, its paired seed
    bootstrap), with its replicates of the natural log (boot_log)."""
    other = eta_vs_n.analyse(batch)
    matched, boot = eta_vs_n.matched_ratios(other, b100)
    falling = eta_vs_n.geometric_mean(matched, boot, matched["falling"].to_numpy())
    return {**falling, "n_seeds": other["n_seeds"], "matched": matched.to_dict("records")}


def prediction(batch: int, b_noise: NoiseScaleAtTime, observed_ratio: dict | None
               ) -> dict[str, Any]:
    """r(batch) from B_noise (a NoiseScaleAtTime) with its seed interval and, when the
    ratio was observed, log2(observed / predicted) with an interval from the two studies'
    independent bootstraps (replicate k of each, differenced)."""
    boot = np.log2(batch_ratio(np.exp(b_noise.boot_log), batch))
    low, high = percentile_interval(2 ** boot, CONFIDENCE)
    found: dict[str, Any] = {
        "batch": batch, "value": float(batch_ratio(b_noise.value, batch)), "low": low,
        "high": high, "log2": float(np.log2(batch_ratio(b_noise.value, batch))),
        "log2_low": float(np.log2(low)), "log2_high": float(np.log2(high)),
        "observed": None, "difference": None}
    if observed_ratio is not None:
        seen = observed_ratio["boot_log"] / np.log(2)
        n = min(len(seen), len(boot))
        value = float(np.log2(observed_ratio["value"]) - found["log2"])
        found["observed"] = {k: v for k, v in observed_ratio.items() if k != "boot_log"}
        found["difference"] = {"value": value,
                               **replicate_interval(seen[:n] - boot[:n], CONFIDENCE)}
    return found


def compute() -> dict:
    """Every number of this finding: {"numbers": findings.json's content, "figures": what
    the figure draws}."""
    study = load(STUDY)
    curves = study.curves(columns=["step", "grad_sq", "noise_trace"], with_params=True)
    curves = curves[list(COLUMNS)]
    b_noise = noise_scale_at(curves, T_STAR, confidence=CONFIDENCE)
    early = noise_scale_at(curves, T_EARLY, confidence=CONFIDENCE)
    growth_boot = (b_noise.boot_log - early.boot_log) / np.log(10)
    growth = {"value": float(np.log10(b_noise.value / early.value)),
              **replicate_interval(growth_boot, CONFIDENCE)}
    b1600_run = has_runs(B1600)
    b100 = eta_vs_n.analyse(100)
    seen = {batch: observed(batch, b100) for batch in BATCHES
            if batch != 1600 or b1600_run}
    predicted = {batch: prediction(batch, b_noise, seen.get(batch)) for batch in BATCHES}
    n_seeds = b_noise.n_seeds
    statistics: dict[str, Estimate | str] = {
        f"gns.b{batch}_log2_observed_over_predicted": statistic(
            predicted[batch]["difference"], "seed (both studies)", n_seeds)
        for batch in (25, 400)}
    statistics["gns.log10_growth"] = statistic(growth, "seed", n_seeds)
    b1600_spec = load(B1600).spec if b1600_run else StudySpec.from_toml(B1600_SPEC)
    if b1600_run:
        statistics["b1600.log2_ratio_falling"] = log2_statistic(
            seen[1600], seen[1600]["boot_log"], "seed", seen[1600]["n_seeds"])
    else:
        statistics["b1600.log2_ratio_falling"] = f"{B1600} has not run yet"
    numbers = {
        "study": {"runs": int(curves.groupby(["eta", "seed"]).ngroups), "n_seeds": n_seeds,
                  "etas": b_noise.etas},
        "t_star": T_STAR, "b_noise": b_noise.to_dict(), "early": early.to_dict(),
        "growth": growth,
        "along_training": along_training(curves, confidence=CONFIDENCE).to_dict("records"),
        "predictions": [predicted[batch] for batch in BATCHES],
        "hypotheses": hypothesis_records(evaluate_all(study.spec.hypotheses, statistics)),
        "b1600_run": b1600_run,
        "b1600_hypotheses": hypothesis_records(
            evaluate_all(b1600_spec.hypotheses, statistics)),
    }
    return {"numbers": numbers}


# --- figure -----------------------------------------------------------------------------------

def draw(numbers: dict) -> None:
    """findings/noise_scale.png: B_simple against the learning-rate time per eta (left,
    95% CIs over seeds; dotted: T* and its hundredth), and the predicted against the
    observed batch ratios (right, log scale)."""
    figure = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = figure.subplots(1, 2)
    rows = numbers["along_training"]
    for eta in numbers["study"]["etas"]:
        mine = [r for r in rows if r["eta"] == eta]
        time = [r["time"] for r in mine]
        left.plot(time, [r["b_simple"] for r in mine], marker="o", label=f"eta = {eta:g}")
        left.fill_between(time, [r["low"] for r in mine], [r["high"] for r in mine],
                          alpha=0.15)
    for at in (numbers["t_star"], numbers["early"]["time"]):
        left.axvline(at, color="grey", linestyle=":", linewidth=1)
    left.set(xscale="log", yscale="log", xlabel="learning-rate time eta x step",
             ylabel="B_simple = tr(Sigma) / |G|^2 (95% CI over seeds)",
             title="Gradient noise scale along training (batch 100)")
    left.legend(fontsize=8)
    for i, p in enumerate(numbers["predictions"]):
        right.errorbar([i - 0.1], [p["value"]], yerr=[[p["value"] - p["low"]],
                                                      [p["high"] - p["value"]]],
                       marker="s", color="C0", capsize=3,
                       label="predicted from B_noise" if i == 0 else None)
        right.plot([i], [p["batch"] / 100], marker="_", markersize=18, color="grey",
                   label="linear scaling B / 100" if i == 0 else None)
        seen = p["observed"]
        if seen is not None:
            right.errorbar([i + 0.1], [seen["value"]], yerr=[[seen["value"] - seen["low"]],
                                                             [seen["high"] - seen["value"]]],
                           marker="o", color="C1", capsize=3,
                           label="observed (equal examples)" if i == 0 else None)
    right.set(yscale="log", xticks=range(len(numbers["predictions"])),
              xticklabels=[f"{p['batch']} / 100" for p in numbers["predictions"]],
              ylabel="eta_best ratio", title="Batch ratios of eta_best: predicted and observed")
    right.legend(fontsize=8)
    save_figure(figure, figure_path(STUDY, "noise_scale.png"))


# --- render -----------------------------------------------------------------------------------

def interval(estimate: dict, fmt: str = ".3g") -> str:
    """'1.04 [1.00, 1.11]' from a dict with value, low, high."""
    return f"{estimate['value']:{fmt}} [{estimate['low']:{fmt}}, {estimate['high']:{fmt}}]"


def verdict_lines(found: list[dict]) -> str:
    """One bullet per declared hypothesis with its estimate and verdict."""
    lines = []
    for h in found:
        estimate = ("" if h["estimate"] is None else
                    f"; estimate {Estimate(**h['estimate'])}")
        reason = f" ({h['reason']})" if h["reason"] else ""
        lines.append(f"- **{h['name']}** ({'primary' if h['primary'] else 'secondary'}): "
                     f"{h['prediction']}{estimate}: **{h['verdict']}**{reason}. {h['note']}")
    return "\n".join(lines)


def training_table(numbers: dict) -> str:
    """B_simple per eta at each evaluation as a markdown table (rows: steps)."""
    rows = numbers["along_training"]
    etas = numbers["study"]["etas"]
    steps = sorted({r["step"] for r in rows})
    cell = {(r["eta"], r["step"]): r for r in rows}
    lines = ["| step | " + " | ".join(f"eta = {e:g}" for e in etas) + " |",
             "|---|" + "---|" * len(etas)]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(
            f"{cell[(e, step)]['b_simple']:.3g} [{cell[(e, step)]['low']:.3g}, "
            f"{cell[(e, step)]['high']:.3g}]" if (e, step) in cell else "" for e in etas) + " |")
    return "\n".join(lines)


def prediction_lines(numbers: dict) -> str:
    """The predicted and observed ratio per batch size as a markdown table."""
    lines = ["| batch ratio | predicted r(B) [95% CI] | linear scaling | observed at equal "
             "examples [95% CI] | log2 observed / predicted [95% CI] |",
             "|---|---|---|---|---|"]
    for p in numbers["predictions"]:
        seen, diff = p["observed"], p["difference"]
        lines.append(f"| {p['batch']} / 100 | {interval(p)} | {p['batch'] / 100:g} | "
                     + (f"{interval(seen)} ({seen['n_lengths']} lengths, {seen['n_seeds']} "
                        f"seeds) | {interval(diff, '.2f')}" if seen is not None else
                        "not run yet | ") + " |")
    return "\n".join(lines)


def b1600_reading(b1600: dict) -> str:
    """What batch 1600's observed ratio says beside its prediction (exploratory)."""
    seen = b1600["observed"]
    falling = [m for m in seen["matched"] if m["falling"]]
    first, last = falling[0], falling[-1]
    side = ("below" if seen["high"] < b1600["low"] else "above" if seen["low"] > b1600["high"]
            else "overlapping")
    return (f"eta-vs-n-b1600 has run ({seen['n_seeds']} seeds; its judgement below, its "
            f"ratio in the table of predicted and observed ratios). Its ratio at equal "
            f"examples, {interval(seen)}, lies {side} the predicted r(1600) = "
            f"{interval(b1600)}, and short of linear scaling (16). Along the lengths where "
            f"batch 100's optimum falls it goes from {first['ratio']:.3g} "
            f"[{first['low']:.3g}, {first['high']:.3g}] at {first['n_steps']:g} batch-1600 "
            f"steps to {last['ratio']:.3g} [{last['low']:.3g}, {last['high']:.3g}] at "
            f"{last['n_steps']:g} (exploratory, read after the run): one B_noise for every "
            "length cannot match such a ratio at all of them, as the reading of B_simple by "
            "learning rate below expects.")


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/noise_scale.md)."""
    b_noise, early = numbers["b_noise"], numbers["early"]
    b1600 = next(p for p in numbers["predictions"] if p["batch"] == 1600)
    values = {
        "runs": numbers["study"]["runs"], "n_seeds": numbers["study"]["n_seeds"],
        "etas": ", ".join(f"{e:g}" for e in numbers["study"]["etas"]),
        "t_star": f"{numbers['t_star']:g}", "t_early": f"{early['time']:g}",
        "b_noise": interval(b_noise), "early": interval(early),
        "growth": interval(numbers["growth"], ".2f"),
        "per_eta": ", ".join(f"{r['value']:.3g} [{r['low']:.3g}, {r['high']:.3g}] at eta = "
                             f"{r['eta']:g}" for r in b_noise["per_eta"]),
        "hypotheses": verdict_lines(numbers["hypotheses"]),
        "b1600_hypotheses": verdict_lines(numbers["b1600_hypotheses"]),
        "b1600_status": (b1600_reading(b1600) if numbers["b1600_run"] else
                         "eta-vs-n-b1600 has not run yet: its prediction, r(1600) = "
                         f"{interval(b1600)} (log2 {b1600['log2']:.2f} "
                         f"[{b1600['log2_low']:.2f}, {b1600['log2_high']:.2f}]), waits for "
                         "it."),
        "b1600_read": " and eta-vs-n-b1600" if numbers["b1600_run"] else (
            " (and eta-vs-n-b1600 once it has run)"),
        "b1600_command": "" if numbers["b1600_run"] else "    # the confirmatory test, not run yet",
        "predictions": prediction_lines(numbers),
        "training": training_table(numbers),
    }
    return render_template("noise_scale", values)


def main() -> None:
    numbers = as_written(compute()["numbers"])
    draw(numbers)
    write_findings(STUDY, render(numbers), numbers)


if __name__ == "__main__":
    run(main)
