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
    claims_table,
    figure_path,
    final_runs,
    has_runs,
    load,
    not_archived,
    quoted,
    run,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)

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


def main() -> None:
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
    restarts = load("restarts")
    split = test_set_variance(restarts.predictions(), unit="run x example")
    split_init = test_set_variance(load("restarts-init").predictions(), unit="run x example")
    long_split = quoted("restarts-long")["test_set"]

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
    claim_lines, claim_records = claims_table(family, claims)

    # figures
    variance_figure(variance, test_set=split, path=figure_path("restarts", "variance.png"))
    normality_figure(tests[longest], path=figure_path("restarts", "normality.png"))
    tables = {ARMS[key][0]: variance_vs_n(r[r["status"] == "ok"], metric=METRIC, fit=False
                                          ).table for key, r in runs.items()}
    std_vs_n_figure(tables, "Spread of restarts by source of randomness",
                    figure_path("restarts", "sources.png"), binomial=variance.table)
    print(variance.summary(), split.summary(), spread.summary(), sep="\n")

    q = quoted("restarts-long")
    middle = [r for r in q["variance_table"] if short_n < r["n_steps"] < longest]
    row_short, row_long = table.loc[short_n], table.loc[longest]
    rejected = [n for n, r in zip(tests, claim_records[:len(tests)], strict=True)
                if r["survives"]]
    std_ratio = spread.std_ratio
    text = [
        "# restarts: normal? does the mean settle? does the spread shrink as N grows?",
        "",
        "**Exploratory**: no prediction was written before these runs. seed-000's network, "
        "minibatches of 100, eta = 1 (near eta_best of eta-vs-n for N ~ 3000-10000), full "
        f"MNIST. restarts: {both['seed'].nunique()} seeds (each changes the initial weights "
        f"and the data order), each run read at N = {', '.join(map(str, lengths[:-1]))} "
        "steps from its archive (a constant-eta run's state at step N is a run of length N; "
        "see eta-vs-n/findings.md), with test predictions at N = 10^4; restarts-long: the "
        f"same runs carried on to N = {longest}, whose trials.parquet gives every run's "
        "final metrics there. Metric: test accuracy on the 10k test images (nothing is "
        "chosen on it). Unless said otherwise a 95% CI is a bootstrap over seeds (unit: "
        "the run).",
        "",
        "## Answers",
        "",
        f"**The spread.** The std over seeds falls from {table['std'].iloc[0]:.4f} (N = "
        f"{lengths[0]}) to {row_short['std']:.4f} [{row_short['std_low']:.4f}, "
        f"{row_short['std_high']:.4f}] at N = {short_n} and is {row_long['std']:.4f} "
        f"[{row_long['std_low']:.4f}, {row_long['std_high']:.4f}] at N = {longest} (the "
        f"same {spread.a.size} runs; ratio {std_ratio.format('.2f')}, Pitman-Morgan "
        f"{family.p_text(f'std at N = {longest} vs N = {short_n} (Pitman-Morgan)')}). "
        "In between, read from restarts-long's curves: "
        + ", ".join(f"{r['std']:.4f} [{r['std_low']:.4f}, {r['std_high']:.4f}] at N = "
                    f"{r['n_steps']:g}" for r in middle)
        + f" ({not_archived(['restarts-long'])}). So **the spread stays at std ~0.0017 "
        f"from N = {middle[0]['n_steps']:g} to {longest}**. Whether that is a floor: "
        f"var(N) = c + a N^-b fitted over N >= {FLOOR_FIT_FROM} (maximum likelihood with "
        f"kurtosis weights, the floor's profile interval, which is valid at c = 0) gives c = "
        f"{fit.floor.format('.2e')} (std {np.sqrt(fit.floor.value):.4f}), b = "
        f"{fit.exponent.format('.2f')}, p(no floor) = {fit.p_zero:.2g}"
        + (f"; but it does not separate a floor from a slow decline ({fit.plateau_reason})"
           if fit.plateau else
           "; the fit separates a floor from a slow decline")
        + f". With N = {short_n} and {longest} alone, std ratios outside "
        f"[{1 / equivalence.bound:.2f}, {equivalence.bound:.2f}] are excluded at 95% "
        "(Pitman-Morgan TOST, paired): the spread changes by less than that over the last "
        "decade.",
        "",
        f"**The finite test set.** A finite test set alone gives a std of about "
        f"sqrt(p(1-p)/{N_TEST}) = {np.sqrt(row_long['mean'] * (1 - row_long['mean']) / N_TEST):.4f}"
        f" per run, which no amount of training removes. Jordan's (2023) split of the "
        f"variance over runs at N = {short_n} (restarts' predictions): the test-set part is "
        f"{split.test_set.format('.2e')}; the distribution-wise part, the variance over "
        "runs of each run's population accuracy (its accuracy on the whole data "
        f"distribution), is {split.distribution.format('.2e')} (std "
        f"{np.sqrt(max(split.distribution.value, 0)):.4f}), with a two-way bootstrap CI "
        "(runs and test images resampled together; unit: run x image)"
        + (": its CI excludes 0, so runs settle in solutions whose population accuracies "
           "differ, not only their scores on this test set"
           if split.distribution.low > 0 else ": its CI holds 0")
        + f". The test set's share of the variance there is "
        f"{split.share_test_set.format('.0f', 100, '%')}. At N = {longest} the earlier "
        f"computation (run bootstrap only) gave a distribution-wise part of "
        f"{long_split['distribution']['value']:.2e} [{long_split['distribution']['low']:.2e}, "
        f"{long_split['distribution']['high']:.2e}] and a test-set share of "
        f"{100 * long_split['share_test_set']['value']:.0f}% "
        f"({not_archived(['restarts-long'])}).",
        "",
        f"**Normal?** Shapiro-Wilk at each of the {len(tests)} lengths on "
        f"{tests[longest].n} runs, Holm-adjusted with the other tests of this finding: "
        + (f"rejects at N = {', '.join(map(str, rejected))}; "
           if rejected else "no rejection at any N; ")
        + f"at N = {longest}: {tests[longest].verdict}",
        "",
        f"**Mean.** From N = {short_n} to {longest} the mean test accuracy changes by "
        f"{change[METRIC].difference.format('+.4f')} (paired over {change[METRIC].n_pairs} runs, "
        f"higher at N = {longest} in {change[METRIC].wins}; val_acc "
        f"{change['val_acc'].difference.format('+.4f')}): "
        + ("it falls slightly with the longer training" if change[METRIC].difference.high < 0
           else "it rises" if change[METRIC].difference.low > 0 else "no detectable change")
        + f", to {row_long['mean']:.4f} [{row_long['mean_low']:.4f}, "
        f"{row_long['mean_high']:.4f}].",
        "",
        "**Sources.** restarts-init varies only the initial weights with the data order "
        "fixed at one value (order_seed 1000); restarts-order varies only the data order "
        "with the initial weights fixed at one value (init_seed 1000). So each single-source "
        "arm measures that source's spread given one particular value of the other factor, "
        "not the source's share of the full spread, and the arms are compared as "
        "independent samples (Brown-Forsythe; std ratio with a BCa CI). "
        + " ".join(
            f"N = {n}: std(init only) / std(order only) = "
            f"{sources[(n, 'init', 'order')].std_ratio.format('.2f')}, both / init only "
            f"{sources[(n, 'both', 'init')].std_ratio.format('.2f')}, both / order only "
            f"{sources[(n, 'both', 'order')].std_ratio.format('.2f')}." for n in
            (short_n, longest))
        + " Each source alone gives most of the full spread; the data cannot say whether "
        "the two sources add, and no test of that is made here. Summers & Dinneen (2021, "
        "'Nondeterminism and instability in neural network optimization') find the same "
        "in larger networks: any single source of randomness gives about the full "
        "run-to-run diversity. With the initial weights alone varying, the distribution-wise "
        f"part at N = {short_n} is {split_init.distribution.format('.2e')} (two-way CI; "
        "restarts-init's predictions).",
        "",
        "## Tests of this finding, adjusted together (Holm)",
        "",
        *claim_lines,
        "",
        "| N | runs | mean test_acc [95% CI] | std [95% CI] | binomial std sqrt(p(1-p)/10000) "
        "| from |",
        "|---|---|---|---|---|---|",
        *[f"| {r.n_steps:g} | {r.n_runs} | {r.mean:.4f} [{r.mean_low:.4f}, {r.mean_high:.4f}] "
          f"| {r.std:.4f} [{r.std_low:.4f}, {r.std_high:.4f}] | "
          f"{np.sqrt(r.mean * (1 - r.mean) / N_TEST):.4f} | "
          f"{'restarts-long (final)' if r.n_steps == longest else 'restarts'} |"
          for r in variance.table.itertuples(index=False)],
        "",
        "Figures: findings/variance.png (mean and std vs N, the floor fit and the test-set "
        f"std), findings/normality.png (N = {longest}), findings/sources.png (std by "
        "source; the single-source arms at N = 10^4 and 10^5 only, except restarts-init).",
        "",
        "## Compared with published work",
        "",
        "The split of the variance is Jordan's (2023, 'On the variance of neural network "
        "training with respect to test sets and distributions'); his finding that the "
        "distribution-wise part is small comes from networks trained to convergence with "
        "tuned schedules (ResNets on CIFAR-10), not from a constant-learning-rate MLP, so "
        "the shares are not compared.",
        "",
        "## Where each number comes from",
        "",
        f"- Re-derived from a clone: restarts (archive: N = {lengths[0]}..{short_n}, "
        "predictions at 10^4), restarts-init (archive), and from trials.parquet the final "
        "metrics of restarts-long, restarts-order, restarts-init-long and "
        "restarts-order-long: the spread at 10^4 and 10^5, its paired comparison, the "
        "normality tests, the mean change, the floor fit, the split at 10^4, the sources.",
        f"- {not_archived(['restarts-long'])}: the std at N = 17783..56234 and the split at "
        "N = 10^5.",
        "",
        "## Reproduce and scale up",
        "",
        "    nnlab run studies/restarts.toml --jobs 2    # run times: each spec's header",
        "    nnlab run studies/restarts-long.toml --jobs 2",
        "    nnlab run studies/restarts-init.toml --jobs 2",
        "    nnlab run studies/restarts-order.toml --jobs 2",
        "    nnlab run studies/restarts-init-long.toml --jobs 2",
        "    nnlab run studies/restarts-order-long.toml --jobs 2",
        "    python analysis/restarts.py",
        "",
        scale_up("more seeds: the std CIs shrink as 1/sqrt(seeds), the normality tests gain "
                 "power; lengths past 10^5 tell a floor from a slow decline; a crossed "
                 "design (several init seeds x several order seeds) would measure how the "
                 "two sources combine."),
    ]
    numbers = {
        "variance": variance.to_dict(),
        "spread_last_decade": {"comparison": spread.to_dict(),
                               "equivalence": equivalence.to_dict()},
        "normality": {str(n): t.to_dict() for n, t in tests.items()},
        "mean_change": {m: c.to_dict() for m, c in change.items()},
        "test_set": {"restarts": split.to_dict(), "restarts-init": split_init.to_dict()},
        "sources": {f"{a} vs {b} N={n}": c.to_dict() for (n, a, b), c in sources.items()},
        "quoted": {"restarts-long": {"std_between": middle, "test_set": long_split}},
        "claims": claim_records,
        "family": family.to_dict(),
        "summary": {"std_short": {"n": short_n, "value": row_short["std"],
                                  "low": row_short["std_low"], "high": row_short["std_high"]},
                    "std_long": {"n": longest, "value": row_long["std"],
                                 "low": row_long["std_low"], "high": row_long["std_high"]},
                    "n_runs": int(spread.a.size), "plateau": bool(fit.plateau),
                    "p_zero": fit.p_zero, "distribution": split.distribution.to_dict(),
                    "std_between": [r["std"] for r in middle]},
    }
    write_findings("restarts", "\n".join(text), numbers)


if __name__ == "__main__":
    run(main)
