"""Question 3: does small annealed noise (gradient or weight) change the spread of restarts,
and what does it cost or gain in mean accuracy?

results/noise-grad, results/noise-weight and the noise-free results/restarts (same seeds),
to N = 10^4; results/noise-grad-long and results/noise-weight-long against
results/restarts-long, to N = 10^5 -> figures in results/noise-grad/findings/ and
results/noise-grad/findings.md.

    python analysis/noise.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import (
    FLOOR_FIT_FROM,
    figure_path,
    load,
    load_if_run,
    paired_difference,
    run,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)

from nnlab.analysis import compare_variance, test_set_variance, variance_vs_n
from nnlab.report.figures import compare_figure
from nnlab.study import Study

METRIC = "test_acc"
NAME = "noise-grad"  # the folder the findings go to
SHORT = ("noise-grad", "noise-weight", "noise-weight-strong")  # noise settings to N = 10^4
LONG = ("noise-grad-long", "noise-weight-long")  # noise settings carried on to N = 10^5


def arms(names: tuple[str, ...]) -> dict[str, tuple[str, Study, pd.DataFrame, pd.DataFrame]]:
    """{label: (study name, study, finished runs by length, complete trials)} for every noise
    setting of the studies `names` run so far, labelled "<kind> <noise_eta>" ("grad 0.001");
    a study with a grid over noise_eta gives one entry per value."""
    found = {}
    for name in names:
        study = load_if_run(name)
        if study is None:
            continue
        config = study.spec.base_config()
        trials = study.trials()
        runs = runs_by_length(study, trials)
        runs = runs[runs["status"] == "ok"]
        trials = trials[trials["state"] == "COMPLETE"]
        for eta, group in runs.groupby(_noise_eta(runs, config.noise_eta)):
            found[f"{config.noise} {eta:g}"] = (
                name, study, group, trials[_noise_eta(trials, config.noise_eta) == eta])
    return found


def _noise_eta(frame: pd.DataFrame, base: float) -> pd.Series:
    """Each row's noise_eta: its own column in a study with a grid over it, else `base`."""
    return frame["noise_eta"] if "noise_eta" in frame else pd.Series(base, frame.index)


def settings(short: dict, none: Study) -> dict[str, pd.DataFrame]:
    """{label: runs by length} for no noise (the study `none`) and every noise setting of
    `short` (`arms`), N <= the noisy runs'."""
    found = {label: runs for label, (_, _, runs, _) in short.items()}
    longest = min(int(g["n_steps"].max()) for g in found.values())
    none = runs_by_length(none)
    found = {"none": none[none["status"] == "ok"], **found}
    return {k: g[g["n_steps"] <= longest] for k, g in found.items()}


def test_set_splits(short: dict, none: Study) -> dict:
    """Jordan's split of the variance at the runs' last step (N = 10000), per setting of
    `short` (`arms`) and without noise (the study `none`)."""
    splits = {"none": test_set_variance(none.predictions())}
    for label, (_, study, _, trials) in short.items():
        splits[label] = test_set_variance(study.predictions(trials["trial"]))
    return splits


def at_length(runs: pd.DataFrame, n: int) -> pd.Series:
    """The metric of each seed's run at length n, indexed by seed."""
    return runs[runs["n_steps"] == n].set_index("seed")[METRIC]


def floors(variance: dict) -> dict[str, dict]:
    """The variance floor c of var(N) = c + a N^-b per setting (`variance_vs_n` results), and
    each noisy floor minus the noise-free one with a CI from the two (independent)
    bootstraps."""
    fits = {label: result.fit for label, result in variance.items()}
    none = fits["none"]
    out = {}
    for label, fit in fits.items():
        entry = {"floor": fit.floor, "exponent": fit.exponent}
        if label != "none":
            entry["difference"] = fit.floor_difference(none)
        out[label] = entry
    return out


def long_runs() -> tuple[list[str], dict]:
    """The LONG arms against restarts-long (no noise; its first seeds are the same runs
    without the noise) to N = 10^5: the spread, the floor, Jordan's split and the mean at the
    longest N. ([], {}) while none of those studies has been run."""
    long = arms(LONG)
    if not long:
        return [], {}
    none_study = load("restarts-long")
    none = runs_by_length(none_study)
    none = none[none["status"] == "ok"]
    longest = int(min(runs["n_steps"].max() for _, _, runs, _ in long.values()))
    variance = {label: variance_vs_n(runs, metric=METRIC, fit_from=FLOOR_FIT_FROM)
                for label, (_, _, runs, _) in long.items()}
    variance["none"] = variance_vs_n(none, metric=METRIC, fit_from=FLOOR_FIT_FROM)
    splits = {label: test_set_variance(study.predictions(trials["trial"]))
              for label, (_, study, _, trials) in long.items()}
    splits["none"] = test_set_variance(none_study.predictions())
    std_vs_n_figure({k: v.table for k, v in variance.items()},
                    f"Spread of restarts to N = {longest}, with and without annealed noise",
                    figure_path(NAME, "std_vs_n_long.png"), binomial=variance["none"].table)
    fits = {k: v.fit for k, v in variance.items()}
    text = [f"## Trained to N = {longest} (none: restarts-long, {none['seed'].nunique()} "
            "seeds)", ""]
    numbers = {"n_steps": longest, "floors": {k: f.to_dict() for k, f in fits.items()},
               "test_set": {k: s.to_dict() for k, s in splits.items()}, "arms": {}}
    for label, (name, _, runs, _) in long.items():
        noisy, clean = at_length(runs, longest), at_length(none, longest)
        spread = compare_variance(noisy.to_numpy(), clean.to_numpy(), names=(label, "none"))
        paired = paired_difference(noisy, clean)
        floor = fits[label].floor_difference(fits["none"])
        text.append(
            f"- {label} ({name}, {runs['seed'].nunique()} seeds), at N = {longest}: std ratio "
            f"noisy / none {spread.std_ratio.format('.2f')} (Brown-Forsythe "
            f"{spread.brown_forsythe.p_text}: "
            + ("differs" if spread.spreads_differ else "no detectable change")
            + f"); variance floor (fitted over N >= {FLOOR_FIT_FROM}) {fits[label].floor} "
            f"against {fits['none'].floor}, difference {floor.format('.2e')}"
            + (" (no detectable difference)" if floor.contains(0.0) else "")
            + f"; distribution-wise variance (Jordan's split) {splits[label].distribution} "
            f"against {splits['none'].distribution}; mean {100 * paired['value']:+.2f} points "
            f"[{100 * paired['low']:+.2f}, {100 * paired['high']:+.2f}] (paired over "
            f"{paired['n_pairs']} seeds, better in {paired['wins']}).")
        numbers["arms"][label] = {"study": name, "comparison": spread.to_dict(),
                                  "paired_mean_difference": paired,
                                  "floor_difference": floor.to_dict()}
    text += ["", "Figure: findings/std_vs_n_long.png.", ""]
    return text, numbers


def main() -> None:
    short, restarts = arms(SHORT), load("restarts")
    found = settings(short, restarts)
    long_text, long_numbers = long_runs()
    none = found["none"]
    longest = int(max(found["grad 0.001"]["n_steps"]))
    ns = sorted(set(found["grad 0.001"]["n_steps"]))
    comparisons, paired = {}, {}
    for label, runs in found.items():
        if label == "none":
            continue
        for n in ns:
            a = runs.loc[runs["n_steps"] == n, METRIC].to_numpy()
            b = none.loc[none["n_steps"] == n, METRIC].to_numpy()
            comparisons[(label, n)] = compare_variance(a, b, names=(label, "none"))
            paired[(label, n)] = paired_difference(at_length(runs, n), at_length(none, n))
    splits = test_set_splits(short, restarts)
    variance = {label: variance_vs_n(runs, metric=METRIC, fit_from=FLOOR_FIT_FROM)
                for label, runs in found.items()}
    std_vs_n_figure({label: result.table for label, result in variance.items()},
                    "Spread of restarts with and without annealed noise",
                    figure_path(NAME, "std_vs_n.png"), binomial=variance["none"].table)
    strongest = comparisons[("grad 0.001", longest)]
    compare_figure(strongest, metric=METRIC, path=figure_path(NAME, "compare_grad_1e-3.png"))
    for key, c in comparisons.items():
        print(key, c.summary(), paired[key])

    lines = ["| noise | N | std noisy / std none [95% CI] | Brown-Forsythe | mean noisy - none, "
             "paired [95% CI] | P(noisy > none) [95% CI] |", "|---|---|---|---|---|---|"]
    for (label, n), c in comparisons.items():
        d = paired[(label, n)]
        lines.append(f"| {label} | {n} | {c.std_ratio.format('.2f')} | {c.brown_forsythe.p_text} "
                     f"| {100 * d['value']:+.2f} pts [{100 * d['low']:+.2f}, "
                     f"{100 * d['high']:+.2f}] | {c.p_superiority.format('.2f')} |")
    verdicts = []
    floor = floors(variance)
    for label in [k for k in found if k != "none"]:
        c, d = comparisons[(label, longest)], paired[(label, longest)]
        moved = "differs" if c.spreads_differ else "no detectable change"
        difference = floor[label]["difference"]
        verdicts.append(
            f"{label}: std ratio {c.std_ratio.format('.2f')} (Brown-Forsythe "
            f"{c.brown_forsythe.p_text}: {moved}); variance floor {floor[label]['floor']} "
            f"against {floor['none']['floor']} without noise, difference "
            f"{difference.value:.2e} [{difference.low:.2e}, {difference.high:.2e}]; mean "
            f"{100 * d['value']:+.2f} points [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] "
            f"(paired over {d['n_pairs']} "
            f"seeds, better in {d['wins']}), P(noisy > none) = "
            f"{c.p_superiority.format('.2f')}")
    at_end = {k[0]: c for k, c in comparisons.items() if k[1] == longest}
    spread_moved = [k for k, c in at_end.items() if c.spreads_differ]
    floor_moved = [k for k in at_end if not floor[k]["difference"].contains(0.0)]
    costs = [k for k in at_end if paired[(k, longest)]["high"] < 0]
    gains = [k for k in at_end if paired[(k, longest)]["low"] > 0]
    ratios = [c.std_ratio.value for c in at_end.values()]
    # the ratio's CI half-width as a factor (median over settings, in log space)
    resolution = float(np.exp(np.median([np.log(c.std_ratio.high / c.std_ratio.low) / 2
                                         for c in at_end.values()])))
    n_runs = {k: int(v["seed"].nunique()) for k, v in found.items()}

    def strengths(kind: str) -> str:
        return ", ".join(label.split()[1] for label in found if label.startswith(kind))

    text = [
        "# noise: does small annealed noise change the spread of restarts?",
        "",
        "restarts.toml's configuration (seed-000's network, batch 100, eta = 1) and seeds "
        f"0..{n_runs['none'] - 1}, with annealed Gaussian noise of variance "
        "noise_eta / (1 + t)^0.55 (Neelakantan et al. 2015) added to the gradient "
        f"(noise_eta {strengths('grad')}) or to the weights after each step "
        f"({strengths('weight')}), against the noise-free runs of results/restarts. Runs "
        f"per setting: {n_runs}. Same seed = same "
        "initial weights and data order (the noise has its own stream), so mean differences "
        "are paired by seed; spreads are compared as independent samples (Brown-Forsythe, "
        f"BCa bootstrap CI of the std ratio). Lengths N = {', '.join(map(str, ns))}, each "
        "read from one run of 10^4 steps per seed; the variance floor c of "
        f"var(N) = c + a N^-b is fitted per setting over N >= {FLOOR_FIT_FROM} (past the "
        "take-off transient; see restarts/findings.md), its CI by bootstrap over seeds.",
        "",
        f"## Answer (N = {longest})",
        "",
        "In short: "
        + (f"the spread changes detectably with {', '.join(spread_moved)}"
           if spread_moved else
           f"no setting changes the spread detectably at N = {longest} (std ratios "
           f"{min(ratios):.2f}-{max(ratios):.2f}; with {n_runs['none']} runs per arm a CI of "
           f"the ratio reaches a factor of ~{resolution:.2f} either side of its estimate, so "
           f"changes smaller than ~{100 * (1 - 1 / resolution):.0f}% cannot be seen)")
        + "; " + (f"the variance floor moves with {', '.join(floor_moved)}"
                  if floor_moved else "no floor differs detectably from the noise-free one")
        + ". In mean accuracy (paired differences over seeds, 95% CI) "
        + (f"{', '.join(costs)} cost{'s' if len(costs) == 1 else ''}" if costs else
           "no setting costs")
        + (f" and {', '.join(gains)} gain{'s' if len(gains) == 1 else ''}." if gains else
           "; no setting gains.")
        + " P(noisy > none) compares the runs as "
        "independent samples; the paired differences are the sharper test.",
        "",
        *[f"- {v}." for v in verdicts],
        "",
        f"Finite-test-set share of the variance at N = {longest} (Jordan's split): "
        + "; ".join(f"{k}: {v.share_test_set.format('.0f', 100, '%')} of "
                    f"{v.observed.format('.2e')}" for k, v in splits.items()) + ".",
        "",
        *lines,
        "",
        "Figures: findings/std_vs_n.png (std over seeds vs N for every setting), "
        f"findings/compare_grad_1e-3.png (the distributions at N = {longest}).",
        "",
        *long_text,
        "## Reproduce and scale up",
        "",
        "    nnlab run studies/restarts.toml --jobs 2       # run times: each spec's header",
        "    nnlab run studies/noise-grad.toml --jobs 2",
        "    nnlab run studies/noise-weight.toml --jobs 2",
        "    nnlab run studies/restarts-long.toml --jobs 2",
        "    nnlab run studies/noise-grad-long.toml --jobs 2",
        "    nnlab run studies/noise-weight-long.toml --jobs 2",
        "    python analysis/noise.py",
        "",
        scale_up("more seeds (a std ratio of 0.8 needs ~150 runs per arm to be seen at "
                 "80% power; raising study.replicates in a spec grows its study, keeping the "
                 "runs done), and the arms still stopped at N = 10^4 carried on to 10^5 like "
                 "noise-grad-long.toml (~40 min per 50 noisy runs with --jobs 2), to pin "
                 "their floors against restarts-long's."),
    ]
    numbers = {
        "n_runs": n_runs,
        "comparisons": {f"{k[0]} N={k[1]}": c.to_dict() for k, c in comparisons.items()},
        "paired_mean_difference": {f"{k[0]} N={k[1]}": d for k, d in paired.items()},
        "test_set": {k: s.to_dict() for k, s in splits.items()},
        "floors": {k: {"floor": v["floor"].to_dict(), "exponent": v["exponent"].to_dict(),
                       "difference_from_none": v["difference"].to_dict()
                       if "difference" in v else None}
                   for k, v in floor.items()},
    }
    if long_numbers:
        numbers["long"] = long_numbers
    write_findings(NAME, "\n".join(text), numbers)


if __name__ == "__main__":
    run(main)
