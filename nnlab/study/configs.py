"""The companion study `<name>:configs`: the study's configurations as Optuna trials.

A study's trials are runs, one per (configuration, seed), so optuna-dashboard's "best
trial" is one lucky seed. The companion study, in the same storage, holds one trial per
configuration whose runs have all ended, its value the mean over seeds of the runs' values
(what `nnlab status` ranks on), its curve (intermediate values) the seed mean at the steps
every run reached, its user attributes the seed statistics (<objective>_mean/_std,
test_acc_mean/_std, n_seeds, diverged, pruned) and the runs' trial numbers. A configuration
with a pruned run is a PRUNED trial there: never a complete result.

The engine keeps it in step: each configuration is added when its last run ends. A
companion made for another spec (the study grew) or for an earlier study of the same name
(`--new`) is deleted and built again from the runs.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import Any, cast

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from nnlab.study.attrs import CONFIG_ID, KEY, SEED
from nnlab.study.spec import StudySpec
from nnlab.study.status import configurations
from nnlab.study.trials import trials_table

SUFFIX = ":configs"
OF_ATTR = "nnlab:of"  # the companion's user attr: the study (its id) and spec digest it shows
ENDED = (TrialState.COMPLETE, TrialState.PRUNED)


def companion_name(name: str) -> str:
    """The companion study's name (study names cannot hold ':', so it is no study's)."""
    return name + SUFFIX


def sync_configs(spec: StudySpec, study: optuna.Study,
                 config_ids: Iterable[str] | None = None) -> None:
    """Add to the companion of `study` every configuration (of `config_ids`, default all)
    whose runs have all ended and that it lacks (`companion_trials`: one table of all their
    runs); build it afresh if it shows another study or spec. Call under the study's
    lock."""
    ended = ended_configurations(spec, study.get_trials(deepcopy=False), config_ids)
    if config_ids is not None and not ended:
        return
    companion = _open(spec, study)
    have = {t.user_attrs.get(CONFIG_ID) for t in companion.get_trials(deepcopy=False)}
    for trial in companion_trials(spec, {config_id: runs for config_id, runs in ended.items()
                                         if config_id not in have}):
        companion.add_trial(trial)


def ended_configurations(spec: StudySpec, trials: list[FrozenTrial],
                         config_ids: Iterable[str] | None = None
                         ) -> dict[str, list[FrozenTrial]]:
    """The configurations (of `config_ids`, default all) whose runs, one per seed, have
    all ended (complete or pruned), with those runs."""
    wanted = None if config_ids is None else set(config_ids)
    runs: dict[str, list[FrozenTrial]] = defaultdict(list)
    for trial in trials:
        config_id = cast(str, trial.user_attrs.get(CONFIG_ID))  # set with KEY
        if KEY in trial.user_attrs and trial.state in ENDED and (
                wanted is None or config_id in wanted):
            runs[config_id].append(trial)
    return {config_id: group for config_id, group in runs.items()
            if sorted(t.user_attrs[SEED] for t in group) == spec.seeds}


def _open(spec: StudySpec, study: optuna.Study) -> optuna.Study:
    """The companion of `study`, created (or made afresh) when it shows anything else."""
    storage, name = study._storage, companion_name(spec.name)
    of = {"study_id": study._study_id, "spec_digest": spec.digest()}
    try:
        storage.get_study_id_from_name(name)
    except KeyError:  # none yet
        pass
    else:
        companion = optuna.Study(study_name=name, storage=storage)
        if companion.user_attrs.get(OF_ATTR) == of:
            return companion
        optuna.delete_study(study_name=name, storage=storage)
    companion = optuna.create_study(study_name=name, storage=storage, direction=spec.direction)
    companion.set_user_attr("objective", spec.objective)
    companion.set_user_attr("configurations_of", spec.name)
    with warnings.catch_warnings():  # stable since Optuna 3.2, still flagged
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        companion.set_metric_names([f"{spec.objective} (seed mean)"])
    companion.set_user_attr(OF_ATTR, of)  # last: a companion cut short is made afresh
    return companion


def companion_trials(spec: StudySpec, ended: dict[str, list[FrozenTrial]]
                     ) -> list[FrozenTrial]:
    """The companion trials of the configurations `ended` ({config_id: its ended runs}), in
    its order: their seed statistics from one `configurations` table of all their runs
    (grouped by configuration, each configuration's runs in trial order: the values a
    table of its runs alone gives)."""
    if not ended:
        return []
    runs = sorted((run for group in ended.values() for run in group), key=lambda t: t.number)
    table = configurations(spec, trials_table(spec, runs))
    stats = {row["config_id"]: row for row in table.to_dict("records")}
    return [_configuration(spec, config_id, group, stats.get(config_id, {}))
            for config_id, group in ended.items()]


def _configuration(spec: StudySpec, config_id: str, runs: list[FrozenTrial],
                   stats: dict[Hashable, Any]) -> FrozenTrial:
    """The companion trial of the configuration `config_id` whose ended runs are `runs`,
    with its row of `configurations` ({} if none of its runs is complete)."""
    runs = sorted(runs, key=lambda t: t.number)
    complete = all(t.state == TrialState.COMPLETE for t in runs)
    attrs = {CONFIG_ID: config_id, "n_seeds": len(runs), "trials": [t.number for t in runs],
             "pruned": sum(t.state == TrialState.PRUNED for t in runs),
             "diverged": int(stats.get("diverged", 0))}
    for name in (f"{spec.objective}_mean", f"{spec.objective}_std", "test_acc_mean",
                 "test_acc_std"):
        value = stats.get(name)
        attrs[name] = None if value is None or np.isnan(value) else float(value)
    steps = set.intersection(*(set(t.intermediate_values) for t in runs))
    curve = {step: float(np.mean([t.intermediate_values[step] for t in runs]))
             for step in sorted(steps)}
    first = runs[0]
    return create_trial(
        state=TrialState.COMPLETE if complete else TrialState.PRUNED,
        value=float(np.mean([t.value for t in runs])) if complete else None,
        params=first.params, distributions=first.distributions, user_attrs=attrs,
        intermediate_values=curve)
