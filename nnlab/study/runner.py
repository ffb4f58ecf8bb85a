"""Plan, claim, run and record the trials of one study: the engine's only Optuna writer.

Exactly once: every (configuration, replicate seed) has a stable `key` (a hash of its full
TrainConfig and data). Planning (under the study lock) enqueues each key that has no
complete, waiting or live running trial; claiming takes WAITING trials one at a time with
Optuna's atomic WAITING -> RUNNING transition, so a trial runs in one place only, however
many `nnlab run` processes pull from the study. Trials a killed process left RUNNING are
failed on the next plan and their keys enqueued again.

The parent process claims and records; worker processes (loky, through joblib) only train
and write parquet (`nnlab.study.task.run_trial`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import Any

import optuna
from joblib.executor import get_memmapping_executor
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState, create_trial
from tqdm import tqdm

from nnlab.study.liveness import owner_is_gone, this_process
from nnlab.study.spec import StudySpec, param_value, stable_hash
from nnlab.study.store import ResultsStore
from nnlab.study.task import TrialOutcome, TrialTask, run_trial

# user attrs of every trial: key, config_id and seed when it is enqueued, owner when it
# is claimed, result ({"status", metrics, "seeds"}) or error when it ends. Few attrs: each
# is one fsync'ed journal write.
KEY, CONFIG_ID, SEED, OWNER, RESULT, ERROR = (
    "key", "config_id", "seed", "owner", "result", "error")


# BLAS threads per worker. Parallelism comes from worker processes (--jobs up to the number
# of cores), never from BLAS threads: on a busy machine, BLAS threads that outnumber free
# cores spin and wait, and a seed-000 run took 6-7x longer with 2 threads than with 1.
BLAS_THREADS = 1


@dataclass
class RunCounts:
    """What one call of `Runner.execute` did."""

    completed: int = 0
    diverged: int = 0
    failed: int = 0

    def add(self, outcome: TrialOutcome) -> None:
        self.failed += outcome.error is not None
        self.completed += outcome.error is None
        self.diverged += outcome.status == "diverged"


class Runner:
    """The trials of `spec` in the Optuna study `study`, results in `store`.

    `lock` is a context manager that serialises planning across processes.
    """

    def __init__(self, spec: StudySpec, study: optuna.Study, store: ResultsStore,
                 lock: Callable[[], contextlib.AbstractContextManager]) -> None:
        self.spec = spec
        self.study = study
        self.store = store
        self.lock = lock
        self._data = spec.data.to_dict()
        # Optuna's storage itself: the claim of a WAITING trial (as Study.ask does it) and
        # user attrs of trials this process did not ask for
        self._storage = study._storage

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
        trials = self.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state == TrialState.RUNNING and owner_is_gone(
                    trial.user_attrs.get(OWNER), trial.datetime_start):
                self._fail_abandoned(trial)
        trials = self.study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state == TrialState.FAIL:
                self.store.discard_trial(trial.number)
        taken = {t.user_attrs.get(KEY) for t in trials if t.state in (
            TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)}
        for params, seed in self._planned(trials):
            identity = self._identity(params, seed)
            if identity[KEY] not in taken:
                self._enqueue(params, identity)
                taken.add(identity[KEY])

    def _planned(self, trials: list[FrozenTrial]) -> Iterator[tuple[dict[str, Any], int]]:
        """(params, seed) of every planned trial known so far: the whole grid, or the
        configurations a sampler has proposed."""
        if self.spec.sampler == "grid":
            for point in self.spec.grid_points():
                for seed in self.spec.seeds:
                    yield {k: param_value(v) for k, v in point.items()}, seed
            return
        for trial in trials:
            if SEED in trial.user_attrs and trial.state != TrialState.PRUNED:
                yield trial.params, trial.user_attrs[SEED]

    def _enqueue(self, params: dict[str, Any], identity: dict[str, Any]) -> None:
        distributions = self.spec.distributions()
        self.study.add_trial(create_trial(
            state=TrialState.WAITING, params=params,
            distributions={name: distributions[name] for name in params},
            user_attrs=identity))

    def _fail_abandoned(self, trial: FrozenTrial) -> None:
        owner = trial.user_attrs.get(OWNER) or {}
        message = (f"abandoned: process {owner.get('pid', '?')} on {owner.get('host', '?')} "
                   "stopped before the trial ended; its configuration is run again")
        self._finish(trial, {ERROR: message}, TrialState.FAIL)

    def _finish(self, trial: FrozenTrial, attrs: dict[str, Any], state: TrialState,
                value: float | None = None) -> None:
        for name, attr in attrs.items():
            self._storage.set_trial_user_attr(trial._trial_id, name, attr)
        self.study.tell(trial.number, value, state=state, skip_if_finished=True)
        if state != TrialState.COMPLETE:
            self.store.discard_trial(trial.number)

    # --- claiming -------------------------------------------------------------------------

    def claim_next(self) -> FrozenTrial | None:
        """A planned trial now RUNNING and owned by this process, or None when nothing is
        left to claim."""
        while True:
            trial = self._claim_waiting()
            if trial is not None or self.spec.sampler == "grid":
                return trial
            with self.lock():
                if not self._waiting():  # else: enqueued meanwhile, claim it
                    return self._sample_configuration()

    def _waiting(self) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if KEY in t.user_attrs]

    def _claim_waiting(self) -> FrozenTrial | None:
        for trial in self._waiting():
            try:  # Optuna's own atomic claim, as in Study.ask
                claimed = self._storage.set_trial_state_values(trial._trial_id,
                                                               TrialState.RUNNING)
            except UpdateFinishedTrialError:
                continue
            if claimed:
                self._storage.set_trial_user_attr(trial._trial_id, OWNER, this_process())
                return self._storage.get_trial(trial._trial_id)
        return None

    def _sample_configuration(self) -> FrozenTrial | None:
        """Ask the sampler for one more configuration (under the lock). Its trial runs the
        first seed and is returned, claimed; the other replicates are enqueued. None when
        the budget of `n_trials` configurations is spent. A proposal of a known
        configuration is pruned and the sampler asked again."""
        trials = self.study.get_trials(deepcopy=False)
        configs = {t.user_attrs[CONFIG_ID] for t in trials
                   if CONFIG_ID in t.user_attrs and t.state != TrialState.PRUNED}
        while len(configs) < self.spec.n_trials:
            trial = self.study.ask(fixed_distributions=self.spec.distributions())
            first, *others = [self._identity(trial.params, seed) for seed in self.spec.seeds]
            if first[CONFIG_ID] in configs:
                trial.set_user_attr(CONFIG_ID, first[CONFIG_ID])
                self.study.tell(trial, state=TrialState.PRUNED)
                continue
            for name, attr in {**first, OWNER: this_process()}.items():
                trial.set_user_attr(name, attr)
            for identity in others:
                self._enqueue(trial.params, identity)
            return self._storage.get_trial(trial._trial_id)
        return None

    # --- recording ------------------------------------------------------------------------

    def record(self, trial: FrozenTrial, outcome: TrialOutcome) -> None:
        """Store a run's outcome in Optuna: COMPLETE (status ok or diverged) or FAIL."""
        if outcome.error is not None:
            self._finish(trial, {ERROR: outcome.error}, TrialState.FAIL)
            return
        value = outcome.metrics.get(self.spec.objective)
        if value is None:  # a diverged run's objective: the worst value there is
            value = float("-inf") if self.spec.direction == "maximize" else float("inf")
        result = {"status": outcome.status, **outcome.metrics, "seeds": outcome.seeds}
        if outcome.note:
            result["note"] = outcome.note
        self._finish(trial, {RESULT: result}, TrialState.COMPLETE, value)

    def _task(self, trial: FrozenTrial) -> TrialTask:
        config = self.spec.config_for(trial.params, trial.user_attrs[SEED])
        return TrialTask(trial.number, config.to_dict(), self.spec.data, str(self.store.folder),
                         self.spec.save_probs, BLAS_THREADS)

    # --- the loop -------------------------------------------------------------------------

    def execute(self, n_jobs: int, progress: bool = True,
                executor: Executor | None = None) -> RunCounts:
        """Run trials in `n_jobs` worker processes until none is left to claim.

        `executor` defaults to joblib's reusable loky process pool (the one joblib.Parallel
        uses); any concurrent.futures.Executor (e.g. a Dask client's) can take its place.
        """
        counts = RunCounts()
        in_flight: dict[Future, FrozenTrial] = {}
        bar = tqdm(total=self.spec.n_planned, initial=self._n_complete(), unit="trial",
                   desc=self.spec.name, disable=not progress, dynamic_ncols=True)

        def fill() -> None:
            while len(in_flight) < n_jobs and (trial := self.claim_next()) is not None:
                pool = executor or get_memmapping_executor(n_jobs)
                in_flight[pool.submit(run_trial, self._task(trial))] = trial

        try:
            fill()
            while in_flight:
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                done = [(in_flight.pop(f), f) for f in finished]
                try:
                    fill()  # first keep the workers busy, then record what finished
                finally:
                    for trial, future in done:
                        outcome = _outcome(future, trial.number)
                        self.record(trial, outcome)
                        counts.add(outcome)
                        bar.update(outcome.error is None)
                        bar.set_postfix(failed=counts.failed, diverged=counts.diverged,
                                        refresh=False)
        except BaseException:
            if executor is None:
                get_memmapping_executor(n_jobs).terminate(kill_workers=True)
            for trial in in_flight.values():
                self._finish(trial, {ERROR: "interrupted"}, TrialState.FAIL)
            raise
        finally:
            bar.close()
        return counts

    def _n_complete(self) -> int:
        return len({t.user_attrs.get(KEY) for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,))})


def _outcome(future: Future, number: int) -> TrialOutcome:
    try:
        return future.result()
    except Exception as err:  # the worker process died (killed, out of memory, segfault)
        message = " ".join(str(err).split())
        return TrialOutcome(number, error=f"worker process failed: {type(err).__name__}: "
                            f"{message[:300]}")
