"""Studies with lockstep groups: the same files as without, groups claimed trial by trial
and sized to keep the workers busy, a failed group's trials run again."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import Executor, Future
from pathlib import Path

import pandas as pd
import pytest

from nnlab import lockstep as lockstep_module
from nnlab.run import CURVE_COLUMNS
from nnlab.study import Study, StudySpec
from nnlab.study.groups import run_group
from nnlab.study.live import open_channel
from nnlab.study.runner import Runner
from nnlab.study.task import run_trial
from nnlab.train_config import mlp_bytes

DATA = {"train_size": 3000, "val_size": 300, "test_size": 300}
BASE = {"sizes": [784, 32, 10], "batch_size": 100, "n_steps": 60, "eval_steps": [0, 5, 60]}
RESULTS = ["trial", "state", "status", "eta", "noise", "seed", "value", "val_acc", "test_acc",
           "train_loss", "val_loss", "steps_run", "seed_init", "seed_order", "seed_noise",
           "note", "key", "config_id"]


def spec(name: str, replicates: int = 2, lockstep: bool = True, **grid) -> dict:
    return {"study": {"name": name, "replicates": replicates, "lockstep": lockstep},
            "base": dict(BASE), "grid": grid or {"eta": [0.5, 2.0]}, "data": DATA}


def test_a_grouped_study_writes_the_files_of_an_ungrouped_one(tmp_path):
    grid = {"eta": [0.5, 200.0], "noise": ["none", "grad", "weight"]}  # 200 diverges
    studies = []
    for lockstep in (True, False):
        study = Study(spec("same", lockstep=lockstep, **grid), results=tmp_path / str(lockstep))
        this_run = study.run(n_jobs=2, progress=False)["this_run"]
        assert this_run["completed"] == 12 and this_run["grouped"] == (12 if lockstep else 0)
        [invocation] = json.loads((study.folder / "manifest.json").read_text())["invocations"]
        assert invocation["lockstep"] is lockstep
        assert invocation["grouped_trials"] == this_run["grouped"]
        studies.append(study)
    grouped, alone = studies
    pd.testing.assert_frame_equal(grouped.trials()[RESULTS], alone.trials()[RESULTS])
    # each run's evaluations reached the storage as its own intermediate values
    values = [[t.intermediate_values for t in study.optuna_study().get_trials()]
              for study in studies]
    assert values[0] == values[1] and all(len(v) == 3 for v in values[0][:2])
    assert set(grouped.trials()["status"]) == {"ok", "diverged"}
    without_seconds = [c for c in CURVE_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(grouped.curves(columns=without_seconds),
                                  alone.curves(columns=without_seconds))
    pd.testing.assert_frame_equal(grouped.predictions(), alone.predictions())


def test_lockstep_is_a_study_switch_outside_the_digest():
    on = StudySpec.from_dict(spec("switch"))
    off = StudySpec.from_dict(spec("switch", lockstep=False))
    assert on.lockstep and not off.lockstep
    assert "lockstep" not in on.to_dict()["study"]  # committed specs keep their digests
    assert StudySpec.from_dict(off.to_dict()) == off and "lockstep = false" in off.to_toml()
    assert on.digest() == off.digest()  # the same runs, bit for bit
    with pytest.raises(Exception, match=r"study\.lockstep: expected true or false"):
        StudySpec.from_dict({**spec("switch"), "study": {"name": "switch", "lockstep": 1}})


def claimed_groups(tmp_path: Path, values: dict, free_slots: int, groups: int = 1
                   ) -> list[list[tuple]]:
    """The (eta, seed) of the trials of the first `groups` groups a runner claims while
    `free_slots` worker slots are free (one fewer after each group)."""
    study = Study(values, results=tmp_path)
    study.plan()
    runner = study._runner(study.optuna_study())
    claimed = []
    for slots in range(free_slots, free_slots - groups, -1):
        first = runner.claim_next()
        trials = [first, *runner.lockstep.claim_mates(first, slots)]
        claimed.append([(t.params["eta"], t.user_attrs["seed"]) for t in trials])
    return claimed


def test_a_group_is_one_seeds_trials_of_one_data_order(tmp_path):
    [group] = claimed_groups(tmp_path, spec("seeds", replicates=3, eta=[0.25, 0.5, 1.0, 2.0]),
                             free_slots=2)
    assert group == [(0.25, 0), (0.5, 0), (1.0, 0), (2.0, 0)]


def test_while_fewer_groups_wait_than_workers_each_takes_its_share(tmp_path):
    etas = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0]
    first, second = claimed_groups(tmp_path, spec("share", replicates=1, eta=etas),
                                   free_slots=2, groups=2)
    assert [eta for eta, _ in first] == etas[:3] and [eta for eta, _ in second] == etas[3:]


def test_a_group_takes_at_most_max_group_size_runs(tmp_path):
    etas = [0.01 * 2**i for i in range(20)]
    [group] = claimed_groups(tmp_path, spec("big", replicates=1, eta=etas), free_slots=1)
    assert len(group) == 15  # 1.5 MB of first-layer weights of 784 x 32 float32: 15 runs


@pytest.mark.parametrize("values", [spec("off", lockstep=False),
                                    {**spec("one"), "base": {**BASE, "batch_size": 1}}])
def test_runs_that_do_not_train_in_lockstep_are_claimed_alone(tmp_path, values):
    assert claimed_groups(tmp_path, values, free_slots=1) == [[(0.5, 0)]]


@pytest.mark.parametrize("pruner", ["none", "median"])
def test_a_study_with_a_pruner_trains_every_run_alone(tmp_path, pruner):
    """A random search whose seeds share one data order: its two seeds of a configuration
    train as a group, unless a pruner judges the runs (see nnlab.study.groups)."""
    options = {"pruner_options": {"n_startup_trials": 1}} if pruner != "none" else {}
    values = {"study": {"name": "pruner", "sampler": "random", "n_trials": 2, "replicates": 2,
                        "seed": 3, "pruner": pruner, **options},
              "base": {**BASE, "order_seed": 0}, "space": {"eta": {"log_uniform": [0.1, 1.0]}},
              "data": DATA}
    study = Study(values, results=tmp_path)
    this_run = study.run(n_jobs=1, progress=False)["this_run"]
    [invocation] = json.loads((study.folder / "manifest.json").read_text())["invocations"]
    assert this_run["completed"] + this_run["pruned"] == 4
    assert invocation["lockstep"] is (pruner == "none")
    assert this_run["grouped"] == invocation["grouped_trials"] == (4 if pruner == "none" else 0)


def test_a_group_too_big_for_the_memory_here_trains_its_runs_one_by_one(tmp_path,
                                                                       monkeypatch):
    study = Study(spec("memory", replicates=1), results=tmp_path)
    study.plan()
    config = study.spec.config_for({"eta": 0.5}, 0)
    one_run = mlp_bytes(config, 100)  # available: room for one run with its stack copy
    monkeypatch.setattr(lockstep_module, "available_memory", lambda: 3 * one_run)
    runner: Runner = study._runner(study.optuna_study())
    with open_channel(None) as channel:
        tasks = [runner._task(trial, channel) for trial in study.optuna_study().get_trials()]
        outcomes = run_group(tasks)
        monkeypatch.setattr(lockstep_module, "available_memory", lambda: 4 * one_run)
        grouped = run_group(tasks)
    assert [o.group_size for o in outcomes] == [1, 1] and [o.error for o in outcomes] == [
        None, None]
    assert [o.group_size for o in grouped] == [2, 2]
    assert [o.metrics["val_acc"] for o in outcomes] == [o.metrics["val_acc"] for o in grouped]


class FailingGroups(Executor):
    """Runs single trials in this process; a group's worker "dies" (its future raises)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        if fn is run_group:
            future.set_exception(RuntimeError("the worker died"))
        else:
            future.set_result(fn(*args, **kwargs))
        return future


def test_a_group_whose_worker_dies_fails_its_trials_and_they_run_again(tmp_path):
    study = Study(spec("dies"), results=tmp_path)
    counts = study.run(executor=FailingGroups(), progress=False)["this_run"]
    assert counts["failed"] == 4 and counts["completed"] == 0
    trials = study.trials()
    assert (trials["error"] == "worker process failed: RuntimeError: the worker died").all()
    assert study.run(n_jobs=2, progress=False)["this_run"]["completed"] == 4
    assert (study.trials()["state"] == "COMPLETE").sum() == 4


def test_a_group_task_runs_its_trials_as_their_own_tasks_do(tmp_path):
    study = Study(spec("task", replicates=1), results=tmp_path)
    study.plan()
    runner: Runner = study._runner(study.optuna_study())
    with open_channel(None) as channel:
        tasks = [runner._task(trial, channel) for trial in study.optuna_study().get_trials()]
        grouped = run_group(tasks)
        curves = {task.number: study.store.read("curves", [task.number]) for task in tasks}
        alone = [run_trial(task) for task in tasks]
        reports = channel.drain()
        first, second = run_group([tasks[0], dataclasses.replace(tasks[1],
                                                                 folder="/dev/null/x")])
    assert [o.number for o in grouped] == [task.number for task in tasks]
    assert [o.group_size for o in grouped] == [2, 2] and alone[0].group_size == 1
    # each run reported its own evaluations, grouped as alone
    for task in tasks:
        mine = [r for r in reports if r[0] == task.number]
        assert len(mine) == 6 and mine[:3] == mine[3:]
    for mine, theirs in zip(grouped, alone, strict=True):
        assert {**mine.metrics, "seconds": 0} == {**theirs.metrics, "seconds": 0}
        assert (mine.status, mine.seeds, mine.error) == (theirs.status, theirs.seeds, None)
    for number, curve in curves.items():
        pd.testing.assert_frame_equal(curve.drop(columns="seconds"), study.store.read(
            "curves", [number]).drop(columns="seconds"))
    assert first.error is None and second.error.startswith("StorageError: /dev/null: ")
