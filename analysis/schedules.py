"""Question 1, continued: should eta change during training?

At the budgets N = 10^3, 10^4 and 10^5 steps, the schedule derived from finding 1's
eta_best(N), eta(t) = min(3.1, 6500 / (t + 1)) (results/schedules), against the best
constant eta (results/schedules-constant) and the standard schedules: 1/t
(results/schedules-inv-t), cosine and step (results/schedules-anneal-1e3, -1e4, -1e5), all
on the same seeds. Each tuned family picks its configuration of a budget on val_acc by
leave-one-seed-out (for seed s, the best mean val_acc over the other seeds); seed s's
test_acc there is the family's result for s. Families are compared by the paired
difference of test_acc over seeds (95% t interval, the TOST equivalence bound, paired t
p-values adjusted together by Holm), and the predictions studies/schedules.toml declared
before its runs are judged first. -> results/schedules/findings.md, findings.json,
findings/differences.png.

    python analysis/schedules.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from common import (
    as_written,
    claims_lines,
    claims_table,
    figure_path,
    hypothesis_records,
    interval_text,
    load,
    run,
    runs_by_length,
    scale_up,
    spec_n_steps,
    statistic,
    verdict_line,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure
from scipy import stats

from nnlab.analysis import Family, HypothesisTest, paired_difference, tost_mean_difference
from nnlab.errors import DataError
from nnlab.report.figures import save_figure
from nnlab.study.hypotheses import Hypothesis, evaluate_all

STUDY = "schedules"  # the derived schedules; the findings are written beside its results
CONSTANT, INV_T = "schedules-constant", "schedules-inv-t"
ANNEAL = ("schedules-anneal-1e3", "schedules-anneal-1e4", "schedules-anneal-1e5")
DERIVED = {"capped_inv_t": "derived", "inv_t": "derived_smooth"}  # STUDY's schedules
SIGNED = "+.4f"  # the format of a test_acc difference and its interval
BASELINE = "constant"
# each family against the best constant eta; the derived schedule against the tuned 1/t
COMPARISONS = (("derived", BASELINE), ("derived_smooth", BASELINE), ("inv_t", BASELINE),
               ("cosine", BASELINE), ("step", BASELINE), ("derived", "inv_t"))
MARGIN = 0.002  # a tie: within 0.2 points of test_acc (the spec's hypotheses)
ALPHA = 0.05  # the equivalence bound's one-sided level; the hypotheses read 95% intervals


# --- the runs -----------------------------------------------------------------------------

def runs_frame() -> pd.DataFrame:
    """One row per (family, configuration, seed, budget N) from the six studies: family,
    config (its varied values as text), seed, n_steps, status, val_acc, test_acc. The
    budgets are the anneal studies' lengths; a run whose rate depends on the current step
    only is read at each of them (`runs_by_length`). A diverged run keeps the metrics of
    the state it diverged in: a bad result for its configuration, never left out."""
    budgets = [spec_n_steps(load(name)) for name in ANNEAL]
    parts = []
    for name, family in ((CONSTANT, BASELINE), (INV_T, "inv_t"), (STUDY, None)):
        study = load(name)
        runs = runs_by_length(study)
        runs = runs[runs["n_steps"].isin(budgets)].copy()
        if family is None:  # one configuration per schedule
            runs["family"] = runs["schedule"].map(DERIVED)
            base = study.spec.base_config()
            runs["config"] = f"eta={base.eta:g}, inv_t_decay={base.inv_t_decay:g}"
        else:
            runs["family"] = family
            runs["config"] = config_labels(runs, list(study.spec.grid))
        parts.append(runs)
    for name in ANNEAL:
        study = load(name)
        trials = study.trials()
        runs = trials[trials["state"] == "COMPLETE"].copy()
        runs["family"] = runs["schedule"]
        runs["config"] = config_labels(runs, ["eta"])
        runs["n_steps"] = spec_n_steps(study)
        parts.append(runs)
    columns = ["family", "config", "seed", "n_steps", "status", "val_acc", "test_acc"]
    return pd.concat([part[columns] for part in parts], ignore_index=True)


def config_labels(runs: pd.DataFrame, params: list[str]) -> pd.Series:
    """'eta=0.5, inv_t_decay=0.001' per row: the configuration's varied values."""
    return runs[params].apply(lambda row: ", ".join(f"{p}={row[p]:g}" for p in params), axis=1)


def complete_seeds(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The rows of the seeds that have every (family, configuration, N) cell, and the
    seeds kept and left out: a study stopped early is the same design on fewer seeds."""
    cells = frame.groupby(["family", "config", "n_steps"]).ngroups
    per_seed = frame.groupby("seed")[["family", "config", "n_steps"]].apply(
        lambda rows: len(rows.drop_duplicates()))
    seeds = sorted(int(s) for s in per_seed.index if per_seed[s] == cells)
    if len(seeds) < 3:
        raise DataError(f"{STUDY}: {len(seeds)} seed(s) have every family's runs; the paired "
                        "comparison needs 3 (run the six specs of studies/schedules.toml)")
    left_out = sorted(int(s) for s in per_seed.index if per_seed[s] != cells)
    return frame[frame["seed"].isin(seeds)], {"seeds": seeds, "left_out": left_out}


# --- selection on validation: leave one seed out -----------------------------------------

def leave_one_seed_out(val: pd.DataFrame) -> pd.Series:
    """For each seed (the rows of `val`, a seeds x configurations table of val_acc), the
    configuration with the best mean val_acc over the other seeds. A configuration missing
    a value (NaN) on one of the other seeds does not compete (a run with no value never
    wins); ties go to the first column."""
    values = val.to_numpy(dtype=float)
    missing = np.isnan(values)
    filled = np.where(missing, 0.0, values)
    others = (filled.sum(axis=0) - filled) / (len(values) - 1)  # (seeds, configs)
    others[missing.sum(axis=0) - missing > 0] = -np.inf
    return pd.Series(val.columns[others.argmax(axis=1)], index=val.index, name="config")


def tuned(frame: pd.DataFrame) -> pd.DataFrame:
    """Each family's result per (N, seed): the configuration its leave-one-seed-out pick
    chose for that seed, and that seed's val_acc and test_acc there. A family of one
    configuration (the derived schedules) picks it for every seed."""
    rows = []
    for (family, n), runs in frame.groupby(["family", "n_steps"]):
        n_steps = int(n)  # type: ignore[call-overload]  # stubs: a group key is Hashable
        val = runs.pivot(index="seed", columns="config", values="val_acc")
        test = runs.pivot(index="seed", columns="config", values="test_acc")
        picks = leave_one_seed_out(val)
        for seed in picks.index:
            config = picks[seed]
            rows.append({"family": family, "n_steps": n_steps, "seed": int(seed),
                         "config": config, "val_acc": val.loc[seed, config],
                         "test_acc": test.loc[seed, config],
                         "n_configs": int(val.shape[1])})
    return pd.DataFrame(rows)


def family_table(results: pd.DataFrame, frame: pd.DataFrame) -> list[dict]:
    """Per (family, N): mean test_acc over seeds with its 95% t interval, the picks (each
    chosen configuration and for how many seeds), and the configuration with the best mean
    val_acc over all seeds (what a single choice on every seed would be)."""
    records = []
    for (family, n), rows in results.groupby(["family", "n_steps"]):
        n_steps = int(n)  # type: ignore[call-overload]  # stubs: a group key is Hashable
        test = rows["test_acc"].to_numpy(dtype=float)
        low, high = t_interval(test)
        cell = frame[(frame["family"] == family) & (frame["n_steps"] == n)]
        picks = rows["config"].value_counts()
        records.append({
            "family": family, "n_steps": n_steps, "n_seeds": int(test.size),
            "n_configs": int(rows["n_configs"].iloc[0]),
            "test_acc": {"value": float(test.mean()), "low": low, "high": high,
                         "confidence": 0.95},
            "picks": [{"config": str(c), "seeds": int(k)} for c, k in picks.items()],
            "all_seeds_pick": str(cell.groupby("config")["val_acc"].mean().idxmax())})
    return records


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The Student t interval of the mean of `values` (n,)."""
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


# --- paired comparisons -------------------------------------------------------------------

def statistic_name(a: str, b: str, n: int) -> str:
    """'derived-constant.N100000': the name the spec's hypotheses use."""
    return f"{a}-{b}.N{n}"


def compare(results: pd.DataFrame) -> dict[str, dict]:
    """Each of COMPARISONS at each budget: test_acc(a) - test_acc(b) paired by seed, with
    its 95% t interval (`tost_mean_difference` at alpha 0.025: the interval the hypotheses
    read), the TOST against +-MARGIN at ALPHA and its equivalence bound, and
    `paired_difference`'s BCa interval, paired t-test and the seeds where a is higher.
    Keyed by `statistic_name`."""
    found = {}
    for n in sorted(results["n_steps"].unique()):
        at_n = results[results["n_steps"] == n]
        by_family = {f: rows.set_index("seed")["test_acc"] for f, rows in at_n.groupby("family")}
        for a, b in COMPARISONS:
            if a not in by_family or b not in by_family:
                continue
            x, y = by_family[a], by_family[b]
            interval = tost_mean_difference(x, y, None, paired=True, alpha=0.025,
                                            names=(a, b)).interval
            tost = tost_mean_difference(x, y, MARGIN, paired=True, alpha=ALPHA, names=(a, b))
            paired = paired_difference(x, y, names=(a, b))
            found[statistic_name(a, b, int(n))] = {
                "a": a, "b": b, "n_steps": int(n), "n_pairs": paired.n_pairs,
                "difference": interval.to_dict(), "bca": paired.difference.to_dict(),
                "tost": tost.to_dict(), "t_test": paired.t_test.to_dict(),
                "wins": paired.wins}
    return found


def compute_from(frame: pd.DataFrame, hypotheses: tuple[Hypothesis, ...]) -> dict:
    """Every number of the finding from the runs `frame` (`runs_frame`'s columns) and the
    spec's `hypotheses`: {"numbers": findings.json's content, "summaries": printed lines}."""
    frame, design = complete_seeds(frame)
    results = tuned(frame)
    comparisons = compare(results)
    statistics = {name: statistic(c["difference"], "seed", c["n_pairs"])
                  for name, c in comparisons.items()}
    verdicts = evaluate_all(hypotheses, statistics)
    family = Family("schedules: test_acc of each schedule against the best constant eta")
    claims = {}
    for name, c in comparisons.items():
        family.add(name, HypothesisTest(**c["t_test"]))
        claims[name] = (f"{c['a']} and {c['b']} differ in test_acc at N = {c['n_steps']}")
    records = hypothesis_records(verdicts)
    numbers = {
        "design": {**design, "budgets": sorted(int(n) for n in frame["n_steps"].unique()),
                   "margin": MARGIN, "alpha": ALPHA, "n_runs": int(len(frame)),
                   "n_diverged": int((frame["status"] == "diverged").sum())},
        "families": family_table(results, frame),
        "comparisons": comparisons,
        "hypotheses": records,
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
        "summary": {"primary": next((h for h in records if h["primary"]), None)},
    }
    summaries = [f"{name}: {c['difference']['value']:+.4f} [{c['difference']['low']:+.4f}, "
                 f"{c['difference']['high']:+.4f}] ({c['n_pairs']} seeds)"
                 for name, c in comparisons.items()] + [family.summary()]
    return {"numbers": numbers, "summaries": summaries}


def compute() -> dict:
    """Every number of this finding from the six studies' results (read only)."""
    return compute_from(runs_frame(), load(STUDY).spec.hypotheses)


# --- figure and text ----------------------------------------------------------------------

def draw(numbers: dict) -> None:
    """findings/differences.png: each family's test_acc minus the best constant eta's per
    budget, 95% t intervals over seeds, the tie margin shaded."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    against = [c for c in numbers["comparisons"].values() if c["b"] == BASELINE]
    names = sorted({c["a"] for c in against})
    for k, name in enumerate(names):
        rows = sorted((c for c in against if c["a"] == name), key=lambda c: c["n_steps"])
        x = np.array([c["n_steps"] for c in rows]) * 1.08 ** (k - len(names) / 2)
        d = [c["difference"] for c in rows]
        ax.errorbar(x, [e["value"] for e in d], fmt="o-", capsize=3, label=name,
                    yerr=[[e["value"] - e["low"] for e in d], [e["high"] - e["value"] for e in d]])
    ax.axhspan(-MARGIN, MARGIN, color="0.9", label=f"tie margin +-{MARGIN:g}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="budget N (steps)",
           ylabel="test_acc minus the best constant eta's",
           title="Schedules against the best constant eta (paired by seed, 95% CI)")
    ax.legend(fontsize="small")
    save_figure(figure, figure_path(STUDY, "differences.png"))


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/schedules.md)."""
    def family_row(r: dict) -> str:
        picks = "; ".join(f"{p['config']} ({p['seeds']})" for p in r["picks"])
        return (f"| {r['n_steps']} | {r['family']} | {r['n_configs']} | "
                f"{r['test_acc']['value']:.4f} [{r['test_acc']['low']:.4f}, "
                f"{r['test_acc']['high']:.4f}] | {picks} | {r['all_seeds_pick']} |")

    def comparison_row(c: dict) -> str:
        tost = c["tost"]
        return (f"| {c['n_steps']} | {c['a']} - {c['b']} | "
                f"{interval_text(c['difference'], SIGNED)} | "
                f"{tost['bound']:.4f} | {'yes' if tost['equivalent'] else 'no'} | "
                f"{c['wins']} of {c['n_pairs']} |")

    design = numbers["design"]
    primary = numbers["summary"]["primary"]
    answer = ("no hypothesis is marked primary" if primary is None else
              f"the primary prediction ({primary['name']}: {primary['prediction']}) "
              f"**{primary['verdict']}**" + (
                  "" if primary["estimate"] is None else
                  f", estimate {interval_text(primary['estimate'], SIGNED)} over "
                  f"{primary['estimate']['n']} seeds"))
    left_out = (f" Seeds left out (a family's runs missing): "
                f"{', '.join(map(str, design['left_out']))}." if design["left_out"] else "")
    values = {
        "answer": answer,
        "n_seeds": len(design["seeds"]),
        "seeds": f"{design['seeds'][0]}..{design['seeds'][-1]}",
        "left_out": left_out,
        "n_runs": design["n_runs"],
        "n_diverged": design["n_diverged"],
        "budgets": ", ".join(str(n) for n in design["budgets"]),
        "margin": f"{design['margin']:g}",
        "verdicts": "\n".join(verdict_line(h, SIGNED) for h in numbers["hypotheses"]),
        "family_rows": "\n".join(family_row(r) for r in numbers["families"]),
        "comparison_rows": "\n".join(comparison_row(c)
                                     for c in numbers["comparisons"].values()),
        "claims": claims_lines(numbers["claims"]),
        "scale_up": scale_up(
            "more seeds (raise replicates in all six specs: the paired intervals narrow as "
            "1/sqrt(seeds), and a tie within a smaller margin needs them), and budgets "
            "between 10^3 and 10^4, where the derived schedule's knee (step 2097) falls."),
    }
    return render_template("schedules", values)


def main() -> None:
    found = compute()
    numbers = as_written(found["numbers"])
    draw(numbers)
    print(*found["summaries"], sep="\n")
    write_findings(STUDY, render(numbers), numbers)


if __name__ == "__main__":
    run(main)
