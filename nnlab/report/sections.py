"""Which analyses apply to a study, run on its results: one Section each.

A section applies when the study varies what the analysis needs:
- learning curves: every study with complete trials;
- eta_best (and the power law eta_best = a N^-b): eta varied over >= 3 values, >= 2 seeds;
  the power law when the training length (n_steps or epochs) is varied too, or when one run
  per (configuration, seed) is read at several lengths, its eval_steps (a learning rate
  that depends on the current step only: see `nnlab.study.lengths`);
- normality: >= 3 replicates; variance: >= 2 replicates (variance vs N and its floor when
  the training length varies, either way; the finite-test-set share from the predictions,
  which are the runs' final ones, its intervals over runs and test examples);
- noise: the `noise` field varied, with "none" among its values (arms whose seed sets
  overlap compared seed by seed, with the paired methods; beside each comparison the std
  ratios and mean differences it excludes at 95% and those it detects with 80% power);
- errors and calibration: stored test predictions (intervals over runs and test images).
Tests of one question (normality per configuration, noise arms against none) are shown
with Holm-adjusted p-values beside the raw ones. Every interval names its unit of
replication and n; each has a coverage test at the studies' sizes (docs/analysis.md).
A section that does not apply raises NotApplicable with the reason, shown in the report.
Analyses work on the best configuration (ranked on the objective, a validation metric)
where one configuration is needed; test metrics are only reported, never used to choose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from nnlab import analysis
from nnlab.analysis import Estimate
from nnlab.analysis.learning_rate import EDGE_SHARE_MAX
from nnlab.analysis.power_law import MIN_HEADLINE_POINTS, MIN_R_SQUARED
from nnlab.analysis.variance import MIN_N_VALUES_FOR_FIT
from nnlab.errors import ConfigError, InsufficientData
from nnlab.report import figures
from nnlab.report.figures.classic import lr_sweep_figure
from nnlab.report.figures.curves import learning_curves_figure
from nnlab.report.study_data import data_record
from nnlab.report.summaries import (
    StudyResults,
    best_config,
    configuration_table,
    curve_bands,
    metric_ci,
    ranked_configs,
)
from nnlab.study.lengths import prefix_lengths, prefix_refusal, runs_by_length, schedules
from nnlab.study.spec import StudySpec
from nnlab.study.status import format_params, summarize

N_COLUMNS = ("n_steps", "epochs")  # the training length N
MAX_TABLE_ROWS = 30
MAX_CURVE_CONFIGS = 8
MAX_FACETS = 6
STALLED_ACCURACY = 0.2  # twice chance on MNIST's 10 classes: a run this bad never learnt


class NotApplicable(Exception):
    """An analysis does not apply to this study; the message says why."""


@dataclass(frozen=True)
class Options:
    """Settings shared by every analysis of a report."""

    n_resamples: int = 2000
    seed: int = 0
    confidence: float = 0.95
    train: bool = True  # allow figures that train a network (the inverse query)

    def __post_init__(self) -> None:
        if isinstance(self.n_resamples, bool) or not isinstance(self.n_resamples, int) or (
                self.n_resamples < 100):
            raise ConfigError("n_resamples", "an integer >= 100", self.n_resamples)
        if not 0.5 <= self.confidence < 1:
            raise ConfigError("confidence", "a level in [0.5, 1)", self.confidence)

    @property
    def level(self) -> str:
        return f"{100 * self.confidence:g}%"


@dataclass(frozen=True)
class FigureItem:
    """One figure file, figures/<name><suffix>, written by `write(path)`."""

    name: str
    caption: str
    write: Callable[[Path], object]
    suffix: str = ".png"

    @classmethod
    def of(cls, name: str, caption: str, figure) -> FigureItem:
        return cls(name, caption, lambda path: figures.save_figure(figure, path))


@dataclass(frozen=True)
class Table:
    caption: str
    frame: pd.DataFrame  # cells already formatted as text


@dataclass
class Section:
    key: str
    title: str
    intro: str
    findings: list[str] = field(default_factory=list)  # summaries: numbers with CI and n
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # the analyses' to_dict(), for report.json


# --- formatting ------------------------------------------------------------------------------


def fmt(value: float, spec: str = ".4f") -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:{spec}}"


def fmt_ci(estimate: Estimate, spec: str = ".4f") -> str:
    """'0.9571 [0.9550, 0.9592]' (the interval omitted when it is undefined, n < 2)."""
    if not (np.isfinite(estimate.low) and np.isfinite(estimate.high)):
        return fmt(estimate.value, spec)
    return f"{fmt(estimate.value, spec)} [{fmt(estimate.low, spec)}, {fmt(estimate.high, spec)}]"


def fmt_p(test: analysis.HypothesisTest) -> str:
    return test.p_text.removeprefix("p=")


def seed_mean(runs: pd.DataFrame, metric: str, options: Options) -> Estimate:
    """Mean of `metric` over the rows `runs` (one per run) with its t interval."""
    return metric_ci(runs[metric].to_numpy(), metric, options.confidence)


# --- study structure -------------------------------------------------------------------------


def length_column(results: StudyResults) -> str | None:
    """The varied training length (n_steps or epochs), if any."""
    return next((c for c in N_COLUMNS if c in results.varied), None)


@dataclass(frozen=True)
class Lengths:
    """The complete runs at each training length, for the sections that compare lengths.

    frame: one row per (run, training length N), N in column `column`.
    from_curves: the lengths are read at the evaluation steps of one run per (configuration,
        seed) (`nnlab.study.lengths`), not given by runs of each length.
    note: where the lengths come from, for the section's intro ("" when the study varies
        the length itself).
    """

    frame: pd.DataFrame
    column: str
    from_curves: bool
    note: str


def runs_per_length(results: StudyResults) -> Lengths:
    """The varied training length (n_steps or epochs) if any; else, for runs that can be
    read at their evaluation steps, one row per (run, evaluated step N) with N in n_steps;
    else the base config's n_steps or epochs as a constant column."""
    varied = length_column(results)
    if varied is not None:
        return Lengths(results.complete, varied, False, "")
    spec = results.spec
    refusal = prefix_refusal(spec)
    if refusal is None:
        frame = runs_by_length(spec, results.complete, results.curves)
        return Lengths(frame, "n_steps", True, prefix_note(spec, prefix_lengths(spec)))
    base = spec.base_config()
    name = "n_steps" if base.n_steps is not None else "epochs"
    return Lengths(results.complete.assign(**{name: getattr(base, name)}), name, False,
                   f"One training length, the end of the runs: they are not read at several "
                   f"steps ({refusal}).")


def prefix_note(spec: StudySpec, lengths: list[int]) -> str:
    """Says that the lengths are read from the curves and why that equals runs of each
    length."""
    return (f"The training lengths N = {', '.join(map(str, lengths))} are read from the "
            f"curves: one run of {run_length(spec)} per (configuration, seed), evaluated at "
            "each N, gives the result of a run of length N, bit for bit, because nothing in "
            f"the run depends on how long it goes on: the learning rate "
            f"({', '.join(schedules(spec))}) depends on the current step only, the data "
            "order and the noise are drawn step by step, the divergence rule looks only at "
            "past losses and evaluations never touch the weights. A run that diverged at "
            "step k counts as diverged for every N >= k.")


def run_length(spec: StudySpec) -> str:
    """The base config's length as text: '10000 steps' or '5 epochs'."""
    base = spec.base_config()
    return f"{base.n_steps} steps" if base.n_steps is not None else f"{base.epochs:g} epochs"


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "ok"]


def groups_of(results: StudyResults, frame: pd.DataFrame, exclude: tuple[str, ...],
              limit: int) -> tuple[list[tuple[str, pd.DataFrame]], int]:
    """Split `frame` by the varied fields other than `exclude`, the best configuration's
    group first: ([(label, rows)], number of groups left out beyond `limit`)."""
    others = [name for name in results.varied if name not in exclude]
    if not others:
        return [("", frame)], 0
    best = results.complete.loc[results.complete["config"] == best_config(results), others]
    best_key = tuple(best.iloc[0]) if len(best) else None
    grouped = list(frame.groupby(others, sort=True))
    grouped.sort(key=lambda item: item[0] != best_key)
    labelled = [(format_params(dict(zip(others, key, strict=True))), rows)
                for key, rows in grouped]
    return labelled[:limit], max(0, len(labelled) - limit)


# --- sections --------------------------------------------------------------------------------


def overview_section(results: StudyResults, options: Options) -> Section:
    """Counts, the best configuration, and the table of configurations."""
    spec = results.spec
    section = Section("overview", "Trials and configurations",
                      f"Every configuration with its seed mean, the {options.level} t interval "
                      f"of that mean, the standard deviation over seeds and n (runs). "
                      f"Configurations are ranked on the objective, {spec.objective} (a "
                      "validation metric); test accuracy is reported, never used to choose.")
    summary = summarize(spec, results.trials)
    pruning = ("pruned",) if spec.pruner != "none" else ()
    counts = {key: summary[key] for key in ("planned", "complete", "diverged", *pruning,
                                             "failed", "failed_attempts", "running", "waiting")}
    section.data["counts"] = counts
    section.findings.append(
        f"{counts['complete']} of {counts['planned']} planned runs complete "
        f"({counts['diverged']} diverged); "
        + (f"{counts['pruned']} pruned (stopped early by the study's pruner: left out of "
           "every analysis); " if pruning else "")
        + f"{counts['failed']} failed "
        f"({counts['failed_attempts']} failed attempts in all, retried ones included); "
        f"{counts['running']} running, {counts['waiting']} waiting.")
    table = configuration_table(results, options.confidence)
    if table.empty:
        section.notes.append("No trial is complete yet: nothing to analyse.")
        return section
    best = table.iloc[0]
    objective = spec.objective
    section.findings.append(
        f"Best configuration (on {objective}): {best['config']} — {objective} "
        f"{fmt_ci(_row_estimate(best, objective, options))}, test_acc "
        f"{fmt_ci(_row_estimate(best, 'test_acc', options))} "
        f"(seed means, {options.level} CI, n={best['n_seeds']} seeds).")
    section.data["configurations"] = table.to_dict(orient="records")
    metrics = list(dict.fromkeys([objective, "test_acc"]))
    shown = pd.DataFrame({
        "configuration": table["config"], "n": table["n_seeds"], "diverged": table["diverged"],
        **({"pruned runs": table["pruned"]} if spec.pruner != "none" else {}),
        **{f"{m} mean [{options.level} CI]": [fmt_ci(_row_estimate(r, m, options))
                                             for _, r in table.iterrows()] for m in metrics},
        **{f"{m} std": table[f"{m}_std"].map(fmt) for m in metrics},
        "seconds per run (mean)": table["seconds"].map(lambda s: fmt(s, ".3g")),
    })
    caption = "configurations, best first"
    if len(shown) > MAX_TABLE_ROWS:
        caption += f" (the best {MAX_TABLE_ROWS} of {len(shown)})"
    section.tables.append(Table(caption, shown.head(MAX_TABLE_ROWS)))
    return section


def _row_estimate(row: pd.Series, metric: str, options: Options) -> Estimate:
    return Estimate(row[metric], row[f"{metric}_low"], row[f"{metric}_high"], options.confidence)


def curves_section(results: StudyResults, options: Options) -> Section:
    """Learning curves: seed mean +- std per configuration."""
    if results.curves.empty:
        raise NotApplicable("no curves stored (no complete trial)")
    section = Section("curves", "Learning curves",
                      "Validation accuracy and the train/validation losses at each evaluation "
                      "step: lines are seed means, bands +- 1 standard deviation over seeds; "
                      "n in the legend is the number of runs per configuration (diverged "
                      "runs stop early, so later steps may have fewer).")
    varied, curves = results.varied, results.curves
    configs = ranked_configs(results)
    hue, facet = "config", None
    if len(configs) > MAX_CURVE_CONFIGS and len(varied) >= 2:
        hue = "eta" if "eta" in varied else varied[0]
        others = [v for v in varied if v != hue]
        curves = curves.assign(facet=[format_params(dict(zip(others, values, strict=True)))
                                      for values in curves[others].itertuples(index=False)])
        fields = results.complete.drop_duplicates("config").set_index("config")[others]
        order = list(dict.fromkeys(format_params({str(k): v for k, v in fields.loc[c].items()})
                                   for c in configs))
        if len(order) > MAX_FACETS:
            section.notes.append(f"Showing the {MAX_FACETS} groups of {', '.join(others)} "
                                 f"holding the best configurations, of {len(order)}.")
        keep = order[:MAX_FACETS]
        curves = curves[curves["facet"].isin(keep)]
        facet = "facet"
    elif len(configs) > MAX_CURVE_CONFIGS:
        section.notes.append(f"Showing the best {MAX_CURVE_CONFIGS} of {len(configs)} "
                             "configurations.")
        curves = curves[curves["config"].isin(configs[:MAX_CURVE_CONFIGS])]
    by = tuple(dict.fromkeys(c for c in ("config", hue, facet) if c))
    bands = curve_bands(curves, by=by)
    if facet is not None:  # rows in rank order of their best configuration
        rank = {label: i for i, label in enumerate(keep)}
        bands = bands.sort_values("facet", key=lambda s: s.map(rank), kind="stable")
    figure = learning_curves_figure(bands, hue=hue, facet=facet)
    section.figures.append(FigureItem.of(
        "curves", "Learning curves (seed mean +- std" + (f", one row per {facet_name(varied, hue)}"
                                                        if facet else "") + ").", figure))
    return section


def facet_name(varied: list[str], hue: str) -> str:
    return ", ".join(v for v in varied if v != hue)


def eta_best_section(results: StudyResults, options: Options) -> Section:
    """eta_best per training length with its bootstrap CI; the power law when N varies."""
    if "eta" not in results.varied:
        raise NotApplicable("eta is not varied")
    if results.complete["eta"].nunique() < 3:
        raise NotApplicable("eta takes fewer than 3 values (a parabola needs 3)")
    if results.spec.replicates < 2:
        raise NotApplicable("one seed per configuration (a CI over seeds needs 2)")
    spec = results.spec
    lengths = runs_per_length(results)
    frame, n_col = lengths.frame, lengths.column
    section = Section(
        "eta_best", "Best learning rate per training length (eta_best)",
        f"For each training length {n_col}, the seed-mean {spec.objective} at each eta, and "
        "eta_best: the vertex of a parabola in log eta through the best grid point and its "
        f"neighbours, with a {options.level} CI from a bootstrap over seeds, widened by "
        "t/z for the few seeds (the plain percentile interval covers too rarely with 10). "
        "Edge share: the share of bootstrap replicates whose best grid point is at the edge "
        "of the grid or holds or neighbours a diverged run or one stuck at chance; lengths "
        f"above {EDGE_SHARE_MAX:.0%} stay out of the fits. "
        "With several training lengths, eta_best = a N^-b is fitted (log-log least squares) "
        "with bootstrap CIs of a and b, beside it b under other estimators and a grid "
        "thinned by 2 (the seed CI does not cover that choice), a broken power law whose "
        "breakpoint is estimated inside the bootstrap, and a held-out check of the power law "
        f"past it. Fits on fewer than {MIN_HEADLINE_POINTS} lengths, with a CI wider than b "
        f"or with R^2 below {MIN_R_SQUARED:g} are exploratory, labelled so and kept out of "
        "the headline."
        + (f" {lengths.note}" if lengths.note else ""))
    groups, left_out = groups_of(results, frame, ("eta", n_col), MAX_FACETS)
    if left_out:
        section.notes.append(f"{left_out} more groups of the other varied fields not shown.")
    n_values = frame[n_col].nunique()
    rows = []
    for index, (label, rows_of_group) in enumerate(groups):
        eta_kwargs: dict[str, Any] = {"maximize": spec.direction == "maximize",
                      "stalled_at": stalled_level(spec.objective),
                      "n_resamples": options.n_resamples, "seed": options.seed,
                      "confidence": options.confidence}
        result = analysis.eta_best(rows_of_group, n_col, "eta", spec.objective, **eta_kwargs)
        prefix = f"{label}: " if label else ""
        section.findings.append(prefix + result.summary())
        edges = result.edge_shares()
        section.data.setdefault("eta_best", []).append(
            {"group": label, **result.to_dict(), "edge_shares": edges.to_dict("records")})
        for row, edge in zip(result.table.to_dict("records"), edges.to_dict("records"),
                             strict=True):
            rows.append({
                **({"group": label} if label else {}),
                n_col: fmt(row[n_col], "g"),
                f"eta_best [{options.level} CI]": fmt_ci(
                    Estimate(row["eta_best"], row["low"], row["high"]), ".3g"),
                "best grid eta": fmt(row["eta_grid"], ".3g"),
                f"{spec.objective} there": fmt(row["metric_at_grid"]),
                "n runs": row["n_runs"], "diverged": row["n_diverged"],
                "inside the grid": "yes" if row["bracketed"] else "no (a bound)",
                "edge share": f"{edge['share']:.0%}" + (" (left out)" if edge["excluded"]
                                                        else "")})
        suffix = f"_{index}" if index else ""
        if n_values >= 2:
            section.figures.append(FigureItem.of(
                f"eta_curves{suffix}", f"{prefix}{spec.objective} vs eta for each {n_col}, "
                "eta_best marked (diamond) with its CI.", figures.eta_curves_figure(result)))
            broken = _power_law(section, result, n_col, prefix, suffix, options)
            _sensitivity(section, rows_of_group, n_col, spec.objective, prefix, eta_kwargs,
                         broken)
        else:
            sweep = lr_sweep_table(rows_of_group, options)
            (best,) = result.table.to_dict("records")
            estimate = Estimate(best["eta_best"], best["low"], best["high"], options.confidence)
            section.figures.append(FigureItem.of(
                f"lr_sweep{suffix}", f"{prefix}test and validation accuracy vs learning rate "
                f"(seed means, {options.level} t CI, n = {sweep['n'].min()}..{sweep['n'].max()} "
                f"seeds per eta); the best learning rate, chosen on "
                f"{spec.objective}, shaded with its CI.",
                lr_sweep_figure(sweep, estimate, chosen_on=spec.objective)))
    section.tables.append(Table(f"eta_best per {n_col}", pd.DataFrame(rows)))
    return section


def lr_sweep_table(frame: pd.DataFrame, options: Options) -> pd.DataFrame:
    """Seed mean of test_acc and val_acc per eta with t CIs: eta, metric, mean, low, high,
    n (finished runs only)."""
    rows = []
    for eta, group in finished(frame).groupby("eta", sort=True):
        for metric in ("test_acc", "val_acc"):
            estimate = seed_mean(group, metric, options)
            rows.append({"eta": eta, "metric": metric, "mean": estimate.value,
                         "low": estimate.low, "high": estimate.high, "n": len(group)})
    return pd.DataFrame(rows)


def stalled_level(metric: str) -> float | None:
    """The metric a run stuck at chance stays at or below (accuracies on MNIST's 10
    classes: twice chance); None for other metrics (no stall check)."""
    return STALLED_ACCURACY if metric.endswith("_acc") else None


def _power_law(section: Section, result: analysis.EtaBestResult, n_col: str, prefix: str,
               suffix: str, options: Options) -> analysis.BrokenPowerLawFit | None:
    """The headline power law (exploratory ones go to the notes), the broken power law with
    its breakpoint (returned), and the held-out check of the power law past it."""
    try:
        fit = result.power_law(seed=options.seed, max_edge_share=EDGE_SHARE_MAX)
    except InsufficientData as err:
        section.notes.append(f"{prefix}no power-law fit: {err}")
        return None
    section.data.setdefault("power_law", []).append(fit.to_dict())
    headline = len(section.findings)
    broken = _broken_power_law(section, result, prefix, options)
    if broken_holds(broken):
        b = broken.exponent_after
        section.findings.insert(headline, f"{prefix}headline: a power law from {n_col} = "
                                f"{broken.breakpoint.format('.3g')} on, b = {b.format('.2f')} "
                                f"(the broken power law's slope after its breakpoint, "
                                f"{broken.n_after} lengths)")
        section.notes.append(f"{prefix}one power law over all lengths, not a headline: the "
                             "broken power law's two slopes differ. " + fit.summary())
    elif fit.exploratory:
        section.notes.append(f"{prefix}exploratory, not a headline "
                             f"({', '.join(fit.exploratory_reasons)}): " + fit.summary())
    else:
        section.findings.insert(headline, f"{prefix}headline: " + fit.summary())
    section.figures.append(FigureItem.of(
        f"power_law{suffix}", f"{prefix}eta_best vs {n_col} (log-log) with the fitted "
        f"eta_best = a {n_col}^-b and its bootstrap band; hollow points were left out "
        "(optimum at the grid edge or a cliff)"
        + ("; dashed: the broken power law, its breakpoint's CI shaded." if broken else "."),
        figures.power_law_figure(fit, eta_best=result, broken=broken, xlabel=n_col)))
    return broken


def broken_holds(broken: analysis.BrokenPowerLawFit | None
                 ) -> TypeGuard[analysis.BrokenPowerLawFit]:
    """A broken power law to state: not exploratory, and its two slopes' intervals apart."""
    return broken is not None and not broken.exploratory and (
        broken.exponent_before.high < broken.exponent_after.low
        or broken.exponent_after.high < broken.exponent_before.low)


def _broken_power_law(section: Section, result: analysis.EtaBestResult, prefix: str,
                      options: Options) -> analysis.BrokenPowerLawFit | None:
    """The broken power law over the lengths a fit uses, and the held-out check of the
    power law from its breakpoint on (None when too few lengths)."""
    keep = result.fit_mask(True, EDGE_SHARE_MAX)
    n = result.table[result.n_col].to_numpy(dtype=float)
    y, y_boot = result.table["eta_best"].to_numpy(), np.exp(result.boot_log_eta)
    try:
        broken = analysis.fit_broken_power_law(n[keep], y[keep], y_boot=y_boot[:, keep],
                                               boot_unit="seeds", seed=options.seed,
                                               confidence=options.confidence)
    except InsufficientData as err:
        section.notes.append(f"{prefix}no broken power law: {err}")
        return None
    section.data.setdefault("broken_power_law", []).append(broken.to_dict())
    (section.notes if broken.exploratory else section.findings).append(
        prefix + "breakpoint chosen by the data: " + broken.summary())
    after = keep & (n >= broken.breakpoint.value)
    try:
        check = analysis.extrapolation_check(n[after], y[after], y_boot=y_boot[:, after],
                                             boot_unit="seeds", seed=options.seed,
                                             confidence=options.confidence)
    except InsufficientData as err:
        section.notes.append(f"{prefix}no held-out check past the breakpoint: {err}")
        return broken
    section.data.setdefault("extrapolation_check", []).append(check.to_dict())
    section.findings.append(f"{prefix}the power law from {result.n_col} = "
                            f"{broken.breakpoint.value:.3g} on, " + check.summary())
    return broken


def _sensitivity(section: Section, runs: pd.DataFrame, n_col: str, metric: str, prefix: str,
                 eta_kwargs: dict, broken: analysis.BrokenPowerLawFit | None) -> None:
    """b under each estimator and eta grid, over the lengths of the headline: all of them,
    or those past the breakpoint when the broken power law's two slopes differ."""
    n_from = broken.breakpoint.value if broken_holds(broken) else None
    try:
        result = analysis.eta_sensitivity(runs, n_col, "eta", metric, n_from=n_from,
                                          **eta_kwargs)
    except InsufficientData as err:
        section.notes.append(f"{prefix}no sensitivity table: {err}")
        return
    section.findings.append(prefix + result.summary().splitlines()[0])
    section.data.setdefault("sensitivity", []).append(result.to_dict())
    shown = pd.DataFrame({
        "estimator": result.table["estimator"], "eta grid": result.table["grid"],
        "etas": result.table["n_etas"],
        "b [CI over seeds]": [
            f"{r['b']:.2f} [{r['low']:.2f}, {r['high']:.2f}]" if np.isfinite(r["b"])
            else f"no fit: {r['note']}" for r in result.table.to_dict("records")],
        "lengths": result.table["n_lengths"],
        "role": ["headline" if r["headline"] else "exploratory" if r["exploratory"] else ""
             for r in result.table.to_dict("records")]})
    section.tables.append(Table(f"{prefix}b by estimator and eta grid, {n_col} = "
                                f"{result.n_from:g}..{result.n_to:g} (beside the headline)",
                                shown))


def best_trials(results: StudyResults) -> pd.DataFrame:
    """Complete trials of the best configuration."""
    return results.complete[results.complete["config"] == best_config(results)]


def normality_section(results: StudyResults, options: Options) -> Section:
    """Is the final test accuracy of restarts normally distributed?"""
    if results.spec.replicates < 3:
        raise NotApplicable(f"{results.spec.replicates} seed(s) per configuration "
                            "(a normality test needs 3)")
    section = Section(
        "normality", "Distribution of restarts (normality)",
        "Final test accuracy of the seeds of each configuration: Shapiro-Wilk (which decides), "
        "D'Agostino-Pearson (n >= 8) and Anderson-Darling, with skewness, excess kurtosis and "
        "the test's power at this n. The configurations' Shapiro-Wilk tests ask one "
        "question, so their p-values are also shown Holm-adjusted over the table (Holm 1979). "
        "Diverged runs are left out.")
    rows: list[dict[str, Any]] = []
    best_result = None
    best = best_config(results)
    family = analysis.Family("is the test accuracy of each configuration normal?")
    for config in ranked_configs(results)[:MAX_TABLE_ROWS]:
        values = finished(results.complete[results.complete["config"] == config])["test_acc"]
        if len(values) < 3 or np.ptp(values) == 0:
            continue
        result = analysis.normality(values.to_numpy(), name="test_acc", seed=options.seed)
        if config == best:
            best_result = result
        family.add(config, result.shapiro)
        rows.append({"configuration": config, "n": result.n,
                     "mean": fmt(values.mean()), "std": fmt(values.std(ddof=1)),
                     "Shapiro-Wilk W": fmt(result.shapiro.statistic, ".3f"),
                     "p": fmt_p(result.shapiro),
                     "skewness": fmt(result.skewness, ".2f"),
                     "excess kurtosis": fmt(result.excess_kurtosis, ".2f"),
                     "verdict": "not normal" if result.rejects else "no evidence against"})
    if best_result is None:
        raise NotApplicable("the best configuration has fewer than 3 finished runs that differ")
    assert best is not None  # a configuration's runs were tested
    adjusted = family.adjusted
    for row in rows:
        row["p (Holm)"] = fmt_p(analysis.HypothesisTest("", 0.0, adjusted[row["configuration"]]))
    adjusted_text = (f" Shapiro-Wilk p adjusted over the {len(rows)} configurations: "
                     f"{family.p_text(best)}." if len(rows) > 1 else "")
    section.findings.append(f"Best configuration ({best}): " + best_result.summary()
                            + adjusted_text + " " + detectable_departures(best_result.n, options))
    section.data["best"] = {"config": best, **best_result.to_dict()}
    section.data["family"] = family.to_dict()
    section.tables.append(Table(f"normality of test_acc per configuration (alpha "
                                f"{best_result.alpha:g}; p (Holm): adjusted over the "
                                f"{len(rows)} configurations)", pd.DataFrame(rows)))
    section.figures.append(FigureItem.of(
        "normality", f"Test accuracy of the {best_result.n} runs of the best configuration "
        f"({best}): histogram with KDE and the fitted normal, and the QQ plot.",
        figures.normality_figure(best_result)))
    return section


def detectable_departures(n: int, options: Options) -> str:
    """What Shapiro-Wilk detects with 80% power at n, by simulation
    (`analysis.minimum_detectable_effect`)."""
    skewness = analysis.minimum_detectable_effect("shapiro-skewness", n, n_sim=400,
                                                  seed=options.seed)
    tails = analysis.minimum_detectable_effect("shapiro-tails", n, n_sim=400, seed=options.seed)
    heavy = "no t distribution" if not np.isfinite(tails) else f"t({1 / tails:.1f})"
    skewed = "no gamma skewness up to 4" if not np.isfinite(skewness) else (
        f"a skewness of {skewness:.2f}")
    return (f"With 80% power at n={n} (alpha 0.05, simulated), Shapiro-Wilk detects {skewed} "
            f"and tails as heavy as {heavy}; smaller departures go unseen.")


def variance_section(results: StudyResults, options: Options) -> Section:
    """Spread of restarts: std with CIs per training length (and its floor), and the share
    of that spread the finite test set explains."""
    if results.spec.replicates < 2:
        raise NotApplicable("one seed per configuration (a variance needs 2)")
    lengths = runs_per_length(results)
    frame, n_col = finished(lengths.frame), lengths.column
    at_end = (f" (stored at the end of each run, {run_length(results.spec)}, so for that "
              "length only)") if lengths.from_curves else ""
    section = Section(
        "variance", "Mean and spread of restarts",
        f"Mean and standard deviation of the {'' if lengths.from_curves else 'final '}test "
        f"accuracy over seeds per {n_col} with n (seeds), {options.level} CIs over seeds: the "
        "mean's Student's t, the std's Bonett's (with the runs' kurtosis). With "
        f">= {MIN_N_VALUES_FOR_FIT} training lengths the variance is fitted as var(N) = c + "
        "a N^-b, weighted by the sampling variance of each variance with the runs' excess "
        "kurtosis (not assuming normal runs), the floor's CI a profile likelihood-ratio "
        "interval that stays valid at c = 0 (Self & Liang), adjusted for the seeds shared "
        "across N: a floor c whose CI excludes 0 means runs settle in different solutions; "
        "\"plateau\" where the fit cannot tell a floor from a slow decline. The "
        "finite-test-set part of the variance (Jordan 2023) is computed from the best "
        f"configuration's test predictions{at_end}." + (f" {lengths.note}" if lengths.note
                                                          else ""))
    n_lengths = frame[n_col].nunique()
    groups, left_out = groups_of(results, frame, (n_col,) if n_lengths > 1 else (),
                                 MAX_TABLE_ROWS)
    if left_out:
        section.notes.append(f"{left_out} more configurations not shown.")
    rows, first = [], None
    test_set = test_set_result(results, options, section)
    fit_kwargs: dict[str, Any] = {"floor_interval": "profile",
                                  "n_resamples": options.n_resamples,
                  "seed": options.seed, "confidence": options.confidence}
    for label, group in groups:
        fewest = int(group.groupby(n_col).size().min()) if len(group) else 0
        try:
            result = analysis.variance_vs_n(
                group, n_col, "test_acc", fit=n_lengths >= MIN_N_VALUES_FOR_FIT,
                weights="kurtosis" if fewest >= 4 else "normal", **fit_kwargs)
        except InsufficientData as err:
            section.notes.append(f"{label or 'all runs'}: {err}")
            continue
        first = first or (label, result, group)
        section.data.setdefault("variance_vs_n", []).append({"group": label,
                                                              **result.to_dict()})
        for row in result.table.to_dict("records"):
            rows.append({
                **({"configuration" if n_lengths == 1 else "group": label} if label else {}),
                n_col: fmt(row[n_col], "g"), "n": row["n_runs"], "excluded": row["n_excluded"],
                f"mean [{options.level} CI]": fmt_ci(
                    Estimate(row["mean"], row["mean_low"], row["mean_high"])),
                f"std [{options.level} CI]": fmt_ci(
                    Estimate(row["std"], row["std_low"], row["std_high"]), ".3g")})
    if first is None:
        raise NotApplicable("no configuration has 2 finished runs")
    label, result, group = first
    if n_lengths > 1:
        section.findings.append((f"{label}: " if label else "") + result.summary())
        if result.fit is not None and result.fit.exponent_at_bound:
            later = later_fits(group, n_col, fit_kwargs)
            section.data["floor_from_later_n"] = [fit.to_dict() for fit in later]
            if later:
                section.findings.append(
                    "The floor fitted from later N (leaving the shortest out): " + "; ".join(
                        f"from {n_col} = {fit.n_from:g} ({n_lengths - fit.n_left_out} "
                        f"lengths): c = {fit.floor}, b = {fit.exponent.format('.2f')}"
                        for fit in later) + ".")
        section.figures.append(FigureItem.of(
            "variance", f"{label + ': ' if label else ''}mean and std of test_acc vs {n_col}"
            + (" with the fitted floor" if result.fit else "")
            + (" and the std of the test-set part (runs erring on different examples)"
               if test_set else "")
            + (" (at the end of the runs)" if test_set and lengths.from_curves else "") + ".",
            figures.variance_figure(result, test_set=test_set)))
    section.tables.append(Table(f"test_acc over seeds per {n_col}", pd.DataFrame(rows)))
    return section


def later_fits(group: pd.DataFrame, n_col: str, fit_kwargs: dict, n_fits: int = 3
               ) -> list[analysis.FloorFit]:
    """Floor fits leaving out the 1, 2, ... shortest N (at most n_fits, each on at least
    MIN_N_VALUES_FOR_FIT lengths): how much the floor owes to the shortest runs."""
    lengths = np.sort(group[n_col].unique())
    fits = [analysis.variance_vs_n(group, n_col, "test_acc", fit_from=float(n),
                                   **fit_kwargs).fit
            for n in lengths[1:len(lengths) - MIN_N_VALUES_FOR_FIT + 1][:n_fits]]
    return [fit for fit in fits if fit is not None]  # each fitted (fit=True)


def test_set_result(results: StudyResults, options: Options,
                    section: Section) -> analysis.TestSetVarianceResult | None:
    """The finite-test-set decomposition for the best configuration (None if it cannot be
    computed, e.g. every run has the same test accuracy on a small test set; the reason goes
    to the section's notes)."""
    predictions = results.best_predictions
    if predictions.empty or predictions["trial"].nunique() < 2:
        section.notes.append("Finite-test-set share: needs the test predictions of >= 2 runs "
                             "of the best configuration.")
        return None
    boot: dict[str, Any] = {"n_resamples": options.n_resamples, "seed": options.seed,
                            "confidence": options.confidence}
    try:
        result = analysis.test_set_variance(predictions, unit="run x example", **boot)
    except InsufficientData as err:
        section.notes.append(f"Finite-test-set share: {err}")
        return None
    section.findings.append(
        f"Best configuration ({best_config(results)}): " + result.summary()
        + " (The two-way intervals are conservative for the variance parts; resampling runs "
        "only, with the test set fixed, covers too rarely when runs differ on a subgroup of "
        "the examples, docs/analysis.md.)")
    section.data["test_set_variance"] = result.to_dict()
    return result


test_set_result.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def noise_section(results: StudyResults, options: Options) -> Section:
    """Each noise variant against no noise: spreads (Brown-Forsythe, Fligner-Killeen and the
    std ratio; for arms on the same seeds Pitman-Morgan and the paired std ratio) and means
    (Welch or the paired t, P(A > B)), per group of the other varied fields; the spread and
    the mean tests each adjusted over the table (Holm), with the std ratios and mean
    differences the data exclude and those the tests detect with 80% power."""
    if "noise" not in results.varied:
        raise NotApplicable("noise is not varied")
    levels = list(dict.fromkeys(results.complete["noise"]))
    if "none" not in levels or len(levels) < 2:
        raise NotApplicable('noise is varied without "none" to compare against')
    section = Section(
        "noise", "Noise against no noise",
        "Final test accuracy with each noise variant against the same configuration "
        "without noise. Runs with the same seed start from the same weights and see the data "
        "in the same order, so arms on the same seeds are compared seed by seed (unit: "
        "seed): the Pitman-Morgan test of equal variances of paired samples, the std ratio's "
        f"{options.level} CI by bootstrap over seeds, the paired t for the means and P(noise "
        "beats none on a seed). Arms on other seeds are independent samples (unit: run): "
        "Brown-Forsythe and Fligner-Killeen tests of equal spread, Bonett's CI of the std "
        "ratio (with the runs' kurtosis), Welch's t and P(a run with noise beats one "
        "without). The spread tests of the "
        "table form one family and the mean tests another: each p is shown with its "
        "Holm-adjusted value (Holm 1979). A test that does not reject is not evidence of no "
        "effect: 'excluded' gives the std ratios and mean differences the data rule out "
        "(each side at 95%, the equivalence bound of a TOST, Schuirmann 1987), 'detectable' "
        "the std ratio and mean difference the design's tests find with 80% power at this n "
        "(simulated; the mean difference in test_acc, from the standardised one and the "
        "observed sd). Diverged runs are left out and counted.")
    groups, left_out = groups_of(results, results.complete, ("noise",), 12)
    if left_out:
        section.notes.append(f"{left_out} more groups not shown.")
    rows, summaries = [], []
    spread = analysis.Family("does noise change the spread of test_acc?")
    location = analysis.Family("does noise change the mean of test_acc?")
    for label, group in groups:
        for level in (lv for lv in levels if lv != "none"):
            try:
                result = analysis.compare_variance_by(
                    group, "noise", level, "none", "test_acc", paired=share_seeds(
                        group, "noise", level, "none"),
                    n_resamples=options.n_resamples, seed=options.seed,
                    confidence=options.confidence)
            except InsufficientData as err:
                section.notes.append(f"{label or 'all runs'}, noise={level}: {err}")
                continue
            prefix = f"{label}: " if label else ""
            name = f"{prefix}noise={level}"
            spread.add(name, result.spread_test)
            location.add(name, result.location_test)
            excluded = analysis.tost_std_ratio(
                result.a, result.b, None, paired=result.paired, names=result.names,
                method="bootstrap" if result.paired else "bonett",
                n_resamples=options.n_resamples, seed=options.seed)
            mean_excluded = analysis.tost_mean_difference(result.a, result.b, None,
                                                          paired=result.paired,
                                                          names=result.names)
            detectable = detectable_effects(result, options)
            section.data.setdefault("comparisons", []).append(
                {"group": label, **result.to_dict(), "std_ratio_excluded": excluded.to_dict(),
                 "mean_difference_excluded": mean_excluded.to_dict(),
                 "detectable_std_ratio": detectable["std ratio"],
                 "detectable_mean_difference": detectable["mean difference"]})
            rows.append({**({"group": label} if label else {}), "noise": level,
                         "design": f"paired, {result.a.size} seeds" if result.paired else
                         f"independent, {result.a.size} / {result.b.size} runs",
                         f"std ratio [{options.level} CI]": fmt_ci(result.std_ratio, ".2f"),
                         "std ratio excluded": f"< {1 / excluded.bound:.2f} or > "
                                               f"{excluded.bound:.2f}",
                         "std ratio detectable (80%)": fmt(detectable["std ratio"], ".2f"),
                         "spread test": result.spread_test.name, "spread p (Holm)": name,
                         f"mean difference [{options.level} CI]":
                             fmt_ci(result.mean_difference, ".4f"),
                         "mean difference excluded": f"beyond +-{mean_excluded.bound:.4f}",
                         "mean difference detectable (80%)":
                             fmt(detectable["mean difference"], ".4f"),
                         "mean test": result.location_test.name, "mean p (Holm)": name,
                         f"P(noise > none) [{options.level} CI]":
                             fmt_ci(result.p_superiority, ".2f")})
            if len(section.figures) < 2:
                summaries.append((len(section.findings), name))
                section.findings.append(
                    prefix + result.summary() + "\n  " + excluded.summary() + "\n  "
                    + mean_excluded.summary() + "\n  " + detectable_text(result, detectable))
                section.figures.append(FigureItem.of(
                    f"noise_{level}" + (f"_{len(section.figures)}" if section.figures else ""),
                    f"{prefix}test_acc with noise={level} against none, every run shown.",
                    figures.compare_figure(result, metric="test_acc")))
    if not rows:
        raise NotApplicable("no group has >= 3 finished runs with and without noise")
    for row in rows:  # the families are complete only now
        row["spread p (Holm)"] = spread.p_text(row["spread p (Holm)"])
        row["mean p (Holm)"] = location.p_text(row["mean p (Holm)"])
    for index, name in summaries:
        section.findings[index] += (f"\n  adjusted over the table's {len(spread.tests)} "
                                    f"comparisons: spread p={spread.p_text(name)}, mean "
                                    f"p={location.p_text(name)}")
    section.data["families"] = [spread.to_dict(), location.to_dict()]
    section.findings += [spread.summary(), location.summary()]
    section.tables.append(Table("noise against none, test_acc", pd.DataFrame(rows)))
    return section


def detectable_effects(result: analysis.CompareResult, options: Options) -> dict[str, float]:
    """What the comparison's tests detect with 80% power at its n (simulated, alpha 0.05):
    {"std ratio": the ratio (> 1) for Brown-Forsythe (independent samples) or Pitman-Morgan
    (pairs, at their correlation clipped to [0, 0.95]); "mean difference": in the metric's
    units, Welch's standardised difference times the pooled sd, or the paired t's times the
    sd of the pair differences}."""
    n_a, n_b = int(result.a.size), int(result.b.size)
    simulation = {"n_sim": 400, "seed": options.seed}
    if result.paired:
        assert result.correlation is not None  # a paired comparison has one
        ratio = analysis.minimum_detectable_effect(
            "pitman-morgan", n_a, correlation=float(np.clip(result.correlation, 0.0, 0.95)),
            **simulation)
        d = analysis.minimum_detectable_effect("paired-t", n_a, **simulation)
        sd = float(np.std(result.a - result.b, ddof=1))
    else:
        ratio = analysis.minimum_detectable_effect("brown-forsythe", (n_a, n_b), **simulation)
        d = analysis.minimum_detectable_effect("welch", (n_a, n_b), **simulation)
        sd = float(np.sqrt((np.var(result.a, ddof=1) + np.var(result.b, ddof=1)) / 2))
    return {"std ratio": ratio, "mean difference": d * sd}


def detectable_text(result: analysis.CompareResult, detectable: dict[str, float]) -> str:
    """'80% power (alpha 0.05, simulated at n=100 pairs) at a std ratio of 1.27
    (Pitman-Morgan) and a mean difference of 0.0008 (paired t)'."""
    n = (f"{result.a.size} pairs" if result.paired else
         f"{result.a.size} / {result.b.size} runs")
    return (f"80% power (alpha 0.05, simulated at n={n}) at a std ratio of "
            f"{fmt(detectable['std ratio'], '.2f')} ({result.spread_test.name}) and a mean "
            f"difference of {fmt(detectable['mean difference'], '.4f')} "
            f"({result.location_test.name})")


def share_seeds(group: pd.DataFrame, by: str, a: object, b: object) -> bool:
    """Whether the runs with `by` == a and == b share seeds: in one study the same seed
    gives the same initial weights and data order, so such arms pair up by seed."""
    if "seed" not in group.columns:
        return False
    seeds = [set(group.loc[group[by] == level, "seed"]) for level in (a, b)]
    return bool(seeds[0] & seeds[1])


def errors_section(results: StudyResults, options: Options) -> Section:
    """Second guesses, confidence of errors, calibration and confusions of the best
    configuration, pooled over its seeds; intervals by two-way bootstrap over runs and test
    images."""
    predictions = results.best_predictions
    if predictions.empty:
        raise NotApplicable("no test predictions stored")
    best = best_config(results)
    n_classes = data_record(results)["n_classes"]
    result = analysis.error_analysis(predictions, n_classes=n_classes, unit="run x image",
                                     n_resamples=options.n_resamples, seed=options.seed,
                                     confidence=options.confidence)
    section = Section(
        "errors", "Errors and calibration",
        f"Test predictions of the best configuration ({best}), pooled over its "
        f"{result.n_trials} run(s): is the second guess right when the first is wrong "
        f"(against chance 1/{n_classes - 1}, one of the {n_classes - 1} other classes)? Are "
        "wrong answers less confident (AUC against 0.5)? How many errors at >= 99% "
        "confidence? Expected calibration error (15 equal-width bins) and the confusions. "
        "The runs share one test set and tend to get the same images wrong, so the "
        f"predictions are not independent draws: the {options.level} intervals resample "
        f"{result.unit_text}, for the rates over the population of runs and of images the "
        "test set was drawn from.")
    section.findings.append(result.summary())
    section.data["error_analysis"] = {"config": best, **result.to_dict()}
    section.figures += [
        FigureItem.of("confidence", "Top-1 confidence of right and wrong answers.",
                      figures.confidence_figure(result)),
        FigureItem.of("reliability", "Reliability diagram: accuracy per confidence bin.",
                      figures.reliability_figure(result)),
        FigureItem.of("confusion", "Confusion matrix of the errors (pooled over runs).",
                      figures.confusion_figure(result)),
        FigureItem.of("confused_pairs", "The most frequent confusions.",
                      figures.confused_pairs_figure(result)),
    ]
    return section


GENERIC_SECTIONS = (curves_section, eta_best_section, normality_section, variance_section,
                    noise_section, errors_section)


def run_sections(builders, results: StudyResults, options: Options
                 ) -> tuple[list[Section], list[tuple[str, str]]]:
    """Run each section builder: (sections, [(builder name, why it was skipped)]).

    An analysis refusing the data (InsufficientData: too few runs, ...) skips its section with
    that message instead of failing the report."""
    sections, skipped = [], []
    for build in builders:
        name = build.__name__.removesuffix("_section")
        try:
            sections.append(build(results, options))
        except (NotApplicable, InsufficientData) as err:
            skipped.append((name, str(err)))
    return sections, skipped
