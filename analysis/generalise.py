"""Do findings 1 and 2 generalise to another data set? The best constant learning rate
against the training length N, and the spread of restarts, on scikit-learn's 8x8 digits.

results/digits-eta-vs-n (11 etas x 20 seeds, N = 10..31623) and results/digits-restarts
(200 seeds at eta = 2, N = 10..31623, test predictions at 31623), both seed-000's network
fitted to 64 inputs, whose specs declared their predictions before they ran: finding 1's
analysis (`common.eta_best_fits`: eta_best per N, the broken power law, the power law
from its breakpoint on) and finding 2's (the spread per N with its floor, the spread over
the last decade paired by seed, the finite test set's share at the longest N); the
declared hypotheses judged; and MNIST's numbers beside them as analysis/eta_vs_n.py and
analysis/restarts.py wrote them (results/eta-vs-n/findings.json,
results/restarts/findings.json; `make findings` runs this script after those two) ->
results/digits-eta-vs-n/findings.md, findings.json, findings/generalise.png.

    python analysis/generalise.py
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from common import (
    CONFIDENCE,
    FLOOR_FIT_FROM,
    MAX_EDGE_SHARE,
    RESULTS,
    as_written,
    bootstrap_p,
    ci,
    claims_lines,
    claims_table,
    complete_seeds,
    eta_best_fits,
    figure_path,
    hypothesis_records,
    load,
    p_text,
    run,
    runs_by_length,
    scale_up,
    verdict_line,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure

from nnlab import analysis
from nnlab.analysis import (
    Family,
    compare_variance,
    fit_power_law,
    paired_difference,
    test_set_variance,
    variance_vs_n,
)
from nnlab.data import N_TRAIN as MNIST_TRAIN
from nnlab.report.figures import save_figure
from nnlab.report.hypotheses import study_statistics
from nnlab.study import Study
from nnlab.study.hypotheses import Estimate, evaluate_all

ETA_STUDY, RESTARTS_STUDY = "digits-eta-vs-n", "digits-restarts"
MNIST_ETA, MNIST_RESTARTS = "eta-vs-n", "restarts"  # their findings.json, as written
FLAT_FROM = 1000  # digits-restarts' spread-flat prediction: std at its longest N over here
METRIC = "test_acc"
# exploratory: a power law over every length from here on, edge shares or not (the runs at
# the best etas have taken off: seed-mean val_acc > 0.9 on the digits)
TAKEN_OFF = 316
# what a primary prediction's verdict says of its MNIST finding on the digits
CARRIES = {"held": "carries over", "failed": "does not carry over",
           "inconclusive": "is not settled",
           "not evaluated": "could not be judged as declared"}


def train_size(study: Study) -> int:
    """The number of training examples the study's runs saw (its manifest's data record)."""
    return int(json.loads((study.folder / "manifest.json").read_text())["data"]["sizes"]["train"])


def estimate_of(found: analysis.Estimate, unit: str, n: int) -> Estimate:
    """A result's estimate (`nnlab.analysis.Estimate`: value, low, high) as a hypothesis
    statistic with its unit of replication and n."""
    return Estimate(float(found.value), float(found.low), float(found.high), unit, n)


def eta_part() -> dict:
    """Finding 1 on digits: eta_best per N and its fits (`eta_best_fits`), the spec's
    hypotheses judged on the power law past the breakpoint and on the breakpoint."""
    study = load(ETA_STUDY)
    runs, design = complete_seeds(study)
    fits = eta_best_fits(runs)
    n_seeds = len(design["seeds_used"])
    if fits["broken"] is None:
        missing = (f"not fitted: fewer than 5 lengths with the optimum inside the grid and "
                   f"at its edge or cliff in at most {MAX_EDGE_SHARE:.0%} of the bootstraps")
        b: Estimate | str = missing
        breakpoint: Estimate | str = missing
    else:
        breakpoint = estimate_of(fits["broken"].breakpoint, "seed", n_seeds)
        b = (estimate_of(fits["tail"].exponent, "seed", n_seeds) if fits["tail"] is not None
             else "not fitted: fewer than 3 usable lengths past the breakpoint")
    statistics = {"digits.b": b, "digits.breakpoint": breakpoint}
    table = fits["table"]
    after = (table["n_steps"] >= TAKEN_OFF).to_numpy()
    overall = fit_power_law(table["n_steps"][after], table["eta_best"][after],
                            y_boot=np.exp(fits["result"].boot_log_eta[:, after]),
                            boot_unit="seeds", confidence=CONFIDENCE)
    return {"study": study, "fits": fits, "n_seeds": n_seeds, "design": design,
            "overall": overall,
            "n_runs": int(runs["trial"].nunique()), "train_size": train_size(study),
            "verdicts": evaluate_all(study.spec.hypotheses, statistics)}


def at(runs: pd.DataFrame, n: int, metric: str = METRIC) -> pd.Series:
    """`metric` of each seed's run at length n, indexed by seed."""
    return runs[runs["n_steps"] == n].set_index("seed")[metric]


def restarts_part() -> dict:
    """Finding 2 on digits: the spread per N and its floor, the spread at the longest N
    against N = FLAT_FROM (the same runs), the mean's change, the finite test set's share
    at the longest N (two-way); the spec's hypotheses judged."""
    study = load(RESTARTS_STUDY)
    runs = runs_by_length(study)
    ok = runs[runs["status"] == "ok"]
    longest = int(ok["n_steps"].max())
    variance = variance_vs_n(ok, metric=METRIC, fit_from=FLOOR_FIT_FROM, weights="kurtosis",
                             floor_interval="profile")
    names = (f"N={longest}", f"N={FLAT_FROM}")
    spread = compare_variance(at(ok, longest).to_numpy(), at(ok, FLAT_FROM).to_numpy(),
                              paired=True, names=names)
    change = paired_difference(at(ok, longest), at(ok, FLAT_FROM), names=names)
    split = test_set_variance(study.predictions(), unit="run x example")
    n_runs = int(spread.a.size)
    statistics: dict[str, Estimate | str] = {
        "digits.std_ratio": estimate_of(spread.std_ratio, "seed", n_runs),
        "digits.share_test_set": estimate_of(split.share_test_set, "run x example",
                                             split.n_runs),
        **study_statistics(study.spec, study.trials(), {"base.test_acc.std"}),
    }
    return {"study": study, "variance": variance, "spread": spread, "change": change,
            "split": split, "longest": longest, "n_runs": n_runs,
            "planned": study.spec.replicates,
            "verdicts": evaluate_all(study.spec.hypotheses, statistics),
            "train_size": train_size(study)}


def mnist() -> dict:
    """MNIST's side of the comparison: findings 1 and 2 as their scripts wrote them."""
    return {name: json.loads((RESULTS / name / "findings.json").read_text())
            for name in (MNIST_ETA, MNIST_RESTARTS)}


def compute() -> dict:
    """Every number of this finding (read only): {"numbers": findings.json's content,
    "figures": what the figure draws, "summaries": printed lines}."""
    eta, restarts, reference = eta_part(), restarts_part(), mnist()
    fits, variance = eta["fits"], restarts["variance"]
    family = Family("generalisation: findings 1 and 2 on the 8x8 digits")
    claims = {}
    if fits["tail"] is not None:
        name = "digits: b = 0 past the breakpoint (bootstrap over seeds)"
        family.add(name, bootstrap_p(fits["tail"].boot_exponent, 0.0))
        claims[name] = "eta_best changes with N past the breakpoint on digits"
    longest = restarts["longest"]
    name = f"digits: std at N = {longest} vs N = {FLAT_FROM} (Pitman-Morgan)"
    family.add(name, restarts["spread"].pitman_morgan)
    claims[name] = f"the spread differs between N = {FLAT_FROM} and {longest} on digits"
    name = f"digits: no floor, c = 0 (profile likelihood, N >= {FLOOR_FIT_FROM})"
    family.add(name, variance.fit.p_zero)
    claims[name] = "the variance levels off at a floor c > 0 on digits"
    name = f"digits: mean test_acc at N = {longest} vs {FLAT_FROM} (paired t)"
    family.add(name, restarts["change"].t_test)
    claims[name] = f"the mean test accuracy changes from N = {FLAT_FROM} to {longest} on digits"

    table = fits["table"].drop(columns=["n_eta", "n_runs", "n_diverged"], errors="ignore")
    m_eta, m_restarts = reference[MNIST_ETA], reference[MNIST_RESTARTS]
    numbers = {
        "eta": {
            "n_runs": eta["n_runs"], "n_seeds": eta["n_seeds"], "design": eta["design"],
            "train_size": eta["train_size"],
            "etas": [float(e) for e in eta["study"].spec.grid["eta"]],
            "eta_best": table.to_dict("records"),
            "resampling": fits["result"].resampling,
            **{key: fits[key].to_dict() for key in ("broken", "tail", "extrapolation",
                                                     "sensitivity")
               if fits.get(key) is not None},
            "hypotheses": hypothesis_records(eta["verdicts"]),
            "overall": {"from": TAKEN_OFF, **eta["overall"].to_dict()},
        },
        "restarts": {
            "n_runs": restarts["n_runs"], "planned_runs": restarts["planned"],
            "train_size": restarts["train_size"],
            "eta": float(restarts["study"].spec.base_config().eta),
            "variance": variance.to_dict(), "flat_from": FLAT_FROM,
            "spread": restarts["spread"].to_dict(),
            "mean_change": restarts["change"].to_dict(),
            "test_set": restarts["split"].to_dict(),
            "hypotheses": hypothesis_records(restarts["verdicts"]),
        },
        "mnist": {
            "train_size": MNIST_TRAIN,
            "b": m_eta["summary"]["b"], "b_lengths": m_eta["summary"]["b_lengths"],
            "breakpoint": m_eta["summary"]["breakpoint"],
            "eta_runs": sum(m_eta["batch_100"]["n_runs"].values()),
            "eta_seeds": m_eta["batch_100"]["n_seeds"],
            "eta_best": [{k: r[k] for k in ("n_steps", "eta_best", "low", "high")}
                         for r in m_eta["batch_100"]["eta_best"]],
            "std_table": [{k: r[k] for k in ("n_steps", "std", "std_low", "std_high",
                                             "n_runs")}
                          for r in m_restarts["variance"]["table"]],
            "std_short": m_restarts["summary"]["std_short"],
            "std_long": m_restarts["summary"]["std_long"],
            "std_ratio": m_restarts["spread_last_decade"]["comparison"]["std_ratio"],
            "restarts_runs": m_restarts["summary"]["n_runs"],
            "share_test_set": m_restarts["test_set"]["restarts-long"]["share_test_set"],
            "distribution": m_restarts["test_set"]["restarts-long"]["distribution"],
            "p_zero": m_restarts["variance"]["fit"]["p_zero"],
        },
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
    }
    verdicts = [*eta["verdicts"], *restarts["verdicts"]]
    numbers["summary"] = {
        "held": sum(v.verdict == "held" for v in verdicts), "n_hypotheses": len(verdicts),
        "primary": {v.hypothesis.statistic: v.verdict for v in verdicts
                    if v.hypothesis.primary},
    }
    summaries = [*fits["summaries"], variance.summary(), restarts["spread"].summary(),
                 restarts["split"].summary(), family.summary()]
    return {"numbers": numbers, "figures": {"eta": table, "std": variance.table},
            "summaries": summaries}


def draw(figures: dict, mnist_numbers: dict) -> None:
    """findings/generalise.png: eta_best against N (left) and the std of test_acc over
    seeds against N (right), MNIST's and the digits', with their 95% CIs."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    eta_rows = {"MNIST (eta-vs-n, batch 100)": pd.DataFrame(mnist_numbers["eta_best"]),
                "digits (digits-eta-vs-n)": figures["eta"]}
    for k, (label, table) in enumerate(eta_rows.items()):
        left.errorbar(table["n_steps"] * 1.03 ** k, table["eta_best"], fmt="o-", capsize=3,
                      yerr=[table["eta_best"] - table["low"], table["high"] - table["eta_best"]],
                      label=label)
    left.set(xscale="log", yscale="log", xlabel="N (steps of batch 100)", ylabel="eta_best",
             title="Best constant learning rate (95% CI over seeds)")
    std_rows = {"MNIST (restarts, restarts-long)": pd.DataFrame(mnist_numbers["std_table"]),
                "digits (digits-restarts)": figures["std"]}
    for k, (label, table) in enumerate(std_rows.items()):
        right.errorbar(table["n_steps"] * 1.03 ** k, table["std"], fmt="o-", capsize=3,
                       yerr=[table["std"] - table["std_low"], table["std_high"] - table["std"]],
                       label=f"{label}, {int(table['n_runs'].min())} runs")
    right.set(xscale="log", yscale="log", xlabel="N (steps of batch 100)",
              ylabel="std of test_acc over seeds", title="Spread of restarts (95% CIs)")
    for ax in (left, right):
        ax.legend(fontsize="small")
    save_figure(figure, figure_path(ETA_STUDY, "generalise.png"))


def epochs(steps: float, train_size: int, batch: int = 100) -> str:
    """'4.1' epochs: steps of `batch` over a training set of `train_size` examples."""
    return f"{steps * batch / train_size:.2g}"


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/generalise.md)."""
    eta, restarts, m = numbers["eta"], numbers["restarts"], numbers["mnist"]
    verdict = {h["name"]: h for h in [*eta["hypotheses"], *restarts["hypotheses"]]}

    def judged(name: str) -> str:
        h = verdict[name]
        return f"{name}: **{h['verdict']}**"

    def estimate(name: str, spec: str) -> str:
        e = verdict[name]["estimate"]
        return ("not estimated" if e is None else
                f"{e['value']:{spec}} [{e['low']:{spec}}, {e['high']:{spec}}]")

    tail, broken = eta.get("tail"), eta.get("broken")
    d_train, m_train = eta["train_size"], m["train_size"]
    variance_table = restarts["variance"]["table"]
    longest, flat_from = int(variance_table[-1]["n_steps"]), restarts["flat_from"]
    long_row = variance_table[-1]
    split = restarts["test_set"]
    m_long, m_short = m["std_long"], m["std_short"]
    b_digits = (f"{ci(tail['exponent'], '.2f')} ({tail['n']} lengths "
                f"{', '.join(f'{x:g}' for x in tail['x'])})" if tail else "not fitted")
    breakpoint_digits = (f"{ci(broken['breakpoint'], '.0f')} steps "
                         f"({epochs(broken['breakpoint']['value'], d_train)} epochs)"
                         if broken else "not fitted")
    m_ratio = m["std_ratio"]
    rows = [
        ("1", "exponent b of eta_best ~ N^-b past the breakpoint",
         f"{ci(m['b'], '.2f')} ({len(m['b_lengths'])} lengths, {m['eta_seeds']} seeds, "
         f"{m['eta_runs']} runs)",
         f"{b_digits}; {eta['n_seeds']} seeds, {eta['n_runs']} runs", judged("b-near-1")),
        ("1", "breakpoint (end of the flat, stability-limited range)",
         f"{ci(m['breakpoint'], '.0f')} steps ({epochs(m['breakpoint']['value'], m_train)} "
         "epochs)", breakpoint_digits, judged("breakpoint-earlier")),
        ("2", "std of test_acc, last decade (longest N over N/10, same runs)",
         f"{ci(m_ratio, '.2f')} ({m_long['n']:g} over {m_short['n']:g}; "
         f"{m['restarts_runs']} runs; flat from N = 17783 on)",
         f"{estimate('spread-flat', '.2f')} ({longest} over {flat_from}; "
         f"{restarts['n_runs']} runs)", judged("spread-flat")),
        ("2", "std of test_acc at the longest N",
         f"{m_long['value']:.4f} [{m_long['low']:.4f}, {m_long['high']:.4f}] at "
         f"{m_long['n']:g} ({m['restarts_runs']} runs)",
         f"{estimate('spread-larger', '.4f')} at {longest} ({long_row['n_runs']} runs)",
         judged("spread-larger")),
        ("2", "finite test set's share of that variance (two-way)",
         f"{ci(m['share_test_set'], '.2f')} (10,000 test images)",
         f"{ci(split['share_test_set'], '.2f')} ({split['n_test']} test images)",
         judged("test-set-dominates")),
        ("2", "distribution-wise variance (the runs' population accuracies)",
         f"{ci(m['distribution'], '.1e')}", f"{ci(split['distribution'], '.1e')}",
         "exploratory"),
        ("2", "p of \"no floor\" (profile likelihood)", f"{m['p_zero']:.2g}",
         f"{restarts['variance']['fit']['p_zero']:.2g}", "exploratory"),
    ]
    eta_rows = "\n".join(
        f"| {r['n_steps']:g} | {epochs(r['n_steps'], d_train)} | {r['eta_best']:.3g} "
        f"[{r['low']:.3g}, {r['high']:.3g}] | {'yes' if r['bracketed'] else 'no'} | "
        f"{r['share']:.2f} |" for r in eta["eta_best"])
    std_rows = "\n".join(
        f"| {r['n_steps']:g} | {r['n_runs']} | {r['mean']:.4f} [{r['mean_low']:.4f}, "
        f"{r['mean_high']:.4f}] | {r['std']:.4f} [{r['std_low']:.4f}, {r['std_high']:.4f}] |"
        for r in variance_table)
    summary = numbers["summary"]
    overall = eta["overall"]
    low_n = overall["y"]
    answer = (
        f"{summary['held']} of the {summary['n_hypotheses']} predictions declared before the "
        f"runs held. Finding 1 (eta_best ~ N^-1 past a breakpoint) "
        f"{CARRIES[verdict['b-near-1']['verdict']]} on the digits (b-near-1 "
        f"{verdict['b-near-1']['verdict']}): eta_best stays at "
        f"{min(low_n):.2g}-{max(low_n):.2g} from N = {TAKEN_OFF} to "
        f"{max(overall['x']):g}, next to the learning rates that diverge or stall (exploratory"
        f" b over those lengths {ci(overall['exponent'], '.2f')}, against MNIST's "
        f"{ci(m['b'], '.2f')}). Finding 2 (the spread stops shrinking) "
        f"{CARRIES[verdict['spread-flat']['verdict']]} on the digits (spread-flat "
        f"{verdict['spread-flat']['verdict']}); on {split['n_test']} test images the test "
        f"set's share of that spread is {ci(split['share_test_set'], '.2f')}.")
    design = eta["design"]
    stopped = []
    if len(design["seeds_used"]) < design["planned_seeds"]:
        stopped.append(f"digits-eta-vs-n after {design['runs_finished']} of its "
                       f"{design['planned_seeds'] * len(eta['etas'])} runs (the "
                       f"{len(design['seeds_used'])} seeds that had finished every learning "
                       f"rate are used, of {design['planned_seeds']} planned)")
    if restarts["n_runs"] < restarts["planned_runs"]:
        stopped.append(f"digits-restarts after {restarts['n_runs']} of its "
                       f"{restarts['planned_runs']} runs")
    fit = restarts["variance"]["fit"]
    values = {
        "answer": answer,
        "stopped": ("" if not stopped else
                    "**Stopped before all runs had finished** (the machine was shared): "
                    + "; ".join(stopped) + ". The predictions were declared for the planned "
                    "runs and are judged on these; `nnlab run studies/<study>.toml --jobs 2` "
                    "finishes each study, keeping its runs.\n\n"),
        "eta_verdicts": "\n".join(verdict_line(h) for h in eta["hypotheses"]),
        "restarts_verdicts": "\n".join(verdict_line(h) for h in restarts["hypotheses"]),
        "comparison": "\n".join(f"| {' | '.join(row)} |" for row in rows),
        "n_eta_runs": eta["n_runs"], "n_eta_seeds": eta["n_seeds"],
        "n_etas": len(eta["etas"]), "etas": f"{min(eta['etas']):g}..{max(eta['etas']):g}",
        "d_train": d_train, "m_train": m_train,
        "eta_rows": eta_rows,
        "broken": (f"breakpoint {ci(broken['breakpoint'], '.0f')}, b = "
                   f"{ci(broken['exponent_before'], '.2f')} before it ({broken['n_before']} "
                   f"lengths) and {ci(broken['exponent_after'], '.2f')} after it "
                   f"({broken['n_after']}), R^2 = {broken['r_squared']:.3f}"
                   if broken else "not fitted (fewer than 5 lengths with the optimum inside "
                   "the grid)"),
        "tail": (f"b = {ci(tail['exponent'], '.2f')} over N = "
                 f"{', '.join(f'{x:g}' for x in tail['x'])}, R^2 = {tail['r_squared']:.3f}"
                 + (f" (exploratory: {', '.join(tail['exploratory_reasons'])})"
                    if tail["exploratory"] else "") if tail else "not fitted"),
        "overall": (f"b = {ci(eta['overall']['exponent'], '.2f')} over N = "
                    f"{eta['overall']['from']}..{max(eta['overall']['x']):g} "
                    f"({eta['overall']['n']} lengths, R^2 = {eta['overall']['r_squared']:.2f})"),
        "n_restarts": restarts["n_runs"], "restarts_eta": f"{restarts['eta']:g}",
        "std_rows": std_rows, "longest": longest, "flat_from": flat_from,
        "fit_from": FLOOR_FIT_FROM, "floor": ci(fit["floor"], ".2e"),
        "p_zero": f"{fit['p_zero']:.2g}",
        "p_spread": p_text(numbers["family"],
                           f"digits: std at N = {longest} vs N = {flat_from} (Pitman-Morgan)"),
        "mean_change": ci(restarts["mean_change"]["difference"], "+.4f"),
        "n_test": split["n_test"], "split_observed": ci(split["observed"], ".2e"),
        "split_test_set": ci(split["test_set"], ".2e"),
        "split_distribution": ci(split["distribution"], ".2e"),
        "split_share": ci(split["share_test_set"], ".2f"),
        "claims": claims_lines(numbers["claims"]),
        "scale_up": scale_up(
            "more seeds on the digits narrow eta_best per N (val_acc on 359 images moves in "
            "steps of 0.0028); a second small data set, and the wider network on MNIST "
            "(studies/wide-*.toml), separate what the data set changes from what the "
            "network does."),
    }
    return render_template("generalise", values)


def main() -> None:
    found = compute()
    numbers = as_written(found["numbers"])
    draw(found["figures"], numbers["mnist"])
    print(*found["summaries"], sep="\n")
    write_findings(ETA_STUDY, render(numbers), numbers)


if __name__ == "__main__":
    run(main)
