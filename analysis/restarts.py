"""Question 2: restarts. Is the final accuracy of restarts normal, does its mean settle, does
its spread shrink as N grows, how much of the spread is the finite test set, and which source
of randomness (initial weights, data order) spreads the runs?

results/restarts (100 seeds, N = 100..10^4, test predictions at 10^4) with
results/restarts-long (the same runs carried on to N = 10^5, test predictions at 10^5); the
single-source studies results/restarts-init and results/restarts-order (to 10^4) and
results/restarts-init-long and results/restarts-order-long (to 10^5) -> results/restarts/
findings.md, findings.json, findings/*.png. Each study is read at every length it evaluates
from its archive, or at its end from its trials.parquet where it has none yet.

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
    floor_summary,
    has_runs,
    load,
    p_text,
    run,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)
from common import render as render_template

from nnlab.analysis import (
    Family,
    ProfileFloorFit,
    compare_variance,
    floor_difference,
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


def study_runs(name: str) -> pd.DataFrame:
    """One row per (run, N) of results/<name>: at every length it evaluates (its archive),
    or at its end (trials.parquet) where it has no archive."""
    return (runs_by_length(name) if has_runs(name) else final_runs(name))[COLUMNS]


def arm_runs(short: str, long: str) -> pd.DataFrame:
    """One row per (run, N): `short` at its lengths and `long` (the same runs carried on)
    at its lengths beyond them (`study_runs`)."""
    first, more = study_runs(short), study_runs(long)
    more = more[more["n_steps"] > first["n_steps"].max()]
    return pd.concat([first.assign(study=short), more.assign(study=long)], ignore_index=True)


def at(runs: pd.DataFrame, n: int, metric: str = METRIC) -> pd.Series:
    """`metric` of each seed's run at length n, indexed by seed."""
    return runs[runs["n_steps"] == n].set_index("seed")[metric]


def compute() -> dict:
    """Every number of this finding from the studies in results/ (read only): {"numbers":
    what findings.json holds, "figures": the analyses the figures draw}."""
    runs = {key: arm_runs(short, long) for key, (_, short, long) in ARMS.items()}
    both = runs["both"][runs["both"]["status"] == "ok"]
    lengths = sorted(int(n) for n in both["n_steps"].unique())
    short_n, longest = int(both.loc[both["study"] == "restarts", "n_steps"].max()), lengths[-1]
    family = Family("finding 2: restarts")
    claims = {}

    # normality at each N, one family with the other tests of this finding
    tests = {n: normality(both.loc[both["n_steps"] == n, METRIC].to_numpy(),
                          name=f"test_acc at N={n}") for n in lengths}
    for n, t in tests.items():
        family.add(f"Shapiro-Wilk, N = {n}", t.shapiro)
        claims[f"Shapiro-Wilk, N = {n}"] = f"test_acc is not normal at N = {n}"

    # the spread per N and the floor (likelihood fit, profile interval valid at c = 0)
    variance = variance_vs_n(both, metric=METRIC, fit_from=FLOOR_FIT_FROM, weights="kurtosis",
                             floor_interval="profile")
    fit, table = variance.fit, variance.table.set_index("n_steps")
    assert isinstance(fit, ProfileFloorFit)  # floor_interval="profile" fits one
    family.add(f"no floor: c = 0 (profile likelihood, N >= {FLOOR_FIT_FROM})", fit.p_zero)
    claims[f"no floor: c = 0 (profile likelihood, N >= {FLOOR_FIT_FROM})"] = (
        "the variance levels off at a floor c > 0")
    spread = compare_variance(at(both, longest).to_numpy(), at(both, short_n).to_numpy(),
                              paired=True, names=(f"N={longest}", f"N={short_n}"))
    family.add(f"std at N = {longest} vs N = {short_n} (Pitman-Morgan)", spread.spread_test)
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

    # the finite test set at N = 10^4 and 10^5: runs and test images resampled (two-way)
    splits = {name: test_set_variance(load(name).predictions(), unit="run x example")
              for _, short, long in ARMS.values() for name in (short, long)}
    split, split_long = splits["restarts"], splits["restarts-long"]

    # each single source's floor: the two arms' runs are independent (unpaired bootstrap)
    init_runs, order_runs = (runs[key][runs[key]["status"] == "ok"] for key in ("init", "order"))
    source_floors = floor_difference(
        init_runs, order_runs, paired=False, names=(ARMS["init"][0], ARMS["order"][0]),
        fit_from=FLOOR_FIT_FROM, weights="kurtosis", floor_interval="profile")

    # the sources, at the two lengths every arm holds
    sources = {}
    for n in (short_n, longest):
        values = {key: at(r[r["status"] == "ok"], n).to_numpy() for key, r in runs.items()}
        for a, b in (("init", "order"), ("both", "init"), ("both", "order")):
            c = compare_variance(values[a], values[b], paired=False, names=(a, b))
            name = f"std {a} vs {b}, N = {n} (Brown-Forsythe)"
            family.add(name, c.spread_test)  # unpaired: Brown-Forsythe
            claims[name] = f"the spread with {ARMS[a][0]} differs from {ARMS[b][0]} at N = {n}"
            sources[(n, a, b)] = c

    middle = table[(table.index > short_n) & (table.index < longest)]
    row_short, row_long = table.loc[short_n], table.loc[longest]
    numbers = {
        "variance": variance.to_dict(),
        "spread_last_decade": {"comparison": spread.to_dict(),
                               "equivalence": equivalence.to_dict()},
        "normality": {str(n): t.to_dict() for n, t in tests.items()},
        "mean_change": {m: c.to_dict() for m, c in change.items()},
        "test_set": {name: s.to_dict() for name, s in splits.items()},
        "source_floors": source_floors.to_dict(),
        "sources": {f"{a} vs {b} N={n}": c.to_dict() for (n, a, b), c in sources.items()},
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
        "read_from": {name: "archive" if has_runs(name) else "trials.parquet"
                      for _, short, long in ARMS.values() for name in (short, long)},
        "summary": {"std_short": {"n": short_n, "value": row_short["std"],
                                  "low": row_short["std_low"], "high": row_short["std_high"]},
                    "std_long": {"n": longest, "value": row_long["std"],
                                 "low": row_long["std_low"], "high": row_long["std_high"]},
                    "n_runs": int(spread.a.size), "plateau": bool(fit.plateau),
                    "p_zero": fit.p_zero, "distribution": split.distribution.to_dict(),
                    "distribution_long": split_long.distribution.to_dict(),
                    "std_between": middle["std"].tolist()},
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


def spread_range(stds: list[float]) -> str:
    """'0.0016-0.0018', or '~0.0017' where the stds agree to 4 decimals."""
    low, high = f"{min(stds):.4f}", f"{max(stds):.4f}"
    return f"~{low}" if low == high else f"{low}-{high}"


def source_splits(test_set: dict, short_n: int, longest: int) -> str:
    """The distribution-wise part of each single-source arm's variance at both lengths."""
    def part(name: str) -> str:
        d = test_set[name]["distribution"]
        return f"{ci(d, '.2e')}{'' if d['low'] > 0 else ' (its CI holds 0)'}"

    return "; ".join(
        f"at N = {n}: init only {part(init)}, order only {part(order)}, both {part(both)}"
        for n, (both, init, order) in (
            (short_n, (ARMS[k][1] for k in ("both", "init", "order"))),
            (longest, (ARMS[k][2] for k in ("both", "init", "order")))))


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/restarts.md)."""
    table = numbers["variance"]["table"]
    lengths = [int(r["n_steps"]) for r in table]
    short_n, longest = numbers["summary"]["std_short"]["n"], lengths[-1]
    row_short, row_long = table[lengths.index(short_n)], table[-1]
    fit = numbers["variance"]["fit"]
    comparison = numbers["spread_last_decade"]["comparison"]
    bound = numbers["spread_last_decade"]["equivalence"]["bound"]
    split = numbers["test_set"]["restarts"]
    long_split = numbers["test_set"]["restarts-long"]
    middle = [r for r in table if short_n < r["n_steps"] < longest]
    normal = numbers["normality"]
    last = normal[str(longest)]
    rejected = [n for n, r in zip(normal, numbers["claims"][:len(normal)], strict=True)
                if r["survives"]]
    change = numbers["mean_change"]
    difference = change[METRIC]["difference"]
    sources = numbers["sources"]

    def source_ratios(n: int) -> str:
        return (f"N = {n}: std(init only) / std(order only) = "
                f"{ci(sources[f'init vs order N={n}']['std_ratio'], '.2f')}, both / init "
                f"only {ci(sources[f'both vs init N={n}']['std_ratio'], '.2f')}, both / "
                f"order only {ci(sources[f'both vs order N={n}']['std_ratio'], '.2f')}.")

    def interval(row: dict, key: str) -> str:
        return f"{row[key]:.4f} [{row[f'{key}_low']:.4f}, {row[f'{key}_high']:.4f}]"

    archived = [name for name, read in numbers["read_from"].items() if read == "archive"]
    final_only = [name for name in numbers["read_from"] if name not in archived]
    binomial = np.sqrt(row_long["mean"] * (1 - row_long["mean"]) / N_TEST)
    values = {
        "n_seeds": max(r["n_runs"] for r in table),  # one run per seed at each N
        "lengths_short": ", ".join(str(n) for n in lengths if n <= short_n),
        "lengths_long": ", ".join(str(n) for n in lengths if n > short_n),
        "first_n": lengths[0], "short_n": short_n, "longest": longest,
        "std_first": f"{table[0]['std']:.4f}",
        "std_short": interval(row_short, "std"), "std_long": interval(row_long, "std"),
        "n_pairs": comparison["n"][0], "std_ratio": ci(comparison["std_ratio"], ".2f"),
        "p_spread": p_text(numbers["family"],
                           f"std at N = {longest} vs N = {short_n} (Pitman-Morgan)"),
        "std_between": ", ".join(f"{interval(r, 'std')} at N = {r['n_steps']:g}"
                                 for r in middle),
        "between_from": f"{middle[0]['n_steps']:g}",
        "std_range": spread_range([r["std"] for r in [*middle, row_long]]),
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
        "long_test_set": ci(long_split["test_set"], ".2e"),
        "long_distribution": ci(long_split["distribution"], ".2e"),
        "long_share": ci(long_split["share_test_set"], ".0f", 100, "%"),
        "long_distribution_reading": (
            "its CI excludes 0" if long_split["distribution"]["low"] > 0 else
            "its CI holds 0: at this length the runs' population accuracies are not told apart "
            "from what the finite test set alone gives"),
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
        "source_splits": source_splits(numbers["test_set"], short_n, longest),
        "source_floors": floor_summary(numbers["source_floors"]),
        "claims": claims_lines(numbers["claims"]),
        "table": "\n".join(
            f"| {r['n_steps']:g} | {r['n_runs']} | {interval(r, 'mean')} | "
            f"{interval(r, 'std')} | {np.sqrt(r['mean'] * (1 - r['mean']) / N_TEST):.4f} | "
            f"{'restarts-long' if r['n_steps'] > short_n else 'restarts'} |"
            for r in table),
        "archived": ", ".join(archived),
        "final_only": ("; and from trials.parquet alone (each run's final metrics; no archive "
                       f"yet): {', '.join(final_only)}" if final_only else ""),
        "scale_up": scale_up(
            "more seeds: the std CIs shrink as 1/sqrt(seeds), the normality tests gain "
            "power; lengths past 10^5 tell a floor from a slow decline; the crossed design "
            "of crossed-seeds (20 init x 20 order seeds) measures how the two sources "
            "combine, and its declared subset to 10^5 (crossed-seeds-long) would do so at "
            "the floor."),
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
