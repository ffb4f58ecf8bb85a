"""Question 2: restarts. Normal? Does the mean converge? Variance to 0 or to a floor? How much
of the spread is the finite test set, and which source of randomness (init, data order)?

results/restarts (both sources), results/restarts-init, results/restarts-order ->
figures in results/restarts/findings/ and results/restarts/findings.md.

    python analysis/restarts.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import (
    N_TEST,
    figure_path,
    load,
    percentile_interval,
    runs_by_length,
    scale_up,
    std_vs_n_figure,
    write_findings,
)
from scipy.optimize import curve_fit

from nnlab.analysis import compare_variance, normality, test_set_variance, variance_vs_n
from nnlab.report.figures import normality_figure, variance_figure

SOURCES = {"restarts": "init + order", "restarts-init": "init only",
           "restarts-order": "order only"}
METRIC = "test_acc"
SOURCES_BEFORE_FLOOR = 3162  # a length where the spread is still well above the floor


def mean_limit(runs: pd.DataFrame, n_resamples: int = 500, seed: int = 0) -> dict:
    """mean(N) = m_inf - c N^-d fitted to the seed means; CI of m_inf by resampling seeds
    (jointly across N: a seed's values at different N are one run)."""
    wide = runs.pivot(index="seed", columns="n_steps", values=METRIC).dropna()
    ns = wide.columns.to_numpy(dtype=float)

    def model(n, m_inf, c, d):
        return m_inf - c * n ** -d

    def fit(means: np.ndarray) -> float:
        start = (means[-1] + 0.005, 1.0, 0.5)
        return curve_fit(model, ns, means, p0=start, maxfev=20000)[0]

    point = fit(wide.mean().to_numpy())
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_resamples):
        rows = rng.integers(0, len(wide), len(wide))
        try:
            boot.append(fit(wide.iloc[rows].mean().to_numpy()))
        except RuntimeError:  # a resample the fit does not converge on is left out
            continue
    boot = np.array(boot)
    low, high = percentile_interval(boot[:, 0])
    return {"m_inf": float(point[0]), "low": low, "high": high, "d": float(point[2]),
            "d_ci": percentile_interval(boot[:, 2]), "n_fits": len(boot)}


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
    runs = {name: runs_by_length(name) for name in SOURCES}
    both = runs["restarts"]
    longest = int(both["n_steps"].max())
    variance = {name: variance_vs_n(r, metric=METRIC) for name, r in runs.items()}
    tests = {int(n): normality(g[METRIC].to_numpy(), name=f"test_acc at N={n}")
             for n, g in both[both["status"] == "ok"].groupby("n_steps")}
    limit = mean_limit(both[both["status"] == "ok"])
    splits = {name: test_set_variance(load(name).predictions()) for name in SOURCES}
    common_n = int(max(set(runs["restarts-init"]["n_steps"]) & set(both["n_steps"])))
    by_n = {n: source_pairs(runs, n) for n in sorted({SOURCES_BEFORE_FLOOR, common_n})}
    pairs = by_n[common_n]

    variance_figure(variance["restarts"], test_set=splits["restarts"],
                    path=figure_path("restarts", "variance.png"))
    normality_figure(tests[longest], path=figure_path("restarts", "normality.png"))
    std_vs_n_figure({label: variance[name].table for name, label in SOURCES.items()},
                    "Spread of restarts by source of randomness",
                    figure_path("restarts", "sources.png"), binomial=variance["restarts"].table)
    for name in SOURCES:
        print(f"== {name}\n{variance[name].summary()}\n{splits[name].summary()}")
    for n, t in tests.items():
        print(n, t.verdict)
    print(limit)
    for key, c in pairs.items():
        print(key, c.summary())

    fit = variance["restarts"].fit
    table = variance["restarts"].table
    last = table.iloc[-1]
    split = splits["restarts"]
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
        f"N ~ 3000-10000), full MNIST. {n_runs['restarts']} seeds (each changes the initial "
        f"weights and the data order), each run evaluated at N = "
        f"{', '.join(str(int(n)) for n in table['n_steps'])} steps (a constant-eta run's "
        "state at step N is a run of length N; see eta-vs-n/findings.md). Source split: "
        f"{n_runs['restarts-init']} seeds varying only the init (order_seed fixed) and "
        f"{n_runs['restarts-order']} varying only the data order (init_seed fixed), to "
        f"N = {common_n}. Metric: test accuracy on the 10k test images (nothing is chosen "
        "on it). 95% CIs by bootstrap over seeds.",
        "",
        "## Answers",
        "",
        f"**Normal?** Shapiro-Wilk at each N on {n_runs['restarts']} runs: "
        + (f"rejects at N = {', '.join(map(str, rejected))}; "
           if rejected else "no rejection at any N; ")
        + f"at N = {longest}: {tests[longest].verdict}",
        "",
        f"**Mean.** The mean test accuracy rises from {table['mean'].iloc[0]:.4f} (N = 100) to "
        f"{last['mean']:.4f} [{last['mean_low']:.4f}, {last['mean_high']:.4f}] (N = {longest}); "
        f"a fit mean(N) = m_inf - c N^-d gives m_inf = {limit['m_inf']:.4f} "
        f"[{limit['low']:.4f}, {limit['high']:.4f}] (d = {limit['d']:.2f}; "
        f"{limit['n_fits']} bootstrap fits): the mean converges, and at N = 5623 and 10000 "
        "it is already the same to 0.001.",
        "",
        f"**Variance.** The std over seeds falls from {table['std'].iloc[0]:.4f} (N = 100) "
        f"to {last['std']:.4f} [{last['std_low']:.4f}, {last['std_high']:.4f}] "
        f"(N = {longest}). var(N) = c + a N^-b: floor c = {fit.floor} (std "
        f"{floor_std:.4f}, upper CI {floor_hi:.4f}), b = {fit.exponent.format('.2f')}; "
        + ("the floor's CI excludes 0: the observed variance levels off."
           if fit.floor_excludes_zero else
           "the floor's CI includes 0: these data cannot tell a floor from a slow decay to 0.")
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
           f"The distribution-wise part's CI includes 0: with {n_runs['restarts']} runs "
           "these data cannot decide whether the runs' accuracies on the data distribution "
           "still differ at this N, or whether the whole floor is test-set sampling."),
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
        "    nnlab run studies/restarts.toml --jobs 2         # run times: each spec's header",
        "    nnlab run studies/restarts-init.toml --jobs 2",
        "    nnlab run studies/restarts-order.toml --jobs 2",
        "    python analysis/restarts.py",
        "",
        scale_up("more seeds (the std CIs shrink as 1/sqrt(seeds); the normality tests gain "
                 "power) and N to 10^5 so the floor fit sees the flat part."),
    ]
    numbers = {
        "variance": {n: v.to_dict() for n, v in variance.items()},
        "normality": {n: t.to_dict() for n, t in tests.items()},
        "mean_limit": limit,
        "test_set": {n: s.to_dict() for n, s in splits.items()},
        "compare_by_n": {n: {k: c.to_dict() for k, c in p.items()} for n, p in by_n.items()},
    }
    write_findings("restarts", "\n".join(text), numbers)


if __name__ == "__main__":
    main()
