"""What the question scripts share: a study's runs per training length, and file writing.

Each study evaluates one long run per (configuration, seed) at several steps N; with a
learning rate that depends on the current step only, its record at step N is the result of
a run of length N (see `nnlab.study.lengths`), so `runs_by_length` gives one row per
evaluated length.

The scripts read results/ (or $NNLAB_RESULTS): each study's trials.parquet and, where its
per-trial files are absent (a fresh clone), its archive. A study whose folder is absent
has not run and is left out where a script says so; anything else missing is an error,
one line on stderr naming the study or file (exit code 2), never a silent gap.

A committed study without an archive (tests/test_committed_archives.py lists them) still
has its trials.parquet: each run's final metrics, i.e. its value at the study's longest N
(`final_runs`); what needs its other lengths or its test predictions is left out, and
the findings say so where it stands.

Each script has three steps: `compute()` reads the results and returns the numbers
(findings.json's content) with what the figures draw; `draw()` writes the figures;
`render()` fills the script's template, analysis/templates/<script>.md (`render`, a
string.Template), from the numbers as findings.json gives them back (`as_written`), so
that findings.md gives no number findings.json does not hold, besides the few a script's
compute step passes to its render step as "text" (errors.py's range of per-run rates).
`findings_json` is the one writer of findings.json: strict JSON, NaN and infinities as null.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nnlab.analysis import (
    ArmDifference,
    Estimate,
    Family,
    HypothesisTest,
    end_mc_error,
    eta_best,
    eta_sensitivity,
    extrapolation_check,
    fit_broken_power_law,
    fit_power_law,
)
from nnlab.analysis.multiplicity import METHODS
from nnlab.errors import NNLabError
from nnlab.report.figures import save_figure
from nnlab.study import Study, hypotheses, lengths
from nnlab.study import archive as study_archive
from nnlab.study.hypotheses import Verdict

RESULTS = Path(os.environ.get("NNLAB_RESULTS")
               or Path(__file__).resolve().parent.parent / "results")
TEMPLATES = Path(__file__).resolve().parent / "templates"  # each findings.md's text
N_TEST = 10_000  # MNIST test images
ALPHA = 0.05  # the level of every test, after Holm's adjustment within a finding
# The restarts' variance floor is fitted from this N on: from N = 100 to 178 the variance
# falls ~10-fold as the runs that took off late catch up, faster than the power law of the
# fit can follow (restarts.py's findings list the floor by the N the fit starts at).
FLOOR_FIT_FROM = 316
CONFIDENCE = 0.95  # the level of every interval of eta_best and its fits
STALLED_AT = 0.2  # a run no better than twice chance stalled: its cell is a cliff
MAX_EDGE_SHARE = 0.1  # N whose bootstrap optimum sits at a grid edge or cliff more often: left out


def load(name: str) -> Study:
    """The study whose results are in results/<name>."""
    return Study.load(RESULTS / name)


def load_if_run(name: str) -> Study | None:
    """The study in results/<name>, None if it has no folder there (not run yet)."""
    return load(name) if (RESULTS / name).exists() else None


def has_runs(name: str) -> bool:
    """Whether results/<name> holds its runs' curves: the per-trial files, or the archive
    a clone has (docs/archive.md)."""
    folder = RESULTS / name
    return (folder / "curves").is_dir() or study_archive.archive_path(folder,
                                                                     "curves").is_file()


def final_runs(name: str) -> pd.DataFrame:
    """The complete runs of results/<name> at the study's longest N, from its trials.parquet
    alone (no curves needed): one row per trial with trial, the varied params, seed,
    status, val_acc, test_acc and n_steps (= the spec's n_steps: a diverged run stopped
    early, and keeps the metrics it had, as `eta_best` expects)."""
    study = load(name)
    trials = study.trials()
    trials = trials[trials["state"] == "COMPLETE"].copy()
    trials["n_steps"] = spec_n_steps(study)
    return trials


def spec_n_steps(study: Study) -> int:
    """The length N of the study's runs: its [base] n_steps (a study given in epochs has
    none to compare by: an error naming it)."""
    n_steps = study.spec.base_config().n_steps
    if n_steps is None:
        raise NNLabError(f"{study.spec.name}: expected base.n_steps (the runs' length N), "
                         "got none (the length is given in epochs)")
    return n_steps


def eta_best_fits(runs: pd.DataFrame) -> dict[str, Any]:
    """Finding 1's analysis of one sweep of learning rates: eta_best per N (small-sample
    widened, stalled runs as cliffs, edge shares), the broken power law over the N it may
    use (optimum inside the grid; at least 5), and from its breakpoint on (at least 3 N)
    the power law, and (at least 4 N) its held-out check and its estimator/grid
    sensitivity. runs: one row per (run, N) with eta, seed, status, val_acc, n_steps.
    Returns {"result": EtaBestResult, "table": its table with the edge shares, "keep": the
    N the fits may use (bool per row), "broken", "tail" (None when not fitted),
    "tail_mask" (the N of "tail"), "extrapolation", "sensitivity" (where fitted),
    "summaries": printable lines}."""
    result = eta_best(runs, stalled_at=STALLED_AT, small_sample=True, confidence=CONFIDENCE)
    table = result.table.merge(result.edge_shares(MAX_EDGE_SHARE), on="n_steps")
    keep = result.fit_mask(True, MAX_EDGE_SHARE)
    n = table["n_steps"].to_numpy(dtype=float)
    found: dict[str, Any] = {"result": result, "table": table, "keep": keep, "broken": None,
                             "tail": None}
    if keep.sum() >= 5:
        broken = fit_broken_power_law(
            n[keep], table["eta_best"][keep], y_boot=np.exp(result.boot_log_eta[:, keep]),
            confidence=CONFIDENCE)
        found["broken"] = broken
        after = keep & (n >= broken.breakpoint.value)
        if after.sum() >= 3:
            found["tail_mask"] = after
            found["tail"] = fit_power_law(n[after], table["eta_best"][after],
                                          y_boot=np.exp(result.boot_log_eta[:, after]),
                                          confidence=CONFIDENCE)
        if after.sum() >= 4:
            found["extrapolation"] = extrapolation_check(
                n[after], table["eta_best"][after],
                y_boot=np.exp(result.boot_log_eta[:, after]), confidence=CONFIDENCE)
            found["sensitivity"] = eta_sensitivity(
                runs, n_from=float(n[after].min()), stalled_at=STALLED_AT,
                max_edge_share=MAX_EDGE_SHARE, small_sample=True, confidence=CONFIDENCE)
    found["summaries"] = [result.summary()] + [
        found[key].summary() for key in ("broken", "tail", "extrapolation", "sensitivity")
        if found.get(key) is not None]
    return found


def bootstrap_p(boot: np.ndarray, null: float) -> float:
    """Two-sided p-value of "the statistic equals `null`" from its bootstrap replicates
    (n,): twice the smaller share on either side of it, at least 1/n (the percentile
    interval at level 1 - p just reaches `null`)."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    share = min(float(np.mean(boot <= null)), float(np.mean(boot >= null)))
    return float(min(1.0, max(2 * share, 1 / boot.size)))


def hypothesis_records(verdicts: Sequence[Verdict]) -> list[dict]:
    """The verdicts on a spec's declared hypotheses (`evaluate_all`) as findings.json keeps
    them: name, statistic, prediction, primary, note, estimate (its fields, or None), verdict
    and reason. `verdict_line` writes one as a line of findings.md."""
    return [{"name": v.hypothesis.name, "statistic": v.hypothesis.statistic,
             "prediction": v.hypothesis.prediction,
             "primary": v.hypothesis.primary, "note": v.hypothesis.note,
             "estimate": None if v.estimate is None else vars(v.estimate),
             "verdict": v.verdict, "reason": v.reason} for v in verdicts]


def interval_text(e: Mapping[str, float], spec: str = ".3g") -> str:
    """An estimate's dict (value, low, high) as '0.123 [0.1, 0.15]' in format `spec`."""
    return f"{e['value']:{spec}} [{e['low']:{spec}}, {e['high']:{spec}}]"


def verdict_line(h: dict, spec: str = ".3g") -> str:
    """A `hypothesis_records` record as a markdown list item, its estimate in format `spec`
    (`interval_text`). An unevaluated one gives its reason instead, one on the margin its
    reason as well."""
    head = (f"- **{h['name']}** ({'primary' if h['primary'] else 'secondary'}): "
            f"{h['prediction']}; ")
    e = h["estimate"]
    if e is None:
        return head + f"**{h['verdict']}**: {h['reason']}."
    margin = f", {h['reason']}" if h["reason"] else ""
    return (head + f"estimate {interval_text(e, spec)} ({e['unit']}, n = {e['n']}): "
            f"**{h['verdict']}**{margin} ({h['note']}).")


def claims_table(family: Family, claims: dict[str, str]) -> list[dict]:
    """The records of a finding's tests adjusted together (Holm); claims: {test name in
    `family`: the claim a rejection supports}. `claims_lines` writes them as a table."""
    adjusted = family.adjusted
    return [{"test": name, "claim": claims[name], "p": family.tests[name].p_value,
             "p_holm": adjusted[name], "survives": adjusted[name] < ALPHA}
            for name in family.tests]


def claims_lines(records: list[dict]) -> str:
    """The markdown table of `claims_table`'s records."""
    lines = ["| claim (a rejection of its null supports it) | test | p | Holm p | holds at 5% "
             "after Holm |", "|---|---|---|---|---|"]
    lines += [f"| {r['claim']} | {r['test']} | {_p(r['p'])} | {_p(r['p_holm'])} | "
              f"{'yes' if r['survives'] else 'no'} |" for r in records]
    return "\n".join(lines)


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.0e}" if p >= 1e-300 else "<1e-300"


def significant(value: float, digits: int = 2) -> str:
    """`value` to `digits` significant figures, plain ('0.0017', '1.3e-06' for tiny)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.{digits}g}"


def run(main: Callable[[], None]) -> None:
    """Run a script's `main`; bad or missing results are one line on stderr, exit code 2."""
    try:
        main()
    except NNLabError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        sys.exit(2)


def runs_by_length(study: str | Study, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs of `study` (a Study, or the name of results/<name>), one row per (finished
    trial, evaluated length N > 0) (`nnlab.study.lengths.runs_by_length`): trial, n_steps
    (= N), the varied params, seed, status, val_acc, test_acc, val_loss, ...; `trials`: its
    trials table if already read."""
    study = load(study) if isinstance(study, str) else study
    trials = study.trials() if trials is None else trials
    return lengths.runs_by_length(study.spec, trials, study.curves())


def complete_seeds(study: Study) -> tuple[pd.DataFrame, dict]:
    """The runs of a sweep of learning rates (one row per run and length) of the seeds that
    have finished every planned learning rate, and what was planned and used: the grid
    enqueues the seeds one after another, so a study stopped early is the same design on
    fewer seeds."""
    etas = [float(e) for e in study.spec.grid["eta"]]
    runs = runs_by_length(study)
    finished = runs.groupby("seed")["eta"].nunique()
    seeds = sorted(int(s) for s in finished.index if finished[s] == len(etas))
    if len(seeds) < 2:
        name = study.spec.name
        raise NNLabError(f"{name}: {len(seeds)} seed(s) have finished every learning rate; "
                         f"the comparison needs 2 (`nnlab run studies/{name}.toml`)")
    return runs[runs["seed"].isin(seeds)], {
        "etas": etas, "seeds_used": seeds, "planned_seeds": study.spec.replicates,
        "runs_finished": int(runs["trial"].nunique())}


def findings_json(numbers: dict) -> str:
    """`numbers` as the text of a findings.json: strict JSON (NaN and infinities as null,
    numpy values as plain ones; `json.dumps(..., allow_nan=False)` refuses anything else
    that is not JSON), indented by 1, ending in a newline."""
    return json.dumps(strict(numbers), indent=1, allow_nan=False) + "\n"


def strict(value: object) -> object:
    """`value` with NaN and infinities as None, numpy scalars and arrays as plain Python
    values, tuples as lists; a type JSON has no form for is an error naming it."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [strict(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def write_findings(name: str, text: str, numbers: dict) -> Path:
    """results/<name>/findings.md and findings.json (`findings_json`: the numbers behind
    the text)."""
    folder = RESULTS / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "findings.json").write_text(findings_json(numbers))
    path = folder / "findings.md"
    path.write_text(text.strip() + "\n")
    return path


def as_written(numbers: dict) -> dict:
    """`numbers` as findings.json gives them back (`findings_json`, parsed): what a render
    step reads, so that findings.md is a view of findings.json."""
    return json.loads(findings_json(numbers))


def render(template: str, values: Mapping[str, object]) -> str:
    """analysis/templates/<template>.md with its $placeholders filled from `values`
    (`string.Template`: a missing value is an error)."""
    return Template((TEMPLATES / f"{template}.md").read_text()).substitute(values)


def ci(estimate: Mapping[str, float], spec: str = ".3g", scale: float = 1.0,
       unit: str = "") -> str:
    """An estimate's dict (value, low, high, confidence: `Estimate.to_dict`) as
    `Estimate.format` writes it: '0.512 [95% CI 0.431, 0.598]'."""
    return Estimate(**estimate).format(spec, scale, unit)


def floor_summary(difference: dict) -> str:
    """`ArmDifference.summary` of a floor difference's dict."""
    a, b, a_minus_b = (Estimate(**difference[k]) for k in ("a", "b", "difference"))
    return ArmDifference(difference["quantity"], tuple(difference["names"]), a, b, a_minus_b,
                         difference["paired"], tuple(difference["n_seeds"])).summary()


def p_text(family: Mapping, name: str) -> str:
    """'0.032 (Holm 0.096)': the raw and adjusted p-value of test `name` of a family's dict
    (`Family.to_dict`), as `Family.p_text` writes them."""
    row = next(t for t in family["tests"] if t["name"] == name)
    raw, adjusted = (HypothesisTest("", 0.0, p).p_text.removeprefix("p=")
                     for p in (row["p"], row["p_adjusted"]))
    return f"{raw} ({METHODS[family['method']]} {adjusted})"


def figure_path(name: str, figure: str) -> Path:
    """results/<name>/findings/<figure>: beside, not in, figures/ (which `nnlab report`
    keeps to its own files)."""
    folder = RESULTS / name / "findings"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / figure


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap `samples` (n,)."""
    tail = 50 * (1 - confidence)
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def replicate_interval(samples: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """low, high: the central `confidence` interval of bootstrap (or simulated) `samples`
    (n,); mc_error: how far those ends may lie from where unlimited replicates would put
    them (`nnlab.analysis.end_mc_error`), which a verdict on them takes into account."""
    low, high = percentile_interval(samples, confidence)
    return {"low": low, "high": high, "mc_error": end_mc_error(samples, [low, high])}


def statistic(found: Mapping[str, Any], unit: str, n: int) -> hypotheses.Estimate:
    """A hypothesis statistic from a result's value, low and high (a dict), with the Monte
    Carlo error of those ends where it has one (an interval read off replicates)."""
    return hypotheses.Estimate(float(found["value"]), float(found["low"]),
                               float(found["high"]), unit, n, float(found.get("mc_error", 0.0)))


def log2_statistic(ratio: Mapping[str, float], boot_log: np.ndarray, unit: str, n: int
                   ) -> hypotheses.Estimate:
    """A ratio's value and interval (keys value, low, high) as the hypothesis statistic of
    its log2, with the Monte Carlo error of those ends from the replicates of its natural
    log, boot_log (n_resamples,)."""
    value, low, high = (float(np.log2(ratio[key])) for key in ("value", "low", "high"))
    return hypotheses.Estimate(value, low, high, unit, n,
                               end_mc_error(boot_log / np.log(2), [low, high]))


def paired_difference(a: pd.Series, b: pd.Series, seed: int = 0) -> dict:
    """Mean over seeds of a - b (both indexed by seed: the same seed's runs), with a
    bootstrap CI over seeds; wins = seeds where a > b."""
    difference = (a - b).dropna().to_numpy()
    rng = np.random.default_rng(seed)
    boot = rng.choice(difference, (2000, difference.size)).mean(axis=1)
    low, high = percentile_interval(boot)
    return {"value": float(difference.mean()), "low": low, "high": high,
            "n_pairs": int(difference.size), "wins": int((difference > 0).sum())}


SCALE_UP = (
    "Scale up: more seeds (raise study.replicates: the study grows and keeps the runs it "
    "has; CIs shrink about as 1/sqrt(seeds)) and longer runs (a new spec with a larger "
    "n_steps and eval_steps, as the *-long studies are; with a constant eta their values at "
    "the old lengths are the old runs', bit for bit; the cost grows with the longest N "
    "only). Past one "
    "machine: put the study in PostgreSQL (`nnlab run <spec> --storage "
    "postgresql://user@host/db --jobs 2`) and start the same command on every host: the "
    "trials are enqueued once and each runs exactly once, whichever worker pulls it."
)


def scale_up(for_this_question: str) -> str:
    """The findings' scale-up paragraph: what helps this question most, then SCALE_UP."""
    return (f"Scale up for this question: {for_this_question} In general: "
            + SCALE_UP.removeprefix("Scale up: "))


def std_vs_n_figure(tables: dict[str, pd.DataFrame], title: str, path,
                    binomial: pd.DataFrame | None = None) -> None:
    """Std of test_acc over seeds vs N (log-log) with bootstrap CIs, one line per label;
    tables: `variance_vs_n(...).table`s (n_steps, std, std_low, std_high, n_runs, mean).
    With `binomial` (such a table), the std sqrt(p(1-p)/n_test) a finite test set gives at
    most."""
    figure = Figure(figsize=(9, 5), layout="constrained")
    ax = figure.subplots()
    for label, table in tables.items():
        ax.errorbar(table["n_steps"], table["std"], fmt="o-", capsize=3,
                    yerr=[table["std"] - table["std_low"], table["std_high"] - table["std"]],
                    label=f"{label} ({int(table['n_runs'].min())} runs)")
    if binomial is not None:
        std = np.sqrt(binomial["mean"] * (1 - binomial["mean"]) / N_TEST)
        ax.plot(binomial["n_steps"], std, "k--", label="binomial test-set std (upper bound)")
    ax.set(xscale="log", yscale="log", xlabel="N (steps)", ylabel="std of test_acc over seeds",
           title=f"{title} (95% CIs)")
    ax.legend(fontsize="small")
    save_figure(figure, path)
