"""The confirmatory part of a report: the hypotheses a spec declared, judged on the study.

Statistics a single study gives (STATISTICS: name -> function(spec, trials) -> Estimate):
- best.val_acc, best.test_acc: the seed mean of the configuration chosen on the objective
  (a validation metric), with its 95% t interval over seeds;
- base.test_acc.std: the standard deviation over seeds of the test accuracy of a study of
  one configuration (restarts), with Bonett's 95% interval (which carries the runs'
  kurtosis; a BCa bootstrap covered 74.5-91.5% at 10-100 seeds, docs/analysis.md).
An analysis script judges hypotheses on other statistics (an eta_best ratio across studies)
with `nnlab.study.hypotheses.evaluate_all` and Estimates of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from nnlab.analysis.intervals import mean_interval, std_interval
from nnlab.errors import InsufficientData
from nnlab.report.sections import Options, Section, Table
from nnlab.report.summaries import StudyResults
from nnlab.study.hypotheses import Estimate, Verdict, evaluate_all
from nnlab.study.spec import StudySpec

CONFIDENCE = 0.95  # the level of every interval a verdict reads (docs/hypotheses.md)
UNIT = "seed"
EXPLORATORY_NONE = ("Exploratory: this study declared no hypotheses before it ran, so every "
                    "result on this page is exploratory.")
EXPLORATORY_REST = ("Everything below this section is exploratory: not declared before the "
                    "runs, so it suggests hypotheses for a next study rather than confirming "
                    "any.")


def complete_runs(trials: pd.DataFrame) -> pd.DataFrame:
    """The COMPLETE rows of a trials table."""
    return trials[trials["state"] == "COMPLETE"]


def best_runs(spec: StudySpec, trials: pd.DataFrame) -> pd.DataFrame:
    """The complete runs of the configuration chosen on the objective (its seed mean, as
    `nnlab status` ranks configurations: the first of equal ones)."""
    complete = complete_runs(trials)
    if complete.empty:
        raise InsufficientData("no trial is complete")
    means = complete.groupby("config_id", sort=False)["value"].mean()
    best = means.idxmin() if spec.direction == "minimize" else means.idxmax()
    return complete[complete["config_id"] == best]


def _per_seed(runs: pd.DataFrame, metric: str) -> np.ndarray:
    values = runs[metric].dropna().to_numpy(dtype=float)
    if values.size < 2:
        raise InsufficientData(f"{metric}: an interval over seeds needs >= 2 seeds, got "
                               f"{values.size}")
    return values


def _over_seeds(values: np.ndarray, interval: Callable[..., Any]) -> Estimate:
    """`interval(values, CONFIDENCE)` (an analysis Estimate) with its unit and n."""
    found = interval(values, CONFIDENCE)
    return Estimate(found.value, found.low, found.high, UNIT, int(values.size))


def best_metric(metric: str) -> Callable[..., Estimate]:
    """The statistic best.<metric>: the seed mean of the best configuration."""

    def statistic(spec: StudySpec, trials: pd.DataFrame) -> Estimate:
        return _over_seeds(_per_seed(best_runs(spec, trials), metric), mean_interval)

    statistic.__doc__ = f"best.{metric}: seed mean of the best configuration, 95% t CI."
    return statistic


def base_test_acc_std(spec: StudySpec, trials: pd.DataFrame) -> Estimate:
    """base.test_acc.std: std (ddof=1) over seeds of the only configuration's test_acc."""
    complete = complete_runs(trials)
    n_configs = complete["config_id"].nunique()
    if n_configs != 1:
        raise InsufficientData(f"base.test_acc.std: needs a study of one configuration, "
                               f"got {n_configs} with complete runs")
    return _over_seeds(_per_seed(complete, "test_acc"), std_interval)


STATISTICS: dict[str, Callable[..., Estimate]] = {
    "best.val_acc": best_metric("val_acc"),
    "best.test_acc": best_metric("test_acc"),
    "base.test_acc.std": base_test_acc_std,
}


def study_statistics(spec: StudySpec, trials: pd.DataFrame, names: set[str]
                     ) -> dict[str, Estimate | str]:
    """Each statistic of `names` that STATISTICS knows: its Estimate, or why it cannot be
    computed on this study."""
    found: dict[str, Estimate | str] = {}
    for name in sorted(names & set(STATISTICS)):
        try:
            found[name] = STATISTICS[name](spec, trials)
        except InsufficientData as err:
            found[name] = str(err)
    for name in names - set(STATISTICS):
        found[name] = (f"{name!r} is not computed from a single study (known: "
                       f"{', '.join(STATISTICS)}); an analysis script can provide it")
    return found


def hypotheses_section(results: StudyResults, options: Options) -> Section:
    """Each declared hypothesis with its prediction, estimate and verdict, primary first."""
    spec = results.spec
    section = Section(
        "hypotheses", "Confirmatory: declared hypotheses",
        "The hypotheses the spec declared before the runs. Held: the 95% interval of the "
        "estimate lies inside the predicted region; failed: it lies entirely outside; "
        "inconclusive: neither (docs/hypotheses.md). Intervals over seeds: a seed mean's is "
        "Student's t, a std's Bonett's (which carries the runs' kurtosis).")
    statistics = study_statistics(spec, results.trials, {h.statistic for h in spec.hypotheses})
    verdicts = evaluate_all(spec.hypotheses, statistics)
    section.findings += [_finding(v) for v in verdicts]
    section.tables.append(Table("declared hypotheses, primary first", pd.DataFrame({
        "hypothesis": [v.hypothesis.name for v in verdicts],
        "primary": ["yes" if v.hypothesis.primary else "no" for v in verdicts],
        "prediction": [v.hypothesis.prediction for v in verdicts],
        "estimate [95% CI]": [_estimate_text(v) for v in verdicts],
        "unit, n": [f"{v.estimate.unit}, {v.estimate.n}" if v.estimate else "" for v in verdicts],
        "verdict": [v.verdict for v in verdicts],
        "note": [v.hypothesis.note for v in verdicts]})))
    section.notes.append(EXPLORATORY_REST)
    section.data["verdicts"] = [
        {**v.hypothesis.to_dict(), "verdict": v.verdict, "reason": v.reason,
         "estimate": None if v.estimate is None else v.estimate.__dict__} for v in verdicts]
    return section


def with_hypotheses(sections: list[Section], results: StudyResults, options: Options
                    ) -> list[Section]:
    """`sections` with the hypotheses section in front; without hypotheses, with the
    exploratory label on the first section."""
    if results.spec.hypotheses:
        return [hypotheses_section(results, options), *sections]
    sections[0].notes.insert(0, EXPLORATORY_NONE)
    return sections


def _estimate_text(verdict: Verdict) -> str:
    e = verdict.estimate
    return "" if e is None else f"{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]"


def _finding(verdict: Verdict) -> str:
    h, e = verdict.hypothesis, verdict.estimate
    text = f"{'Primary: ' if h.primary else ''}{h.name} ({h.prediction}): "
    if e is not None:
        text += f"{_estimate_text(verdict)} ({e.unit}s, n={e.n}) -> "
    text += verdict.verdict
    return text + (f" ({verdict.reason})" if verdict.reason else "")
