"""Lockstep groups of a study's trials: waiting trials that share a data order, claimed and
trained together (see nnlab.lockstep), bit for bit as they would train alone.

The runner claims a trial as ever; when the study groups (`grouping`), it then claims
waiting trials of the same `group_key`, each by its own claim (exactly once per trial, as
any claim). One worker trains them with `train_group`, each run reporting its own
evaluations through its own link (live intermediate values), and writes each trial's files
(`run_group`); the runner records each trial's outcome. A worker that dies mid-group fails
all its trials, and they are run again like any failed or abandoned trial.

A study groups with `[study] lockstep = true` (the default) and no pruner. A pruner's
decision for trial n at a step waits for every trial numbered below n and counts those not
yet claimed as not started; without groups trials are claimed in number order, so that view
is the same in every run of the study. A group claims its mates ahead of lower-numbered
trials of other groups, which would then be judged as not started or not, depending on how
the trials happened to be grouped.

Sizes: at most `max_group_size` runs; and while fewer groups are waiting than worker slots
are free, a group takes only its share of its key's trials, so that no worker idles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import replace
from typing import TYPE_CHECKING

from optuna.trial import FrozenTrial

from nnlab.lockstep import fits_in_memory, group_key, max_group_size, train_group
from nnlab.study.attrs import SEED
from nnlab.study.spec import StudySpec
from nnlab.study.task import (
    TrialOutcome,
    TrialTask,
    checked_data,
    close_link,
    failure,
    limit_blas_threads,
    on_eval,
    outcome,
    run_trial,
    write_run,
)
from nnlab.train_config import TrainConfig

if TYPE_CHECKING:
    from nnlab.study.runner import Runner


def grouping(spec: StudySpec) -> bool:
    """Whether the study of `spec` trains trials that share a data order in lockstep groups:
    study.lockstep, and no pruner (see the module's note)."""
    return spec.lockstep and spec.pruner == "none"


def run_group(tasks: Sequence[TrialTask]) -> list[TrialOutcome]:
    """Train the trials of `tasks` (their configs share one group_key) together and write
    each one's files: one outcome per trial, in order; never raises (a trial whose files
    cannot be written fails alone). A group that does not fit in the memory available
    here (`fits_in_memory`) trains its trials one by one: the same runs."""
    size = len(tasks)
    try:
        limit_blas_threads(tasks[0].blas_threads)
        data = checked_data(tasks[0])
        configs = [TrainConfig.from_dict(task.config) for task in tasks]
        if not fits_in_memory(configs, data):
            return [run_trial(task) for task in tasks]
        try:
            runs = train_group(configs, data, [on_eval(task) for task in tasks])
        finally:
            for task in tasks:
                close_link(task)
    except Exception as err:  # every trial of the group fails with it; the study goes on
        return [replace(failure(task.number, err), group_size=size) for task in tasks]
    outcomes = []
    for task, run in zip(tasks, runs, strict=True):
        try:
            write_run(task, run)
        except Exception as err:
            outcomes.append(replace(failure(task.number, err), group_size=size))
            continue
        outcomes.append(replace(outcome(task.number, run, data.digest), group_size=size))
    return outcomes


class Lockstep:
    """How `runner` groups the trials it claims: not at all unless `grouping(runner.spec)`."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.enabled = grouping(runner.spec)
        self._configs: dict[int, TrainConfig] = {}  # trial number -> its config
        self._keys: dict[int, str | None] = {}  # trial number -> group_key

    def _config(self, trial: FrozenTrial) -> TrainConfig:
        if trial.number not in self._configs:
            self._configs[trial.number] = self.runner.spec.config_for(
                trial.params, trial.user_attrs[SEED])
        return self._configs[trial.number]

    def key(self, trial: FrozenTrial) -> str | None:
        """The group_key of the trial's config (None: it trains alone)."""
        if trial.number not in self._keys:
            self._keys[trial.number] = group_key(self._config(trial)) if self.enabled else None
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
        size = min(max_group_size(self._config(first)), math.ceil((len(mates) + 1) / parts))
        claimed: list[FrozenTrial] = []
        while len(claimed) < size - 1:
            trial = self.runner._claim_waiting(lambda t: t.number in mates)
            if trial is None:  # the others were claimed elsewhere meanwhile
                break
            mates.discard(trial.number)
            claimed.append(trial)
        return claimed

    @staticmethod
    def submit(pool: Executor, tasks: list[TrialTask]) -> Future:
        """Run `tasks` (one, or a group) in `pool`: the future of one outcome or a list."""
        if len(tasks) == 1:
            return pool.submit(run_trial, tasks[0])
        return pool.submit(run_group, tasks)
