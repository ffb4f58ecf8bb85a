"""Pruning: Optuna's own pruners decide, in the process that runs a trial, whether it stops
at an evaluation point, so that the same study run twice prunes the same trials.

Optuna's pruners judge a trial by the other trials of its study as the storage holds them
at that moment; with trials running in parallel that moment varies from run to run, and
so would the decisions. Here a decision is a function of the trials alone:

- the decision for trial n at step s sees only the trials numbered below n, each as it
  stood at step s: its intermediate values up to s, what the pruner recorded about it up
  to s (e.g. successive halving's rungs), and its state then: PRUNED if it was pruned at
  or before s, FAIL if it failed, not started if it is still waiting, else COMPLETE (a
  trial still running past s counts with the values it had at s, as if it had ended there;
  a trial that ended before s, with all its values);
- so it waits until each of those trials has been decided up to s and has reached s or
  ended (trials are claimed in number order, so the lowest running trial never waits);
- no decision is taken at step 0 (on the initial weights alone); every later evaluation
  is decided, the last one too (a run can be pruned at its last step, as in Optuna);
- a trial that has ended is never decided again (a resumed study keeps its PRUNED trials).

Each decision runs the pruner on a throw-away in-memory study holding that view, with the
study's name and the trials' numbers (Hyperband's brackets hash them; with the unit
"configuration", their places among the first runs, which do not depend on when the other
seeds ran). What the pruner
records on the trial is kept as the system attribute PRUNER_ATTR, a list of [step,
{attribute: value}], so that later views can cut it at their step, in any process.

What the pruner judges (`study.pruner_unit`): with "run", every run, against the runs
numbered below it, as Optuna judges trials. With "configuration", the configurations: the
pruner judges each configuration's first run (its first replicate seed) against the first
runs of the configurations sampled before it (the view holds those runs only, in number
order, which is the order the configurations were sampled in). The other seeds of a
configuration are planned when its first run ends (`unfollowed_seeds`): if it completed,
they run in full, never judged; if it was pruned, they are recorded PRUNED without running.
So a configuration either has every seed complete, its seed mean an unbiased result, or is
pruned as a whole, having cost at most the steps of one run. A pruner that judges runs
one by one stops a configuration's seeds independently, and the configurations whose seeds
all finish are rare and the lucky ones.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
from optuna.pruners import BasePruner, HyperbandPruner, MedianPruner, SuccessiveHalvingPruner
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from nnlab.errors import ConfigError, checked_int
from nnlab.study.attrs import CONFIG_ID, KEY, SEED

if TYPE_CHECKING:
    from nnlab.study.spec import StudySpec

PRUNERS = ("none", "median", "successive_halving", "hyperband")
PRUNER_UNITS = ("run", "configuration")  # what a pruner judges (see the module docstring)
_ENDED = (TrialState.COMPLETE, TrialState.PRUNED)
_TAKEN = (*_ENDED, TrialState.WAITING, TrialState.RUNNING)  # a run that is, was or will be
OPTUNA_PRUNERS: dict[str, type[BasePruner]] = {
    "median": MedianPruner, "successive_halving": SuccessiveHalvingPruner,
    "hyperband": HyperbandPruner}
# the smallest value Optuna accepts for each option (all of them integers)
_LOWEST = {"n_startup_trials": 0, "n_warmup_steps": 0, "interval_steps": 1, "n_min_trials": 1,
           "min_resource": 1, "max_resource": 1, "reduction_factor": 2,
           "min_early_stopping_rate": 0, "bootstrap_count": 0}
PRUNER_ATTR = "nnlab:pruner"
_IN_MEMORY_LOG = logging.getLogger("optuna.storages._in_memory")


def _options(name: str) -> dict[str, Any]:
    """The options of the Optuna pruner `name` with their defaults."""
    parameters = inspect.signature(OPTUNA_PRUNERS[name].__init__).parameters
    return {key: p.default for key, p in parameters.items() if key != "self"}


def check_pruner(name: str, options: dict[str, Any], unit: str = "run") -> None:
    """NNLabError naming the option if `options` are not options of the pruner `name`, or
    if a pruner unit other than "run" is given without a pruner."""
    if name == "none":
        for key, given in (("pruner_options", options), ("pruner_unit", unit != "run")):
            if given:
                raise ConfigError(f"study.{key}", "", problem="only with a pruner (study.pruner "
                                  "= " + " | ".join(PRUNERS[1:]) + ")")
        return
    known = _options(name)
    for key, value in options.items():
        where = f"study.pruner_options.{key}"
        if key not in known:
            raise ConfigError(where, "one of " + ", ".join(known),
                              problem=f"unknown option of Optuna's "
                              f"{OPTUNA_PRUNERS[name].__name__}")
        if not (value == "auto" == known[key]):
            checked_int(where, value, low=_LOWEST[key],
                        why=' or "auto"' if known[key] == "auto" else "")
    low = options.get("min_resource", known.get("min_resource"))
    high = options.get("max_resource", "auto")
    if name == "hyperband" and high != "auto" and high <= low:
        raise ConfigError("study.pruner_options.max_resource", "more steps than min_resource "
                          f"({low})", shown=f"{high}")


def make_pruner(name: str, options: dict[str, Any], max_steps: int) -> BasePruner:
    """A fresh Optuna pruner `name` with `options`, its "auto" resources resolved from
    `max_steps`, the longest run of the study, as Optuna resolves them from a complete
    trial: successive halving's min_resource max_steps // 100 (at least 1), Hyperband's
    max_resource max_steps + 1. Resolved up front, they cannot depend on which trial
    happened to complete first."""
    resolved = dict(options)
    if name == "successive_halving" and resolved.get("min_resource", "auto") == "auto":
        resolved["min_resource"] = max(max_steps // 100, 1)
    if name == "hyperband" and resolved.get("max_resource", "auto") == "auto":
        resolved["max_resource"] = max_steps + 1
    return OPTUNA_PRUNERS[name](**resolved)


@dataclass
class _Running:
    """A trial this process runs: its reports, the ones not yet decided, the pruner's
    records and the step it was pruned at."""

    trial_id: int
    values: dict[int, float] = field(default_factory=dict)
    pending: list[tuple[int, bool]] = field(default_factory=list)  # (step, worker waits)
    log: list[list[Any]] = field(default_factory=list)  # [[step, {attr: value}], ...]
    pruned_at: int | None = None
    ended: bool = False  # its run is over (the outcome is in, maybe not yet recorded)

    def known_at(self, step: int) -> bool:
        """Whether its standing at `step` is final: decided up to there, and there or over."""
        if self.pruned_at is not None:
            return True
        if self.pending and self.pending[0][0] <= step:
            return False
        return self.ended or max(self.values, default=-1) >= step


@dataclass(frozen=True)
class Decision:
    number: int
    step: int
    prune: bool
    waits: bool  # the worker waits for this verdict


class Pruning:
    """The pruning decisions for the trials this process runs in `study` (see the module
    docstring). `pruner()` gives a fresh Optuna pruner: a decision never depends on what a
    pruner object remembers from earlier ones. `judged(trial)`: whether a trial is one the
    pruner judges (default: every trial; see `judged`); only those are reported here, and
    only those make up the views."""

    def __init__(self, study: optuna.Study, pruner: Callable[[], BasePruner],
                 judged: Callable[[FrozenTrial], bool] | None = None) -> None:
        self.study = study
        self._pruner = pruner
        self._judged = judged or (lambda trial: True)
        self._running: dict[int, _Running] = {}

    def report(self, number: int, trial_id: int, step: int, value: float,
               waits: bool) -> None:
        """Trial `number` reported `value` at `step` (already in the storage)."""
        running = self._running.setdefault(number, _Running(trial_id))
        running.values[step] = value
        if step > 0 and running.pruned_at is None:
            running.pending.append((step, waits))

    def ended(self, number: int) -> None:
        """The run of trial `number` is over: every report of it is in."""
        if number in self._running:
            self._running[number].ended = True

    def settled(self, number: int) -> bool:
        """Whether every report of trial `number` is decided."""
        running = self._running.get(number)
        return running is None or not running.pending

    def pruned_at(self, number: int) -> int | None:
        running = self._running.get(number)
        return None if running is None else running.pruned_at

    def forget(self, number: int) -> None:
        """Trial `number` is recorded: the storage now holds all there is to know."""
        self._running.pop(number, None)

    @property
    def waiting(self) -> bool:
        """Whether some report waits for a decision."""
        return any(r.pending for r in self._running.values())

    def decide(self) -> list[Decision]:
        """Every decision that can be taken now, in (trial, step) order."""
        if not self.waiting:
            return []
        trials = self.study.get_trials(deepcopy=False)
        decisions = []
        for number in sorted(self._running):
            running = self._running[number]
            while running.pending and self._known_below(number, running.pending[0][0], trials):
                step, waits = running.pending.pop(0)
                prune = self._judge(number, step, trials)
                if prune:
                    running.pruned_at = step
                    running.pending.clear()
                decisions.append(Decision(number, step, prune, waits))
        return decisions

    def _known_below(self, number: int, step: int, trials: list[FrozenTrial]) -> bool:
        """Whether every judged trial numbered below `number` is known as it stood at
        `step`."""
        for trial in self._below(number, trials):
            running = self._running.get(trial.number)
            if running is not None:
                if not running.known_at(step):
                    return False
            elif trial.state == TrialState.RUNNING and max(
                    trial.intermediate_values, default=-1) <= step:
                return False  # another process's trial, decided up to `step` once it is past
        return True

    def _judge(self, number: int, step: int, trials: list[FrozenTrial]) -> bool:
        """Run the pruner on the view of trial `number` at `step`; keep what it records."""
        storage = InMemoryStorage()
        level = _IN_MEMORY_LOG.level
        _IN_MEMORY_LOG.setLevel(logging.WARNING)  # "a new study created in memory", each time
        try:
            study_id = storage.create_new_study([self.study.direction], self.study.study_name)
        finally:
            _IN_MEMORY_LOG.setLevel(level)
        for trial in self._below(number, trials):
            storage.create_new_trial(study_id, self._standing(trial, step))
        running = self._running[number]
        mine = create_trial(state=TrialState.RUNNING, intermediate_values=_upto(
            running.values, step), system_attrs=_records(running.log, step))
        trial_id = storage.create_new_trial(study_id, mine)
        view = optuna.Study(study_name=self.study.study_name, storage=storage,
                            sampler=optuna.samplers.RandomSampler(seed=0))
        prune = bool(self._pruner().prune(view, storage.get_trial(trial_id)))
        after = storage.get_trial(trial_id).system_attrs
        recorded = {k: v for k, v in after.items()
                    if k not in mine.system_attrs or mine.system_attrs[k] != v}
        if recorded:
            running.log.append([step, recorded])
            self.study._storage.set_trial_system_attr(running.trial_id, PRUNER_ATTR,
                                                      running.log)
        return prune

    def _below(self, number: int, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """The judged trials numbered below `number`, in number order."""
        return [trial for trial in trials[:number] if self._judged(trial)]

    def _standing(self, trial: FrozenTrial, step: int) -> FrozenTrial:
        """`trial` as it stood at `step`, for a view."""
        running = self._running.get(trial.number)
        if running is None and trial.state in (TrialState.WAITING, TrialState.FAIL):
            return create_trial(state=trial.state)
        if running is None:
            values = trial.intermediate_values
            log = trial.system_attrs.get(PRUNER_ATTR, [])
            pruned = trial.state == TrialState.PRUNED
            pruned_at = trial.last_step if pruned else None
        else:
            values, log, pruned_at = running.values, running.log, running.pruned_at
            pruned = pruned_at is not None
        if pruned and (pruned_at is None or pruned_at <= step):
            return create_trial(state=TrialState.PRUNED, intermediate_values=values,
                                system_attrs=_records(log, step))
        seen = _upto(values, step)
        if not seen:
            return create_trial(state=TrialState.RUNNING)
        return create_trial(state=TrialState.COMPLETE, value=seen[max(seen)],
                            intermediate_values=seen, system_attrs=_records(log, step))


def judged(spec: StudySpec, trial: FrozenTrial) -> bool:
    """Whether the spec's pruner judges `trial`'s run: none without a pruner; every trial
    with pruner_unit "run"; with "configuration", each configuration's first run only (a
    run of the first replicate seed)."""
    if spec.pruner == "none":
        return False
    if spec.pruner_unit == "run":
        return True
    return KEY in trial.user_attrs and trial.user_attrs.get(SEED) == spec.seed


def unfollowed_seeds(spec: StudySpec, trials: list[FrozenTrial],
                     config_ids: Iterable[str] | None = None) -> list[tuple[FrozenTrial, int]]:
    """With pruner_unit "configuration": (first run, seed) for each seed that has no run
    yet of a configuration (of `config_ids`, default all) whose first run has ended. If
    that run completed, the seed is to run (enqueued); if it was pruned, to be recorded
    PRUNED without running (`unrun_note`). Else none: every seed is planned with its
    configuration."""
    if spec.pruner == "none" or spec.pruner_unit != "configuration":
        return []
    wanted = None if config_ids is None else set(config_ids)
    has = {(t.user_attrs.get(CONFIG_ID), t.user_attrs.get(SEED)) for t in trials
           if KEY in t.user_attrs and t.state in _TAKEN}
    firsts = [t for t in trials if judged(spec, t) and t.state in _ENDED
              and (wanted is None or t.user_attrs[CONFIG_ID] in wanted)]
    return [(first, seed) for first in firsts for seed in spec.seeds
            if (first.user_attrs[CONFIG_ID], seed) not in has]


def unrun_note(first: FrozenTrial) -> str:
    """The note of a run that never ran because its configuration's first run `first` was
    pruned."""
    return (f"not run: its configuration's first run (trial {first.number}) was pruned at "
            f"step {first.last_step}")


def _upto(values: dict[int, float], step: int) -> dict[int, float]:
    return {s: v for s, v in values.items() if s <= step}


def _records(log: list[list[Any]], step: int) -> dict[str, Any]:
    """The pruner's records on a trial as they were after its decision at `step`."""
    attrs: dict[str, Any] = {}
    for at, recorded in log:
        if at <= step:
            attrs.update(recorded)
    return attrs
