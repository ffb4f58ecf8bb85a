"""Study.trials() and Study.curves(with_params=True) on small real studies: every field of
a configuration is a column, varied or fixed, so analyses and plots need no merge."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from nnlab import analysis
from nnlab.study import Study
from nnlab.study.trials import PER_RUN_FIELDS
from nnlab.train_config import OMITTED_AT_DEFAULT, field_names

SPEC = {"study": {"name": "fixed-length", "replicates": 2},
        "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 30, "n_evals": 2,
                 "activation": "tanh"},
        "grid": {"eta": [0.1, 0.5, 2.0]},
        "data": {"train_size": 500, "val_size": 200, "test_size": 100}}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    study = Study(SPEC, results=tmp_path_factory.mktemp("results"))
    study.run(n_jobs=2, progress=False)
    return study


def test_trials_carry_the_fixed_fields_with_the_values_of_the_spec(study):
    trials = study.trials()
    assert len(trials) == 6
    # every TrainConfig field is a column (but those left out of to_dict at their default):
    # the varied one, then the fixed ones at the end
    fixed = [name for name in field_names()
             if name not in ("eta", *PER_RUN_FIELDS, *OMITTED_AT_DEFAULT)]
    assert list(trials.columns[-len(fixed):]) == fixed
    assert (trials["n_steps"] == 30).all() and trials["n_steps"].dtype == "Int64"
    assert (trials["batch_size"] == 50).all() and (trials["activation"] == "tanh").all()
    assert (trials["sizes"] == json.dumps([784, 8, 10])).all()
    assert trials["epochs"].isna().all() and trials["epochs"].dtype == "float64"
    assert (trials["steps_run"] == trials["n_steps"]).all()  # what ran is what the spec says
    # the varied field keeps its own column, and no per-run seed field is a fixed column
    assert sorted(trials["eta"].unique()) == [0.1, 0.5, 2.0]
    assert not set(PER_RUN_FIELDS[1:]) & set(trials.columns)


def test_trials_parquet_keeps_the_storage_columns_only(study):
    saved = pd.read_parquet(study.store.trials_path)
    pd.testing.assert_frame_equal(study.trials(fixed=False), saved)
    assert "n_steps" not in saved and "n_steps" in study.trials()


def test_eta_best_runs_on_a_study_whose_length_is_fixed_in_base(study):
    result = analysis.eta_best(study.trials(), n_resamples=200)
    assert result.table["n_steps"].tolist() == [30]
    assert result.table["n_runs"].tolist() == [6]
    assert 0.1 <= result.table["eta_best"].iloc[0] <= 2.0


def test_a_study_without_its_storage_reads_the_same_columns(study, tmp_path):
    clone = tmp_path / study.spec.name
    shutil.copytree(study.folder, clone)
    for journal in clone.glob("optuna.journal*"):
        journal.unlink()
    reopened = Study.load(clone)
    assert not reopened.has_storage()
    pd.testing.assert_frame_equal(reopened.trials(), study.trials())
    pd.testing.assert_frame_equal(reopened.curves(with_params=True),
                                  study.curves(with_params=True))


def test_curves_with_params_join_each_row_with_its_trials_parameters(study):
    trials = study.trials().set_index("trial")
    curves = study.curves(with_params=True)
    plain = study.curves()
    assert list(curves.columns[:len(plain.columns)]) == list(plain.columns)
    pd.testing.assert_frame_equal(curves[plain.columns], plain)
    params = [c for c in curves.columns if c not in plain.columns]
    assert params[:2] == ["eta", "seed"] and "n_steps" in params and "sizes" in params
    # row by row, the trial's own values, of the same types
    pd.testing.assert_frame_equal(curves[params],
                                  trials.loc[curves["trial"], params].reset_index(drop=True))
    # ready for a groupby: the seed mean of val_acc at the last step, per eta
    last = curves[curves["step"] == curves["n_steps"]]
    means = last.groupby("eta")["val_acc"].mean()
    assert means.to_dict() == pytest.approx(trials.groupby("eta")["val_acc"].mean().to_dict())


def test_curves_with_params_of_some_trials_and_columns(study):
    numbers = study.trials()["trial"].tolist()[:2]
    curves = study.curves(trials=numbers, columns=["step", "val_acc"], with_params=True)
    assert sorted(curves["trial"].unique()) == numbers
    assert list(curves.columns[:3]) == ["trial", "step", "val_acc"]
    assert {"eta", "seed", "batch_size"} <= set(curves.columns)
