"""Lockstep groups of a study's trials: waiting trials that share a data order, claimed and
trained together (see nnlab.lockstep), bit for bit as they would train alone.

The runner claims a trial as ever; with `[study] lockstep = true` (the default) it then
claims waiting trials of the same `group_key`, each by its own claim (exactly once per
trial, as any claim). One worker trains them with `train_group` and writes each trial's
files (`run_group`); the runner records each trial's outcome. A worker that dies mid-group
fails all its trials, and they are run again like any failed or abandoned trial.

Sizes: at most `max_group_size` runs; and while fewer groups are waiting than worker slots
are free, a group takes only its share of its key's trials, so that no worker idles.
"""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial

from nnlab.lockstep import group_key, max_group_size, train_group
from nnlab.study.task import (
    TrialOutcome,
    TrialTask,
    failure,
    limit_blas_threads,
    load_dataset,
    outcome,
    run_trial,
    write_run,
)
from nnlab.train_config import TrainConfig

if TYPE_CHECKING:
    from nnlab.study.runner import Runner


@dataclass(frozen=True)
class GroupTask:
    """Trials to train as one lockstep group (their configs share one group_key)."""

    tasks: tuple[TrialTask, ...]


def run_group(group: GroupTask) -> list[TrialOutcome]:
    """Train the group's trials together and write each one's files: one outcome per
    trial, in order; never raises (a trial whose files cannot be written fails alone)."""
    tasks = group.tasks
    try:
        limit_blas_threads(tasks[0].blas_threads)
        runs = train_group([TrainConfig.from_dict(task.config) for task in tasks],
                           load_dataset(tasks[0].data))
    except Exception as err:  # every trial of the group fails with it; the study goes on
        return [failure(task.number, err) for task in tasks]
    outcomes = []
    for task, run in zip(tasks, runs, strict=True):
        try:
            write_run(task, run)
        except Exception as err:
            outcomes.append(failure(task.number, err))
            continue
        outcomes.append(outcome(task.number, run))
    return outcomes


class Lockstep:
    """How `runner` groups the trials it claims: none when its spec says lockstep = false."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.enabled = runner.spec.lockstep
        self._keys: dict[int, str | None] = {}  # trial number -> group_key

    def key(self, trial: FrozenTrial) -> str | None:
        """The group_key of the trial's config (None: it trains alone)."""
        if trial.number not in self._keys:
            config = TrainConfig.from_dict(self.runner._task(trial).config)
            self._keys[trial.number] = group_key(config) if self.enabled else None
        return self._keys[trial.number]

    def claim_mates(self, first: FrozenTrial, free_slots: int) -> list[FrozenTrial]:
        """Claim waiting trials to train with `first` (just claimed), while `free_slots`
        worker slots, first's included, are free: see the module's note on sizes."""
        key = self.key(first)
        if key is None:
            return []
        waiting = [trial for trial in self.runner._waiting() if trial.number != first.number]
        mates = {trial.number for trial in waiting if self.key(trial) == key}
        if not mates:
            return []
        keys = {self.key(trial) for trial in waiting if self.key(trial) is not None} | {key}
        units = len(keys) + sum(self.key(trial) is None for trial in waiting)
        parts = max(1, math.ceil(free_slots / units))
        config = TrainConfig.from_dict(self.runner._task(first).config)
        size = min(max_group_size(config), math.ceil((len(mates) + 1) / parts))
        claimed: list[FrozenTrial] = []
        while len(claimed) < size - 1:
            trial = self.runner._claim_waiting(lambda t: t.number in mates)
            if trial is None:  # the others were claimed elsewhere meanwhile
                break
            mates.discard(trial.number)
            claimed.append(trial)
        return claimed

    def submit(self, pool: Executor, trials: list[FrozenTrial]) -> Future:
        """Run `trials` (one, or a group) in `pool`: the future of one outcome or a list."""
        tasks = [self.runner._task(trial) for trial in trials]
        if len(tasks) == 1:
            return pool.submit(run_trial, tasks[0])
        return pool.submit(run_group, GroupTask(tuple(tasks)))
