"""Do findings 1 and 2 generalise to other workloads? The best constant learning rate
against the training length N, and the spread of restarts, on each workload of WORKLOADS
beside seed-000's network on MNIST: scikit-learn's 8x8 digits (DIGITS) and a wider network
on MNIST (WIDE).

A workload (`Workload`) is a sweep of learning rates and a set of restarts, two studies
whose specs declared their predictions before they ran, and the lengths its analysis uses:
finding 1's analysis of the sweep (`common.eta_best_fits`: eta_best per N, the broken power
law, the power law from its breakpoint on; exploratory, the power law from the take-off
on) and finding 2's of the restarts (the spread per N with its floor, the spread at the
longest N over the spread at the spec's shorter N paired by seed, the finite test set's
share at the longest N); the declared hypotheses (statistics <workload>.b,
<workload>.breakpoint, <workload>.std_ratio, <workload>.share_test_set, and the report's
base.test_acc.std) judged; and MNIST's numbers beside them as analysis/eta_vs_n.py and
analysis/restarts.py wrote them (results/eta-vs-n/findings.json,
results/restarts/findings.json; `make findings` runs this script after those two).

A workload whose two studies have run gets results/<its sweep>/findings.md, findings.json
and findings/generalise.png (analysis/templates/generalise-<workload>.md): the digits'
in results/digits-eta-vs-n, the wide network's in results/wide-eta-vs-n. Each lists the
other workloads' hypotheses: a table of which findings carry over where all their studies
have run, else the hypotheses as declared, "not evaluated" where a study has not run yet
(its folder in results/ is absent; one line on stderr says so).

    python analysis/generalise.py
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

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
    interval_text,
    load_if_run,
    p_text,
    run,
    runs_by_length,
    scale_up,
    statistic,
    verdict_line,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure

from nnlab.analysis import (
    Family,
    compare_variance,
    fit_power_law,
    paired_difference,
    test_set_variance,
    variance_vs_n,
)
from nnlab.data import N_TRAIN as MNIST_TRAIN
from nnlab.errors import NNLabError
from nnlab.report.figures import save_figure
from nnlab.report.hypotheses import study_statistics
from nnlab.study import Study, StudySpec
from nnlab.study.hypotheses import Estimate, Verdict, evaluate_all


@dataclass(frozen=True)
class Workload:
    """One workload of the question: its sweep of learning rates and its restarts (two
    studies in results/), and what its specs' predictions fix."""

    name: str  # its statistics' prefix ("digits" in digits.b) and its tests' names
    title: str  # what it is, as the other workloads' findings name it
    reference: str  # what its numbers are set beside (seed-000's network on MNIST)
    family: str  # the name of its tests' Holm family
    eta_study: str  # the sweep of learning rates; its folder holds the findings
    restarts_study: str  # the restarts
    flat_from: int  # spread-flat: the std at the restarts' longest N over the std here
    # exploratory: a power law over every length from here on, edge shares or not (the
    # runs at the best etas have taken off)
    taken_off: int
    scale_up: str  # what helps this workload's question most

    @property
    def template(self) -> str:
        """Its findings.md's template: analysis/templates/generalise-<name>.md."""
        return f"generalise-{self.name}"


DIGITS = Workload(
    "digits", "The 8x8 digits", "MNIST", "generalisation: findings 1 and 2 on the 8x8 digits",
    "digits-eta-vs-n", "digits-restarts", flat_from=1000,
    taken_off=316,  # seed-mean val_acc > 0.9 at the best etas from here on
    scale_up="more seeds on the digits narrow eta_best per N (val_acc on 359 images moves in "
    "steps of 0.0028); a second small data set, and the wider network on MNIST "
    "(studies/wide-*.toml), separate what the data set changes from what the network does.")
WIDE = Workload(
    "wide", "A wider network", "seed-000",
    "generalisation: findings 1 and 2 for a 784-256-10 relu network on MNIST",
    "wide-eta-vs-n", "wide-restarts", flat_from=17783,  # the spec's N = 10^5 over 17783
    taken_off=316,  # the spec's pilot: val_acc 0.94-0.95 at eta = 0.25-1 after 300 steps
    scale_up="more seeds narrow eta_best per N and the std ratio; widths between 36 and 256 "
    "(and a relu network of seed-000's width) separate what the width changes from what the "
    "activation does.")
WORKLOADS = (DIGITS, WIDE)
WORKLOAD = {w.name: w for w in WORKLOADS}
MNIST_ETA, MNIST_RESTARTS = "eta-vs-n", "restarts"  # their findings.json, as written
SPECS = Path(__file__).resolve().parent.parent / "studies"
METRIC = "test_acc"
# resamples of the std ratio's BCa interval. At the default 2000 the wide ratio's upper end
# moved by 0.005 (sd over bootstrap seeds) about the spec's margin, 1.2, so its verdict was
# the seed's; at 10^5 it is 1.2007 +- 0.0007 (0.5 s)
STD_RATIO_RESAMPLES = 100_000
# what a primary prediction's verdict says of its MNIST finding on the workload
CARRIES = {"held": "carries over", "failed": "does not carry over",
           "inconclusive": "may or may not carry over",
           "not evaluated": "could not be judged as declared"}
# the rows of the table of which findings carry over: finding, quantity, statistic (the
# workload's prefix before a name without one)
CARRY_OVER = (("1", "exponent b of eta_best ~ N^-b past the breakpoint", "b"),
              ("1", "breakpoint of the broken power law", "breakpoint"),
              ("2", "std of test_acc, longest N over a shorter N (same runs)", "std_ratio"),
              ("2", "std of test_acc at the longest N", "base.test_acc.std"),
              ("2", "finite test set's share of that variance", "share_test_set"))


def train_size(study: Study) -> int:
    """The number of training examples the study's runs saw (its manifest's data record)."""
    return int(json.loads((study.folder / "manifest.json").read_text())["data"]["sizes"]["train"])


def eta_part(workload: Workload, study: Study) -> dict:
    """Finding 1 on a workload (`study`: its sweep): eta_best per N and its fits
    (`eta_best_fits`), the spec's hypotheses judged on the power law past the breakpoint
    and on the breakpoint."""
    runs, design = complete_seeds(study)
    fits = eta_best_fits(runs)
    n_seeds = len(design["seeds_used"])
    if fits["broken"] is None:
        missing = (f"not fitted: fewer than 5 lengths with the optimum inside the grid and "
                   f"at its edge or cliff in at most {MAX_EDGE_SHARE:.0%} of the bootstraps")
        b: Estimate | str = missing
        breakpoint: Estimate | str = missing
    else:
        breakpoint = statistic(vars(fits["broken"].breakpoint), "seed", n_seeds)
        b = (statistic(vars(fits["tail"].exponent), "seed", n_seeds)
             if fits["tail"] is not None
             else "not fitted: fewer than 3 usable lengths past the breakpoint")
    statistics = {f"{workload.name}.b": b, f"{workload.name}.breakpoint": breakpoint}
    table = fits["table"]
    after = (table["n_steps"] >= workload.taken_off).to_numpy()
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


def restarts_part(workload: Workload, study: Study) -> dict:
    """Finding 2 on a workload (`study`: its restarts): the spread per N and its floor, the
    spread at the longest N against N = flat_from (the same runs), the mean's change, the
    finite test set's share at the longest N (two-way); the spec's hypotheses judged."""
    runs = runs_by_length(study)
    ok = runs[runs["status"] == "ok"]
    lengths = sorted(int(n) for n in ok["n_steps"].unique())
    if workload.flat_from not in lengths:
        raise NNLabError(f"{study.spec.name}: expected runs evaluated at N = "
                         f"{workload.flat_from} (the std ratio's shorter length), got N = "
                         f"{', '.join(map(str, lengths))}")
    longest, flat_from = lengths[-1], workload.flat_from
    variance = variance_vs_n(ok, metric=METRIC, fit_from=FLOOR_FIT_FROM, weights="kurtosis",
                             floor_interval="profile")
    names = (f"N={longest}", f"N={flat_from}")
    spread = compare_variance(at(ok, longest).to_numpy(), at(ok, flat_from).to_numpy(),
                              paired=True, names=names, n_resamples=STD_RATIO_RESAMPLES)
    change = paired_difference(at(ok, longest), at(ok, flat_from), names=names)
    split = test_set_variance(study.predictions(), unit="run x example")
    n_runs = int(spread.a.size)
    statistics: dict[str, Estimate | str] = {
        f"{workload.name}.std_ratio": statistic(vars(spread.std_ratio), "seed", n_runs),
        f"{workload.name}.share_test_set": statistic(vars(split.share_test_set),
                                                     "run x example", split.n_runs),
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


def not_run(name: str) -> list[Verdict]:
    """The hypotheses studies/<name>.toml declared, each "not evaluated: <name> has not run
    yet"."""
    spec = StudySpec.from_toml(SPECS / f"{name}.toml")
    return evaluate_all(spec.hypotheses,
                        {h.statistic: f"{name} has not run yet" for h in spec.hypotheses})


def parts(workload: Workload) -> dict:
    """A workload's parts, "eta" (`eta_part`) and "restarts" (`restarts_part`), each None
    where its study's folder is absent (not run yet); "run": {study: whether it has run};
    "hypotheses": its declared hypotheses as `hypothesis_records`, judged where their study
    has run (`not_run` where not)."""
    found: dict = {"workload": workload.name, "run": {}, "hypotheses": []}
    for key, name, part in (("eta", workload.eta_study, eta_part),
                            ("restarts", workload.restarts_study, restarts_part)):
        study = load_if_run(name)
        found["run"][name] = study is not None
        found[key] = None if study is None else part(workload, study)
        found["hypotheses"] += hypothesis_records(
            not_run(name) if study is None else found[key]["verdicts"])
    return found


def compute() -> dict:
    """Every number of this finding (read only): "analysed", for each workload whose two
    studies have run, {"numbers": its findings.json's content, "figures": what its figure
    draws, "summaries": printed lines}; "not_run", for each workload, the studies whose
    folder is absent."""
    found = {w.name: parts(w) for w in WORKLOADS}
    reference = mnist()
    analysed = {}
    for w in WORKLOADS:
        own = found[w.name]
        if own["eta"] is not None and own["restarts"] is not None:
            others = [{key: found[other.name][key] for key in ("workload", "run", "hypotheses")}
                      for other in WORKLOADS if other is not w]
            analysed[w.name] = analyse(w, own["eta"], own["restarts"], reference, others)
    return {"analysed": analysed,
            "not_run": {w.name: [name for name, ran in found[w.name]["run"].items() if not ran]
                        for w in WORKLOADS}}


def analyse(workload: Workload, eta: dict, restarts: dict, reference: dict,
            others: list[dict]) -> dict:
    """A workload's findings from its parts (`eta_part`, `restarts_part`) and MNIST's
    (`mnist`): {"numbers": findings.json's content, "figures": what its figure draws,
    "summaries": printed lines}; `others`: the other workloads' `parts` records ("workload",
    "run", "hypotheses"), kept in its numbers as they are."""
    fits, variance = eta["fits"], restarts["variance"]
    name_of, flat_from = workload.name, workload.flat_from
    family = Family(workload.family)
    claims = {}
    if fits["tail"] is not None:
        name = f"{name_of}: b = 0 past the breakpoint (bootstrap over seeds)"
        family.add(name, bootstrap_p(fits["tail"].boot_exponent, 0.0))
        claims[name] = f"eta_best changes with N past the breakpoint on {name_of}"
    longest = restarts["longest"]
    name = f"{name_of}: std at N = {longest} vs N = {flat_from} (Pitman-Morgan)"
    family.add(name, restarts["spread"].pitman_morgan)
    claims[name] = f"the spread differs between N = {flat_from} and {longest} on {name_of}"
    name = f"{name_of}: no floor, c = 0 (profile likelihood, N >= {FLOOR_FIT_FROM})"
    family.add(name, variance.fit.p_zero)
    claims[name] = f"the variance levels off at a floor c > 0 on {name_of}"
    name = f"{name_of}: mean test_acc at N = {longest} vs {flat_from} (paired t)"
    family.add(name, restarts["change"].t_test)
    claims[name] = (f"the mean test accuracy changes from N = {flat_from} to {longest} on "
                    f"{name_of}")

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
            "overall": {"from": workload.taken_off, **eta["overall"].to_dict()},
        },
        "restarts": {
            "n_runs": restarts["n_runs"], "planned_runs": restarts["planned"],
            "train_size": restarts["train_size"],
            "eta": float(restarts["study"].spec.base_config().eta),
            "variance": variance.to_dict(), "flat_from": flat_from,
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
    numbers["workload"] = workload.name
    numbers["others"] = others
    summaries = [*fits["summaries"], variance.summary(), restarts["spread"].summary(),
                 restarts["split"].summary(), family.summary()]
    return {"numbers": numbers, "figures": {"eta": table, "std": variance.table},
            "summaries": summaries}


def draw(workload: Workload, figures: dict, mnist_numbers: dict) -> None:
    """findings/generalise.png: eta_best against N (left) and the std of test_acc over
    seeds against N (right), MNIST's and the workload's, with their 95% CIs."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = figure.subplots(1, 2)
    eta_rows = {f"{workload.reference} (eta-vs-n, batch 100)":
                pd.DataFrame(mnist_numbers["eta_best"]),
                f"{workload.name} ({workload.eta_study})": figures["eta"]}
    for k, (label, table) in enumerate(eta_rows.items()):
        left.errorbar(table["n_steps"] * 1.03 ** k, table["eta_best"], fmt="o-", capsize=3,
                      yerr=[table["eta_best"] - table["low"], table["high"] - table["eta_best"]],
                      label=label)
    left.set(xscale="log", yscale="log", xlabel="N (steps of batch 100)", ylabel="eta_best",
             title="Best constant learning rate (95% CI over seeds)")
    std_rows = {f"{workload.reference} (restarts, restarts-long)":
                pd.DataFrame(mnist_numbers["std_table"]),
                f"{workload.name} ({workload.restarts_study})": figures["std"]}
    for k, (label, table) in enumerate(std_rows.items()):
        right.errorbar(table["n_steps"] * 1.03 ** k, table["std"], fmt="o-", capsize=3,
                       yerr=[table["std"] - table["std_low"], table["std_high"] - table["std"]],
                       label=f"{label}, {int(table['n_runs'].min())} runs")
    right.set(xscale="log", yscale="log", xlabel="N (steps of batch 100)",
              ylabel="std of test_acc over seeds", title="Spread of restarts (95% CIs)")
    for ax in (left, right):
        ax.legend(fontsize="small")
    save_figure(figure, figure_path(workload.eta_study, "generalise.png"))


def epochs(steps: float, train_size: int, batch: int = 100) -> str:
    """'4.1' epochs: steps of `batch` over a training set of `train_size` examples."""
    return f"{steps * batch / train_size:.2g}"


def on(records: list[dict], statistic: str) -> dict | None:
    """The hypothesis of `records` (`hypothesis_records`) on `statistic`, the primary one
    first; None if none is declared on it."""
    return next((h for h in sorted(records, key=lambda h: not h["primary"])
                 if h["statistic"] == statistic), None)


def statistic_name(workload: str, statistic: str) -> str:
    """'digits.b' for 'b'; a name with a prefix ('base.test_acc.std') as it is."""
    return statistic if "." in statistic else f"{workload}.{statistic}"


def interval(h: dict, spec: str = ".3g") -> str:
    """A hypothesis record's estimate, '0.9 [0.8, 1.1]', or why there is none."""
    return "not estimated" if h["estimate"] is None else interval_text(h["estimate"], spec)


def carry_over(records: dict[str, list[dict]]) -> str:
    """The markdown table of which findings carry over: per row of CARRY_OVER, each
    workload's (`records`: {workload: its `hypothesis_records`}) declared hypotheses on the
    row's statistic, with the estimate and verdict."""
    def cell(workload: str, statistic: str) -> str:
        named = statistic_name(workload, statistic)
        declared = [h for h in records[workload] if h["statistic"] == named]
        if not declared:
            return "not declared"
        return f"{interval(declared[0])}: " + "; ".join(
            f"{h['name']} ({h['prediction']}) **{h['verdict']}**" for h in declared)

    lines = [f"| finding | quantity | {' | '.join(records)} |",
             f"|---|---|{'---|' * len(records)}"]
    lines += [f"| {finding} | {quantity} | "
              + " | ".join(cell(w, statistic) for w in records) + " |"
              for finding, quantity, statistic in CARRY_OVER]
    return "\n".join(lines)


def others_text(numbers: dict) -> str:
    """The other workloads (numbers["others"]): where all of a workload's studies have run,
    which findings carry over (`carry_over`) and where its findings are; else its
    hypotheses as declared, judged where a study has run."""
    workload = WORKLOAD[numbers["workload"]]
    own = [*numbers["eta"]["hypotheses"], *numbers["restarts"]["hypotheses"]]
    sections = []
    for other in numbers["others"]:
        described = WORKLOAD[other["workload"]]
        missing = [name for name, ran in other["run"].items() if not ran]
        specs = " and ".join(f"studies/{name}.toml" for name in other["run"])
        if missing:
            sections.append(
                f"## {described.title}: declared, {', '.join(missing)} not run yet\n\n"
                f"{specs} declared these predictions before any run (their headers give "
                "the design, the run time and the reasoning behind each); `nnlab run "
                "studies/<study>.toml --jobs 2` runs each, then `python "
                "analysis/generalise.py` judges them and writes "
                f"results/{described.eta_study}/findings.md:\n\n"
                + "\n".join(verdict_line(h) for h in other["hypotheses"]))
        else:
            sections.append(
                f"## {described.title}: which findings carry over\n\n"
                f"The predictions {specs} declared before their runs, beside this "
                f"workload's (the {described.name} findings: "
                f"results/{described.eta_study}/findings.md).\n\n"
                + carry_over({workload.name: own, described.name: other["hypotheses"]}))
    return "\n\n".join(sections)


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (the workload's template,
    templates/generalise-<workload>.md)."""
    workload = WORKLOAD[numbers["workload"]]
    eta, restarts, m = numbers["eta"], numbers["restarts"], numbers["mnist"]
    records = [*eta["hypotheses"], *restarts["hypotheses"]]

    def record(name: str) -> dict | None:
        return on(records, statistic_name(workload.name, name))

    def judged(name: str) -> str:
        h = record(name)
        return "exploratory" if h is None else f"{h['name']}: **{h['verdict']}**"

    def estimate(name: str, spec: str) -> str:
        h = record(name)
        return "not estimated" if h is None else interval(h, spec)

    def mc_error(name: str) -> str:
        h = record(name)
        return "not estimated" if h is None else f"{h['estimate']['mc_error']:.2g}"

    tail, broken = eta.get("tail"), eta.get("broken")
    d_train, m_train = eta["train_size"], m["train_size"]
    variance_table = restarts["variance"]["table"]
    longest, flat_from = int(variance_table[-1]["n_steps"]), restarts["flat_from"]
    long_row = variance_table[-1]
    split = restarts["test_set"]
    m_long, m_short = m["std_long"], m["std_short"]
    b_workload = (f"{ci(tail['exponent'], '.2f')} ({tail['n']} lengths "
                  f"{', '.join(f'{x:g}' for x in tail['x'])})" if tail else "not fitted")
    breakpoint_workload = (f"{ci(broken['breakpoint'], '.0f')} steps "
                           f"({epochs(broken['breakpoint']['value'], d_train)} epochs)"
                           if broken else "not fitted")
    m_ratio = m["std_ratio"]
    span = ("last decade (longest N over N/10, same runs)" if longest == 10 * flat_from
            else f"longest N over N = {flat_from} (same runs)")
    rows = [
        ("1", "exponent b of eta_best ~ N^-b past the breakpoint",
         f"{ci(m['b'], '.2f')} ({len(m['b_lengths'])} lengths, {m['eta_seeds']} seeds, "
         f"{m['eta_runs']} runs)",
         f"{b_workload}; {eta['n_seeds']} seeds, {eta['n_runs']} runs", judged("b")),
        ("1", "breakpoint (end of the flat, stability-limited range)",
         f"{ci(m['breakpoint'], '.0f')} steps ({epochs(m['breakpoint']['value'], m_train)} "
         "epochs)", breakpoint_workload, judged("breakpoint")),
        ("2", f"std of test_acc, {span}",
         f"{ci(m_ratio, '.2f')} ({m_long['n']:g} over {m_short['n']:g}; "
         f"{m['restarts_runs']} runs; flat from N = 17783 on)",
         f"{estimate('std_ratio', '.2f')} ({longest} over {flat_from}; "
         f"{restarts['n_runs']} runs)", judged("std_ratio")),
        ("2", "std of test_acc at the longest N",
         f"{m_long['value']:.4f} [{m_long['low']:.4f}, {m_long['high']:.4f}] at "
         f"{m_long['n']:g} ({m['restarts_runs']} runs)",
         f"{estimate('base.test_acc.std', '.4f')} at {longest} ({long_row['n_runs']} runs)",
         judged("base.test_acc.std")),
        ("2", "finite test set's share of that variance (two-way)",
         f"{ci(m['share_test_set'], '.2f')} (10,000 test images)",
         f"{ci(split['share_test_set'], '.2f')} ({split['n_test']} test images)",
         judged("share_test_set")),
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
    b_primary, spread_primary = (on(records, statistic_name(workload.name, s)) or
                                 {"name": s, "verdict": "not evaluated"}
                                 for s in ("b", "std_ratio"))
    design = eta["design"]
    stopped = []
    if len(design["seeds_used"]) < design["planned_seeds"]:
        stopped.append(f"{workload.eta_study} after {design['runs_finished']} of its "
                       f"{design['planned_seeds'] * len(eta['etas'])} runs (the "
                       f"{len(design['seeds_used'])} seeds that had finished every learning "
                       f"rate are used, of {design['planned_seeds']} planned)")
    if restarts["n_runs"] < restarts["planned_runs"]:
        stopped.append(f"{workload.restarts_study} after {restarts['n_runs']} of its "
                       f"{restarts['planned_runs']} runs")
    fit = restarts["variance"]["fit"]
    values = {
        "held": summary["held"], "n_hypotheses": summary["n_hypotheses"],
        "b_carries": CARRIES[b_primary["verdict"]],
        "b_judged": f"{b_primary['name']} {b_primary['verdict']}",
        "spread_carries": CARRIES[spread_primary["verdict"]],
        "spread_judged": f"{spread_primary['name']} {spread_primary['verdict']}",
        "overall_range": f"{min(overall['y']):.2g}-{max(overall['y']):.2g}",
        "overall_first": f"{overall['y'][0]:.2g}", "overall_last": f"{overall['y'][-1]:.2g}",
        "taken_off": overall["from"], "overall_to": f"{max(overall['x']):g}",
        "overall_b": ci(overall["exponent"], ".2f"), "m_b": ci(m["b"], ".2f"),
        "b_tail": b_workload,
        "std_long": estimate("base.test_acc.std", ".4f"),
        "m_std_long": f"{m_long['value']:.4f}",
        "stopped": ("" if not stopped else
                    "**Stopped before all runs had finished** (the machine was shared): "
                    + "; ".join(stopped) + ". The predictions were declared for the planned "
                    "runs and are judged on these; `nnlab run studies/<study>.toml --jobs 2` "
                    "finishes each study, keeping its runs.\n\n"),
        "eta_verdicts": "\n".join(verdict_line(h) for h in eta["hypotheses"]),
        "restarts_verdicts": "\n".join(verdict_line(h) for h in restarts["hypotheses"]),
        "ratio_precise": estimate("std_ratio", ".4f"),
        "ratio_mc_error": mc_error("std_ratio"),
        "ratio_resamples": f"{STD_RATIO_RESAMPLES:,}",
        "comparison": "\n".join(f"| {' | '.join(row)} |" for row in rows),
        "others": others_text(numbers),
        "n_eta_runs": eta["n_runs"], "n_eta_seeds": eta["n_seeds"],
        "n_etas": len(eta["etas"]), "etas": f"{min(eta['etas']):g}..{max(eta['etas']):g}",
        "d_train": d_train, "m_train": m_train, "epoch_steps": f"{d_train / 100:.3g}",
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
        "overall": (f"b = {ci(overall['exponent'], '.2f')} over N = "
                    f"{overall['from']}..{max(overall['x']):g} "
                    f"({overall['n']} lengths, R^2 = {overall['r_squared']:.2f})"),
        "n_restarts": restarts["n_runs"], "restarts_eta": f"{restarts['eta']:g}",
        "std_rows": std_rows, "longest": longest, "flat_from": flat_from,
        "fit_from": FLOOR_FIT_FROM, "floor": ci(fit["floor"], ".2e"),
        "p_zero": f"{fit['p_zero']:.2g}",
        "p_spread": p_text(numbers["family"], f"{workload.name}: std at N = {longest} vs "
                                              f"N = {flat_from} (Pitman-Morgan)"),
        "mean_change": ci(restarts["mean_change"]["difference"], "+.4f"),
        "n_test": split["n_test"], "split_observed": ci(split["observed"], ".2e"),
        "split_test_set": ci(split["test_set"], ".2e"),
        "split_distribution": ci(split["distribution"], ".2e"),
        "split_share": ci(split["share_test_set"], ".2f"),
        "claims": claims_lines(numbers["claims"]),
        "scale_up": scale_up(workload.scale_up),
    }
    return render_template(workload.template, values)


def main() -> None:
    found = compute()
    for workload in WORKLOADS:
        missing = found["not_run"][workload.name]
        if missing:
            print(f"generalise.py: {', '.join(missing)} not run yet (no folder in "
                  f"{RESULTS}): the {workload.name} workload's predictions are listed as "
                  "declared, not evaluated", file=sys.stderr)
        if workload.name not in found["analysed"]:
            continue
        analysed = found["analysed"][workload.name]
        numbers = as_written(analysed["numbers"])
        draw(workload, analysed["figures"], numbers["mnist"])
        print(*analysed["summaries"], sep="\n")
        write_findings(workload.eta_study, render(numbers), numbers)


if __name__ == "__main__":
    run(main)
