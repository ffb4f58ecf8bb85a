"""Question 2, crossed: where does the run-to-run variance of test accuracy come from?

results/crossed-seeds (20 init seeds x 20 order seeds, one run per pair, N = 100..10^4 from
its archive, test predictions at 10^4): the variance components of init seed, order seed
and their interaction at every N (`nnlab.analysis.variance_components`), the finite test
set's part at 10^4 (Jordan's split), the hypotheses of studies/crossed-seeds.toml judged at
10^4, and the prediction they were derived from, recomputed from the final metrics of
results/restarts, restarts-init and restarts-order; the same derivation at N = 10^5 from
restarts-long, restarts-init-long and restarts-order-long, behind the predictions of the
follow-ups studies/crossed-seeds-best.toml (the design at eta_best(10^4)) and
studies/crossed-seeds-long.toml (a sub-grid to N = 10^5), whose hypotheses are judged the
same way once their results exist and listed as declared, not run yet, until then ->
results/crossed-seeds/findings.md, findings.json, findings/components.png.

    python analysis/crossed_seeds.py
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from common import (
    N_TEST,
    as_written,
    ci,
    claims_lines,
    claims_table,
    figure_path,
    final_runs,
    has_runs,
    hypothesis_records,
    load,
    percentile_interval,
    replicate_interval,
    run,
    runs_by_length,
    scale_up,
    statistic,
    verdict_line,
    write_findings,
)
from common import render as render_template
from matplotlib.figure import Figure
from scipy import stats

from nnlab.analysis import (
    Family,
    HypothesisTest,
    TestSetVarianceResult,
    VarianceComponentsResult,
    normality,
    test_set_variance,
    variance_components,
)
from nnlab.errors import NNLabError
from nnlab.report.figures import save_figure
from nnlab.study import Study, StudySpec
from nnlab.study.hypotheses import Estimate, evaluate_all

STUDY = "crossed-seeds"
METRIC = "test_acc"
FACTORS = ("init_seed", "order_seed")
LABELS = {"init_seed": "init", "order_seed": "order", "residual": "init x order"}
# the single-source arms of analysis/restarts.py: both seeds vary, init only, order only
ARMS = {"both": "restarts", "init": "restarts-init", "order": "restarts-order"}
LONG_ARMS = {"both": "restarts-long", "init": "restarts-init-long",
             "order": "restarts-order-long"}
N_DRAWS = 20000  # GCI pivot draws
N_RESAMPLES = 4000  # bootstrap of the single-source derivation
SPECS = Path(__file__).resolve().parent.parent / "studies"
# the declared follow-ups: each study and the prefix of its statistics' names
FOLLOW_UPS = {"crossed-seeds-best": "crossed_best", "crossed-seeds-long": "crossed_long"}
SHORTER = 10000  # crossed-seeds' length: crossed-seeds-long's change in the split is from it


def cells_at(runs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The design's cells at length n: init_seed, order_seed, test_acc."""
    return runs[runs["n_steps"] == n][[*FACTORS, METRIC]]


def f_test(result: VarianceComponentsResult, factor: str) -> HypothesisTest:
    """The ANOVA F test of "the factor's component is 0": MS_factor / MS_residual against
    F(df_factor, df_residual)."""
    (ms, df), (ms_res, df_res) = (result.mean_squares[k] for k in (factor, "residual"))
    f = ms / ms_res
    return HypothesisTest("F", f, float(stats.f.sf(f, df, df_res)))


def single_source_derivation(arms: dict[str, str] = ARMS, seed: int = 0) -> dict:
    """The components the single-source arms predict at their length (studies/crossed-
    seeds.toml's header): an arm varying one source at one level of the other has expected
    variance s2_source + s2_interaction, the arm varying both s2_init + s2_order +
    s2_interaction. arms: {"both", "init", "order": the results folder of each}. Bootstrap
    over each arm's runs (independent arms)."""
    values = {key: final_runs(name).query("status == 'ok'")[METRIC].to_numpy()
              for key, name in arms.items()}
    rng = np.random.default_rng(seed)
    samples = {key: np.vstack([v, v[rng.integers(0, v.size, (N_RESAMPLES, v.size))]])
               for key, v in values.items()}  # row 0: the sample itself
    var = {key: s.var(axis=1, ddof=1) for key, s in samples.items()}
    derived = {"init_seed": var["both"] - var["order"], "order_seed": var["both"] - var["init"],
               "residual": var["init"] + var["order"] - var["both"]}
    derived["total"] = var["both"]
    derived |= {f"share_{k}": derived[k] / var["both"] for k in LABELS}
    derived["single_sum_over_both"] = (var["init"] + var["order"]) / var["both"]
    out = {}
    for key, boot in derived.items():
        low, high = percentile_interval(boot[1:])
        out[key] = {"value": float(boot[0]), "low": low, "high": high, "confidence": 0.95}
    return {"estimates": out, "n_runs": {arms[k]: int(v.size) for k, v in values.items()},
            "variances": {arms[k]: float(var[k][0]) for k in var},
            "n_steps": int(final_runs(arms["both"])["n_steps"].iloc[0])}


def diagonal_check(runs: pd.DataFrame, n: int, reference: str = ARMS["both"]) -> dict:
    """Cell (s, s) has the initial weights and data order of seed s of `reference` (a study
    of one configuration at the same eta, seed s varying both): its metrics at the
    reference's length equal run s's, bit for bit, if the design is what it says."""
    restarts = final_runs(reference).set_index("seed")
    cells = runs[(runs["n_steps"] == n) & (runs["init_seed"] == runs["order_seed"])]
    cells = cells.set_index("init_seed")
    common = cells.index.intersection(restarts.index)
    equal = [bool((cells.loc[s, ["val_acc", METRIC]].to_numpy(float)
                   == restarts.loc[s, ["val_acc", METRIC]].to_numpy(float)).all())
             for s in common]
    return {"n_steps": n, "n_cells": len(common), "n_equal": sum(equal),
            "restarts_n_steps": int(restarts["n_steps"].iloc[0])}


def prefix_check(runs: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """The runs of a longer study whose cells are some of `reference`'s (the same seeds,
    eta and evaluations up to the reference's length): each cell's val_acc and test_acc at
    every length both evaluate equal the reference's, bit for bit, if training up to that
    length does not depend on how long the run goes on. Both: one row per run and length."""
    keys = [*FACTORS, "n_steps"]
    both = runs.merge(reference, on=keys, suffixes=("", "_reference"))
    equal = np.ones(len(both), dtype=bool)
    for metric in ("val_acc", METRIC):
        equal &= both[metric].to_numpy(float) == both[f"{metric}_reference"].to_numpy(float)
    return {"n_cells": int(both.groupby(list(FACTORS)).ngroups),
            "lengths": sorted(int(n) for n in both["n_steps"].unique()),
            "n_values": len(both), "n_equal": int(equal.sum())}


def complete_design(study: Study) -> tuple[pd.DataFrame, dict]:
    """The runs (one row per run and length) of the order seeds that every planned init
    seed has finished, and what was planned and used: the grid enqueues the order seeds one
    after another, so a study stopped early is a smaller crossed design of whole columns."""
    planned = {factor: list(study.spec.grid[factor]) for factor in FACTORS}
    runs = runs_by_length(study)
    not_ok = runs[runs["status"] != "ok"]
    if len(not_ok):
        raise NNLabError(f"{study.spec.name}: {not_ok['trial'].nunique()} runs did not finish "
                         "ok; the crossed design needs every cell")
    init_seeds = runs.groupby("order_seed")["init_seed"].nunique()
    complete = sorted(int(s) for s in init_seeds.index
                      if init_seeds[s] == len(planned["init_seed"]))
    used = runs[runs["order_seed"].isin(complete)]
    return used, {"planned_init": len(planned["init_seed"]),
                  "planned_order": len(planned["order_seed"]), "order_seeds_used": complete,
                  "runs_finished": int(runs["trial"].nunique())}


def components_along(runs: pd.DataFrame) -> dict[int, VarianceComponentsResult]:
    """The variance components at every length the runs were evaluated at (the pivots of
    length N drawn with seed N)."""
    lengths = sorted(int(n) for n in runs["n_steps"].unique())
    return {n: variance_components(cells_at(runs, n), METRIC, *FACTORS, n_draws=N_DRAWS,
                                   seed=n) for n in lengths}


def beyond_test_set(final: VarianceComponentsResult, split: TestSetVarianceResult
                    ) -> dict:
    """The residual component minus the finite test set's part (Jordan's split over the
    same runs): the interaction's GCI pivots minus a normal draw of the test-set part with
    its bootstrap standard error."""
    t = split.test_set
    test_set_draws = np.random.default_rng(1).normal(
        t.value, (t.high - t.low) / (2 * stats.norm.ppf(0.975)), N_DRAWS)
    return {"value": final["residual"].value.value - t.value,
            **replicate_interval(final.draws[:, 2] - test_set_draws), "confidence": 0.95}


def share_change(earlier: VarianceComponentsResult, later: VarianceComponentsResult,
                 component: str = "residual") -> dict:
    """The change of a component's share of the total between two lengths of the same
    runs (later minus earlier), its interval from the two lengths' pivots taken as
    independent (`components_along` draws each length's with its own seed; pivots drawn
    with one seed would be perfectly correlated and the interval far too narrow): runs
    read at both lengths make the two shares correlated, positively where the split
    changes slowly, so the interval is wider than an exact one would be."""
    k = [c.name for c in later.components].index(component)

    def shares(result: VarianceComponentsResult) -> np.ndarray:
        return result.draws[:, k] / result.draws.sum(axis=1)

    return {"value": later.components[k].share.value - earlier.components[k].share.value,
            **replicate_interval(shares(later) - shares(earlier), later.confidence),
            "confidence": later.confidence}


def split_statistics(prefix: str, final: VarianceComponentsResult, beyond: dict,
                     n_cells: int) -> dict[str, Estimate]:
    """The statistics a crossed study's hypotheses name, at its longest length:
    <prefix>.share_residual, .share_init, .sigma2_init, .sigma2_order (GCI) and
    .residual_minus_test_set (`beyond_test_set`)."""
    unit = f"cell ({final.n_rows} init x {final.n_cols} order seeds)"

    return {f"{prefix}.share_residual": statistic(final["residual"].share.to_dict(), unit,
                                                 n_cells),
            f"{prefix}.share_init": statistic(final["init_seed"].share.to_dict(), unit, n_cells),
            f"{prefix}.sigma2_init": statistic(final["init_seed"].value.to_dict(), unit,
                                               n_cells),
            f"{prefix}.sigma2_order": statistic(final["order_seed"].value.to_dict(), unit,
                                                n_cells),
            f"{prefix}.residual_minus_test_set": statistic(beyond, unit, n_cells)}


@dataclass(frozen=True)
class CrossedFit:
    """A crossed study's complete runs and design (`complete_design`), its components at
    every length, and at the longest: the test-set split over every run's predictions, the
    interaction beyond it and the statistics its hypotheses name (`split_statistics`)."""

    runs: pd.DataFrame
    design: dict
    results: dict[int, VarianceComponentsResult]
    longest: int
    split: TestSetVarianceResult
    beyond: dict
    n_cells: int
    statistics: dict[str, Estimate]

    @property
    def final(self) -> VarianceComponentsResult:
        return self.results[self.longest]


def fit_crossed(study: Study, prefix: str) -> CrossedFit:
    """`CrossedFit` of `study`, its statistics named <prefix>.*."""
    runs, design = complete_design(study)
    results = components_along(runs)
    longest = max(results)
    predictions = study.predictions()
    split = test_set_variance(predictions[predictions["trial"].isin(runs["trial"])],
                              unit="run x example")
    beyond = beyond_test_set(results[longest], split)
    n_cells = len(cells_at(runs, longest))
    return CrossedFit(runs, design, results, longest, split, beyond, n_cells,
                      split_statistics(prefix, results[longest], beyond, n_cells))


def changed_share(k: int) -> Callable[[np.ndarray], np.ndarray]:
    """(m, 3) components -> (m,) the share of the total an arm that varies factor k only
    has in expectation: that factor's main effect plus the interaction."""
    def share(c: np.ndarray) -> np.ndarray:
        return (c[:, k] + c[:, 2]) / c.sum(axis=1)
    return share


def compute() -> dict:
    """Every number of this finding (read only): {"numbers": findings.json's content,
    "figures": what the figure draws, "summaries": printed lines}."""
    study = load(STUDY)
    # the components at every length, the finite test set at the longest (every run's
    # predictions), and the declared hypotheses judged there
    fit = fit_crossed(study, "crossed")
    runs, design, results, longest, final = (fit.runs, fit.design, fit.results, fit.longest,
                                             fit.final)
    lengths, split, beyond, n_cells = sorted(results), fit.split, fit.beyond, fit.n_cells
    verdicts = evaluate_all(study.spec.hypotheses, fit.statistics)

    # exploratory: the main effects' F tests at every length, and the normality the GCI
    # assumes, on the interaction residuals at the longest length
    family = Family("finding 2b: crossed seeds")
    claims = {}
    for n, result in results.items():
        for factor in FACTORS:
            name = f"F test, {LABELS[factor]}, N = {n}"
            family.add(name, f_test(result, factor))
            claims[name] = f"the {LABELS[factor]} seed has a main effect at N = {n}"
    table = cells_at(runs, longest).pivot(index="init_seed", columns="order_seed",
                                          values=METRIC).to_numpy()
    interaction = (table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True)
                   + table.mean())
    residual_normality = normality(interaction.ravel(), name=f"interaction at N={longest}")
    name = f"Shapiro-Wilk, interaction residuals, N = {longest}"
    family.add(name, residual_normality.shapiro)
    claims[name] = f"the interaction residuals are not normal at N = {longest}"

    derivation = single_source_derivation()
    numbers = {
        "design": {"n_init": final.n_rows, "n_order": final.n_cols, "n_runs": n_cells,
                   "lengths": lengths, "method": final.to_dict()["method"], **design},
        "components": {str(n): r.to_dict() for n, r in results.items()},
        "test_set": split.to_dict() | {"example_error_rate": None},
        "residual_minus_test_set": beyond,
        "hypotheses": hypothesis_records(verdicts),
        "single_source_derivation": derivation,
        "one_seed_changed": {  # the expected variance of an arm that varies one seed
            factor: final.derived(changed_share(k)).to_dict()
            for k, factor in enumerate(FACTORS)},
        "interaction_normality": residual_normality.to_dict(),
        "diagonal": diagonal_check(runs, longest),
        "claims": claims_table(family, claims),
        "family": family.to_dict(),
        "summary": {"n": longest, "n_runs": n_cells,
                    "shares": {k: final[k].share.to_dict() for k in LABELS},
                    "primary": next(v.verdict for v in verdicts if v.hypothesis.primary)},
        "long_arms_derivation": single_source_derivation(LONG_ARMS),
        "follow_ups": [follow_up(name, prefix, runs) for name, prefix in FOLLOW_UPS.items()],
    }
    return {"numbers": numbers, "figures": results,
            "summaries": [final.summary(), split.summary()]}


def planned(spec: StudySpec) -> dict:
    """What a crossed spec plans: eta, its length, the two factors' seeds, the runs."""
    config = spec.base_config()
    seeds = {factor: [int(s) for s in spec.grid[factor]] for factor in FACTORS}
    return {"eta": config.eta, "n_steps": config.n_steps, **seeds,
            "n_runs": len(seeds["init_seed"]) * len(seeds["order_seed"])}


def follow_up(name: str, prefix: str, crossed: pd.DataFrame) -> dict:
    """A declared follow-up of this design (FOLLOW_UPS): its plan and its hypotheses,
    judged as crossed-seeds' are when results/<name> holds its runs (the components at
    every length, the test-set split at its longest, and for a study longer than
    crossed-seeds the change of the interaction's share since N = SHORTER and the checks
    that its first steps are crossed-seeds' runs (`crossed`) and its diagonal cells
    restarts-long's), else each "not evaluated: <name> has not run yet"."""
    if not has_runs(name):
        spec = StudySpec.from_toml(SPECS / f"{name}.toml")
        reason = f"{name} has not run yet"
        verdicts = evaluate_all(spec.hypotheses, {h.statistic: reason for h in spec.hypotheses})
        return {"study": name, "run": False, "planned": planned(spec),
                "hypotheses": hypothesis_records(verdicts)}
    study = load(name)
    fit = fit_crossed(study, prefix)
    runs, design, results, longest, final = (fit.runs, fit.design, fit.results, fit.longest,
                                             fit.final)
    split, beyond, n_cells, statistics = fit.split, fit.beyond, fit.n_cells, fit.statistics
    found: dict = {"study": name, "run": True, "planned": planned(study.spec),
                   "design": {"n_init": final.n_rows, "n_order": final.n_cols,
                              "n_runs": n_cells, "lengths": sorted(results), **design},
                   "components": {str(n): r.to_dict() for n, r in results.items()},
                   "test_set": split.to_dict() | {"example_error_rate": None},
                   "residual_minus_test_set": beyond}
    if longest > SHORTER and SHORTER in results:
        change = share_change(results[SHORTER], final)
        statistics[f"{prefix}.share_residual_change"] = statistic(
            change, f"cell ({final.n_rows} init x {final.n_cols} order seeds)", n_cells)
        found |= {"share_residual_change": change,
                  "prefix": prefix_check(runs, crossed),
                  "diagonal": diagonal_check(runs, longest, LONG_ARMS["both"])}
    found["hypotheses"] = hypothesis_records(evaluate_all(study.spec.hypotheses, statistics))
    return found


def draw(results: dict[int, VarianceComponentsResult]) -> None:
    """findings/components.png: each component as a std vs N with its GCI (log-log), and
    its share of the total."""
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    ax_std, ax_share = figure.subplots(1, 2)
    lengths = np.array(sorted(results))
    for k, (name, label) in enumerate(LABELS.items()):
        parts = [results[n].components[k] for n in lengths]
        std = np.array([[c.std.value, c.std.low, c.std.high] for c in parts])
        share = np.array([[c.share.value, c.share.low, c.share.high] for c in parts])
        shift = lengths * 1.04 ** (k - 1)  # side by side, not on top of each other
        for ax, values in ((ax_std, std), (ax_share, share)):
            ax.errorbar(shift, values[:, 0], yerr=[values[:, 0] - values[:, 1],
                                                   values[:, 2] - values[:, 0]],
                        fmt="o-", capsize=3, label=f"{label} ({name})")
    total = np.sqrt([results[n].total.value for n in lengths])
    ax_std.plot(lengths, total, "k:", label="all (sqrt of the total)")
    means = np.array([results[n].mean for n in lengths])
    ax_std.plot(lengths, np.sqrt(means * (1 - means) / N_TEST), "k--",
                label="binomial test-set std (upper bound)")
    ax_std.set(xscale="log", yscale="log", xlabel="N (steps)", ylabel="std of test_acc",
               title="Variance components as std (95% GCI)")
    ax_share.set(xscale="log", xlabel="N (steps)", ylabel="share of the total variance",
                 ylim=(0, 1), title="Shares of the total (95% GCI)")
    ax_std.legend(fontsize="small")
    save_figure(figure, figure_path(STUDY, "components.png"))


def component(found: dict, name: str) -> dict:
    """The component `name` of a `VarianceComponentsResult.to_dict()`."""
    return next(c for c in found["components"] if c["name"] == name)


def described(c: dict) -> str:
    """A component's dict as a sentence: value, std, share, whether its interval holds 0."""
    held = "excludes 0" if c["value"]["low"] > 0 else "holds 0"
    untruncated = (f", untruncated {c['untruncated']:.2e}" if c["untruncated"] < 0
                   else "")
    return (f"{ci(c['value'], '.2e')} (std {c['std']['value']:.4f}{untruncated}; "
            f"{ci(c['share'], '.0f', 100, '%')} of the total; its interval {held})")


def split_text(found: dict) -> str:
    """The three components of a `VarianceComponentsResult.to_dict()`, described."""
    return "; ".join(f"{LABELS[k]} {described(component(found, k))}" for k in LABELS)


def table_row(n: int, found: dict) -> str:
    """A row of the table along N: each component's std and share, the total's std."""
    cells = [f"{ci(component(found, k)['std'], '.4f')} / "
             f"{100 * component(found, k)['share']['value']:.0f}%" for k in LABELS]
    return (f"| {n} | {found['mean']:.4f} | " + " | ".join(cells)
            + f" | {np.sqrt(found['total']['value']):.4f} |")


def derivation_text(derivation: dict) -> str:
    """The components the single-source arms predict (`single_source_derivation`), a line."""
    derived = derivation["estimates"]
    return (f"at N = {derivation['n_steps']} ("
            + ", ".join(f"{k} {v}" for k, v in derivation["n_runs"].items())
            + " runs): " + "; ".join(
                f"{LABELS[k]} {ci(derived[k], '.2e')}, "
                f"{ci(derived['share_' + k], '.0f', 100, '%')} of the total" for k in LABELS)
            + f"; (var(init only) + var(order only)) / var(both) = "
            f"{ci(derived['single_sum_over_both'], '.2f')}")


def follow_up_text(found: dict) -> str:
    """A declared follow-up (`follow_up`) as a paragraph and its hypotheses' lines."""
    plan = found["planned"]
    name = found["study"]
    seeds = {k: f"{min(v)}-{max(v)}" for k, v in plan.items() if k in FACTORS}
    head = (f"**{name}** (`studies/{name}.toml`): eta = {plan['eta']:g}, "
            f"{len(plan['init_seed'])} init seeds ({seeds['init_seed']}) x "
            f"{len(plan['order_seed'])} order seeds ({seeds['order_seed']}), {plan['n_runs']} "
            f"runs of {plan['n_steps']} steps. ")
    if not found["run"]:
        head += ("Declared, not run yet: `nnlab run studies/" + name + ".toml --jobs 2` (its "
                 "run time and the reasoning behind each prediction: the spec's header), then "
                 f"`nnlab archive results/{name} --predictions all` and `python "
                 "analysis/crossed_seeds.py` judge its predictions:")
    else:
        design = found["design"]
        longest = design["lengths"][-1]
        ran = ("All ran" if design["n_runs"] == plan["n_runs"] else
               f"{design['n_runs']} of them ran ({design['n_init']} x {design['n_order']})")
        head += (f"{ran}. At "
                 f"N = {longest}: {split_text(found['components'][str(longest)])}; the "
                 "interaction minus the finite test set's part "
                 f"{ci(found['residual_minus_test_set'], '.2e')}.")
        if "share_residual_change" in found:
            prefix, diagonal = found["prefix"], found["diagonal"]
            head += (f" The interaction's share changed by "
                     f"{ci(found['share_residual_change'], '.2f')} from N = {SHORTER} to "
                     f"{longest} (the same runs). Checks: {prefix['n_equal']} of the "
                     f"{prefix['n_values']} values of {prefix['n_cells']} cells at N = "
                     f"{', '.join(map(str, prefix['lengths']))} equal crossed-seeds' bit for "
                     f"bit; {diagonal['n_equal']} of the {diagonal['n_cells']} cells (s, s) "
                     f"equal restarts-long's run s at N = {diagonal['n_steps']}.")
        head += " Its predictions:"
    lines = [verdict_line(h) if found["run"] else
             f"- **{h['name']}** ({'primary' if h['primary'] else 'secondary'}): "
             f"{h['prediction']} (basis: {h['note']})." for h in found["hypotheses"]]
    return head + "\n\n" + "\n".join(lines)


def render(numbers: dict) -> str:
    """findings.md from findings.json's `numbers` (templates/crossed_seeds.md)."""
    design = numbers["design"]
    lengths = design["lengths"]
    longest = lengths[-1]
    components = numbers["components"]
    final = components[str(longest)]
    derivation = numbers["single_source_derivation"]
    derived = derivation["estimates"]
    split = numbers["test_set"]

    def row(n: int) -> str:
        return table_row(n, components[str(n)])

    def at(n: int) -> str:
        return split_text(components[str(n)])

    verdicts = "\n".join(
        f"- **{h['name']}** ({'primary' if h['primary'] else 'secondary'}): "
        f"{h['prediction']}; estimate {h['estimate']['value']:.3g} [{h['estimate']['low']:.3g}, "
        f"{h['estimate']['high']:.3g}] (GCI; {h['estimate']['unit']}, n = "
        f"{h['estimate']['n']}): **{h['verdict']}** (basis: {h['note']})."
        for h in numbers["hypotheses"])
    comparison = "\n".join(
        f"| {LABELS[k]} | {ci(derived[k], '.2e')} | {ci(derived['share_' + k], '.0f', 100, '%')}"
        f" | {ci(component(final, k)['value'], '.2e')} | "
        f"{ci(component(final, k)['share'], '.0f', 100, '%')} |" for k in LABELS)
    diagonal = numbers["diagonal"]
    normal = numbers["interaction_normality"]
    share = {k: component(final, k)["share"]["value"] for k in LABELS}
    largest = max(LABELS, key=lambda k: share[k])
    reading = (
        "So the two sources do not add: most of what a seed does depends on the value of the "
        "other seed" if largest == "residual" else
        f"The largest part is the {LABELS[largest]} seed's main effect, what that seed does "
        "on average over the other seed's values")
    planned = design["planned_init"] * design["planned_order"]
    stopped = (
        "" if design["n_runs"] == planned else
        f" **The study was stopped before all its runs had finished**: {design['runs_finished']}"
        f" of its {planned} runs had, and the analysis uses the {design['n_order']} order seeds "
        f"({', '.join(map(str, design['order_seeds_used']))}) that every init seed had "
        f"finished, a balanced {design['n_init']} x {design['n_order']} crossed design of "
        f"{design['n_runs']} runs (the grid runs the order seeds one after another). The "
        f"hypotheses were declared for the {design['planned_init']} x "
        f"{design['planned_order']} design and are judged on this one; the order seed's "
        f"component rests on {design['n_order']} levels. `nnlab run "
        "studies/crossed-seeds.toml --jobs 2` finishes the study, keeping these runs.")
    shares = {n: component(components[str(n)], "residual")["share"]["value"]
              for n in lengths}
    main_until = max((n for n in lengths if shares[n] < 0.5), default=None)
    along = (f"The interaction's share of the variance goes from {100 * shares[lengths[0]]:.0f}%"
             f" at N = {lengths[0]} to {100 * shares[longest]:.0f}% at N = {longest}"
             + (f"; up to N = {main_until} the two main effects together carry more than "
                "half of it" if main_until else ""))
    inside = sum(derived[k]["low"] <= component(final, k)["value"]["value"] <= derived[k]["high"]
                 for k in LABELS)
    widths = [(derived[k]["high"] - derived[k]["low"])
              / (component(final, k)["value"]["high"] - component(final, k)["value"]["low"])
              for k in LABELS]
    changed = numbers["one_seed_changed"]
    values = {
        "stopped": stopped, "along": along, "inside": inside,
        "narrower": f"{min(widths):.1f}-{max(widths):.1f}",
        "init_changed": ci(changed["init_seed"], ".0f", 100, "%"),
        "order_changed": ci(changed["order_seed"], ".0f", 100, "%"),
        "main_share": f"{100 * (share['init_seed'] + share['order_seed']):.0f}%",
        "n_init": design["n_init"], "n_order": design["n_order"],
        "n_runs": design["n_runs"],
        "lengths": ", ".join(map(str, lengths)), "longest": longest,
        "verdicts": verdicts,
        "at_longest": at(longest),
        "at_1000": at(1000) if 1000 in lengths else "not evaluated",
        "table": "\n".join(row(n) for n in lengths),
        "interaction_share": f"{100 * share['residual']:.0f}%",
        "order_share": f"{100 * share['order_seed']:.0f}%",
        "init_share": f"{100 * share['init_seed']:.0f}%", "reading": reading,
        "split_test_set": ci(split["test_set"], ".2e"),
        "split_distribution": ci(split["distribution"], ".2e"),
        "test_set_share": ci(split["share_test_set"], ".0f", 100, "%"),
        "beyond": ci(numbers["residual_minus_test_set"], ".2e"),
        "derived_n_steps": derivation["n_steps"],
        "derived_runs": ", ".join(f"{k} {v}" for k, v in derivation["n_runs"].items()),
        "single_sum": ci(derived["single_sum_over_both"], ".2f"),
        "comparison": comparison,
        "diagonal": (f"{diagonal['n_equal']} of the {diagonal['n_cells']} cells (s, s) equal "
                     f"restarts' run s in val_acc and test_acc at N = {diagonal['n_steps']}, "
                     "bit for bit" if diagonal["n_steps"] == diagonal["restarts_n_steps"]
                     else "not checked (the lengths differ)"),
        "normal_verdict": normal["verdict"].rstrip("."),
        "claims": claims_lines(numbers["claims"]),
        "scale_up": scale_up(
            "more levels of each factor (the main effects' intervals rest on 20 levels, 19 "
            "df, and narrow about as 1/sqrt(levels)); a second run of a cell would repeat it bit "
            "for bit, so replicates add nothing here; the two declared follow-ups above "
            "say whether the split depends on the learning rate or the length."),
        "long_arms": derivation_text(numbers["long_arms_derivation"]),
        "follow_ups": "\n\n".join(follow_up_text(f) for f in numbers["follow_ups"]),
    }
    return render_template("crossed_seeds", values)


def main() -> None:
    found = compute()
    draw(found["figures"])
    print(*found["summaries"], sep="\n")
    numbers = as_written(found["numbers"])
    write_findings(STUDY, render(numbers), numbers)


if __name__ == "__main__":
    run(main)
