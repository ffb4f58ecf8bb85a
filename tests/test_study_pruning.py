"""Pruning with Optuna's own pruners: a pruned run stops where the pruner says, is PRUNED in
Optuna and "pruned" in trials.parquet with its partial curve; the same study prunes the
same trials every time, with any number of workers; ended trials are never decided again;
a grid refuses a pruner. With pruner_unit = "configuration" the pruner judges whole
configurations by their first run: each ends with all its seeds complete or pruned as a
whole, its other seeds never run."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from optuna.pruners import MedianPruner
from optuna.trial import TrialState, create_trial

from nnlab.cli import main
from nnlab.errors import NNLabError
from nnlab.report import write_report
from nnlab.study import Study, StudySpec
from nnlab.study.pruning import PRUNER_ATTR, Pruning
from nnlab.study.status import configurations

OPTIONS = {"median": {"n_startup_trials": 2, "n_warmup_steps": 5},
           "successive_halving": {"min_resource": 5, "reduction_factor": 3},
           "hyperband": {"min_resource": 5, "reduction_factor": 3}}


def searched(name: str, pruner: str = "median", n_trials: int = 8, unit: str = "run",
             replicates: int = 2) -> dict:
    """A random search of eta over 784-16-10 nets, 200 steps of batch 50, 2 seeds each;
    the pruner judging runs or (`unit`) configurations."""
    return {"study": {"name": name, "sampler": "random", "n_trials": n_trials,
                      "replicates": replicates, "seed": 3, "pruner": pruner,
                      "pruner_options": OPTIONS[pruner], "pruner_unit": unit},
            "base": {"sizes": [784, 16, 10], "batch_size": 50, "n_steps": 200, "n_evals": 8},
            "space": {"eta": {"log_uniform": [0.003, 3.0]}},
            "data": {"train_size": 2000, "val_size": 300, "test_size": 1000}}


def decisions(study: Study) -> pd.DataFrame:
    """Per key: the trial's state, its last intermediate step and value, by key."""
    rows = [{"key": t.user_attrs["key"], "state": t.state.name, "last_step": t.last_step,
             "last_value": t.intermediate_values.get(t.last_step)}
            for t in study.optuna_study().get_trials()]
    return pd.DataFrame(rows).set_index("key").sort_index()


def test_a_pruned_run_is_pruned_in_optuna_and_in_the_trials_with_its_partial_curve(tmp_path):
    study = Study(searched("median"), results=tmp_path)
    summary = study.run(n_jobs=2, progress=False)
    trials = study.trials().set_index("trial")
    pruned = trials[trials["state"] == "PRUNED"]
    assert 1 <= len(pruned) < len(trials) and (trials["state"] != "FAIL").all()
    assert summary["pruned"] == summary["this_run"]["pruned"] == len(pruned)
    assert summary["complete"] == summary["this_run"]["completed"] == len(trials) - len(pruned)
    assert (pruned["status"] == "pruned").all()

    by_number = {t.number: t for t in study.optuna_study().get_trials()}
    curves = study.store.read("curves", pruned.index)
    for number, row in pruned.iterrows():
        trial, curve = by_number[number], curves[curves["trial"] == number]
        assert 0 < trial.last_step == row["steps_run"] == curve["step"].iloc[-1] < 200
        assert trial.intermediate_values == dict(zip(curve["step"], curve["val_acc"],
                                                     strict=True))
        assert row["value"] == row["val_acc"] == trial.intermediate_values[trial.last_step]
        assert row["note"] == f"pruned at step {trial.last_step}"
        assert trial.user_attrs["status"] == "pruned"
    assert study.store.trial_numbers("predictions") == set(trials.index[
        trials["state"] == "COMPLETE"])  # a pruned run keeps its curve only
    assert set(study.curves()["trial"]) == set(trials.index[trials["state"] == "COMPLETE"])

    table = configurations(study.spec, study.trials())
    assert (table["n_seeds"] + table["pruned"] == 2).all()
    with_pruned = (table["pruned"] > 0).tolist()
    assert with_pruned == sorted(with_pruned)  # configurations with a pruned run come last
    assert study.status()["best_configuration"]["n_seeds"] == 2
    assert main(["status", str(study.folder)]) == 0

    # in the companion study, a configuration with a pruned run is PRUNED
    entries = {t.user_attrs["config_id"]: t for t in optuna.load_study(
        study_name="median:configs", storage=study.optuna_study()._storage).get_trials()}
    assert len(entries) == 8
    for config_id, runs in trials.groupby("config_id"):
        entry, n_pruned = entries[config_id], int((runs["state"] == "PRUNED").sum())
        assert entry.user_attrs["pruned"] == n_pruned
        assert entry.state.name == ("PRUNED" if n_pruned else "COMPLETE")
        if not n_pruned:
            assert entry.value == pytest.approx(runs["value"].mean())

    # the report counts pruned runs and analyses complete ones only
    page = write_report(study.folder, train=False, n_resamples=100)
    assert f"; {len(pruned)} pruned (stopped early by the study" in page.read_text()
    overview = json.loads((study.folder / "report.json").read_text())["sections"]["overview"]
    assert overview["counts"]["pruned"] == len(pruned)
    rows = overview["configurations"]
    assert sum(row["n_seeds"] for row in rows) == summary["complete"]
    assert sum(row["pruned"] for row in rows) <= len(pruned)


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_the_same_study_prunes_the_same_trials_every_time_with_any_number_of_workers(
        tmp_path, pruner):
    runs = []
    for where, jobs in (("a", 2), ("b", 2), ("c", 1)):
        study = Study(searched(f"same-{pruner}", pruner), results=tmp_path / where)
        study.run(n_jobs=jobs, progress=False)
        runs.append(decisions(study))
    first = runs[0]
    assert first["state"].isin(["COMPLETE", "PRUNED"]).all() and len(first) == 16
    assert (first["state"] == "PRUNED").sum() >= 2 and (first["state"] == "COMPLETE").sum() >= 2
    for other in runs[1:]:
        pd.testing.assert_frame_equal(other, first)
    if pruner != "median":  # what the halving pruners record, per step, for later views
        trials = Study.load(tmp_path / "a" / f"same-{pruner}").optuna_study().get_trials()
        assert any(PRUNER_ATTR in t.system_attrs for t in trials)


def test_a_resumed_or_grown_study_never_decides_its_ended_trials_again(tmp_path):
    study = Study(searched("grows", n_trials=4), results=tmp_path)
    study.run(n_jobs=2, progress=False)
    before = study.trials().set_index("trial")[["state", "steps_run", "value", "completed"]]
    assert study.run(n_jobs=2, progress=False)["this_run"] == {
        "completed": 0, "diverged": 0, "failed": 0, "pruned": 0, "grouped": 0}
    grown = Study(searched("grows", n_trials=8), results=tmp_path)
    summary = grown.run(n_jobs=2, progress=False)
    assert summary["complete"] + summary["pruned"] == 16
    after = grown.trials().set_index("trial")[["state", "steps_run", "value", "completed"]]
    pd.testing.assert_frame_equal(after.loc[before.index], before)


def test_a_decision_waits_for_the_earlier_trials_to_reach_its_step(tmp_path):
    """Trial 2 at step 10 is judged on trials 0 and 1 as they stood at step 10: trial 1,
    still running, counts once it has reported a later step, with its value at 10."""
    study = optuna.create_study(study_name="view", direction="maximize")
    storage = study._storage
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.9,
                                 intermediate_values={0: 0.1, 10: 0.5, 20: 0.9}))
    study.add_trial(create_trial(state=TrialState.RUNNING, intermediate_values={0: 0.1}))
    mine = study.ask()
    pruning = Pruning(study, lambda: MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    for step, value in ((0, 0.1), (10, 0.45)):
        storage.set_trial_intermediate_value(mine._trial_id, step, value)
        pruning.report(2, mine._trial_id, step, value, waits=True)
    assert pruning.decide() == [] and pruning.waiting  # trial 1 has not reached step 10
    storage.set_trial_intermediate_value(1, 10, 0.3)
    assert pruning.decide() == []  # at step 10 exactly: it may still be pruned there
    storage.set_trial_intermediate_value(1, 20, 0.35)
    (decision,) = pruning.decide()  # the median of 0.5 and 0.3 at step 10 is 0.4 < 0.45
    assert (decision.number, decision.step, decision.prune, decision.waits) == (2, 10, False,
                                                                                  True)
    storage.set_trial_intermediate_value(mine._trial_id, 20, 0.2)
    pruning.report(2, mine._trial_id, 20, 0.2, waits=False)
    assert pruning.decide() == [] and not pruning.settled(2)
    study.tell(1, 0.35)  # trial 1 ends at step 20: at 20, trial 2 is below 0.9 and 0.35's
    (decision,) = pruning.decide()  # median 0.625 with its best value, 0.45
    assert decision.prune and pruning.pruned_at(2) == 20 and pruning.settled(2)


@pytest.mark.parametrize(("study", "message"), [
    ({"sampler": "grid", "pruner": "median"},
     r'^study.pruner: expected "none" with sampler = grid \(a grid runs every '),
    ({"pruner": "patient"}, r"^study.pruner: expected one of none, median, "),
    ({"pruner_options": {"n_warmup_steps": 3}},
     r"^study.pruner_options: only with a pruner \(study.pruner = median \| "),
    ({"pruner": "median", "pruner_options": {"warmup": 3}},
     r"^study.pruner_options.warmup: unknown option of Optuna's MedianPruner; expected one "
     r"of n_startup_trials, n_warmup_steps, interval_steps, n_min_trials$"),
    ({"pruner": "median", "pruner_options": {"n_warmup_steps": -1}},
     r"^study.pruner_options.n_warmup_steps: expected an integer >= 0, got -1$"),
    ({"pruner": "successive_halving", "pruner_options": {"min_resource": "some"}},
     r'^study.pruner_options.min_resource: expected an integer >= 1 or "auto", got '),
    ({"pruner": "hyperband", "pruner_options": {"min_resource": 10, "max_resource": 10}},
     r"^study.pruner_options.max_resource: expected more steps than min_resource \(10\), "),
    ({"pruner": "median", "pruner_unit": "seed"},
     r"^study.pruner_unit: expected one of run, configuration, got 'seed'$"),
    ({"pruner_unit": "configuration"},
     r"^study.pruner_unit: only with a pruner \(study.pruner = median \| "),
])
def test_a_bad_pruner_is_named_in_one_line(study, message):
    spec = searched("bad")
    spec["study"] = {k: v for k, v in spec["study"].items() if not k.startswith("pruner")}
    spec["study"].update(study)
    if study.get("sampler") == "grid":
        spec["study"] = {k: v for k, v in spec["study"].items() if k != "n_trials"}
        spec["grid"] = {"eta": [0.1, 1.0]}
        del spec["space"]
    with pytest.raises(NNLabError, match=message):
        StudySpec.from_dict(spec)


def test_a_pruner_round_trips_through_toml_and_leaves_other_digests_alone(tmp_path):
    spec = StudySpec.from_dict(searched("toml", "hyperband"))
    path = tmp_path / "toml.toml"
    path.write_text(spec.to_toml())
    assert "pruner_options = { min_resource = 5, reduction_factor = 3 }" in path.read_text()
    assert StudySpec.from_toml(path) == spec
    plain = {k: v for k, v in searched("toml")["study"].items() if not k.startswith("pruner")}
    without = StudySpec.from_dict({**searched("toml"), "study": plain})
    assert "pruner" not in without.to_toml()
    assert without.digest() == StudySpec.from_dict(
        {**searched("toml"), "study": {**plain, "pruner": "none"}}).digest()
    # the unit is written only when it is not the default: older specs keep their digests
    assert "pruner_unit" not in spec.to_toml()
    by_configuration = StudySpec.from_dict(searched("toml", "hyperband", unit="configuration"))
    path.write_text(by_configuration.to_toml())
    assert 'pruner_unit = "configuration"' in path.read_text()
    assert StudySpec.from_toml(path) == by_configuration
    assert by_configuration.digest() != spec.digest()


# --- pruner_unit = "configuration" ---------------------------------------------------------


def runs_by_configuration(study: Study) -> dict[str, pd.DataFrame]:
    trials = study.trials()
    return {config_id: runs.sort_values("seed") for config_id, runs
            in trials[trials["key"].notna()].groupby("config_id")}


def test_configurations_are_pruned_as_a_whole_by_their_first_run(tmp_path):
    study = Study(searched("whole", "successive_halving", unit="configuration",
                           replicates=3), results=tmp_path)
    summary = study.run(n_jobs=2, progress=False)
    configs = runs_by_configuration(study)
    assert len(configs) == 8 and all(len(runs) == 3 for runs in configs.values())
    complete = {c for c, runs in configs.items() if (runs["state"] == "COMPLETE").all()}
    pruned = {c for c, runs in configs.items() if (runs["state"] == "PRUNED").all()}
    assert complete | pruned == set(configs)  # no configuration is cut in pieces
    assert len(complete) >= 2 and len(pruned) >= 2
    for config_id in complete:  # every seed ran in full
        assert (configs[config_id]["steps_run"] == 200).all()
    unrun = set()
    for config_id in pruned:
        first, *others = configs[config_id].itertuples()
        assert first.seed == 3 and 0 < first.steps_run <= 200
        assert first.note == f"pruned at step {first.steps_run}"
        for run in others:  # recorded, never run: no steps, metrics or files
            assert run.steps_run == 0 and pd.isna(run.val_acc) and run.status == "pruned"
            assert run.note == (f"not run: its configuration's first run (trial {first.trial}) "
                                f"was pruned at step {first.steps_run}")
            unrun.add(run.trial)
    assert not unrun & study.store.trial_numbers("curves")
    assert summary["complete"] == summary["this_run"]["completed"] == 3 * len(complete)
    assert summary["pruned"] == summary["this_run"]["pruned"] == 3 * len(pruned)

    # only first runs were judged: the other seeds carry no intermediate values beyond
    # their own curve and no pruner records
    for trial in study.optuna_study().get_trials():
        if trial.user_attrs.get("seed") != 3:
            assert PRUNER_ATTR not in trial.system_attrs
    # the best configuration has all three seeds; the companion study agrees
    best = study.status()["best_configuration"]
    assert best["n_seeds"] == 3
    entries = optuna.load_study(study_name="whole:configs",
                                storage=study.optuna_study()._storage).get_trials()
    assert {t.user_attrs["config_id"] for t in entries if t.state.name == "COMPLETE"} == complete
    assert {t.user_attrs["config_id"] for t in entries if t.state.name == "PRUNED"} == pruned


@pytest.mark.parametrize("pruner", [
    "successive_halving",
    pytest.param("hyperband", marks=pytest.mark.slow),
    pytest.param("median", marks=pytest.mark.slow)])
def test_configuration_pruning_decides_the_same_with_any_number_of_workers(tmp_path, pruner):
    runs = []
    for where, jobs in (("a", 2), ("b", 1)):
        study = Study(searched(f"same-{pruner}", pruner, unit="configuration"),
                      results=tmp_path / where)
        study.run(n_jobs=jobs, progress=False)
        runs.append(decisions(study))
    first, second = runs
    assert len(first) == 16 and (first["state"] == "PRUNED").sum() >= 2
    pd.testing.assert_frame_equal(second, first)


def test_a_grown_study_plans_the_new_seeds_of_configurations_by_their_first_run(tmp_path):
    study = Study(searched("grow-configs", "successive_halving", n_trials=6,
                           unit="configuration"), results=tmp_path)
    study.run(n_jobs=2, progress=False)
    before = study.trials().set_index("trial")[["state", "steps_run", "value"]]
    grown = Study(searched("grow-configs", "successive_halving", n_trials=6,
                           unit="configuration", replicates=3), results=tmp_path)
    grown.plan()  # plans, runs nothing: seed 5 waits where its configuration completed
    configs = runs_by_configuration(grown)
    for runs in configs.values():
        new = runs[runs["seed"] == 5]
        assert len(new) == 1
        expected = "WAITING" if runs["state"].iloc[0] == "COMPLETE" else "PRUNED"
        assert new["state"].item() == expected
    summary = grown.run(n_jobs=2, progress=False)
    assert summary["complete"] + summary["pruned"] == 18
    after = grown.trials().set_index("trial")[["state", "steps_run", "value"]]
    pd.testing.assert_frame_equal(after.loc[before.index], before)  # never decided again
    for runs in runs_by_configuration(grown).values():
        assert runs["state"].nunique() == 1


def test_unfollowed_seeds_are_those_of_ended_first_runs_only():
    from nnlab.study.pruning import unfollowed_seeds

    spec = StudySpec.from_dict(searched("units", unit="configuration", replicates=3))
    per_run = StudySpec.from_dict(searched("units", replicates=3))

    def run(config: str, seed: int, state: TrialState) -> optuna.trial.FrozenTrial:
        return create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                            user_attrs={"key": f"{config}-{seed}", "config_id": config,
                                        "seed": seed})

    trials = [run("a", 3, TrialState.COMPLETE), run("b", 3, TrialState.PRUNED),
              run("b", 4, TrialState.PRUNED), run("c", 3, TrialState.RUNNING),
              run("a", 4, TrialState.FAIL)]
    found = [(first.user_attrs["config_id"], seed)
             for first, seed in unfollowed_seeds(spec, trials)]
    assert found == [("a", 4), ("a", 5), ("b", 5)]  # a failed run is no run: "a" 4 again
    assert [s for _, s in unfollowed_seeds(spec, trials, ["b"])] == [5]
    assert unfollowed_seeds(per_run, trials) == []  # runs: every seed planned up front
