"""Question 1: is the best learning rate a power law of the training length N?

results/eta-vs-n (batch 100) and, if run, results/eta-vs-n-b25 (batch 25) -> eta_best(N)
with bootstrap CIs over seeds, the fit eta_best = a * N^-b, a curvature check, the
difference of b between the two batch sizes, figures in results/<study>/findings/ and
results/eta-vs-n/findings.md.

    python analysis/eta_vs_n.py
"""

from __future__ import annotations

import numpy as np
from common import (
    SCALE_UP,
    figure_path,
    load,
    percentile_interval,
    runs_by_length,
    write_findings,
)

from nnlab.analysis import eta_best
from nnlab.report.figures import eta_curves_figure, power_law_figure

STUDIES = {"eta-vs-n": "batch 100", "eta-vs-n-b25": "batch 25"}
CONFIDENCE = 0.95


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


def analyse(name: str) -> dict | None:
    try:
        study = load(name)
    except Exception:  # noqa: BLE001 - a study not run yet is simply left out
        return None
    runs = runs_by_length(study)
    result = eta_best(runs, n_col="n_steps", eta_col="eta", metric="val_acc",
                      confidence=CONFIDENCE)
    fit = result.power_law(method="ols")
    wls = result.power_law(method="wls")
    keep = result.table["bracketed"].to_numpy()
    c2 = curvature(result, keep)
    eta_curves_figure(result, path=figure_path(name, "eta_curves.png"))
    power_law_figure(fit, eta_best=result, xlabel="N (steps)",
                     path=figure_path(name, "power_law.png"))
    print(f"== {name}\n{result.summary()}\n{fit.summary()}\nwls: {wls.summary()}")
    return {"name": name, "result": result, "fit": fit, "wls": wls, "curvature": c2,
            "n_runs": int(study.trials()["state"].eq("COMPLETE").sum()), "runs": runs}


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
                      "n_runs": f["n_runs"]} for name, f in found.items()}
    text = [
        "# eta-vs-n: is the best learning rate a power law of the training length?",
        "",
        "seed-000's network (784-36-16-10 sigmoid, softmax + cross-entropy, plain SGD, constant "
        "eta), minibatches of 100, full MNIST (50k train / 10k val / 10k test). "
        f"{main_fit['n_runs']} runs: {result.table['n_eta'].iloc[0]} learning rates "
        "(factor 2 apart) x 5 seeds, each run 10000 steps and evaluated at 11 log-spaced "
        "lengths N = 32..10000. eta_best is chosen on val_acc (the vertex of a parabola in "
        "log eta through the best grid point and its neighbours), its 95% CI by bootstrap "
        "over seeds.",
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
        f"Over N = {kept['n_steps'].min():g}..{kept['n_steps'].max():g} steps "
        f"({len(kept)} lengths with the optimum inside the grid), "
        f"eta_best = {fit.prefactor.value:.3g} * N^-{b.value:.3f}, "
        f"b = {b.value:.3f} [95% CI {b.low:.3f}, {b.high:.3f}] (OLS on log-log; weighted by "
        f"the bootstrap variance: b = {main_fit['wls'].exponent.value:.3f} "
        f"[{main_fit['wls'].exponent.low:.3f}, {main_fit['wls'].exponent.high:.3f}]), "
        f"R^2 = {fit.r_squared:.3f}. "
        f"Curvature in log-log (quadratic term c2 = {c2:.3f} [{c2_low:.3f}, {c2_high:.3f}]): "
        + ("the interval holds 0, so a straight line (a power law) is not contradicted."
           if c2_low <= 0 <= c2_high else
           "the interval excludes 0: the log-log line bends, so a single power law is only "
           "an approximation over this range.")
        + f" Largest residual in log eta: {np.abs(residuals).max():.2f} "
        f"(a grid step is log 2 = 0.69).",
        "",
        *table_lines(main_fit),
        "",
        "Figures: findings/eta_curves.png (val_acc vs eta per N), findings/power_law.png "
        "(eta_best vs N with the fit and its band).",
    ]
    if "eta-vs-n-b25" in found:
        other = found["eta-vs-n-b25"]
        b25 = other["fit"].exponent
        difference = fit.boot_exponent - other["fit"].boot_exponent
        d_low, d_high = percentile_interval(difference, CONFIDENCE)
        numbers["b_difference"] = {"value": b.value - b25.value, "low": d_low, "high": d_high}
        text += [
            "",
            "## Repeat with batch size 25",
            "",
            f"Same network and grid of lengths, minibatches of 25 ({other['n_runs']} runs): "
            f"b = {b25.value:.3f} [{b25.low:.3f}, {b25.high:.3f}], "
            f"a = {other['fit'].prefactor.value:.3g}, R^2 = {other['fit'].r_squared:.3f}. "
            f"Difference b(100) - b(25) = {b.value - b25.value:.3f} [{d_low:.3f}, {d_high:.3f}] "
            + ("(holds 0: the data do not show b moving with the batch size)."
               if d_low <= 0 <= d_high else "(excludes 0: b depends on the batch size)."),
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
        "eta ~ N^-1/2). See the answer above for where this small sigmoid MLP sits.",
        "",
        "## Reproduce and scale up",
        "",
        "    nnlab run studies/eta-vs-n.toml --jobs 2       # ~15-25 min on 2 busy cores",
        "    nnlab run studies/eta-vs-n-b25.toml --jobs 2",
        "    python analysis/eta_vs_n.py",
        "",
        "Scale up for this question: a finer eta grid (factor sqrt 2) and N to 10^5. "
        + SCALE_UP,
    ]
    write_findings("eta-vs-n", "\n".join(text), numbers)


if __name__ == "__main__":
    main()
