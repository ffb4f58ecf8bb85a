"""Question 2: restarts. Normal? Does the mean converge? Variance to 0 or to a floor? How much
of the spread is the finite test set, and which source of randomness (init, data order)?

results/restarts-long (both sources, to N = 10^5: normality, mean, variance floor),
results/restarts, results/restarts-init, results/restarts-order (to N = 10^4: the split
by source) -> figures in results/restarts/findings/ and results/restarts/findings.md.

    python analysis/restarts.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import (
    FLOOR_FIT_FROM,
    N_TEST,
    figure_path,
    load,
    paired_difference,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)

from nnlab.analysis import compare_variance, normality, test_set_variance, variance_vs_n
from nnlab.report.figures import normality_figure, variance_figure

LONG = "restarts-long"  # the restarts study's runs carried on to 10^5 steps
SOURCES = {"restarts": "init + order", "restarts-init": "init only",
           "restarts-order": "order only"}
METRIC = "test_acc"
SOURCES_BEFORE_FLOOR = 3162  # a length where the spread is still well above the floor


def mean_text(table: pd.DataFrame, runs: pd.DataFrame) -> tuple[str, dict]:
    """Where the mean test accuracy peaks and how it moves from there to the longest N
    (from the length before it if the peak is the longest); val_acc alongside."""
    ns = table["n_steps"].astype(int).tolist()
    peak = ns[int(table["mean"].to_numpy().argmax())]
    n_from = peak if peak != ns[-1] else ns[-2]
    wide = {metric: runs.pivot(index="seed", columns="n_steps", values=metric)
            for metric in (METRIC, "val_acc")}
    changes = {metric: paired_difference(w[ns[-1]], w[n_from]) for metric, w in wide.items()}
    row = table.set_index("n_steps")
    test, val = changes[METRIC], changes["val_acc"]
    text = (
        f"**Mean.** The mean test accuracy rises from {row['mean'].iloc[0]:.4f} (N = {ns[0]}) "
        f"to {row.loc[n_from, 'mean']:.4f} [{row.loc[n_from, 'mean_low']:.4f}, "
        f"{row.loc[n_from, 'mean_high']:.4f}] at N = {n_from}"
        + (" (its highest)" if n_from == peak else "")
        + f", and from there to N = {ns[-1]} it changes by {test['value']:+.4f} "
        f"[{test['low']:+.4f}, {test['high']:+.4f}] (the same {test['n_pairs']} runs at both "
        f"lengths, higher at N = {ns[-1]} in {test['wins']}; val_acc {val['value']:+.4f} "
        f"[{val['low']:+.4f}, {val['high']:+.4f}]), to "
        f"{row.loc[ns[-1], 'mean']:.4f} [{row.loc[ns[-1], 'mean_low']:.4f}, "
        f"{row.loc[ns[-1], 'mean_high']:.4f}].")
    return text, changes


def floor_starts(runs: pd.DataFrame, longest_start: int = 1000) -> list[dict]:
    """The floor fit from each N up to longest_start: whether the floor depends on where
    the fit starts (see FLOOR_FIT_FROM)."""
    starts = [int(n) for n in sorted(runs["n_steps"].unique()) if n <= longest_start]
    fits = [variance_vs_n(runs, metric=METRIC, fit_from=n).fit for n in starts]
    return [{"fit_from": n, "floor_std": float(np.sqrt(f.floor.value)),
             "floor_std_low": float(np.sqrt(max(f.floor.low, 0.0))),
             "floor_std_high": float(np.sqrt(f.floor.high)), "exponent": f.exponent.value,
             "exponent_at_bound": f.exponent_at_bound} for n, f in zip(starts, fits, strict=True)]


def starts_text(starts: list[dict]) -> str:
    return "; ".join(
        f"from N = {s['fit_from']}: {s['floor_std']:.4f} [{s['floor_std_low']:.4f}, "
        f"{s['floor_std_high']:.4f}], b = {s['exponent']:.2f}"
        + (" (b's CI at its bound)" if s["exponent_at_bound"] else "") for s in starts)


def source_pairs(runs: dict[str, pd.DataFrame], n: int) -> dict:
    """The spreads of the three source studies at length n, compared pairwise."""
    at_n = {name: r.loc[(r["n_steps"] == n) & (r["status"] == "ok"), METRIC].to_numpy()
            for name, r in runs.items()}
    return {f"{a} vs {b}": compare_variance(at_n[a], at_n[b], names=(a, b))
            for a, b in (("restarts-init", "restarts-order"), ("restarts", "restarts-init"),
                         ("restarts", "restarts-order"))}


def source_text(n: int, pairs: dict) -> str:
    """Which source of randomness spreads the runs at length n."""
    init_order = pairs["restarts-init vs restarts-order"]
    return (
        f"**Sources (N = {n}).** std(init only) / std(order only) = "
        f"{init_order.std_ratio.format('.2f')} "
        f"(Brown-Forsythe {init_order.brown_forsythe.p_text}). "
        f"Both sources together against init only: std ratio "
        f"{pairs['restarts vs restarts-init'].std_ratio.format('.2f')}; against order only: "
        f"{pairs['restarts vs restarts-order'].std_ratio.format('.2f')} (two equal, "
        "independent sources would give sqrt 2 = 1.41). "
        + ("The initial weights and the data order contribute about equally"
           if init_order.std_ratio.contains(1.0) else
           ("The initial weights contribute" if init_order.std_ratio.value > 1 else
            "The data order contributes") + " more")
        + ("; both together spread more than either alone."
           if min(pairs[f"restarts vs {one}"].std_ratio.low
                  for one in ("restarts-init", "restarts-order")) > 1 else
           "; both together do not spread detectably more than each alone."))


def main() -> None:
    runs = {name: runs_by_length(name) for name in (LONG, *SOURCES)}
    both = runs[LONG]
    longest = int(both["n_steps"].max())
    variance = {name: variance_vs_n(r, metric=METRIC, fit_from=FLOOR_FIT_FROM)
                for name, r in runs.items()}
    starts = floor_starts(both[both["status"] == "ok"])
    tests = {int(n): normality(g[METRIC].to_numpy(), name=f"test_acc at N={n}")
             for n, g in both[both["status"] == "ok"].groupby("n_steps")}
    splits = {name: test_set_variance(load(name).predictions()) for name in runs}
    common_n = int(max(set(runs["restarts-init"]["n_steps"]) & set(runs["restarts"]["n_steps"])))
    by_n = {n: source_pairs(runs, n) for n in sorted({SOURCES_BEFORE_FLOOR, common_n})}
    pairs = by_n[common_n]

    variance_figure(variance[LONG], test_set=splits[LONG],
                    path=figure_path("restarts", "variance.png"))
    normality_figure(tests[longest], path=figure_path("restarts", "normality.png"))
    std_vs_n_figure({label: variance[name].table for name, label in SOURCES.items()},
                    "Spread of restarts by source of randomness",
                    figure_path("restarts", "sources.png"), binomial=variance["restarts"].table)
    for name in runs:
        print(f"== {name}\n{variance[name].summary()}\n{splits[name].summary()}")
    for n, t in tests.items():
        print(n, t.verdict)
    for key, c in pairs.items():
        print(key, c.summary())

    fit = variance[LONG].fit
    table = variance[LONG].table
    last = table.iloc[-1]
    mean_paragraph, mean_changes = mean_text(table, both[both["status"] == "ok"])
    split, split_short = splits[LONG], splits["restarts"]
    n_runs = {name: int(r["trial"].nunique()) for name, r in runs.items()}
    rejected = [n for n, t in tests.items() if t.rejects]
    normal_lines = [f"| {n} | {t.n} | {t.shapiro.p_text} | {t.skewness:.2f} | "
                    f"{t.excess_kurtosis:.2f} | {'rejects' if t.rejects else 'no'} | "
                    f"{min(t.power.values()):.0%}-{max(t.power.values()):.0%} |"
                    for n, t in tests.items()]
    var_lines = [f"| {row.n_steps:g} | {row.n_runs} | {row.mean:.4f} [{row.mean_low:.4f}, "
                 f"{row.mean_high:.4f}] | {row.std:.4f} [{row.std_low:.4f}, {row.std_high:.4f}] "
                 f"| {np.sqrt(row.mean * (1 - row.mean) / N_TEST):.4f} |"
                 for row in table.itertuples(index=False)]
    source_lines = []
    for name, label in SOURCES.items():
        row = variance[name].table.set_index("n_steps").loc[common_n]
        s = splits[name]
        source_lines.append(
            f"| {label} | {n_runs[name]} | {row['std']:.4f} [{row['std_low']:.4f}, "
            f"{row['std_high']:.4f}] | N={int(runs[name]['n_steps'].max())}: "
            f"{s.share_test_set.format('.0f', 100, '%')} |")
    floor_lo, floor_std, floor_hi = (np.sqrt(max(v, 0.0)) for v in
                                     (fit.floor.low, fit.floor.value, fit.floor.high))
    text = [
        "# restarts: normal? mean converging? variance to zero or to a floor?",
        "",
        f"seed-000's network, minibatches of 100, eta = 1 (near eta_best of eta-vs-n for "
        f"N ~ 3000-10000), full MNIST. {n_runs[LONG]} seeds (each changes the initial "
        f"weights and the data order), each run evaluated at N = "
        f"{', '.join(str(int(n)) for n in table['n_steps'])} steps (a constant-eta run's "
        "state at step N is a run of length N; see eta-vs-n/findings.md): restarts-long; "
        f"restarts is the same {n_runs['restarts']} seeds stopped at N = {common_n} (the "
        "same values there, bit for bit), with test predictions at that N. Source split: "
        f"{n_runs['restarts-init']} seeds varying only the init (order_seed fixed) and "
        f"{n_runs['restarts-order']} varying only the data order (init_seed fixed), to "
        f"N = {common_n}. Metric: test accuracy on the 10k test images (nothing is chosen "
        "on it). 95% CIs by bootstrap over seeds.",
        "",
        "## Answers",
        "",
        f"**Normal?** Shapiro-Wilk at each N on {n_runs[LONG]} runs: "
        + (f"rejects at N = {', '.join(map(str, rejected))}; "
           if rejected else "no rejection at any N; ")
        + f"at N = {longest}: {tests[longest].verdict}",
        "",
        mean_paragraph,
        "",
        f"**Variance.** The std over seeds falls from {table['std'].iloc[0]:.4f} (N = 100) "
        f"to {last['std']:.4f} [{last['std_low']:.4f}, {last['std_high']:.4f}] "
        f"(N = {longest}). var(N) = c + a N^-b{fit.range_text('N')}: floor c = {fit.floor} (std "
        f"{floor_std:.4f}, upper CI {floor_hi:.4f}), b = {fit.exponent.format('.2f')}; "
        + ("the floor's CI excludes 0: the observed variance levels off"
           if fit.floor_excludes_zero else
           "the floor's CI includes 0: these data cannot tell a floor from a slow decay to 0")
        + f" (floor std by the N the fit starts at: {starts_text(starts)})."
        + (f" Yet the std at N = {longest}, {last['std']:.4f}, lies below the floor's CI "
           f"(std {floor_lo:.4f}-{floor_hi:.4f}): the fitted floor comes mostly from the "
           "middle lengths, and whether the std levels off needs runs longer than "
           f"{longest}." if last["std"] < floor_lo else "")
        + f" But a finite test set alone gives a std of about sqrt(p(1-p)/10000) = "
        f"{np.sqrt(last['mean'] * (1 - last['mean']) / N_TEST):.4f} at N = {longest}, which "
        "no amount of training removes, so an observed floor is expected; the question is "
        f"what lies above it. At N = {longest} the finite test set accounts for "
        f"{split.share_test_set.format('.0f', 100, '%')} of the variance (Jordan's split: "
        f"test-set part {split.test_set.format('.2e')}, distribution-wise part "
        f"{split.distribution.format('.2e')}, i.e. a std of "
        f"{np.sqrt(max(split.distribution.value, 0)):.4f} from runs settling in different "
        "solutions). "
        + ("The distribution-wise part's CI excludes 0: runs do settle in solutions that "
           "differ on the data distribution, not only on this test set."
           if split.distribution.low > 0 else
           f"The distribution-wise part's CI includes 0: with {n_runs[LONG]} runs "
           "these data cannot decide whether the runs' accuracies on the data distribution "
           "still differ at this N, or whether the whole floor is test-set sampling.")
        + f" At N = {common_n} (restarts) the split was "
        f"{split_short.share_test_set.format('.0f', 100, '%')} test set, distribution-wise "
        f"part {split_short.distribution.format('.2e')} (std "
        f"{np.sqrt(max(split_short.distribution.value, 0)):.4f}).",
        "",
        " ".join(source_text(n, p) for n, p in by_n.items()),
        "",
        "| N | runs | mean test_acc [95% CI] | std [95% CI] | binomial std sqrt(p(1-p)/10000) |",
        "|---|---|---|---|---|",
        *var_lines,
        "",
        "| N | n | Shapiro-Wilk | skew | excess kurtosis | normality | test power (5%) |",
        "|---|---|---|---|---|---|---|",
        *normal_lines,
        "",
        "Power: the share of simulated samples of this size the test rejects, against "
        "skewed, heavy-tailed, bimodal and uniform alternatives (nnlab.analysis.normality).",
        "",
        f"| seeds vary | runs | std at N = {common_n} [95% CI] | test-set share of the "
        "variance (at the run's end) |",
        "|---|---|---|---|",
        *source_lines,
        "",
        "Figures: findings/variance.png (mean and std vs N, the floor fit and the test-set "
        f"std), findings/normality.png (N = {longest}), findings/sources.png (std by source).",
        "",
        "## Compared with published work",
        "",
        "Jordan (2023, 'Calibrated chaos') finds that most of the seed-to-seed variance of "
        "test accuracy of well-trained networks is what a finite test set gives when "
        "examples err independently, i.e. runs differ little on the data distribution. "
        f"Here the test-set share at N = {longest} is "
        f"{split.share_test_set.format('.0f', 100, '%')} (see the answer above).",
        "",
        "## Reproduce and scale up",
        "",
        "    nnlab run studies/restarts-long.toml --jobs 2    # run times: each spec's header",
        "    nnlab run studies/restarts.toml --jobs 2",
        "    nnlab run studies/restarts-init.toml --jobs 2",
        "    nnlab run studies/restarts-order.toml --jobs 2",
        "    python analysis/restarts.py",
        "",
        scale_up("more seeds (the std CIs shrink as 1/sqrt(seeds); the normality tests gain "
                 "power) and restarts-init / restarts-order to the same N, to split the floor "
                 "by source."),
    ]
    numbers = {
        "variance": {n: v.to_dict() for n, v in variance.items()},
        "normality": {n: t.to_dict() for n, t in tests.items()},
        "mean_change": mean_changes,
        "floor_by_fit_start": starts,
        "test_set": {n: s.to_dict() for n, s in splits.items()},
        "compare_by_n": {n: {k: c.to_dict() for k, c in p.items()} for n, p in by_n.items()},
    }
    write_findings("restarts", "\n".join(text), numbers)


if __name__ == "__main__":
    main()
