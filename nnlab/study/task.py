"""What a worker process does with one trial: train, write its parquet files, report back.

Workers never touch the Optuna storage: the parent process claims trials and records their
outcomes, and each evaluation of a run goes to it through the trial's `Link` (see
`nnlab.study.live`), which may stop the run there (pruned: only its curve is written).
Any exception of a run (not a divergence, which is data) becomes an outcome with `error`
set, so one bad run never stops a study.
"""

from __future__ import annotations

import functools
import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from threadpoolctl import threadpool_limits

from nnlab.datasets import Dataset
from nnlab.run import Run
from nnlab.study.data_spec import DataSpec
from nnlab.study.live import Link
from nnlab.study.store import ResultsStore
from nnlab.train import OnEval, train
from nnlab.train_config import TrainConfig


@dataclass(frozen=True)
class TrialTask:
    """One trial to run: Optuna trial `number`, the TrainConfig as a dict, where results go;
    `link` takes each evaluation's `objective` value to the parent."""

    number: int
    config: dict[str, Any]
    data: DataSpec
    folder: str
    save_probs: bool
    blas_threads: int
    objective: str = "val_acc"
    link: Link | None = None


@dataclass(frozen=True)
class TrialOutcome:
    """A finished run (`status` "ok", "diverged" or "pruned", metrics, seeds, the content
    digest of the data it trained on) or an `error` message; `group_size`: the runs of
    its lockstep group, itself included (1: it trained alone)."""

    number: int
    status: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    note: str = ""
    error: str | None = None
    data_digest: str | None = None
    group_size: int = 1


@functools.cache
def limit_blas_threads(n_threads: int) -> None:
    """Limit this process's BLAS/OpenMP pools once (workers x threads <= cores)."""
    threadpool_limits(limits=n_threads)


_LOADED: dict[DataSpec, tuple[object, Dataset]] = {}  # spec -> (its files' stamp, data)


def load_dataset(data: DataSpec) -> Dataset:
    """The data set, loaded once per process while the files it reads stay as they are
    (`DataSpec.stamp`), and again when it is not the data the spec expects (its digest);
    a Dataset object given to the study: that object, cut to the spec's sizes."""
    if data.given is not None:
        return data.load()
    stamp = data.stamp()
    stamped, loaded = _LOADED.get(data, (None, None))
    if loaded is None or stamped != stamp or data.digest not in (None, loaded.digest):
        loaded = data.load()
        _LOADED[data] = (stamp, loaded)
    return loaded


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _probabilities(proba: Any) -> pd.DataFrame:
    """(n_test, n_classes) probabilities as a frame: index, p_0 .. p_<k-1>."""
    frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in range(proba.shape[1])])
    frame.insert(0, "index", range(len(frame)))
    frame["index"] = frame["index"].astype("int32")
    return frame


def run_trial(task: TrialTask) -> TrialOutcome:
    """Train one configuration and write its curve and predictions; never raises. Data
    other than the study's (`DataSpec.check`) fail the trial before it trains."""
    try:
        limit_blas_threads(task.blas_threads)
        data = checked_data(task)
        try:
            run = train(TrainConfig.from_dict(task.config), data, on_eval(task))
        finally:
            close_link(task)
        write_run(task, run)
    except Exception as err:  # recorded as a failed trial; the study goes on
        return failure(task.number, err)
    return outcome(task.number, run, data.digest)


def checked_data(task: TrialTask) -> Dataset:
    """The task's data, loaded (`load_dataset`) and checked to be the study's."""
    data = load_dataset(task.data)
    task.data.check(data)
    return data


def on_eval(task: TrialTask) -> OnEval | None:
    """The `train` callback that sends each evaluation's objective value through the task's
    link (and, with a pruner, returns its verdict); None without a link."""
    link, objective = task.link, task.objective
    if link is None:
        return None
    return lambda row, last: link(int(row["step"]), row[objective], last)


def close_link(task: TrialTask) -> None:
    """Let go of the task's link, once its run is over."""
    if task.link is not None:
        task.link.close()


def write_run(task: TrialTask, run: Run) -> None:
    """Write trial task.number's curve and, unless a pruner stopped it, its predictions (and
    probabilities, if kept)."""
    store = ResultsStore(Path(task.folder))
    store.write_trial("curves", task.number, run.curve)
    if run.status == "stopped":
        return
    store.write_trial("predictions", task.number, run.compact_predictions())
    if task.save_probs:
        store.write_trial("probabilities", task.number, _probabilities(run.test_proba))


def failure(number: int, err: Exception) -> TrialOutcome:
    """The outcome of trial `number` that raised `err`: its message and where."""
    where = traceback.extract_tb(err.__traceback__)[-1]
    return TrialOutcome(number, error=f"{type(err).__name__}: {err} "
                        f"({Path(where.filename).name}:{where.lineno})")


def outcome(number: int, run: Run, data_digest: str | None) -> TrialOutcome:
    """The outcome of trial `number` that gave `run` on data of `data_digest` (a run that
    on_eval stopped is "pruned")."""
    metrics = {name: _finite_or_none(value) for name, value in run.metrics.items()}
    status = "pruned" if run.status == "stopped" else run.status
    return TrialOutcome(number, status=status, metrics=metrics,
                        seeds={k: int(v) for k, v in run.seeds.items()}, note=run.note,
                        data_digest=data_digest)
