"""A study run on a real Dask cluster (a LocalCluster of worker processes on 127.0.0.1)
completes the same trials as with loky, bit for bit, with every evaluation in the storage;
a pruned search prunes the same trials there as with loky."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from nnlab.cli import main
from nnlab.run import CURVE_COLUMNS
from nnlab.study import Study, StudySpec

distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed "
                                  "(pip install 'dask[distributed]')")

SPEC = {"study": {"name": "dask-vs-loky", "replicates": 2},
        "base": {"sizes": [784, 16, 10], "batch_size": 50, "n_steps": 40, "n_evals": 3,
                 "noise": "grad"},
        "grid": {"eta": [0.5, 2.0]},
        "data": {"train_size": 800, "val_size": 200, "test_size": 100}}
RESULTS = ["status", "value", "val_acc", "test_acc", "train_loss", "val_loss", "steps_run",
           "seed_init", "seed_order", "seed_noise"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-threaded worker processes, everything on 127.0.0.1, no dashboard."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as local:
        yield local


def completed(study: Study) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Complete trials by key (results), their curves without wall time and their
    predictions, each indexed by key."""
    trials = study.trials()
    assert (trials["state"] == "COMPLETE").all()
    keys = trials.set_index("trial")["key"]
    curves = study.curves(columns=[c for c in CURVE_COLUMNS if c != "seconds"])
    predictions = study.predictions()
    return (trials.set_index("key")[RESULTS].sort_index(),
            curves.assign(key=curves["trial"].map(keys)).drop(columns="trial")
            .sort_values(["key", "step"], ignore_index=True),
            predictions.assign(key=predictions["trial"].map(keys)).drop(columns="trial")
            .sort_values(["key", "index"], ignore_index=True))


@pytest.mark.integration
def test_a_study_on_a_dask_cluster_completes_the_same_trials_as_with_loky(tmp_path, cluster):
    spec = tmp_path / "dask-vs-loky.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    assert main(["run", str(spec), "--results", str(tmp_path / "loky"), "--jobs", "2",
                 "--quiet"]) == 0
    assert main(["run", str(spec), "--results", str(tmp_path / "dask"), "--backend", "dask",
                 "--scheduler", cluster.scheduler_address, "--quiet"]) == 0

    loky = Study.load(tmp_path / "loky" / "dask-vs-loky")
    dask = Study.load(tmp_path / "dask" / "dask-vs-loky")
    for on_loky, on_dask in zip(completed(loky), completed(dask), strict=True):
        pd.testing.assert_frame_equal(on_loky, on_dask, check_exact=True)
    assert len(completed(dask)[0]) == 4

    for study in (loky, dask):  # each evaluation went through the Dask scheduler's queue
        curves = study.curves(columns=["step", "val_acc"])
        for trial in study.optuna_study().get_trials():
            curve = curves[curves["trial"] == trial.number]
            assert trial.intermediate_values == dict(zip(curve["step"], curve["val_acc"],
                                                         strict=True))

    (run,) = dask.store.read_manifest()["invocations"]
    assert run["executor"] == "distributed.cfexecutor.ClientExecutor"
    assert run["n_jobs"] == 2  # the cluster's worker threads
    with distributed.Client(cluster.scheduler_address) as client:  # the trials ran there
        from nnlab.study import task

        loads = client.run(lambda: len(task._LOADED))
    assert sum(loads.values()) >= 1  # a Dask worker process loaded the data


def test_a_pruned_search_on_a_dask_cluster_prunes_the_same_trials_as_with_loky(
        tmp_path, cluster):
    spec = {"study": {"name": "dask-pruned", "sampler": "random", "n_trials": 4,
                      "replicates": 2, "seed": 3, "pruner": "successive_halving",
                      "pruner_options": {"min_resource": 5, "reduction_factor": 3}},
            "base": {"sizes": [784, 16, 10], "batch_size": 50, "n_steps": 200, "n_evals": 8},
            "space": {"eta": {"log_uniform": [0.003, 3.0]}},
            "data": {"train_size": 2000, "val_size": 300, "test_size": 100}}
    ended = []
    with distributed.Client(cluster.scheduler_address) as client:
        for executor, jobs in ((None, 2), (client.get_executor(pure=False), 2)):
            study = Study(spec, results=tmp_path / str(len(ended)))
            study.run(n_jobs=jobs, progress=False, executor=executor)
            ended.append(sorted((t.user_attrs["key"], t.state.name, t.last_step)
                                for t in study.optuna_study().get_trials()))
    assert ended[0] == ended[1]
    assert {state for _, state, _ in ended[0]} == {"COMPLETE", "PRUNED"}


def test_dask_options_are_checked(tmp_path, capsys):
    spec = tmp_path / "dask-vs-loky.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    assert main(["run", str(spec), "--results", str(tmp_path), "--backend", "dask"]) == 2
    assert "--scheduler: expected the address of a Dask scheduler" in capsys.readouterr().err
    assert main(["run", str(spec), "--results", str(tmp_path), "--scheduler",
                 "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler: only with backend 'dask'" in capsys.readouterr().err
