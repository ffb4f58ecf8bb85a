"""Question 2: restarts. Is the final accuracy of restarts normal, does its mean settle, does
its spread shrink as N grows, how much of the spread is the finite test set, and which source
of randomness (initial weights, data order) spreads the runs?

results/restarts (100 seeds, N = 100..10^4, test predictions at 10^4) with the final metrics
of results/restarts-long (the same runs at N = 10^5); the single-source studies
results/restarts-init (archived, to 10^4), results/restarts-order (final metrics at 10^4)
and results/restarts-init-long, results/restarts-order-long (final metrics at 10^5) ->
results/restarts/findings.md, findings.json, findings/*.png. What needs the unarchived
studies' other lengths or predictions is quoted from analysis/unarchived.json.

    python analysis/restarts.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import (
    FLOOR_FIT_FROM,
    N_TEST,
    as_written,
    ci,
    claims_lines,
    claims_table,
    figure_path,
    final_runs,
    has_runs,
    load,
    not_archived,
    p_text,
    quoted,
    run,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)
from common import render as render_template

from nnlab.analysis import (
    Family,
    compare_variance,
    normality,
    paired_difference,
    test_set_variance,
    tost_std_ratio,
    variance_vs_n,
)
from nnlab.report.figures import normality_figure, variance_figure

METRIC = "test_acc"
COLUMNS = ["trial", "seed", "status", "val_acc", "test_acc", "n_steps"]
# each arm: (label, the study read at every length or at its end, the study at N = 10^5)
ARMS = {"both": ("init + order", "restarts", "restarts-long"),
        "init": ("init only (data order fixed)", "restarts-init", "restarts-init-long"),
        "order": ("order only (initial weights fixed)", "restarts-order",
                  "restarts-order-long")}
EQUIVALENCE = 1.25  # a std ratio within [1/1.25, 1.25] counts as "no change" (stated margin)


def arm_runs(short: str, long: str) -> pd.DataFrame:
    """One row per (run, N): `short` at every length it evaluates (its archive) or at its
    end (trials.parquet), and `long` at its end, N = 10^5."""
    first = (runs_by_length(short) if has_runs(short) else final_runs(short))[COLUMNS]
    return pd.concat([first.assign(study=short), final_runs(long)[COLUMNS].assign(study=long)],
                     ignore_index=True)


def at(runs: pd.DataFrame, n: int, metric: str = METRIC) -> pd.Series:
    """`metric` of each seed's run at length n, indexed by seed."""
    return runs[runs["n_steps"] == n].set_index("seed")[metric]


def compute() -> dict:
    """Every number of this finding from the studies in results/ (read only): {"numbers":
    what findings.json holds, "figures": the analyses the figures draw}."""
    runs = {key: arm_runs(short, long) for key, (_, short, long) in ARMS.items()}
    both = runs["both"][runs["both"]["status"] == "ok"]
    lengths = sorted(int(n) for n in both["n_steps"].unique())
    short_n, longest = lengths[-2], lengths[-1]
    family = Family("finding 2: restarts")
    claims = {}

    # normality at each N, one family with the other tests of this finding
    tests = {n: normality(g[METRIC].to_numpy(), name=f"test_acc at N={n}")
             for n, g in both.groupby("n_steps")}
    for n, t in tests.items():
        family.add(f"Shapiro-Wilk, N = {n}", t.shapiro)
        claims[f"Shapiro-Wilk, N = {n}"] = f"test_acc is not normal at N = {n}"

    # the spread per N and the floor (likelihood fit, profile interval valid at c = 0)
    variance = variance_vs_n(both, metric=METRIC, fit_from=FLOOR_FIT_FROM, weights="kurtosis",
                             floor_interval="profile")
    fit, table = variance.fit, variance.table.set_index("n_steps")
    family.add(f"no floor: c = 0 (profile likelihood, N >= {FLOOR_FIT_FROM})", fit.p_zero)
    claims[f"no floor: c = 0 (profile likelihood, N >= {FLOOR_FIT_FROM})"] = (
        "the variance levels off at a floor c > 0")
    spread = compare_variance(at(both, longest).to_numpy(), at(both, short_n).to_numpy(),
                              paired=True, names=(f"N={longest}", f"N={short_n}"))
    family.add(f"std at N = {longest} vs N = {short_n} (Pitman-Morgan)", spread.pitman_morgan)
    claims[f"std at N = {longest} vs N = {short_n} (Pitman-Morgan)"] = (
        f"the spread differs between N = {short_n} and {longest}")
    equivalence = tost_std_ratio(at(both, longest).to_numpy(), at(both, short_n).to_numpy(),
                                 EQUIVALENCE, paired=True, method="pitman-morgan")

    # the mean from N = 10^4 to 10^5, the same runs
    change = {m: paired_difference(at(both, longest, m), at(both, short_n, m),
                                   names=(f"N={longest}", f"N={short_n}"))
              for m in (METRIC, "val_acc")}
    family.add(f"mean test_acc at N = {longest} vs {short_n} (paired t)",
               change[METRIC].t_test)
    claims[f"mean test_acc at N = {longest} vs {short_n} (paired t)"] = (
        f"the mean test accuracy changes from N = {short_n} to {longest}")

    # the finite test set at N = 10^4: runs and test images resampled (two-way)
    split = test_set_variance(load("restarts").predictions(), unit="run x example")
    split_init = test_set_variance(load("restarts-init").predictions(), unit="run x example")

    # the sources, at the two lengths every arm holds
    sources = {}
    for n in (short_n, longest):
        values = {key: at(r[r["status"] == "ok"], n).to_numpy() for key, r in runs.items()}
        for a, b in (("init", "order"), ("both", "init"), ("both", "order")):
            c = compare_variance(values[a], values[b], paired=False, names=(a, b))
            name = f"std {a} vs {b}, N = {n} (Brown-Forsythe)"
            family.add(name, c.brown_forsythe)
            claims[name] = f"the spread with {ARMS[a][0]} differs from {ARMS[b][0]} at N = {n}"
            sources[(n, a, b)] = c

    q = quoted("restarts-long")
    middle = [r for r in q["variance_table"] if short_n < r["n_steps"] < longest]
    row_short, row_long = table.loc[short_n], table.loc[longest]
    numbers = {
        "variance": variance.to_dict(),
        "spread_last_decade": {"comparison": spread.to_dict(),
                               "equivalence": equivalence.to_dict()},
        "normality": {str(n): t.to_dict() for n, t in tests.items()},
        "mean_change": {m: c.to_dict() for m, c in change.items()},
        "test_set": {"restarts": split.to_dict(), "restarts-init": split_init.to_dict()},
        "sources": {f"{a} vs {b} N={n}": c.to_dict() for (n, a, b), c in sources.items()},
        "quoted": {"restarts-long": {"std_between": middle, "test_set": q["test_set"]}},
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
        "summary": {"std_short": {"n": short_n, "value": row_short["std"],
                                  "low": row_short["std_low"], "high": row_short["std_high"]},
                    "std_long": {"n": longest, "value": row_long["std"],
                                 "low": row_long["std_low"], "high": row_long["std_high"]},
                    "n_runs": int(spread.a.size), "plateau": bool(fit.plateau),
                    "p_zero": fit.p_zero, "distribution": split.distribution.to_dict(),
                    "std_between": [r["std"] for r in middle]},
    }
    figures = {"variance": variance, "split": split, "normality": tests[longest],
               "sources": {ARMS[key][0]: variance_vs_n(r[r["status"] == "ok"], metric=METRIC,
                                                       fit=False).table
                           for key, r in runs.items()},
               "summaries": [variance.summary(), split.summary(), spread.summary()]}
    return {"numbers": numbers, "figures": figures}


def draw(figures: dict) -> None:
    """findings/variance.png, normality.png and sources.png from `compute`'s figures."""
    variance = figures["variance"]
    variance_figure(variance, test_set=figures["split"],
                    path=figure_path("restarts", "variance.png"))
    normality_figure(figures["normality"], path=figure_path("restarts", "normality.png"))
    std_vs_n_figure(figures["sources"], "Spread of restarts by source of randomness",
                    figure_path("restarts", "sources.png"), binomial=variance.table)


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/restarts.md)."""
    table = numbers["variance"]["table"]
    lengths = [int(r["n_steps"]) for r in table]
    short_n, longest = lengths[-2], lengths[-1]
    row_short, row_long = table[-2], table[-1]
    fit = numbers["variance"]["fit"]
    comparison = numbers["spread_last_decade"]["comparison"]
    bound = numbers["spread_last_decade"]["equivalence"]["bound"]
    split, split_init = (numbers["test_set"][k] for k in ("restarts", "restarts-init"))
    long_split = numbers["quoted"]["restarts-long"]["test_set"]
    middle = numbers["quoted"]["restarts-long"]["std_between"]
    normal = numbers["normality"]
    last = normal[str(longest)]
    rejected = [n for n, r in zip(normal, numbers["claims"][:len(normal)], strict=True)
                if r["survives"]]
    change = numbers["mean_change"]
    difference = change[METRIC]["difference"]
    sources = numbers["sources"]
    unarchived = not_archived(["restarts-long"])

    def source_ratios(n: int) -> str:
        return (f"N = {n}: std(init only) / std(order only) = "
                f"{ci(sources[f'init vs order N={n}']['std_ratio'], '.2f')}, both / init "
                f"only {ci(sources[f'both vs init N={n}']['std_ratio'], '.2f')}, both / "
                f"order only {ci(sources[f'both vs order N={n}']['std_ratio'], '.2f')}.")

    def interval(row: dict, key: str) -> str:
        return f"{row[key]:.4f} [{row[f'{key}_low']:.4f}, {row[f'{key}_high']:.4f}]"

    binomial = np.sqrt(row_long["mean"] * (1 - row_long["mean"]) / N_TEST)
    values = {
        "n_seeds": max(r["n_runs"] for r in table),  # one run per seed at each N
        "lengths_short": ", ".join(map(str, lengths[:-1])),
        "first_n": lengths[0], "short_n": short_n, "longest": longest,
        "std_first": f"{table[0]['std']:.4f}",
        "std_short": interval(row_short, "std"), "std_long": interval(row_long, "std"),
        "n_pairs": comparison["n"][0], "std_ratio": ci(comparison["std_ratio"], ".2f"),
        "p_spread": p_text(numbers["family"],
                           f"std at N = {longest} vs N = {short_n} (Pitman-Morgan)"),
        "std_between": ", ".join(f"{interval(r, 'std')} at N = {r['n_steps']:g}"
                                 for r in middle),
        "unarchived": unarchived, "between_from": f"{middle[0]['n_steps']:g}",
        "fit_from": FLOOR_FIT_FROM, "floor": ci(fit["floor"], ".2e"),
        "floor_std": f"{np.sqrt(fit['floor']['value']):.4f}",
        "exponent": ci(fit["exponent"], ".2f"), "p_zero": f"{fit['p_zero']:.2g}",
        "plateau": (f"; but it does not separate a floor from a slow decline "
                    f"({fit['plateau_reason']})" if fit["plateau"] else
                    "; the fit separates a floor from a slow decline"),
        "tost_low": f"{1 / bound:.2f}", "tost_high": f"{bound:.2f}",
        "n_test": N_TEST, "binomial_std": f"{binomial:.4f}",
        "split_test_set": ci(split["test_set"], ".2e"),
        "split_distribution": ci(split["distribution"], ".2e"),
        "distribution_std": f"{np.sqrt(max(split['distribution']['value'], 0)):.4f}",
        "distribution_reading": (
            ": its CI excludes 0, so runs settle in solutions whose population accuracies "
            "differ, not only their scores on this test set"
            if split["distribution"]["low"] > 0 else ": its CI holds 0"),
        "test_set_share": ci(split["share_test_set"], ".0f", 100, "%"),
        "long_distribution": "{value:.2e} [{low:.2e}, {high:.2e}]".format(
            **long_split["distribution"]),
        "long_share": f"{100 * long_split['share_test_set']['value']:.0f}%",
        "n_lengths": len(normal), "n_normal": last["n"],
        "rejected": (f"rejects at N = {', '.join(rejected)}; " if rejected
                     else "no rejection at any N; "),
        "verdict": last["verdict"],
        "mean_change": ci(difference, "+.4f"), "mean_pairs": change[METRIC]["n_pairs"],
        "mean_wins": change[METRIC]["wins"],
        "val_change": ci(change["val_acc"]["difference"], "+.4f"),
        "mean_reading": ("it falls slightly with the longer training"
                         if difference["high"] < 0 else "it rises" if difference["low"] > 0
                         else "no detectable change"),
        "mean_long": interval(row_long, "mean"),
        "sources": " ".join(source_ratios(n) for n in (short_n, longest)),
        "split_init": ci(split_init["distribution"], ".2e"),
        "claims": claims_lines(numbers["claims"]),
        "table": "\n".join(
            f"| {r['n_steps']:g} | {r['n_runs']} | {interval(r, 'mean')} | "
            f"{interval(r, 'std')} | {np.sqrt(r['mean'] * (1 - r['mean']) / N_TEST):.4f} | "
            f"{'restarts-long (final)' if r['n_steps'] == longest else 'restarts'} |"
            for r in table),
        "scale_up": scale_up(
            "more seeds: the std CIs shrink as 1/sqrt(seeds), the normality tests gain "
            "power; lengths past 10^5 tell a floor from a slow decline; a crossed design "
            "(several init seeds x several order seeds) would measure how the two sources "
            "combine."),
    }
    return render_template("restarts", values)


def main() -> None:
    found = compute()
    draw(found["figures"])
    print(*found["figures"]["summaries"], sep="\n")
    numbers = as_written(found["numbers"])
    write_findings("restarts", render(numbers), numbers)


if __name__ == "__main__":
    run(main)
