"""The companion study `<name>:configs`: one trial per configuration whose runs have all
ended, its value the seed mean of trials.parquet, kept in step as runs end, as the study
grows and when it starts over."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution

from nnlab.study import Study
from nnlab.study import configs as configs_module
from nnlab.study.configs import companion_name, companion_trials, ended_configurations
from nnlab.study.status import configurations


def tiny(name: str, replicates: int = 2) -> dict:
    """Three learning rates x two lengths of a 784-8-10 net on 500 MNIST images."""
    return {"study": {"name": name, "replicates": replicates},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_evals": 3},
            "grid": {"eta": [0.1, 0.5, 2.0], "n_steps": [10, 20]},
            "data": {"train_size": 500, "val_size": 200, "test_size": 100}}


def companion(study: Study) -> list[optuna.trial.FrozenTrial]:
    storage = study.optuna_study()._storage
    return optuna.load_study(study_name=companion_name(study.spec.name),
                             storage=storage).get_trials()


def assert_in_step(study: Study) -> None:
    """One COMPLETE companion trial per configuration, its value the seed mean of the
    runs' values in trials.parquet, its attributes the seed statistics of `nnlab status`,
    its curve the seed mean of the runs' curves."""
    trials = pd.read_parquet(study.store.trials_path)
    means = trials.groupby("config_id")["value"].mean()
    stats = {(row["eta"], row["n_steps"]): row
             for row in configurations(study.spec, trials).to_dict("records")}
    entries = companion(study)
    assert len(entries) == len(means) == 6
    for entry in entries:
        config_id = entry.user_attrs["config_id"]
        assert entry.state.name == "COMPLETE"
        assert entry.value == pytest.approx(means[config_id], abs=1e-12)
        row = stats[(entry.params["eta"], entry.params["n_steps"])]
        for name in ("val_acc_mean", "val_acc_std", "test_acc_mean", "test_acc_std",
                     "n_seeds"):
            assert entry.user_attrs[name] == pytest.approx(row[name])
        runs = trials[trials["config_id"] == config_id]
        assert sorted(entry.user_attrs["trials"]) == sorted(runs["trial"])
        curves = study.curves(runs["trial"], ["step", "val_acc"])
        mean_curve = curves.groupby("step")["val_acc"].mean()
        assert entry.intermediate_values == pytest.approx(mean_curve.to_dict())
        assert isinstance(entry.distributions["eta"], FloatDistribution)


def test_the_companion_values_are_the_seed_means_of_the_trials(tmp_path):
    study = Study(tiny("means"), results=tmp_path)
    study.plan()
    assert companion(study) == []  # no configuration has ended yet
    study.run(n_jobs=2, progress=False)
    assert_in_step(study)
    best = max(companion(study), key=lambda t: t.value)
    assert best.params == study.status()["best_configuration"]["params"]


def test_the_companion_follows_a_study_that_grows_or_starts_over(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    Study(tiny("follows", replicates=1), results=tmp_path, storage=url).run(
        n_jobs=2, progress=False)
    grown = Study(tiny("follows", replicates=2), results=tmp_path, storage=url)
    grown.run(n_jobs=2, progress=False)
    assert_in_step(grown)  # the one-seed means were replaced
    assert all(t.user_attrs["n_seeds"] == 2 for t in companion(grown))
    before = {t.user_attrs["config_id"]: t.value for t in companion(grown)}
    again = Study(tiny("follows", replicates=2), results=tmp_path, storage=url)
    again.run(n_jobs=2, progress=False, new=True)
    assert_in_step(again)
    assert {t.user_attrs["config_id"]: t.value for t in companion(again)} == pytest.approx(
        before)  # the same runs, bit for bit; one companion, not two
    names = [s.study_name for s in optuna.get_all_study_summaries(url)]
    assert sorted(names) == ["follows", "follows:configs"]


def test_a_group_that_ends_many_configurations_adds_them_from_one_table(tmp_path,
                                                                         monkeypatch):
    """A lockstep group of the second seed's six learning rates ends six configurations in
    one pass: one `configurations` table of their runs gives the six companion trials,
    each the one that a table of its own runs gives."""
    tables = []

    def counted(*args, **kwargs):
        table = configurations(*args, **kwargs)
        tables.append(len(table))
        return table

    monkeypatch.setattr(configs_module, "configurations", counted)
    etas = [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    study = Study({**tiny("one-table"), "grid": {"eta": etas, "n_steps": [20]}},
                  results=tmp_path)
    assert study.run(n_jobs=1, progress=False)["this_run"]["grouped"] == 12
    assert tables == [6]  # one table of the six configurations, not six of one
    runs = ended_configurations(study.spec, study.optuna_study().get_trials())
    entries = companion(study)
    assert len(entries) == len(runs) == 6
    for entry in entries:
        config_id = entry.user_attrs["config_id"]
        [alone] = companion_trials(study.spec, {config_id: runs[config_id]})
        assert (entry.state, entry.value, entry.params, entry.distributions,
                entry.user_attrs, entry.intermediate_values) == (
            alone.state, alone.value, alone.params, alone.distributions, alone.user_attrs,
            alone.intermediate_values)
