"""What a worker process does with one trial: train, write its parquet files, report back.

Workers never touch the Optuna storage: the parent process claims trials and records their
outcomes. Any exception of a run (not a divergence, which is data) becomes an outcome
with `error` set, so one bad run never stops a study.
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
from nnlab.study.spec import DataSpec
from nnlab.study.store import ResultsStore
from nnlab.train import train
from nnlab.train_config import TrainConfig


@dataclass(frozen=True)
class TrialTask:
    """One trial to run: Optuna trial `number`, the TrainConfig as a dict, where results go."""

    number: int
    config: dict[str, Any]
    data: DataSpec
    folder: str
    save_probs: bool
    blas_threads: int


@dataclass(frozen=True)
class TrialOutcome:
    """A finished run (`status` "ok" or "diverged", metrics, seeds) or an `error` message."""

    number: int
    status: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    note: str = ""
    error: str | None = None


@functools.cache
def limit_blas_threads(n_threads: int) -> None:
    """Limit this process's BLAS/OpenMP pools once (workers x threads <= cores)."""
    threadpool_limits(limits=n_threads)


@functools.cache
def load_dataset(data: DataSpec) -> Dataset:
    """The data set, loaded once per process."""
    return data.load()


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
    """Train one configuration and write its curve and predictions; never raises."""
    try:
        limit_blas_threads(task.blas_threads)
        run = train(TrainConfig.from_dict(task.config), load_dataset(task.data))
        write_run(task, run)
    except Exception as err:  # recorded as a failed trial; the study goes on
        return failure(task.number, err)
    return outcome(task.number, run)


def write_run(task: TrialTask, run: Run) -> None:
    """Write the curve and predictions (and probabilities, if kept) of trial task.number."""
    store = ResultsStore(Path(task.folder))
    store.write_trial("curves", task.number, run.curve)
    store.write_trial("predictions", task.number, run.compact_predictions())
    if task.save_probs:
        store.write_trial("probabilities", task.number, _probabilities(run.test_proba))


def failure(number: int, err: Exception) -> TrialOutcome:
    """The outcome of trial `number` that raised `err`: its message and where."""
    where = traceback.extract_tb(err.__traceback__)[-1]
    return TrialOutcome(number, error=f"{type(err).__name__}: {err} "
                        f"({Path(where.filename).name}:{where.lineno})")


def outcome(number: int, run: Run) -> TrialOutcome:
    """The outcome of trial `number` that gave `run`."""
    metrics = {name: _finite_or_none(value) for name, value in run.metrics.items()}
    return TrialOutcome(number, status=run.status, metrics=metrics,
                        seeds={k: int(v) for k, v in run.seeds.items()}, note=run.note)
