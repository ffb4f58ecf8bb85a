"""Where a study stands: counts of planned work, the best configuration so far, an ETA."""

from __future__ import annotations

import math
from typing import Any, cast

import pandas as pd

from nnlab.study.spec import StudySpec

LIVE_STATES = ("COMPLETE", "PRUNED", "WAITING", "RUNNING", "ABANDONED")  # not (yet) failed


def configurations(spec: StudySpec, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration with complete trials, best first: config_id, the varied
    fields, n_seeds (complete runs), <objective>_mean/_std and test_acc_mean/_std over them
    (std ddof=1, NaN for one seed), diverged and pruned (runs). Ranked by the mean objective
    value (a diverged run's objective counts as the worst value), so only validation data
    chooses; configurations with a pruned run come after all others (a pruned run is never
    a complete result, and the mean of the runs a pruner let finish is biased)."""
    complete = frame[frame["state"] == "COMPLETE"]
    pruned = pruned_runs(frame).groupby("config_id").size()
    varied = list(spec.grid or spec.space)
    objective = spec.objective
    table = complete.groupby("config_id", sort=False).agg(
        **{name: (name, "first") for name in varied},
        n_seeds=("trial", "size"),
        rank_value=("value", "mean"),
        **{f"{objective}_mean": (objective, "mean"), f"{objective}_std": (objective, "std")},
        test_acc_mean=("test_acc", "mean"), test_acc_std=("test_acc", "std"),
        diverged=("status", lambda s: int((s == "diverged").sum())),
    )
    table["pruned"] = pruned.reindex(table.index, fill_value=0).astype(int)
    table["has_pruned"] = table["pruned"] > 0
    table = table.sort_values(["has_pruned", "rank_value"],
                              ascending=[True, spec.direction == "minimize"], kind="stable")
    return table.drop(columns=["rank_value", "has_pruned"]).reset_index()


def pruned_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs a pruner stopped (PRUNED trials with a key; a sampler's repeat of a known
    configuration is PRUNED too, but was never run)."""
    return frame[(frame["state"] == "PRUNED") & frame["key"].notna()]


def best_configuration(spec: StudySpec, frame: pd.DataFrame) -> dict[str, Any] | None:
    """The first row of `configurations` as {"params", "n_seeds", "<objective>_mean",
    "<objective>_std", "test_acc_mean", "test_acc_std"}, or None if no configuration has
    complete runs only."""
    table = configurations(spec, frame)
    table = table[table["pruned"] == 0]
    if table.empty:
        return None
    best = table.to_dict("records")[0]
    varied = list(spec.grid or spec.space)
    objective = spec.objective
    return {"params": {name: _plain(best[name]) for name in varied},
            **{key: _plain(best[key]) for key in (
                "n_seeds", f"{objective}_mean", f"{objective}_std", "test_acc_mean",
                "test_acc_std")}}


def best_configuration_trials(spec: StudySpec, frame: pd.DataFrame) -> list[int]:
    """The numbers of the complete trials of the best configuration (`configurations`'
    first row), ascending; [] if nothing is complete."""
    table = configurations(spec, frame)
    if table.empty:
        return []
    best = (frame["state"] == "COMPLETE") & (frame["config_id"] == table["config_id"].iloc[0])
    return sorted(frame.loc[best, "trial"].tolist())


def format_configurations(spec: StudySpec, frame: pd.DataFrame, limit: int = 12) -> str:
    """The best `limit` configurations as a text table (mean +- std over seeds)."""
    table = configurations(spec, frame).head(limit)
    objective = spec.objective
    lines = [f"configurations by {objective} (mean +- std over seeds), best first:"]
    for row in table.to_dict("records"):
        params = format_params({name: row[name] for name in spec.grid or spec.space})
        lines.append(f"  {params:<32} {objective} "
                     f"{_pm(row[f'{objective}_mean'], row[f'{objective}_std'])}  test_acc "
                     f"{_pm(row['test_acc_mean'], row['test_acc_std'])}  n={row['n_seeds']}"
                     + (f"  diverged={row['diverged']}" if row["diverged"] else "")
                     + (f"  pruned={row['pruned']}" if row["pruned"] else ""))
    return "\n".join(lines)


def summarize(spec: StudySpec, frame: pd.DataFrame) -> dict[str, Any]:
    """Counts over planned (configuration, seed) keys and trials, with the best so far.

    complete: keys with a complete trial (diverged ones included; `diverged` counts them);
    pruned: keys whose run a pruner stopped (never counted as complete);
    failed: keys whose every trial failed and that are not waiting to run again (a trial
    failed before it had a key, e.g. one lost in a damaged journal, counts in
    failed_attempts only);
    running / waiting: trials in those states, running ones whose process is gone counted
    as `abandoned` instead; eta_seconds: remaining keys x median run seconds / running
    trials (None when nothing runs).
    """
    state = frame["state"].where(~frame["abandoned"].astype(bool), "ABANDONED")
    complete = frame[state == "COMPLETE"]
    n_pruned = pruned_runs(frame)["key"].nunique()
    live_keys = set(frame.loc[state.isin(LIVE_STATES), "key"])
    failed_keys = set(frame.loc[(state == "FAIL") & frame["key"].notna(), "key"]) - live_keys
    running = int((state == "RUNNING").sum())
    n_complete = complete["key"].nunique()
    eta = None
    if running and not complete.empty:
        remaining = max(spec.n_planned - n_complete - n_pruned, 0)
        eta = remaining * complete["seconds"].median() / running
    best_trial = None
    if not complete.empty:
        values = complete["value"]
        best = values.idxmax() if spec.direction == "maximize" else values.idxmin()
        row = cast("pd.Series", complete.loc[cast(int, best)])  # one row: a unique index
        best_trial = {"trial": int(row["trial"]), "seed": int(row["seed"]),
                      "params": {name: _plain(row[name]) for name in spec.grid or spec.space},
                      spec.objective: _plain(row[spec.objective])}
    return {
        "study": spec.name,
        "objective": spec.objective,
        "planned": spec.n_planned,
        "complete": n_complete,
        "diverged": int((complete["status"] == "diverged").sum()),
        "pruned": n_pruned,
        "running": running,
        "waiting": int((state == "WAITING").sum()),
        "abandoned": int((state == "ABANDONED").sum()),
        "failed": len(failed_keys),
        "failed_attempts": int((state == "FAIL").sum()),
        "best_configuration": best_configuration(spec, frame),
        "best_trial": best_trial,
        "eta_seconds": None if eta is None else round(float(eta), 1),
    }


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items()) or "(base config)"


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def format_best(summary: dict[str, Any]) -> str:
    """One line: the best configuration with mean +- std over its seeds."""
    best = summary["best_configuration"]
    if best is None:
        return "best configuration: none complete yet"
    objective = summary["objective"]
    return (f"best configuration: {format_params(best['params'])}  "
            f"{objective} {_pm(best[f'{objective}_mean'], best[f'{objective}_std'])}  "
            f"test_acc {_pm(best['test_acc_mean'], best['test_acc_std'])}  "
            f"(mean +- std over {best['n_seeds']} seeds; chosen on {objective})")


def format_status(summary: dict[str, Any], where: str) -> str:
    lines = [
        f"study {summary['study']} ({where})",
        f"planned {summary['planned']}  complete {summary['complete']} "
        f"(diverged {summary['diverged']})  "
        + (f"pruned {summary['pruned']}  " if summary.get("pruned") else "")
        + f"running {summary['running']}  "
        f"waiting {summary['waiting']}  failed {summary['failed']}"
        + (f"  abandoned {summary['abandoned']} (rerun to retry)" if summary["abandoned"] else ""),
    ]
    if summary["best_trial"] is not None:
        trial = summary["best_trial"]
        lines.append(f"best trial: #{trial['trial']} {format_params(trial['params'])} "
                     f"seed={trial['seed']}  {summary['objective']} "
                     f"{trial[summary['objective']]:.4f}")
    if summary["eta_seconds"] is not None:
        lines.append(f"ETA: {format_duration(summary['eta_seconds'])} "
                     f"({summary['running']} running)")
    for key, what in (("missing_files", "missing result files"),
                      ("unreadable_files", "unreadable result files")):
        if summary.get(key):
            files = "; ".join(f"{kind} of trial(s) {', '.join(map(str, trials))}"
                              for kind, trials in summary[key].items())
            lines.append(f"{what}: {files} (restore them, or `nnlab repair {where}` so "
                         "that `nnlab run` runs those trials again)")
    if summary.get("stray_files"):
        lines.append(f"stray files, ignored: {', '.join(summary['stray_files'])}")
    return "\n".join(lines)


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None or pd.isna(mean):
        return "n/a"
    return f"{mean:.4f}" if std is None or pd.isna(std) else f"{mean:.4f} +- {std:.4f}"


def _plain(value: Any) -> Any:
    """A numpy/pandas scalar as a JSON-able Python value (NaN -> None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value
