"""Question 1: is the best learning rate a power law of the training length N?

results/eta-vs-n (batch 100) and, if run, results/eta-vs-n-b25 (batch 25) -> eta_best(N)
with bootstrap CIs over seeds, the fit eta_best = a * N^-b, a curvature check, the
difference of b between the two batch sizes, figures in results/<study>/findings/ and
results/eta-vs-n/findings.md.

    python analysis/eta_vs_n.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import (
    SCALE_UP,
    figure_path,
    percentile_interval,
    runs_by_length,
    write_findings,
)

from nnlab.analysis import eta_best, fit_power_law
from nnlab.report.figures import eta_curves_figure, power_law_figure

STUDIES = {"eta-vs-n": "batch 100", "eta-vs-n-b25": "batch 25"}  # (+ eta-vs-n-long)
CONFIDENCE = 0.95
TAIL_FROM = 3162  # eta_best stops rising here (chosen after seeing eta-vs-n's table)


def curvature(result, keep: np.ndarray) -> tuple[float, float, float]:
    """Coefficient c2 of log eta_best = c0 + c1 log N + c2 (log N)^2 (log N centred) with
    its bootstrap CI over seeds: 0 inside the CI means no detectable curvature."""
    log_n = np.log(result.table["n_steps"].to_numpy(dtype=float))[keep]
    log_n = log_n - log_n.mean()
    design = np.column_stack([np.ones_like(log_n), log_n, log_n**2])
    point = np.linalg.lstsq(design, np.log(result.table["eta_best"].to_numpy()[keep]),
                            rcond=None)[0][2]
    boot = np.linalg.lstsq(design, result.boot_log_eta[:, keep].T, rcond=None)[0][2]
    low, high = percentile_interval(boot, CONFIDENCE)
    return float(point), float(low), float(high)


def study_runs(name: str) -> tuple[pd.DataFrame, int] | None:
    """(runs by length, number of runs) of a study, None if it has not run."""
    try:
        runs = runs_by_length(name)
    except Exception:  # noqa: BLE001 - a study not run yet is simply left out
        return None
    return runs, int(runs["trial"].nunique())


def analyse(name: str) -> dict | None:
    found = study_runs(name)
    if found is None:
        return None
    runs, n_runs = found
    result = eta_best(runs, n_col="n_steps", eta_col="eta", metric="val_acc",
                      confidence=CONFIDENCE)
    fit = result.power_law(method="ols")
    wls = result.power_law(method="wls")
    table = result.table
    keep = table["bracketed"].to_numpy()
    c2 = curvature(result, keep)
    tail = keep & (table["n_steps"].to_numpy() >= TAIL_FROM)
    tail_fit = fit_power_law(table["n_steps"].to_numpy(dtype=float)[tail],
                             table["eta_best"].to_numpy()[tail],
                             y_boot=np.exp(result.boot_log_eta[:, tail]),
                             confidence=CONFIDENCE) if tail.sum() >= 3 else None
    eta_curves_figure(result, path=figure_path(name, "eta_curves.png"))
    power_law_figure(fit, eta_best=result, xlabel="N (steps)",
                     path=figure_path(name, "power_law.png"))
    if tail_fit is not None:
        power_law_figure(tail_fit, eta_best=result, xlabel="N (steps)",
                         path=figure_path(name, "power_law_tail.png"))
    print(f"== {name}\n{result.summary()}\n{fit.summary()}\nwls: {wls.summary()}\n"
          f"tail: {tail_fit.summary() if tail_fit else None}")
    return {"name": name, "result": result, "fit": fit, "wls": wls, "curvature": c2,
            "tail": tail_fit, "n_runs": n_runs, "runs": runs}


def tail_text(found: dict) -> str:
    tail = found["tail"]
    if tail is None:
        return ""
    b = tail.exponent
    return (f" **On the falling part** (N >= {TAIL_FROM}, {tail.n} lengths, up to "
            f"{tail.x.max():g}): eta_best = {tail.prefactor.value:.3g} * N^-{b.value:.2f}, "
            f"b = {b.value:.2f} [95% CI {b.low:.2f}, {b.high:.2f}], R^2 = "
            f"{tail.r_squared:.2f}; with {tail.n} points over "
            f"{np.log10(tail.x.max() / tail.x.min()):.1f} decades this is a local slope, "
            "not a tested law.")


def same_range_fit(found: dict, n_max: float):
    """The OLS power law of `found`'s eta_best over its bracketed N <= n_max."""
    table, result = found["result"].table, found["result"]
    keep = table["bracketed"].to_numpy() & (table["n_steps"].to_numpy() <= n_max)
    return fit_power_law(table["n_steps"].to_numpy(dtype=float)[keep],
                         table["eta_best"].to_numpy()[keep],
                         y_boot=np.exp(result.boot_log_eta[:, keep]), confidence=CONFIDENCE)


def table_lines(found: dict) -> list[str]:
    lines = ["| N | eta_best [95% CI] | best grid eta | val_acc there | interior |",
             "|---|---|---|---|---|"]
    for row in found["result"].table.itertuples(index=False):
        lines.append(f"| {row.n_steps:g} | {row.eta_best:.3g} [{row.low:.3g}, {row.high:.3g}] "
                     f"| {row.eta_grid:g} | {row.metric_at_grid:.4f} | "
                     f"{'yes' if row.bracketed else 'no (edge)'} |")
    return lines


def main() -> None:
    found = {name: f for name in STUDIES if (f := analyse(name)) is not None}
    main_fit = found["eta-vs-n"]
    fit, result = main_fit["fit"], main_fit["result"]
    b = fit.exponent
    c2, c2_low, c2_high = main_fit["curvature"]
    kept = result.table[result.table["bracketed"]]
    residuals = np.asarray(fit.residuals)
    numbers = {name: {"eta_best": f["result"].to_dict()["table"], "fit": f["fit"].to_dict(),
                      "wls": f["wls"].to_dict(), "curvature_c2": f["curvature"],
                      "tail": f["tail"].to_dict() if f["tail"] else None,
                      "n_runs": f["n_runs"]} for name, f in found.items()}
    text = [
        "# eta-vs-n: is the best learning rate a power law of the training length?",
        "",
        "seed-000's network (784-36-16-10 sigmoid, softmax + cross-entropy, plain SGD, constant "
        "eta), minibatches of 100, full MNIST (50k train / 10k val / 10k test). "
        f"{main_fit['n_runs']} runs: 11 learning rates (factor 2 apart, 0.125..128) x 5 "
        "seeds, each run 10000 steps (20 epochs) and evaluated at 11 log-spaced lengths "
        "N = 32..10000. eta_best is chosen on val_acc (the vertex of a parabola in log eta "
        "through the best grid point and its neighbours), its 95% CI by bootstrap over seeds.",
        "",
        "Why one run serves all N: with a constant eta the weights at step N do not depend on "
        "how long the run goes on afterwards (the schedule, the data order and the divergence "
        "rule only look at past steps, and evaluations never change the weights), so the "
        "curve value at step N is exactly the result of a run of length N (checked bit for "
        "bit on a 300- vs 700-step run). It costs one run per (eta, seed) instead of one per "
        "(eta, seed, N); the values at different N of one seed are correlated, which the "
        "bootstrap respects (seeds are resampled jointly across N).",
        "",
        "## Answer",
        "",
        f"**Not a single power law.** eta_best does not fall steadily with N: it stays at "
        f"about 2-4 from N = 32 to ~3000 (just below the learning rates that diverge or stall "
        f"at chance, 16 and above) and only then falls, to "
        f"{result.table['eta_best'].iloc[-1]:.2g} at N = {result.table['n_steps'].iloc[-1]:g}. "
        f"A power law over all {len(kept)} lengths with the optimum inside the grid "
        f"(N = {kept['n_steps'].min():g}..{kept['n_steps'].max():g}) gives "
        f"b = {b.value:.3f} [95% CI {b.low:.3f}, {b.high:.3f}] (OLS on log-log; weighted: "
        f"{main_fit['wls'].exponent.value:.3f} [{main_fit['wls'].exponent.low:.3f}, "
        f"{main_fit['wls'].exponent.high:.3f}]) but describes the data badly: "
        f"R^2 = {fit.r_squared:.2f}, largest residual {np.abs(residuals).max():.2f} in log eta "
        f"(a grid step is 0.69), and a quadratic term in log-log c2 = {c2:.3f} "
        f"[{c2_low:.3f}, {c2_high:.3f}] "
        + ("that excludes 0 (concave: flat, then falling)."
           if not c2_low <= 0 <= c2_high else "whose CI holds 0.")
        + tail_text(main_fit),
        "",
        *table_lines(main_fit),
        "",
        "Figures: findings/eta_curves.png (val_acc vs eta per N), findings/power_law.png "
        "(eta_best vs N with the all-N fit and its band), findings/power_law_tail.png (the "
        f"fit for N >= {TAIL_FROM}).",
    ]
    if "eta-vs-n-b25" in found:
        other = found["eta-vs-n-b25"]
        b25 = other["fit"].exponent
        common = same_range_fit(main_fit, other["result"].table["n_steps"].max())
        difference = common.boot_exponent - other["fit"].boot_exponent
        d_low, d_high = percentile_interval(difference, CONFIDENCE)
        numbers["b_difference_same_range"] = {"b100": common.to_dict(),
                                              "value": common.exponent.value - b25.value,
                                              "low": d_low, "high": d_high}
        text += [
            "",
            "## Repeat with batch size 25",
            "",
            f"Same network, minibatches of 25, N = 32..3162 ({other['n_runs']} runs, 9 "
            "learning rates 0.125..32 x 5 seeds). Over this range eta_best is again nearly "
            f"flat, about 1.5-2, half the batch-100 values, falling to "
            f"{other['result'].table['eta_best'].iloc[-1]:.2g} at N = 3162: "
            f"b = {b25.value:.3f} [{b25.low:.3f}, {b25.high:.3f}] "
            f"(R^2 = {other['fit'].r_squared:.2f}). Batch 100 over the same N: "
            f"b = {common.exponent.value:.3f} [{common.exponent.low:.3f}, "
            f"{common.exponent.high:.3f}]. Difference b(100) - b(25) = "
            f"{common.exponent.value - b25.value:.3f} [{d_low:.3f}, {d_high:.3f}] "
            + ("(holds 0: the data do not show b moving with the batch size; both are "
               "small because both ranges are mostly the flat part)."
               if d_low <= 0 <= d_high else
               "(excludes 0). The exponent moves because the batch-25 optimum leaves its "
               "plateau earlier (it falls from N ~ 1000-1800, batch 100's from ~3000-5600), "
               "not because the falling parts have been compared: that needs the batch-25 "
               "runs to 10000 steps too."),
            "",
            *table_lines(other),
        ]
    text += [
        "",
        "## Compared with published work",
        "",
        "Learning-rate scaling studies find the optimal (constant or peak) learning rate "
        "falling as a power of the training length (e.g. Bjorck et al. 2024, 'Scaling optimal "
        "LR across token horizons', for LLMs; classic SGD theory for convex problems gives "
        "eta ~ N^-1/2). This small sigmoid MLP agrees only past N ~ 3000 steps: below that "
        "the best constant eta is pinned just under "
        "the stability edge and does not depend on N, so a power law fitted over all N "
        "understates the fall at long N and misses the plateau at short N.",
        "",
        "## Reproduce and scale up",
        "",
        "    nnlab run studies/eta-vs-n.toml --jobs 2       # ~15-25 min on 2 busy cores",
        "    nnlab run studies/eta-vs-n-b25.toml --jobs 2",
        "    python analysis/eta_vs_n.py",
        "",
        "Scale up for this question: the falling part needs longer runs: n_steps = 100000 "
        "with eval_steps up to it and eta 0.03..4 (about 3 h for 35 runs on 2 idle cores; a "
        "31623-step version was started and stopped for lack of time here), and a finer eta "
        "grid (factor sqrt 2). "
        + SCALE_UP.removeprefix("Scale up: "),
    ]
    write_findings("eta-vs-n", "\n".join(text), numbers)


if __name__ == "__main__":
    main()
