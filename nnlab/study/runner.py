"""Plan, claim, run and record the trials of one study: the engine's only Optuna writer.

Exactly once: every (configuration, replicate seed) has a stable `key` (a hash of its full
TrainConfig and data). Planning (under the study lock) enqueues each key that has no
complete, pruned, waiting or live running trial; claiming takes WAITING trials one at a
time with Optuna's atomic WAITING -> RUNNING transition (under the study lock with a
journal file, a row lock in PostgreSQL, BEGIN IMMEDIATE in SQLite), so a trial runs in one
place only, however many `nnlab run` or `nnlab worker` processes, on however many hosts,
pull from the study.

Trials whose process is gone are failed and their keys enqueued again (under the lock, so
each key is enqueued once), by any process of the study: once the grace period has passed
without a heartbeat, wherever the owner ran (`nnlab.study.liveness`), or at once where its
owner's pid on this machine says it is gone. A run waits for the trials other processes
run, and runs again those whose process dies.

The parent process claims and records; worker processes (loky's reusable pool, or a Dask
cluster's) only train and write parquet (`nnlab.study.task.run_trial`), and send each
evaluation to the parent, which stores it as an intermediate value and, with a pruner,
decides whether the run goes on (`nnlab.study.live`, `nnlab.study.pruning`). It also keeps
the companion study of configurations in step (`nnlab.study.configs`). With lockstep
(`nnlab.study.groups`), a trial is claimed with the waiting trials of its group, each by its
own claim, trained with them in one worker (`run_group`) and recorded on its own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, replace
from typing import Any

import optuna
from loky import get_reusable_executor
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages.journal import JournalStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from nnlab.study.attrs import (
    CONFIG_ID,
    ERROR,
    IDENTITY,
    KEY,
    KEY_METRICS,
    OWNER,
    RESULT,
    SEED,
)
from nnlab.study.configs import ended_configurations, sync_configs
from nnlab.study.groups import Lockstep
from nnlab.study.live import Channel, open_channel
from nnlab.study.liveness import HeartbeatRecorder, owner_is_gone, this_process
from nnlab.study.progress import Progress
from nnlab.study.pruning import Pruning, judged, make_pruner, unfollowed_seeds, unrun_note
from nnlab.study.spec import StudySpec, param_value, stable_hash
from nnlab.study.status import best_configuration, format_best
from nnlab.study.storage import DEFAULT_HEARTBEAT, Heartbeat, stale_trial_ids
from nnlab.study.store import ResultsStore
from nnlab.study.task import TrialOutcome, TrialTask, load_dataset
from nnlab.study.trials import trials_table
from nnlab.train import fit_to_data

__all__ = ["CONFIG_ID", "ERROR", "IDENTITY", "KEY", "OWNER", "RESULT", "SEED", "Runner"]

_log = logging.getLogger(__name__)


# BLAS threads per worker. Parallelism comes from worker processes (--jobs up to the number
# of cores), never from BLAS threads: on a busy machine, BLAS threads that outnumber free
# cores spin and wait, and a seed-000 run took 6-7x longer with 2 threads than with 1.
BLAS_THREADS = 1
# how often the loop looks for evaluations to store: often when runs wait for a pruning
# verdict, less so when the values are only stored
TICK, TICK_PRUNING = 0.25, 0.01
RECOVER_EVERY = 10.0  # seconds between looks for dead owners while a decision waits
WAIT = 1.0  # seconds between looks at the study while only other processes' trials run
# seconds an idle worker of the default pool lives on (it keeps the data it loaded): past
# the waits for other processes' trials; loky's own default is 10
WORKER_IDLE = 300


@dataclass
class RunCounts:
    """What one call of `Runner.execute` did."""

    completed: int = 0
    diverged: int = 0
    failed: int = 0
    pruned: int = 0
    grouped: int = 0  # trials trained in lockstep groups of two or more

    def add(self, outcome: TrialOutcome) -> None:
        self.failed += outcome.error is not None
        self.completed += outcome.error is None and outcome.status != "pruned"
        self.diverged += outcome.status == "diverged"
        self.pruned += outcome.status == "pruned"
        self.grouped += outcome.error is None and outcome.group_size > 1


class Runner:
    """The trials of `spec` in the Optuna study `study`, results in `store`.

    `lock` is a context manager that serialises planning across processes (on every host
    that shares the storage). `heartbeat`: the settings the storage was opened with; this
    process records the heartbeat of its running trials every `heartbeat.interval` seconds.
    """

    def __init__(self, spec: StudySpec, study: optuna.Study, store: ResultsStore,
                 lock: Callable[[], contextlib.AbstractContextManager],
                 heartbeat: Heartbeat = DEFAULT_HEARTBEAT) -> None:
        self.spec = spec
        self.study = study
        self.store = store
        self.lock = lock
        self.heartbeat = heartbeat
        self._data = spec.data.to_dict()
        # Optuna's storage itself: the claim of a WAITING trial (as Study.ask does it),
        # user attrs of trials this process did not ask for, and heartbeats
        self._storage = study._storage
        # a journal file serves one machine: claims there take the study lock (owner first)
        self._locked_claims = isinstance(self._storage, JournalStorage)
        self._beats = HeartbeatRecorder(self._storage, heartbeat.interval)
        self._ownerless_since: dict[int, float] = {}
        self._held: set[int] = set()  # ids of trials this process claimed, not yet recorded
        self._recovered = time.monotonic()
        self.lockstep = Lockstep(self)

    # --- identities -----------------------------------------------------------------------

    def _identity(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        config = self.spec.config_for(params, seed).to_dict()
        without_seed = {k: v for k, v in config.items() if k != "seed"}
        return {KEY: stable_hash({"config": config, "data": self._data}),
                CONFIG_ID: stable_hash({"config": without_seed, "data": self._data}),
                SEED: seed}

    # --- planning (call under the lock) ---------------------------------------------------

    def plan(self) -> None:
        """Fail trials whose process is gone, then enqueue every planned key that has no
        complete, waiting or running trial."""
        self._requeue(self._gone(), self._abandoned)
        trials = self.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state == TrialState.FAIL:
                self.store.discard_trial(trial.number)
        taken = self._taken(trials)
        for params, seed in self._planned(trials):
            identity = self._identity(params, seed)
            if identity[KEY] not in taken:
                self._enqueue(params, identity)
                taken.add(identity[KEY])
        self._follow_first_runs()
        sync_configs(self.spec, self.study)

    @staticmethod
    def _taken(trials: list[FrozenTrial]) -> set[str | None]:
        """Keys that have a complete, pruned, waiting or running trial."""
        return {t.user_attrs.get(KEY) for t in trials if t.state in (
            TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)}

    def _planned(self, trials: list[FrozenTrial]) -> Iterator[tuple[dict[str, Any], int]]:
        """(params, seed) of every planned trial known so far: the whole grid, or the
        configurations a sampler has proposed."""
        if self.spec.sampler == "grid":
            for point in self.spec.grid_points():
                for seed in self.spec.seeds:
                    yield {k: param_value(v) for k, v in point.items()}, seed
            return
        for trial in trials:
            if SEED in trial.user_attrs:  # a pruned run's key is taken too
                yield trial.params, trial.user_attrs[SEED]

    @functools.cached_property
    def _distributions(self) -> dict[str, BaseDistribution]:
        """The spec's distributions, except where the study's trials already record one
        for a field: a study keeps the distributions it was created with (grids before
        numeric distributions were categorical)."""
        distributions = self.spec.distributions()
        for trial in self.study.get_trials(deepcopy=False):
            if trial.distributions:
                distributions.update({name: dist for name, dist in trial.distributions.items()
                                      if name in distributions})
                break
        return distributions

    def _enqueue(self, params: dict[str, Any], identity: dict[str, Any]) -> None:
        self.study.add_trial(create_trial(
            state=TrialState.WAITING, params=params,
            distributions={name: self._distributions[name] for name in params},
            user_attrs=identity))

    def _finish(self, trial: FrozenTrial, attrs: dict[str, Any], state: TrialState,
                value: float | None = None) -> bool:
        """End the RUNNING `trial` with `attrs`, `state` and `value`. False if another
        process ended it first (it took this process for gone). A trial that does not end
        COMPLETE keeps no files, except a PRUNED one its curve."""
        try:
            for name, attr in attrs.items():
                self._storage.set_trial_user_attr(trial._trial_id, name, attr)
            ended = self.study.tell(trial.number, value, state=state, skip_if_finished=True)
        except UpdateFinishedTrialError:
            ended = self._storage.get_trial(trial._trial_id)
        if ended.state == TrialState.PRUNED:
            for kind in ("predictions", "probabilities"):
                self.store.trial_path(kind, trial.number).unlink(missing_ok=True)
        elif ended.state != TrialState.COMPLETE:
            self.store.discard_trial(trial.number)
        return ended.state == state

    # --- trials whose process is gone -----------------------------------------------------

    def _gone(self) -> list[FrozenTrial]:
        """RUNNING trials whose process is gone: no heartbeat for longer than the grace
        period, wherever their owner ran; an owner on this machine whose pid no longer
        runs; no owner (a claimer that died mid-claim): with a journal file, whose claims
        name their owner first, at once; else once no heartbeat came for the grace period
        as seen from here. Never this process's own: it runs them, however late its
        heartbeats (a busy machine can delay them past a short grace period)."""
        running = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t._trial_id not in self._held]
        stale = stale_trial_ids(self._storage, self.study._study_id)
        now = time.monotonic()
        self._ownerless_since = {t.number: self._ownerless_since.get(t.number, now)
                                 for t in running if OWNER not in t.user_attrs}
        return [t for t in running if t._trial_id in stale or (
            owner_is_gone(t.user_attrs[OWNER]) if OWNER in t.user_attrs else
            self._locked_claims or now - self._ownerless_since[t.number] > self.heartbeat.grace)]

    def _abandoned(self, trial: FrozenTrial) -> str:
        """The error recorded on a trial whose process is gone."""
        owner = trial.user_attrs.get(OWNER) or {}
        who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
        if owner and owner_is_gone(owner):
            return (f"abandoned: {who} stopped before the trial ended; its configuration is "
                    "run again")
        return (f"abandoned: {who} sent no heartbeat for over {self.heartbeat.grace} s; its "
                "configuration is run again")

    def _requeue(self, trials: list[FrozenTrial], error: Callable[[FrozenTrial], str]) -> int:
        """Fail the RUNNING `trials` with the message `error(trial)` and enqueue the key of
        each one this call failed, unless another trial holds it (call under the lock).
        Returns how many were failed."""
        failed = [t for t in trials if self._finish(t, {ERROR: error(t)}, TrialState.FAIL)]
        taken = self._taken(self.study.get_trials(deepcopy=False))
        for trial in failed:  # a sampled trial that died before its key: sampled anew
            if KEY in trial.user_attrs and trial.user_attrs[KEY] not in taken:
                self._enqueue(trial.params, {name: trial.user_attrs[name] for name in IDENTITY})
                taken.add(trial.user_attrs[KEY])
        return len(failed)

    def recover(self) -> int:
        """Fail the trials whose process is gone and enqueue their keys again; the lock is
        taken only when there are some. Returns how many were failed."""
        if not self._gone():
            return 0
        with self.lock():
            return self._requeue(self._gone(), self._abandoned)

    # --- claiming -------------------------------------------------------------------------

    def claim_next(self) -> FrozenTrial | None:
        """A planned trial now RUNNING and owned by this process, or None when nothing is
        left to claim."""
        while True:
            trial = self._claim_waiting()
            if trial is not None:
                return trial
            if self.recover():
                continue  # their keys are waiting again
            if self.spec.sampler == "grid":
                return None
            with self.lock():
                if not self._waiting():  # else: enqueued meanwhile, claim it
                    return self._sample_configuration()

    def _waiting(self) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if KEY in t.user_attrs]

    def _claim_waiting(self, wanted: Callable[[FrozenTrial], bool] = lambda trial: True
                       ) -> FrozenTrial | None:
        """Claim the first WAITING trial (of those `wanted`). With a journal file (one
        machine), under the study lock, owner and heartbeat first: a claimer killed mid-claim
        leaves its trial WAITING, and a RUNNING trial always names the process to check and
        has a heartbeat. With a database, lock-free (any number of hosts claim at once), a
        heartbeat first."""
        if self._locked_claims:
            with self.lock():
                for trial in filter(wanted, self._waiting()):
                    self._storage.set_trial_user_attr(trial._trial_id, OWNER, this_process())
                    self._beats.add(trial._trial_id)
                    if self._storage.set_trial_state_values(trial._trial_id,
                                                            TrialState.RUNNING):
                        self._held.add(trial._trial_id)
                        return self._claimed(trial._trial_id)
                    self._beats.discard(trial._trial_id)
            return None
        for trial in filter(wanted, self._waiting()):
            try:  # Optuna's own atomic claim, as in Study.ask
                if not self._storage.set_trial_state_values(trial._trial_id,
                                                            TrialState.RUNNING):
                    continue
                self._held.add(trial._trial_id)
                self._beats.add(trial._trial_id)  # a heartbeat before the owner, always
                self._storage.set_trial_user_attr(trial._trial_id, OWNER, this_process())
            except UpdateFinishedTrialError:  # taken for gone before it was owned: next one
                self._held.discard(trial._trial_id)
                self._beats.discard(trial._trial_id)
                continue
            return self._claimed(trial._trial_id)
        return None

    def _claimed(self, trial_id: int) -> FrozenTrial:
        """The trial `trial_id`, just claimed by this process (logged: one line per run
        this process trains, with -v)."""
        trial = self._storage.get_trial(trial_id)
        _log.debug("trial %d claimed: key %s", trial.number, trial.user_attrs.get(KEY))
        return trial

    def _sample_configuration(self) -> FrozenTrial | None:
        """Ask the sampler for one more configuration (under the lock). Its trial runs the
        first seed and is returned, claimed; the other replicates are enqueued. None when
        the budget of `n_trials` configurations is spent. A proposal of a known
        configuration is pruned and the sampler asked again."""
        trials = self.study.get_trials(deepcopy=False)
        configs = {t.user_attrs[CONFIG_ID] for t in trials if KEY in t.user_attrs}
        assert self.spec.n_trials is not None  # a sampled study has its budget
        while len(configs) < self.spec.n_trials:
            with warnings.catch_warnings():  # the heartbeat is this engine's, not optimize's
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                trial = self.study.ask(fixed_distributions=self._distributions)
            self._held.add(trial._trial_id)
            first, *others = [self._identity(trial.params, seed) for seed in self.spec.seeds]
            if first[CONFIG_ID] in configs:  # a repeat, PRUNED without a key: never run
                trial.set_user_attr(CONFIG_ID, first[CONFIG_ID])
                self.study.tell(trial, state=TrialState.PRUNED)
                self._held.discard(trial._trial_id)
                continue
            self._beats.add(trial._trial_id)
            for name, attr in {**first, OWNER: this_process()}.items():
                trial.set_user_attr(name, attr)
            if self.spec.pruner_unit == "run":  # else once this run ends (_follow_first_runs)
                for identity in others:
                    self._enqueue(trial.params, identity)
            return self._claimed(trial._trial_id)
        return None

    def _follow_first_runs(self, config_ids: list[str] | None = None) -> int:
        """With pruner_unit "configuration" (call under the lock): plan the other seeds of
        each configuration (of `config_ids`, default all) whose first run has ended and
        that lack them (`nnlab.study.pruning.unfollowed_seeds`): enqueued if the first run
        completed, recorded PRUNED without running if it was pruned (no files, steps_run
        0). Returns how many were recorded unrun."""
        unrun = 0
        for first, seed in unfollowed_seeds(self.spec, self.study.get_trials(deepcopy=False),
                                            config_ids):
            identity = self._identity(first.params, seed)
            if first.state == TrialState.COMPLETE:
                self._enqueue(first.params, identity)
                continue
            result = {"status": "pruned", "n_steps": 0, "note": unrun_note(first)}
            self.study.add_trial(create_trial(
                state=TrialState.PRUNED, params=first.params, distributions=first.distributions,
                user_attrs={**identity, RESULT: result, **dict.fromkeys(KEY_METRICS),
                            "status": "pruned"}))
            unrun += 1
        return unrun

    # --- recording ------------------------------------------------------------------------

    def record(self, trial: FrozenTrial, outcome: TrialOutcome) -> bool:
        """Store a run's outcome in Optuna: COMPLETE (status ok or diverged), PRUNED (status
        pruned: a pruner stopped it, maybe at its last step; metrics where it stopped, its
        value the last intermediate value, as Optuna takes it) or FAIL. False if the trial
        had meanwhile been failed as abandoned (its result is dropped: its configuration
        runs again elsewhere)."""
        self._held.discard(trial._trial_id)
        self._beats.discard(trial._trial_id)
        if outcome.error is not None:
            return self._finish(trial, {ERROR: outcome.error}, TrialState.FAIL)
        pruned = outcome.status == "pruned"
        value = None if pruned else outcome.metrics.get(self.spec.objective)
        if value is None and not pruned:  # a diverged run's objective: the worst value
            value = float("-inf") if self.spec.direction == "maximize" else float("inf")
        note = f"pruned at step {outcome.metrics['n_steps']:.0f}" if pruned else outcome.note
        result = {"status": outcome.status, **outcome.metrics, "seeds": outcome.seeds}
        if note:
            result["note"] = note
        if outcome.data_digest:
            result["data_digest"] = outcome.data_digest
        metrics = {**outcome.metrics, "status": outcome.status}
        attrs = {RESULT: result, **{name: metrics.get(name) for name in KEY_METRICS}}
        state = TrialState.PRUNED if pruned else TrialState.COMPLETE
        return self._finish(trial, attrs, state, value)

    def _task(self, trial: FrozenTrial, channel: Channel) -> TrialTask:
        config = self.spec.config_for(trial.params, trial.user_attrs[SEED])
        link = channel.link(trial.number, waits=judged(self.spec, trial))
        return TrialTask(trial.number, config.to_dict(), self.spec.data, str(self.store.folder),
                         self.spec.save_probs, BLAS_THREADS, self.spec.objective, link)

    def _pruning(self) -> Pruning | None:
        """The pruning decisions of this process's trials; None without a pruner."""
        if self.spec.pruner == "none":
            return None
        data = load_dataset(self.spec.data)
        max_steps = max(fit_to_data(config, data)[1] for _, config in self.spec.probe_configs())
        return Pruning(self.study, functools.partial(
            make_pruner, self.spec.pruner, self.spec.pruner_options, max_steps),
            functools.partial(judged, self.spec))

    # --- the loop -------------------------------------------------------------------------

    def execute(self, n_jobs: int, progress: bool = True,
                executor: Executor | None = None) -> RunCounts:
        """Run trials in `n_jobs` worker processes until no trial of the study is waiting or
        running anywhere: trials of processes that die meanwhile are failed and run again
        here. The evaluations of
        running trials are stored as they arrive; with a pruner, a run is recorded once
        its last evaluation is decided.

        `executor` defaults to loky's reusable pool of `n_jobs` worker processes (a task is
        pickled to its worker: a configuration, or a Dataset object given from Python, see
        docs/studies.md); any concurrent.futures.Executor (e.g. a Dask client's) can take
        its place.
        """
        counts = RunCounts()
        in_flight: dict[Future, list[FrozenTrial]] = {}  # one trial, or a lockstep group
        ended: dict[int, tuple[FrozenTrial, TrialOutcome]] = {}  # over, not yet recorded
        claimed: dict[int, FrozenTrial] = {}  # this process's trials, by number
        pruning = self._pruning()
        poll = self.heartbeat.interval
        tick = TICK if pruning is None else TICK_PRUNING
        pool: Any = None  # loky's pool, once this call has taken it (killed on failure)

        with open_channel(executor) as channel:
            bar = Progress(self.spec.name, self.spec.n_planned, self._n_done(), self._best,
                           enabled=progress)

            filled = time.monotonic()

            def fill() -> None:
                nonlocal filled, pool
                filled = time.monotonic()
                while len(in_flight) < n_jobs and (trial := self.claim_next()) is not None:
                    if executor is None:  # the same pool, or a new one once a worker died
                        pool = get_reusable_executor(n_jobs, timeout=WORKER_IDLE)
                    trials = [trial, *self.lockstep.claim_mates(trial, n_jobs - len(in_flight))]
                    claimed.update((mate.number, mate) for mate in trials)
                    tasks = [self._task(mate, channel) for mate in trials]
                    in_flight[self.lockstep.submit(executor or pool, tasks)] = trials

            try:
                with self._beats:
                    fill()
                    while in_flight or ended or self._unfinished_elsewhere():
                        if not in_flight and not ended:  # others' trials run: wait, retry
                            time.sleep(WAIT)             # them if they die
                            fill()
                            continue
                        finished = _finished(in_flight, tick)
                        for future in finished:
                            trials = in_flight.pop(future)
                            outcomes = _outcomes(future, [trial.number for trial in trials])
                            for trial, outcome in zip(trials, outcomes, strict=True):
                                ended[trial.number] = (trial, outcome)
                                if pruning is not None:
                                    pruning.ended(trial.number)
                        self._store_evaluations(channel, claimed, pruning)
                        try:
                            # first keep the workers busy (and look for trials to retry
                            # every `poll` seconds), then record
                            if finished or time.monotonic() - filled >= poll:
                                fill()
                        finally:
                            recorded = self._recordable(ended, pruning)
                            config_ids = []  # of the runs recorded in this pass
                            for number in recorded:
                                trial, outcome = ended.pop(number)
                                if pruning is not None and pruning.pruned_at(number) is not None:
                                    outcome = replace(outcome, status="pruned")
                                if self._count(trial, outcome, counts, bar):
                                    config_ids.append(trial.user_attrs[CONFIG_ID])
                                if pruning is not None:
                                    pruning.forget(number)
                                channel.release(number)
                                del claimed[number]
                            self._sync_companion(config_ids)
                        if recorded and self.spec.pruner_unit == "configuration":
                            fill()  # an ended first run may have planned its other seeds
                        bar.tick()
            except BaseException:
                if pool is not None:  # its runs stop with this process
                    pool.shutdown(kill_workers=True)
                for future in in_flight:
                    future.cancel()
                self._release()
                raise
            finally:
                bar.close()
        return counts

    @staticmethod
    def _recordable(ended: dict[int, tuple[FrozenTrial, TrialOutcome]],
                    pruning: Pruning | None) -> list[int]:
        """The ended runs that can be recorded now: all without a pruner; else those that
        failed, and those whose every evaluation is decided."""
        return [number for number, (_, outcome) in ended.items()
                if pruning is None or outcome.error is not None or pruning.settled(number)]

    def _store_evaluations(self, channel: Channel, claimed: dict[int, FrozenTrial],
                           pruning: Pruning | None) -> None:
        """Store the evaluations the workers sent as intermediate values; with a pruner,
        take every decision that can be taken now and send the verdicts runs wait for."""
        for number, step, value, waits in channel.drain():
            trial = claimed[number]
            try:
                self._storage.set_trial_intermediate_value(trial._trial_id, step, value)
            except UpdateFinishedTrialError:  # failed as abandoned meanwhile: stop the run
                if waits:
                    channel.send(number, False)
                continue
            if pruning is not None and judged(self.spec, trial):
                pruning.report(number, trial._trial_id, step, value, waits)
        if pruning is None:
            return
        for decision in pruning.decide():
            if decision.waits:
                channel.send(decision.number, not decision.prune)
        if pruning.waiting and time.monotonic() - self._recovered > RECOVER_EVERY:
            self._recovered = time.monotonic()  # a decision may wait on a dead process's trial
            self.recover()

    def _count(self, trial: FrozenTrial, outcome: TrialOutcome, counts: RunCounts,
               bar: Progress) -> bool:
        """Record the run's `outcome` and count it; False if the trial had meanwhile been
        failed as abandoned (`record`)."""
        unrun = 0
        recorded = self.record(trial, outcome)
        if not recorded:
            outcome = TrialOutcome(outcome.number, error="failed as abandoned meanwhile")
        elif self.spec.pruner_unit == "configuration" and judged(self.spec, trial):
            with self.lock():  # a first run: its configuration's other seeds follow
                unrun = self._follow_first_runs([trial.user_attrs[CONFIG_ID]])
        counts.add(outcome)
        counts.pruned += unrun  # the other seeds of a pruned configuration, never run
        bar.update((outcome.error is None) + unrun, failed=counts.failed,
                   diverged=counts.diverged, pruned=counts.pruned)
        return recorded

    def _sync_companion(self, config_ids: list[str]) -> None:
        """Add those configurations of `config_ids` (of the runs one pass recorded: a
        lockstep group's may end many) whose runs have all ended to the companion study,
        in one sync: one table of all their runs."""
        if config_ids and ended_configurations(
                self.spec, self.study.get_trials(deepcopy=False), config_ids):
            with self.lock():
                sync_configs(self.spec, self.study, config_ids)

    def _best(self) -> str:
        """The best configuration so far, for progress lines."""
        table = trials_table(self.spec, self.study.get_trials(deepcopy=False))
        best = best_configuration(self.spec, table)
        return format_best({"best_configuration": best, "objective": self.spec.objective})

    def _release(self) -> None:
        """Fail the trials this process holds (it is stopping) and enqueue their keys again,
        for other processes or the next run."""
        if not self._held:
            return
        held = [self._storage.get_trial(trial_id) for trial_id in sorted(self._held)]
        me = this_process()
        message = (f"interrupted: process {me['pid']} on {me['host']} stopped; its "
                   "configuration is run again")
        with self.lock():
            self._requeue(held, lambda trial: message)

    def _unfinished_elsewhere(self) -> bool:
        """Whether any trial of the study is waiting or running. Read under the lock:
        recovering a dead process's trial fails it and enqueues its key again as one locked
        step, and a read between the two would see the study finished."""
        with self.lock():
            return bool(self.study.get_trials(
                deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))

    def _n_done(self) -> int:
        """Keys whose run has ended: complete or pruned."""
        return len({t.user_attrs.get(KEY) for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            if KEY in t.user_attrs})


def _finished(in_flight: dict[Future, list[FrozenTrial]], timeout: float) -> set[Future]:
    """The futures of `in_flight` done within `timeout` seconds (returning at the first)."""
    if not in_flight:  # runs over, waiting for their last decisions
        time.sleep(timeout)
        return set()
    return wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)[0]


def _outcomes(future: Future, numbers: list[int]) -> list[TrialOutcome]:
    """The outcomes of the trials numbered `numbers` (one, or a lockstep group) run by
    `future`."""
    try:
        result = future.result()
    except Exception as err:  # the worker process died (killed, out of memory, segfault)
        message = " ".join(str(err).split())
        return [TrialOutcome(number, error=f"worker process failed: {type(err).__name__}: "
                             f"{message[:300]}", group_size=len(numbers)) for number in numbers]
    return result if isinstance(result, list) else [result]
