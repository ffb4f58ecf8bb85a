"""Question 3: does small annealed noise (on the gradient or on the weights) change the spread
of restarts?

Each noise arm reuses restarts' seeds (the same initial weights and data order; the noise
has its own stream), so every comparison with the noise-free runs is paired by seed:
results/noise-grad, results/noise-weight, results/noise-weight-strong (N = 10^4) against
results/restarts, and results/noise-grad-long, results/noise-weight-long (N = 10^5) against
results/restarts-long. The spreads at the runs' end come from the studies' trials.parquet
(every clone has them); the variance floors and the finite-test-set split need the noise
studies' curves and predictions (their archives) and are computed where those are present,
else said to be missing. -> results/noise-grad/findings.md, findings.json, findings/*.png.

    python analysis/noise.py
"""

from __future__ import annotations

import pandas as pd
from common import (
    FLOOR_FIT_FROM,
    as_written,
    ci,
    claims_lines,
    claims_table,
    figure_path,
    final_runs,
    floor_summary,
    has_runs,
    load,
    p_text,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)
from common import render as render_template
from common import run as run_script

from nnlab.analysis import (
    Family,
    compare_variance,
    floor_difference,
    minimum_detectable_effect,
    power,
    test_set_variance,
    tost_mean_difference,
    tost_std_ratio,
    variance_vs_n,
)
from nnlab.report.figures import compare_figure

METRIC = "test_acc"
NAME = "noise-grad"  # the folder the findings go to
# the noise studies and the noise-free study whose seeds each reuses
STUDIES = {"noise-grad": "restarts", "noise-weight": "restarts",
           "noise-weight-strong": "restarts", "noise-grad-long": "restarts-long",
           "noise-weight-long": "restarts-long"}
STD_MARGIN = 1.25  # "no change" in spread: a std ratio within [1/1.25, 1.25], stated
MEAN_MARGIN = 0.001  # "no change" in mean: within +-0.1 points of accuracy, stated
SHORT = ("noise-grad", "noise-weight", "noise-weight-strong")  # their arms in std_vs_n.png
STRONGEST = "grad 0.001 (N = 10000)"  # the arm of compare_grad_1e-3.png
EFFECT = 1.25  # the named effect whose power is given (a std changed by 25%)
# A simulation measured this minimum detectable std ratio for Brown-Forsythe with 100 vs
# 100 independent runs at 80% power (docs/analysis.md, `minimum_detectable_effect`): what
# the unpaired comparison of the earlier findings could see.
BROWN_FORSYTHE_MDE = 1.34
N_SIM = 1000


def arms() -> dict[str, tuple[str, str, pd.DataFrame]]:
    """{label: (noise study, noise-free study, the noise arm's final runs)} for each noise
    setting, labelled "<kind> <noise_eta> (N = <n_steps>)"; a study with a grid over
    noise_eta gives one arm per value."""
    found = {}
    for name, none in STUDIES.items():
        study = load(name)
        config = study.spec.base_config()
        runs = final_runs(name)
        runs = runs[runs["status"] == "ok"]
        eta = runs["noise_eta"] if "noise_eta" in runs else pd.Series(config.noise_eta,
                                                                        runs.index)
        for value, group in runs.groupby(eta):
            found[f"{config.noise} {value:g} (N = {config.n_steps})"] = (name, none, group)
    return found


def by_seed(runs: pd.DataFrame) -> pd.Series:
    return runs.set_index("seed")[METRIC]


def compare(noisy: pd.DataFrame, clean: pd.DataFrame, label: str) -> dict:
    """The paired comparison of one arm with the noise-free runs of the same seeds: the std
    ratio (Pitman-Morgan test, BCa CI over pairs) with its equivalence bound, the mean
    difference with its own, and the power of Pitman-Morgan at EFFECT at this n and
    correlation, with the smallest ratio it detects at 80%."""
    noisy_by_seed, clean_by_seed = by_seed(noisy), by_seed(clean)
    seeds = noisy_by_seed.index.intersection(clean_by_seed.index)
    a, b = noisy_by_seed.loc[seeds].to_numpy(), clean_by_seed.loc[seeds].to_numpy()
    result = compare_variance(a, b, paired=True, names=(label, "none"))
    std = tost_std_ratio(a, b, STD_MARGIN, paired=True, method="pitman-morgan",
                         names=(label, "none"))
    mean = tost_mean_difference(a, b, MEAN_MARGIN, paired=True, names=(label, "none"))
    assert result.correlation is not None  # paired: the seeds' correlation
    r = float(result.correlation)
    return {"label": label, "n": int(seeds.size), "comparison": result, "std_tost": std,
            "mean_tost": mean, "correlation": r,
            "power": power("pitman-morgan", int(seeds.size), EFFECT, correlation=r,
                           n_sim=N_SIM),
            "mde": minimum_detectable_effect("pitman-morgan", int(seeds.size),
                                             correlation=r, n_sim=N_SIM)}


def floors(found: dict) -> dict:
    """Paired floor differences (noise minus none) for the arms whose study and noise-free
    study have their curves here (the others are left out: `render` names them)."""
    numbers = {}
    for label, (name, none, runs) in found.items():
        if has_runs(name) and has_runs(none):
            noisy = runs_by_length(name)
            noisy = noisy[noisy["trial"].isin(runs["trial"])]
            numbers[label] = floor_difference(noisy, runs_by_length(none), paired=True,
                                              names=(label, "none"),
                                              fit_from=FLOOR_FIT_FROM).to_dict()
    return numbers


def splits(found: dict) -> dict:
    """Jordan's split (two-way CI) at the runs' end for the arms with predictions here."""
    return {label: test_set_variance(load(name).predictions(runs["trial"]),
                                     unit="run x example").to_dict()
            for label, (name, _, runs) in found.items() if has_runs(name)}


def std_tables(found: dict) -> dict[str, pd.DataFrame] | None:
    """The std over seeds per N of the noise-free runs and of each arm of SHORT, when all
    of them have their curves here (else None)."""
    if not all(has_runs(name) for name in (*SHORT, "restarts")):
        return None
    tables = {"none": variance_vs_n(runs_by_length("restarts"), metric=METRIC,
                                    fit=False).table}
    for label, (name, _, runs) in found.items():
        if name in SHORT:
            all_n = runs_by_length(name)
            tables[label] = variance_vs_n(all_n[all_n["trial"].isin(runs["trial"])],
                                          metric=METRIC, fit=False).table
    return tables


def compute() -> dict:
    """Every number of this finding from the studies in results/ (read only): {"numbers":
    what findings.json holds, "figures": the analyses the figures draw}."""
    found = arms()
    clean = {name: final_runs(name).query("status == 'ok'") for name in set(STUDIES.values())}
    results = {label: compare(runs, clean[none], label)
               for label, (_, none, runs) in found.items()}
    family = Family("finding 3: does noise change the spread or the mean?")
    claims = {}
    for label, c in results.items():
        family.add(f"{label}: std (Pitman-Morgan)", c["comparison"].pitman_morgan)
        claims[f"{label}: std (Pitman-Morgan)"] = f"{label} changes the spread"
        family.add(f"{label}: mean (paired t)", c["comparison"].paired_t)
        claims[f"{label}: mean (paired t)"] = f"{label} changes the mean test accuracy"
    numbers = {
        "arms": {label: {"study": found[label][0], "none": found[label][1], "n": c["n"],
                         "comparison": c["comparison"].to_dict(),
                         "std_equivalence": c["std_tost"].to_dict(),
                         "mean_equivalence": c["mean_tost"].to_dict(),
                         "correlation": c["correlation"], "power_at_effect": c["power"],
                         "effect": EFFECT, "mde_80": c["mde"]}
                 for label, c in results.items()},
        "floors": floors(found),
        "test_set": splits(found),
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
        "brown_forsythe_mde_100_vs_100": BROWN_FORSYTHE_MDE,
    }
    figures = {"compare": results[STRONGEST]["comparison"], "std_vs_n": std_tables(found),
               "summaries": [text for c in results.values() for text in
                             (c["comparison"].summary(), c["std_tost"].summary())]}
    return {"numbers": numbers, "figures": figures}


def draw(figures: dict) -> None:
    """findings/compare_grad_1e-3.png and, with every arm's curves, std_vs_n.png."""
    compare_figure(figures["compare"], metric=METRIC,
                   path=figure_path(NAME, "compare_grad_1e-3.png"))
    if figures["std_vs_n"] is not None:
        std_vs_n_figure(figures["std_vs_n"], "Spread of restarts with and without annealed "
                        "noise", figure_path(NAME, "std_vs_n.png"),
                        binomial=figures["std_vs_n"]["none"])


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/noise.md)."""
    arms, family = numbers["arms"], numbers["family"]
    survives = {r["test"]: r["survives"] for r in numbers["claims"]}
    changed = [r["claim"] for r in numbers["claims"] if r["survives"] and "spread" in r["claim"]]
    bound = arms[STRONGEST]["std_equivalence"]["bound"]
    rs, mdes, powers = ([a[key] for a in arms.values()]
                        for key in ("correlation", "mde_80", "power_at_effect"))
    rows = []
    for label, a in arms.items():
        comparison, d = a["comparison"], a["comparison"]["mean_difference"]
        std_bound = a["std_equivalence"]["bound"]
        rows.append(
            f"| {label} | {a['n']} | {ci(comparison['std_ratio'], '.2f')} | "
            f"{p_text(family, f'{label}: std (Pitman-Morgan)')} | "
            f"[{1 / std_bound:.2f}, {std_bound:.2f}] | {a['correlation']:.2f} | "
            f"{a['power_at_effect']:.0%} | {a['mde_80']:.2f} | {100 * d['value']:+.2f} "
            f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] | "
            f"{p_text(family, f'{label}: mean (paired t)')} | "
            f"+-{100 * a['mean_equivalence']['bound']:.2f} |")
    means = "; ".join(
        "{} {:+.2f} points [{:+.2f}, {:+.2f}]".format(
            label, *(100 * a["comparison"]["mean_difference"][k]
                     for k in ("value", "low", "high")))
        for label, a in arms.items() if survives[f"{label}: mean (paired t)"])
    floor_lines = [f"- {label}: {floor_summary(d)}" for label, d in numbers["floors"].items()]
    missing = sorted({a["study"] for label, a in arms.items() if label not in numbers["floors"]})
    if missing:
        floor_lines.append(
            "- The floors of " + ", ".join(missing) + " need their curves at every N >= "
            f"{FLOOR_FIT_FROM}; those studies are not archived yet, so a clone cannot fit "
            "them, and they are left out here rather than quoted (the earlier findings "
            "fitted them unpaired and found no floor that differed).")
    split_lines = [f"- {label}: distribution-wise variance {ci(s['distribution'], '.2e')}, "
                   f"test-set share {ci(s['share_test_set'], '.0f', 100, '%')}"
                   for label, s in numbers["test_set"].items()] or [
        "- Jordan's split per arm needs the noise studies' test predictions (their archives): "
        "not archived yet, so left out."]
    # std_vs_n.png is drawn when every study of SHORT has its archive, as its split says
    std_vs_n = all(label in numbers["test_set"] for label, a in arms.items()
                   if a["study"] in SHORT)
    values = {
        "changed": "" if not changed else " (except: " + "; ".join(changed) + ")",
        "bound_low": f"{1 / bound:.2f}", "bound_high": f"{bound:.2f}",
        "r_range": f"{min(rs):.2f}-{max(rs):.2f}",
        "mde_range": f"{min(mdes):.2f}-{max(mdes):.2f}",
        "brown_forsythe_mde": numbers["brown_forsythe_mde_100_vs_100"], "effect": EFFECT,
        "power_range": f"{min(powers):.0%}-{max(powers):.0%}",
        "means": means or "no setting changes it detectably",
        "std_margin": f"[{1 / STD_MARGIN:.2f}, {STD_MARGIN}]",
        "mean_margin": f"{100 * MEAN_MARGIN:.1f}",
        "std_equivalent": ", ".join(label for label, a in arms.items()
                                    if a["std_equivalence"]["equivalent"]) or "none",
        "mean_equivalent": ", ".join(label for label, a in arms.items()
                                     if a["mean_equivalence"]["equivalent"]) or "none",
        "rows": "\n".join(rows), "n_sim": N_SIM,
        "floors_and_splits": "\n".join(floor_lines + split_lines),
        "claims": claims_lines(numbers["claims"]),
        "std_vs_n": (", findings/std_vs_n.png (std over seeds vs N per arm)."
                     if std_vs_n else "."),
        "runs": "\n".join(f"    nnlab run studies/{name}.toml --jobs 2" for name in STUDIES),
        "scale_up": scale_up("more seeds narrow the equivalence bounds as 1/sqrt(pairs); "
                             "pairing matters more than numbers: the arms reuse the "
                             "noise-free seeds."),
    }
    return render_template("noise", values)


def main() -> None:
    found = compute()
    draw(found["figures"])
    print(*found["figures"]["summaries"], sep="\n")
    numbers = as_written(found["numbers"])
    write_findings(NAME, render(numbers), numbers)


if __name__ == "__main__":
    run_script(main)
