"""Question 2: restarts. Normal? Does the mean converge? Variance to 0 or to a floor? How much
of the spread is the finite test set, and which source of randomness (init, data order)?

results/restarts-long (both sources), results/restarts-init-long and
results/restarts-order-long (one source each), all to N = 10^5, and results/restarts (the
runs of restarts-long stopped at N = 10^4, with test predictions there) -> figures in
results/restarts/findings/ and results/restarts/findings.md.

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
    run,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)

from nnlab.analysis import compare_variance, normality, test_set_variance, variance_vs_n
from nnlab.report.figures import normality_figure, variance_figure

LONG = "restarts-long"  # the restarts study's runs carried on to 10^5 steps
SHORT = "restarts"  # the same runs to 10^4 steps, with their test predictions there
SOURCES = {LONG: "init + order", "restarts-init-long": "init only",
           "restarts-order-long": "order only"}
BOTH, INIT, ORDER = SOURCES.values()
METRIC = "test_acc"
SOURCE_LENGTHS = (3162, 10000)  # the spread well above the floor, and near it


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


def floor_std_text(floor) -> str:
    """A variance floor's `Estimate` as a std: '0.0017 [0.0013, 0.0019]'."""
    return (f"{np.sqrt(floor.value):.4f} [{np.sqrt(max(floor.low, 0.0)):.4f}, "
            f"{np.sqrt(floor.high):.4f}]")


def starts_text(starts: list[dict]) -> str:
    return "; ".join(
        f"from N = {s['fit_from']}: {s['floor_std']:.4f} [{s['floor_std_low']:.4f}, "
        f"{s['floor_std_high']:.4f}], b = {s['exponent']:.2f}"
        + (" (b's CI at its bound)" if s["exponent_at_bound"] else "") for s in starts)


def source_pairs(runs: dict[str, pd.DataFrame], n: int) -> dict:
    """The spreads of the three source studies at length n, compared pairwise."""
    at_n = {SOURCES[name]: r.loc[(r["n_steps"] == n) & (r["status"] == "ok"), METRIC]
            .to_numpy() for name, r in runs.items()}
    return {f"{a} vs {b}": compare_variance(at_n[a], at_n[b], names=(a, b))
            for a, b in ((INIT, ORDER), (BOTH, INIT), (BOTH, ORDER))}


def source_text(n: int, pairs: dict) -> str:
    """Which source of randomness spreads the runs at length n."""
    init_order = pairs[f"{INIT} vs {ORDER}"]
    return (
        f"**Sources (N = {n}).** std(init only) / std(order only) = "
        f"{init_order.std_ratio.format('.2f')} "
        f"(Brown-Forsythe {init_order.brown_forsythe.p_text}). "
        f"Both sources together against init only: std ratio "
        f"{pairs[f'{BOTH} vs {INIT}'].std_ratio.format('.2f')}; against order only: "
        f"{pairs[f'{BOTH} vs {ORDER}'].std_ratio.format('.2f')} (two equal, "
        "independent sources would give sqrt 2 = 1.41). "
        + ("The initial weights and the data order contribute about equally"
           if init_order.std_ratio.contains(1.0) else
           ("The initial weights contribute" if init_order.std_ratio.value > 1 else
            "The data order contributes") + " more")
        + ("; both together spread more than either alone."
           if min(pairs[f"{BOTH} vs {one}"].std_ratio.low for one in (INIT, ORDER)) > 1 else
           "; both together do not spread detectably more than each alone."))


def source_floors(variance: dict, splits: dict) -> tuple[str, dict]:
    """Each source's variance floor (fitted from FLOOR_FIT_FROM) and, at the runs' end, the
    distribution-wise part of Jordan's split: which source leaves runs in different
    solutions."""
    fits = {SOURCES[name]: v.fit for name, v in variance.items()}
    parts = {SOURCES[name]: s.distribution for name, s in splits.items()}
    init_minus_order = fits[INIT].floor_difference(fits[ORDER])
    summed = parts[INIT].value + parts[ORDER].value
    real = [label for label, part in parts.items() if part.low > 0]
    text = (
        f"**Sources: the floor.** Fitted over N >= {FLOOR_FIT_FROM}, the floor std is "
        f"{floor_std_text(fits[INIT].floor)} with the initial weights alone varying, "
        f"{floor_std_text(fits[ORDER].floor)} with the data order alone and "
        f"{floor_std_text(fits[BOTH].floor)} with both; c(init only) - "
        f"c(order only) = {init_minus_order.format('.2e')}"
        + (" (no detectable difference)" if init_minus_order.contains(0.0) else "")
        + ". Past the finite test set (Jordan's split at the runs' end), the "
        "distribution-wise variance is "
        + "; ".join(f"{label}: {part.format('.2e')}" for label, part in parts.items())
        + f" (the two alone sum to {summed:.2e}, "
        + ("inside the interval with both, as independent sources that add would give). "
           if parts[BOTH].contains(summed) else
           "outside the interval with both: the sources do not simply add). ")
        + (f"Its CI excludes 0 with {' and with '.join(real)}: "
           + ("each source alone leaves the runs in different solutions."
              if {INIT, ORDER} <= set(real) else
              "only there do runs settle in detectably different solutions.")
           if real else
           "Its CI includes 0 for every source."))
    numbers = {"floor_init_minus_order": init_minus_order.to_dict(),
               "distribution_wise": {label: part.to_dict() for label, part in parts.items()}}
    return text, numbers


def main() -> None:
    studies = {name: load(name) for name in SOURCES}
    runs = {name: runs_by_length(study) for name, study in studies.items()}
    both = runs[LONG]
    longest = int(both["n_steps"].max())
    variance = {name: variance_vs_n(r, metric=METRIC, fit_from=FLOOR_FIT_FROM)
                for name, r in runs.items()}
    starts = floor_starts(both[both["status"] == "ok"])
    tests = {int(n): normality(g[METRIC].to_numpy(), name=f"test_acc at N={n}")
             for n, g in both[both["status"] == "ok"].groupby("n_steps")}
    splits = {name: test_set_variance(study.predictions()) for name, study in studies.items()}
    short = load(SHORT)
    short_trials = short.trials()
    short_n = int(short_trials["steps_run"].max())
    by_n = {n: source_pairs(runs, n) for n in (*SOURCE_LENGTHS, longest)}
    pairs = by_n[longest]
    floors_paragraph, floor_numbers = source_floors(variance, splits)

    variance_figure(variance[LONG], test_set=splits[LONG],
                    path=figure_path("restarts", "variance.png"))
    normality_figure(tests[longest], path=figure_path("restarts", "normality.png"))
    std_vs_n_figure({label: variance[name].table for name, label in SOURCES.items()},
                    "Spread of restarts by source of randomness",
                    figure_path("restarts", "sources.png"), binomial=variance[LONG].table)
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
    split, split_short = splits[LONG], test_set_variance(short.predictions())
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
        rows = variance[name].table.set_index("n_steps")
        s = splits[name]
        stds = " | ".join(f"{rows.loc[n, 'std']:.4f} [{rows.loc[n, 'std_low']:.4f}, "
                          f"{rows.loc[n, 'std_high']:.4f}]" for n in (short_n, longest))
        source_lines.append(
            f"| {label} | {n_runs[name]} | {stds} | {floor_std_text(variance[name].fit.floor)} | "
            f"{s.share_test_set.format('.0f', 100, '%')} | {s.distribution.format('.2e')} |")
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
        f"restarts is the same {short_trials['seed'].nunique()} seeds stopped at "
        f"N = {short_n} (the same values there, bit for bit), with test predictions at that "
        f"N. Source split, to the same N: {n_runs['restarts-init-long']} seeds varying only "
        f"the init (order_seed fixed; restarts-init-long) and "
        f"{n_runs['restarts-order-long']} varying only the data order (init_seed fixed; "
        "restarts-order-long). Metric: test accuracy on the 10k test images (nothing is "
        "chosen on it). 95% CIs by bootstrap over seeds.",
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
        + f" At N = {short_n} (restarts) the split was "
        f"{split_short.share_test_set.format('.0f', 100, '%')} test set, distribution-wise "
        f"part {split_short.distribution.format('.2e')} (std "
        f"{np.sqrt(max(split_short.distribution.value, 0)):.4f}).",
        "",
        " ".join(source_text(n, p) for n, p in by_n.items()),
        "",
        floors_paragraph,
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
        f"| seeds vary | runs | std at N = {short_n} [95% CI] | std at N = {longest} | floor "
        f"std (N >= {FLOOR_FIT_FROM}) | test-set share of the variance at N = {longest} | "
        "distribution-wise variance there |",
        "|---|---|---|---|---|---|---|",
        *source_lines,
        "",
        "Figures: findings/variance.png (mean and std vs N, the floor fit and the test-set "
        f"std), findings/normality.png (N = {longest}), findings/sources.png (std by "
        "source).",
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
        "    nnlab run studies/restarts-init-long.toml --jobs 2",
        "    nnlab run studies/restarts-order-long.toml --jobs 2",
        "    python analysis/restarts.py",
        "",
        scale_up("more seeds: the std CIs shrink as 1/sqrt(seeds), the normality tests gain "
                 "power, and the floors by source narrow enough to be compared."),
    ]
    numbers = {
        "variance": {n: v.to_dict() for n, v in variance.items()},
        "normality": {n: t.to_dict() for n, t in tests.items()},
        "mean_change": mean_changes,
        "floor_by_fit_start": starts,
        "test_set": {n: s.to_dict() for n, s in splits.items()},
        "compare_by_n": {n: {k: c.to_dict() for k, c in p.items()} for n, p in by_n.items()},
        "sources": floor_numbers,
    }
    write_findings("restarts", "\n".join(text), numbers)


if __name__ == "__main__":
    run(main)
