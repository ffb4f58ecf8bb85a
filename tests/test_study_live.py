"""Live studies: every evaluation of a running trial reaches the study's storage (journal,
SQLite, PostgreSQL with `nnlab worker`) while the run trains; a finished trial's
intermediate values are its curve; key metrics are attributes of their own; grid values
are numeric distributions (and a study made with categorical ones resumes); progress
lines where stderr is no terminal."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from nnlab.cli import main
from nnlab.study import Study, StudySpec, progress
from nnlab.study.grids import is_log_spaced, param_value

# four runs of 12000 steps, about 5 s of training in all even where they train in
# lockstep pairs: long enough to be seen running on a fast machine
SPEC = {"study": {"name": "live", "replicates": 2},
        "base": {"sizes": [784, 64, 10], "batch_size": 50, "n_steps": 12000, "n_evals": 12},
        "grid": {"eta": [0.1, 0.5]},
        "data": {"train_size": 2000, "val_size": 300, "test_size": 100}}


def nnlab(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnlab.cli", *args, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def watch_a_running_trial(process: subprocess.Popen, folder: Path,
                          storage: str | None = None) -> tuple[int, dict]:
    """(number, intermediate values) of a trial seen RUNNING with at least 3 values, read
    from the storage (`storage`, default the folder's own) by this process while `process`
    runs the study."""
    deadline = time.monotonic() + 180
    while not (folder / "manifest.json").is_file():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    study = Study.load(folder, storage=storage).optuna_study()
    while True:
        for trial in study.get_trials(deepcopy=False):
            if trial.state.name == "RUNNING" and len(trial.intermediate_values) >= 3:
                return trial.number, dict(trial.intermediate_values)
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def assert_values_are_the_curves(study: Study, seen: tuple[int, dict]) -> None:
    """Every trial complete, its intermediate values its curve's val_acc at every step,
    and the values seen while it ran the start of its curve."""
    trials = study.optuna_study().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    curves = study.curves(columns=["step", "val_acc"])
    for trial in trials:
        curve = curves[curves["trial"] == trial.number]
        assert trial.intermediate_values == dict(zip(curve["step"], curve["val_acc"],
                                                     strict=True))
        assert len(curve) == 12 and curve["step"].iloc[-1] == SPEC["base"]["n_steps"]
    number, values = seen
    assert values.items() <= trials[number].intermediate_values.items()
    assert len(values) < len(trials[number].intermediate_values)  # seen before it ended


@pytest.mark.integration
@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_evaluations_reach_the_storage_while_the_runs_train(tmp_path, storage):
    url = {"journal": None, "sqlite": f"sqlite:///{tmp_path}/optuna.db"}[storage]
    spec = tmp_path / "live.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    run = nnlab("run", str(spec), "--results", str(tmp_path), "--jobs", "2",
                *(["--storage", url] if url else []))
    seen = watch_a_running_trial(run, tmp_path / "live", url)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert_values_are_the_curves(Study.load(tmp_path / "live", storage=url), seen)


@pytest.mark.integration
def test_evaluations_of_postgresql_workers_reach_the_storage_while_they_train(
        tmp_path, database):
    spec = tmp_path / "live.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    assert main(["run", str(spec), "--storage", database, "--results", str(tmp_path),
                 "--plan-only", "--quiet"]) == 0
    workers = [nnlab("worker", "--storage", database, "--study", "live", "--results",
                     str(tmp_path), "--jobs", "1") for _ in range(2)]
    seen = watch_a_running_trial(workers[0], tmp_path / "live", database)
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    study = Study.load(tmp_path / "live", storage=database)
    assert_values_are_the_curves(study, seen)
    assert study.trials()["owner"].nunique() == 2  # both workers ran trials


def test_the_key_metrics_are_attributes_of_their_own(tmp_path):
    spec = {**SPEC, "base": {**SPEC["base"], "n_steps": 30, "n_evals": 3}}
    study = Study(spec, results=tmp_path)
    study.run(n_jobs=2, progress=False)
    trials = study.trials().set_index("trial")
    for trial in study.optuna_study().get_trials():
        row = trials.loc[trial.number]
        assert {k: trial.user_attrs[k] for k in ("val_acc", "test_acc", "status")} == {
            "val_acc": row["val_acc"], "test_acc": row["test_acc"], "status": "ok"}
        assert trial.user_attrs["seconds"] == row["seconds"] > 0


def test_grid_values_are_numeric_distributions_on_a_log_axis_where_log_spaced(tmp_path):
    spec = {"study": {"name": "numeric"},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_evals": 2},
            "grid": {"eta": [0.3, 1.0, 3.0, 10.0], "n_steps": [10, 30, 100],
                     "n_evals": [2, 3], "activation": ["relu", "sigmoid"]},
            "data": {"train_size": 500, "val_size": 200, "test_size": 100}}
    del spec["base"]["n_evals"]
    study = Study(spec, results=tmp_path)
    study.plan()
    trials = study.optuna_study().get_trials()
    assert len(trials) == 48
    assert trials[0].distributions == {
        "eta": FloatDistribution(0.3, 10.0, log=True),
        "n_steps": IntDistribution(10, 100, log=True),
        "n_evals": IntDistribution(2, 3),
        "activation": CategoricalDistribution(["relu", "sigmoid"])}
    assert sorted({t.params["eta"] for t in trials}) == [0.3, 1.0, 3.0, 10.0]
    assert sorted({t.params["n_steps"] for t in trials}) == [10, 30, 100]


def test_log_spacing_is_told_from_the_gaps():
    assert is_log_spaced([0.3, 1.0, 3.0, 10.0]) and is_log_spaced([100, 300, 1000])
    assert is_log_spaced([0.1, 2.0]) and not is_log_spaced([0.5, 1.0])
    assert not is_log_spaced([1, 2, 3, 4]) and not is_log_spaced([0.0, 0.1, 1.0])
    assert not is_log_spaced([150, 250]) and not is_log_spaced([7])


def test_a_study_made_with_categorical_grid_values_resumes_and_grows(tmp_path, monkeypatch):
    """Studies run before grid values were numeric keep categorical distributions in their
    storage; resuming or growing them must not mix in numeric ones."""
    spec = {"study": {"name": "older", "replicates": 1},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 2},
            "grid": {"eta": [0.5, 2.0], "n_steps": [10, 20]},
            "data": {"train_size": 500, "val_size": 200, "test_size": 100}}
    del spec["base"]["n_steps"]

    def categorical(self):  # how distributions were made then
        return {name: CategoricalDistribution([param_value(v) for v in values])
                for name, values in self.grid.items()}

    with monkeypatch.context() as patch:
        patch.setattr(StudySpec, "distributions", categorical)
        Study(spec, results=tmp_path).plan()  # its 4 trials waiting, in the old way
    summary = Study(spec, results=tmp_path).run(n_jobs=2, progress=False)
    assert (summary["this_run"]["completed"], summary["complete"]) == (4, 4)
    grown = {**spec, "study": {**spec["study"], "replicates": 2}}
    summary = Study(grown, results=tmp_path).run(n_jobs=2, progress=False)
    assert (summary["this_run"]["completed"], summary["complete"]) == (4, 8)
    trials = Study(grown, results=tmp_path).optuna_study().get_trials()
    assert len(trials) == 8 and {type(d) for t in trials for d in t.distributions.values()} == {
        CategoricalDistribution}


def test_progress_lines_where_stderr_is_no_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "EVERY", 0.0)
    spec = {**SPEC, "base": {**SPEC["base"], "n_steps": 30, "n_evals": 3}}
    path = tmp_path / "live.toml"
    path.write_text(StudySpec.from_dict(spec).to_toml())
    assert main(["run", str(path), "--results", str(tmp_path), "--jobs", "2"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("live: ")]
    assert len(lines) >= 4 and lines[-1].startswith("live: 4/4 runs done; best ")
    assert lines[-1].endswith("; ETA done") and "best configuration: eta=" in lines[-1]
    assert any(" runs done; " in line and "ETA " in line for line in lines[:-1])
    assert "\r" not in err  # no bar redrawn in place
