"""The study engine end to end on real MNIST subsets with tiny networks: exactly once,
resume, refusal of a changed spec, failed and diverged runs, storages, samplers."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, delayed

from nnlab.cli import main
from nnlab.errors import NNLabError, StorageError
from nnlab.run import CURVE_COLUMNS
from nnlab.study import Study, StudySpec

N_TEST = 100


def tiny(name: str, grid: dict | None = None, replicates: int = 2, **study) -> dict:
    """A study of 784-8-10 nets trained for 20 steps on 500 MNIST images."""
    return {"study": {"name": name, "replicates": replicates, **study},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 2},
            "grid": {"eta": [0.5, 2.0]} if grid is None else grid,
            "data": {"train_size": 500, "val_size": 200, "test_size": N_TEST}}


def test_a_grid_runs_every_configuration_and_seed_once_and_a_rerun_redoes_nothing(tmp_path):
    study = Study(tiny("grid"), results=tmp_path)
    summary = study.run(n_jobs=2, progress=False)
    # each seed's two learning rates trained as one lockstep group
    assert summary["this_run"] == {"completed": 4, "diverged": 0, "failed": 0, "pruned": 0,
                                   "grouped": 4}
    assert (summary["planned"], summary["complete"], summary["failed"]) == (4, 4, 0)

    trials = study.trials()
    assert (trials["state"] == "COMPLETE").all() and trials["key"].is_unique
    assert sorted(zip(trials["eta"], trials["seed"], strict=True)) == [
        (0.5, 0), (0.5, 1), (2.0, 0), (2.0, 1)]
    assert trials["config_id"].nunique() == 2
    assert (trials["seed_init"] == trials["seed"]).all()  # the seeds behind every stream
    assert (trials["steps_run"] == 20).all() and (trials["value"] == trials["val_acc"]).all()

    numbers = sorted(trials["trial"])
    assert study.store.trial_numbers("curves") == set(numbers)
    curves = study.curves()
    assert list(curves.columns) == ["trial", *CURVE_COLUMNS]
    assert sorted(curves["trial"].unique()) == numbers
    assert (curves.groupby("trial")["step"].max() == 20).all()
    last = curves.sort_values("step").groupby("trial").tail(1).set_index("trial")["val_acc"]
    assert (last.sort_index().to_numpy() == trials.set_index("trial")["val_acc"].sort_index()
            .to_numpy()).all()
    predictions = study.predictions(trials=numbers[:2])
    assert len(predictions) == 2 * N_TEST
    assert list(predictions.columns) == ["trial", "index", "y_true", "top1", "top2", "top3",
                                         "p1", "p2", "p3"]

    saved = pd.read_parquet(study.store.trials_path)
    assert list(saved["trial"]) == list(trials["trial"])
    assert StudySpec.from_toml(study.store.spec_path) == study.spec
    manifest = study.store.read_manifest()
    assert manifest["storage"] == "optuna.journal"
    (run,) = manifest["invocations"]
    assert run["n_jobs"] == 2 and run["end"] is not None
    assert run["packages"]["optuna"] and run["blas"] and run["cpu"]

    # joblib.Parallel (its own loky pool) still works beside the engine's pool
    assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    again = study.run(n_jobs=2, progress=False)
    assert again["this_run"]["completed"] == 0
    after = study.trials()
    assert list(after["completed"]) == list(trials["completed"])  # nothing was redone
    assert len(study.store.read_manifest()["invocations"]) == 2
    assert study.optuna_study().metric_names == ["val_acc"]


def test_a_configuration_and_seed_give_the_same_curve_in_any_study(tmp_path):
    first = Study(tiny("first", grid={"eta": [0.5]}), results=tmp_path)
    second = Study(tiny("second", grid={"eta": [2.0, 0.5]}, replicates=1), results=tmp_path)
    first.run(n_jobs=1, progress=False)
    second.run(n_jobs=2, progress=False)
    a, b = first.trials(), second.trials()
    shared = set(a["key"]) & set(b["key"])
    assert len(shared) == 1  # eta 0.5 with seed 0: the key is the config, not the study
    number_a = int(a.loc[a["key"].isin(shared), "trial"].iloc[0])
    number_b = int(b.loc[b["key"].isin(shared), "trial"].iloc[0])
    columns = [c for c in CURVE_COLUMNS if c != "seconds"]
    curve_a = first.curves([number_a], columns).drop(columns="trial")
    curve_b = second.curves([number_b], columns).drop(columns="trial")
    pd.testing.assert_frame_equal(curve_a, curve_b)


def test_a_changed_spec_is_refused_and_leaves_the_results_untouched(tmp_path):
    Study(tiny("same-name"), results=tmp_path).run(n_jobs=1, progress=False)
    folder = tmp_path / "same-name"
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    changed = Study(tiny("same-name", grid={"eta": [0.5, 3.0]}), results=tmp_path)
    with pytest.raises(NNLabError) as err:
        changed.run(n_jobs=1, progress=False)
    message = str(err.value)
    assert "holds results of a different spec" in message and "grid.eta:" in message
    assert "--new" in message
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    summary = changed.run(n_jobs=1, new=True, progress=False)
    assert summary["complete"] == 4 and sorted(changed.trials()["eta"].unique()) == [0.5, 3.0]
    assert sorted(changed.trials()["trial"]) == [0, 1, 2, 3]  # a fresh study

    # the same spec, but a study started by an nnlab whose TrainConfig resolved differently
    optuna_study = changed.optuna_study()
    older_base = {**optuna_study.user_attrs["base_config"], "batch_size": 64}
    optuna_study.set_user_attr("base_config", older_base)
    optuna_study.set_user_attr("spec_digest", "digest-of-older-code")
    with pytest.raises(NNLabError, match=r"different spec \(base config batch_size: 64 != 50\)"):
        changed.run(n_jobs=1, progress=False)


def nnlab_records(caplog) -> list[logging.LogRecord]:
    """The log records of nnlab's own loggers (not Optuna's) that `caplog` holds."""
    return [r for r in caplog.records if r.name.split(".")[0] == "nnlab"]


def test_more_replicates_grow_a_study_and_keep_its_runs(tmp_path, caplog):
    Study(tiny("grows", replicates=1), results=tmp_path).run(n_jobs=1, progress=False)
    folder = tmp_path / "grows"
    kept = {p: p.read_bytes() for kind in ("curves", "predictions")
            for p in (folder / kind).glob("*.parquet")}
    created = Study.load(folder).store.read_manifest()["spec_digest"]

    grown = Study(tiny("grows", replicates=3), results=tmp_path)
    with caplog.at_level(logging.INFO, logger="nnlab"):
        summary = grown.run(n_jobs=2, progress=False)
    assert [(r.name, r.levelno, r.getMessage()) for r in nnlab_records(caplog)] == [
        ("nnlab.study.study", logging.INFO,
         "study 'grows' grows (replicates 1 -> 3); its complete runs are kept")]
    assert summary["this_run"]["completed"] == 4 and summary["planned"] == 6
    trials = grown.trials()
    assert sorted(zip(trials["eta"], trials["seed"], strict=True)) == [
        (0.5, 0), (0.5, 1), (0.5, 2), (2.0, 0), (2.0, 1), (2.0, 2)]
    assert {p: p.read_bytes() for p in kept} == kept  # the first runs were not redone
    assert StudySpec.from_toml(grown.store.spec_path) == grown.spec
    manifest = grown.store.read_manifest()
    assert manifest["spec_digest"] == grown.spec.digest() != created
    assert manifest["invocations"][1]["grew_from_spec_digest"] == created
    assert Study.load(folder).status()["planned"] == 6

    # fewer replicates, or more seeds with anything else changed, is refused
    for spec in (tiny("grows", replicates=2), tiny("grows", replicates=4, seed=1),
                 tiny("grows", grid={"eta": [0.5, 2.0, 3.0]}, replicates=4)):
        with pytest.raises(NNLabError, match="different spec .*only raising study.replicates"):
            Study(spec, results=tmp_path).run(n_jobs=1, progress=False)
    assert len(Study.load(folder).trials()) == 6


def test_failed_and_diverged_runs_are_recorded_and_the_study_goes_on(tmp_path, capsys):
    # a CNN's dense layer of 10^12 units cannot be allocated: its trials fail as they run
    # (a config that does not fit the data, or an MLP too big for the memory, is refused
    # before the study starts, see below and tests/test_hostile_folders.py)
    spec = tiny("outcomes", replicates=1,
                grid={"layers": ["dense8", f"dense{10**12}"], "eta": [0.5, 100.0]})
    spec["base"].update(preset="cnn", optimizer="sgd", schedule="constant")
    del spec["base"]["sizes"]
    path = tmp_path / "outcomes.toml"
    path.write_text(StudySpec.from_dict(spec).to_toml())
    code = main(["run", str(path), "--results", str(tmp_path), "--jobs", "2", "--quiet"])
    assert code == 1  # failed trials: the command says so
    assert "2 planned trials failed" in capsys.readouterr().err
    study = Study.load(tmp_path / "outcomes")
    trials = study.trials().set_index(["layers", "eta"])
    ok, diverged = trials.loc[("dense8", 0.5)], trials.loc[("dense8", 100.0)]
    assert (ok["state"], ok["status"]) == ("COMPLETE", "ok")
    assert (diverged["state"], diverged["status"]) == ("COMPLETE", "diverged")
    assert diverged["steps_run"] < 20 and "initial loss" in diverged["note"]
    for eta in (0.5, 100.0):
        failed = trials.loc[(f"dense{10**12}", eta)]
        assert failed["state"] == "FAIL" and pd.isna(failed["status"])
        assert failed["error"].startswith("MemoryError: Unable to allocate")
    assert study.store.trial_numbers("curves") == {int(ok["trial"]), int(diverged["trial"])}
    summary = study.status()
    assert (summary["complete"], summary["diverged"], summary["failed"]) == (2, 1, 2)


def test_status_json_has_the_counts_and_save_probs_keeps_all_probabilities(tmp_path, capsys):
    study = Study(tiny("status", grid={"eta": [0.5]}, save_probs=True), results=tmp_path)
    study.run(n_jobs=1, progress=False)
    assert main(["status", str(study.folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("planned", "complete", "running", "failed", "diverged")} == {
        "planned": 2, "complete": 2, "running": 0, "failed": 0, "diverged": 0}
    best = summary["best_configuration"]
    assert best["params"] == {"eta": 0.5} and best["n_seeds"] == 2
    trials = study.trials()
    assert best["val_acc_mean"] == pytest.approx(trials["val_acc"].mean())
    assert best["val_acc_std"] == pytest.approx(trials["val_acc"].std())
    probabilities = study.probabilities()
    assert probabilities.shape == (2 * N_TEST, 2 + 10)  # trial, index, p_0 .. p_9
    p = probabilities[[f"p_{c}" for c in range(10)]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    top1 = study.predictions()["top1"].to_numpy()
    np.testing.assert_array_equal(p.argmax(axis=1), top1)


def test_a_lost_result_file_is_named_by_status_and_report_not_skipped(tmp_path, capsys):
    """Before, the trial was silently left out of the curves and of the report."""
    study = Study(tiny("lost", grid={"eta": [0.5]}), results=tmp_path)
    study.run(n_jobs=1, progress=False)
    lost = study.trials()["trial"].iloc[1]
    (study.folder / "predictions" / f"trial={lost}.parquet").unlink()
    assert study.status()["missing_files"] == {}  # the archive still holds them
    assert sorted(study.predictions()["trial"].unique()) == [0, 1]
    study.store.archive_path("predictions").unlink()
    assert study.status()["missing_files"] == {"predictions": [lost]}
    assert main(["status", str(study.folder)]) == 0
    assert f"missing result files: predictions of trial(s) {lost} " in capsys.readouterr().out
    assert len(study.curves()["trial"].unique()) == 2
    with pytest.raises(NNLabError, match=rf"predictions: no file for complete trial\(s\) {lost} "):
        study.predictions()
    assert main(["report", str(study.folder)]) == 2
    assert f"no file for complete trial(s) {lost}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "status", "report"])
def test_a_manifest_with_broken_invocations_is_named_in_one_line(tmp_path, capsys, command):
    """Before, run failed with AttributeError: 'int' object has no attribute 'append' and
    report with TypeError, after the study's storage had been opened."""
    study = Study(tiny("manifest", grid={"eta": [0.5]}, replicates=1), results=tmp_path)
    study.plan()
    study.store.manifest_path.write_text('{"storage": "optuna.journal", "invocations": 5}')
    args = {"run": ["run", str(study.store.spec_path), "--results", str(tmp_path), "--quiet"],
            "status": ["status", str(study.folder)], "report": ["report", str(study.folder)]}
    assert main(args[command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"nnlab: error: {study.store.manifest_path}: expected \"invocations\"")


def test_arguments_of_the_study_api_that_are_no_path_name_or_storage_are_named(tmp_path):
    """Before, each failed with a TypeError inside pathlib or on a string operation."""
    spec = tiny("arguments", grid={"eta": [0.5]}, replicates=1)
    calls = [
        (lambda: Study.from_toml(None), r"^study spec: expected a path, got None"),
        (lambda: Study(spec, results=3), r"^results: expected a path, got 3"),
        (lambda: Study(spec, results=tmp_path, storage=3),
         r"^storage: expected a journal file path or a database URL .*, got 3$"),
        (lambda: Study(spec, results=tmp_path, heartbeat=10),
         r"^heartbeat: expected a Heartbeat\(interval, grace\), got 10$"),
        (lambda: Study.join(3, storage="x.journal", results=tmp_path),
         r"^study: expected a name of letters, digits, .* got 3$"),
        (lambda: Study.join("x", storage="x.journal", results=None),
         r"^results: expected a path, got None$"),
    ]
    for call, message in calls:
        with pytest.raises(NNLabError, match=message):
            call()
    assert not any(tmp_path.iterdir())


def test_trial_numbers_and_tables_given_to_a_study_are_checked(tmp_path):
    """Before, trials=5 raised TypeError, and a trial the study lacks was silently left out
    (curves(trials=[99]) was an empty table)."""
    study = Study(tiny("numbers", grid={"eta": [0.5]}, replicates=1), results=tmp_path)
    study.run(n_jobs=1, progress=False)
    for trials, message in [(5, r"^trials: expected an iterable of trial numbers, got 5$"),
                            (["0"], r"^trials: expected trial numbers \(integers\), got '0'$"),
                            ([0, 99], r"^trials: study 'numbers' has no trial 99 \(it has 1, "
                                      r"numbered from 0\)$")]:
        with pytest.raises(NNLabError, match=message):
            study.curves(trials=trials)
    assert study.predictions(trials=pd.Series([0], dtype="int64"))["trial"].eq(0).all()
    with pytest.raises(NNLabError, match=r"^trials: expected the trials table \(a DataFrame "):
        study.status(trials=3)
    with pytest.raises(NNLabError, match=r"^storage: expected a journal file path or a "):
        Study.load(study.folder, storage=3)


def _varied(spec: dict, base: dict | None = None, **sections: dict) -> dict:
    """`spec` with batch_size out of [base] (so it can vary), `base` merged in, and the
    given sections replacing its own."""
    kept = {k: v for k, v in spec["base"].items() if k != "batch_size"}
    return {**spec, "base": {**kept, **(base or {})}, **sections}


@pytest.mark.parametrize(("spec", "message"), [
    (_varied(tiny("fit"), grid={"batch_size": [50, 1000]}),
     r"^grid point \{'batch_size': 1000\}: TrainConfig\.batch_size: expected at most the 500 "),
    ({**_varied(tiny("fit", sampler="random", n_trials=2), grid={}),
      "space": {"batch_size": {"int_uniform": [10, 600]}}},
     r"^space\.batch_size = 600: TrainConfig\.batch_size: expected at most the 500 "),
    (_varied(tiny("fit"), base={"eval_steps": [0, 50]}),
     r"^grid point \{'eta': 0\.5\}: TrainConfig\.eval_steps: expected steps <= n_steps \(20\)"),
])
def test_a_configuration_that_cannot_fit_the_data_is_refused_before_the_study_exists(
        tmp_path, spec, message):
    """Before, such a study was created and each of its trials failed, with `nnlab run`
    suggesting to run again."""
    study = Study(spec, results=tmp_path)
    with pytest.raises(NNLabError, match=message):
        study.run(n_jobs=1, progress=False)
    assert not study.folder.exists()


@pytest.mark.parametrize(("jobs", "message"), [
    (0, r"^n_jobs: expected an integer >= 1, got 0$"),
    (10_000, r"^n_jobs: expected at most \d+ worker processes on this machine's \d+ cores"),
])
def test_a_job_count_out_of_range_is_refused_before_anything_starts(tmp_path, jobs, message):
    """Each local worker process holds ~210 MB once it has loaded MNIST: 10,000 would need
    ~2 TB; before, nothing stopped them."""
    study = Study(tiny("jobs"), results=tmp_path)
    with pytest.raises(NNLabError, match=message):
        study.run(n_jobs=jobs, progress=False)
    assert not study.folder.exists()


def test_results_without_their_storage_are_said_to_be_replaced(tmp_path, caplog, capsys):
    """A fresh clone holds a committed study's trials.parquet and report but not its
    journal: running the study starts it afresh, and now says so (a warning of the
    library's log; `nnlab run` shows it as an "nnlab: " line on stderr)."""
    study = Study(tiny("afresh", grid={"eta": [0.5]}, replicates=1), results=tmp_path)
    study.run(n_jobs=1, progress=False)
    assert nnlab_records(caplog) == []
    (study.folder / "optuna.journal").unlink()
    assert study.run(n_jobs=1, progress=False)["this_run"]["completed"] == 1
    message = (f"{study.folder} holds results of a run whose storage (optuna.journal) has no "
               "such study: starting it afresh there; its trials.parquet, archive and report "
               "will be replaced")
    assert [(r.levelno, r.getMessage()) for r in nnlab_records(caplog)] == [
        (logging.WARNING, message)]
    (study.folder / "optuna.journal").unlink()
    capsys.readouterr()
    assert main(["run", str(study.folder / "spec.toml"), "--results", str(tmp_path),
                 "--quiet"]) == 0
    assert capsys.readouterr().err == f"nnlab: {message}\n"


def test_an_sqlite_storage_is_chosen_by_url_and_remembered(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = Study(tiny("sqlite", grid={"eta": [0.5]}), results=tmp_path / "r", storage=url)
    assert study.run(n_jobs=1, progress=False)["complete"] == 2
    assert (tmp_path / "optuna.db").is_file() and not (study.folder / "optuna.journal").exists()
    loaded = Study.load(study.folder, storage=url)  # outside the folder: named, not read
    assert loaded.storage == url and loaded.status()["complete"] == 2
    with pytest.raises(StorageError, match=r"^storage: .* keeps its trials in sqlite:///"):
        Study(tiny("sqlite", grid={"eta": [0.5]}), results=tmp_path / "r").run(progress=False)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_samplers_run_n_trials_configurations_times_the_replicates(tmp_path, sampler):
    spec = tiny(f"{sampler}-study", grid={}, sampler=sampler, n_trials=3)
    del spec["grid"]
    spec["space"] = {"eta": {"log_uniform": [0.1, 3.0]}}
    study = Study(spec, results=tmp_path)
    summary = study.run(n_jobs=2, progress=False)
    assert (summary["planned"], summary["complete"]) == (6, 6)
    trials = study.trials()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["config_id"].nunique() == 3
    assert complete.groupby("config_id")["seed"].apply(sorted).tolist() == [[0, 1]] * 3
    assert complete.groupby("config_id")["eta"].nunique().eq(1).all()
    assert study.run(n_jobs=2, progress=False)["this_run"]["completed"] == 0
