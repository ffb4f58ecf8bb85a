"""Studies in a real PostgreSQL server on 127.0.0.1: `nnlab run` creates them, `nnlab worker`
processes share them; a worker killed with SIGKILL mid-trial is noticed by its missing
heartbeat and its configuration run again; every planned (configuration, seed) completes
exactly once with exactly one curve file."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from nnlab.cli import main
from nnlab.study import Study, storage
from nnlab.study.runner import OWNER
from tests.pg_server import free_port
from tests.small_study import planned, write_spec

pytestmark = pytest.mark.integration

REPLICATES = 2
PLANNED = planned(REPLICATES)
HEARTBEAT = ["--heartbeat", "1", "--grace", "3"]


def nnlab(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnlab.cli", *args, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def running_trial_of(process: subprocess.Popen, study: Study, optuna_study) -> int:
    """The number of a trial that `process` runs and whose curve is not written yet."""
    deadline = time.monotonic() + 120
    while True:
        for trial in optuna_study.get_trials(deepcopy=False):
            if (trial.state.name == "RUNNING"
                    and trial.user_attrs.get(OWNER, {}).get("pid") == process.pid
                    and not study.store.trial_path("curves", trial.number).exists()):
                return trial.number
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def plan(tmp_path: Path, database: str, name: str) -> tuple[Path, Study]:
    """`nnlab run --plan-only` of the SPEC study `name`: its spec file and the Study."""
    spec = write_spec(tmp_path, name, REPLICATES)
    results = tmp_path / "results"
    assert main(["run", str(spec), "--storage", database, "--results", str(results),
                 "--plan-only", "--quiet"]) == 0
    return spec, Study.load(results / name, storage=database)


def start_worker(database: str, study: Study) -> subprocess.Popen:
    """`nnlab worker` with one loky process, in a process group of its own."""
    return nnlab("worker", "--storage", database, "--study", study.spec.name, "--results",
                 str(study.folder.parent), "--jobs", "1", *HEARTBEAT, start_new_session=True)


def assert_complete_exactly_once(study: Study):
    """Every planned key complete once, nothing left running or waiting, one curve file and
    one predictions file per complete trial and none for any other."""
    trials = study.trials()
    assert not trials["state"].isin(["RUNNING", "WAITING"]).any()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["key"].is_unique
    assert sorted(zip(complete["eta"], complete["n_steps"], complete["seed"],
                      strict=True)) == sorted(PLANNED)
    assert study.store.trial_numbers("curves") == set(complete["trial"])
    assert study.store.trial_numbers("predictions") == set(complete["trial"])
    return trials


def test_three_workers_one_killed_mid_trial_complete_the_study_exactly_once(
        tmp_path, database, capsys):
    spec, study = plan(tmp_path, database, "shared")
    assert "planned: 8 trials waiting" in capsys.readouterr().out
    assert study.store.read_manifest()["storage"].startswith(  # psycopg 3 drives it
        "postgresql+psycopg://")

    workers = [start_worker(database, study) for _ in range(3)]
    victim = workers[0]
    number = running_trial_of(victim, study, study.optuna_study())
    os.killpg(victim.pid, signal.SIGKILL)  # the worker and its loky process, mid-trial
    victim.wait()
    outputs = [w.communicate(timeout=300) for w in workers[1:]]
    assert [w.returncode for w in workers[1:]] == [0, 0], outputs

    trials = assert_complete_exactly_once(study).set_index("trial")
    failed = trials[trials["state"] == "FAIL"]
    # the victim's lockstep group (a seed's two learning rates) and no other trial
    assert number in failed.index and len(failed) <= 2
    # the victim ran on this host and in this pid namespace, so its death is seen at once
    assert failed["error"].str.startswith(
        f"abandoned: process {victim.pid} on {socket.gethostname()} stopped before the trial "
        "ended").all()
    for failed_number, killed in failed.iterrows():
        retried = trials[(trials["key"] == killed["key"]) & (trials["state"] == "COMPLETE")]
        assert len(retried) == 1 and retried.index[0] > failed_number  # it ran again
        assert not retried["owner"].iloc[0].startswith(f"{victim.pid}@")
    for out, _ in outputs:
        assert re.search(r"this worker: \d+ trials completed", out)
        assert "planned 8  complete 8" in out

    # a second `nnlab run` of the spec joins the study: nothing left to do
    assert main(["run", str(spec), "--storage", database, "--results",
                 str(study.folder.parent), "--quiet"]) == 0
    assert "this run: 0 trials completed" in capsys.readouterr().out
    invocations = study.store.read_manifest()["invocations"]
    assert [i["n_jobs"] for i in invocations] == [0, 1, 1, 1, 1]  # plan, 3 workers, run
    assert sum(i["end"] is None for i in invocations) == 1  # the killed worker's


def test_the_claim_of_a_waiting_trial_is_transactional(tmp_path, database):
    """Threads with connections of their own race to claim 24 waiting trials: each trial is
    claimed once, and all are claimed."""
    spec = {"study": {"name": "claims"},
            "base": {"sizes": [784, 8, 10], "n_steps": 10, "batch_size": 50},
            "grid": {"eta": [0.1 * (i + 1) for i in range(24)]},
            "data": {"train_size": 100, "val_size": 100, "test_size": 100}}
    Study(spec, results=tmp_path, storage=database).plan()
    claimed: list[list[int]] = [[] for _ in range(4)]
    start = threading.Barrier(len(claimed))

    def claim_all(mine: list[int]) -> None:
        study = Study(spec, results=tmp_path, storage=database)
        runner = study._runner(study.optuna_study())
        start.wait()
        while (trial := runner.claim_next()) is not None:
            mine.append(trial.number)

    threads = [threading.Thread(target=claim_all, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [n for mine in claimed for n in mine]
    assert sorted(numbers) == list(range(24))
    assert sum(bool(mine) for mine in claimed) >= 2  # the threads did race


def test_bad_storage_study_or_results_are_one_line_errors(tmp_path, database, capsys):
    spec = write_spec(tmp_path, "errors", REPLICATES)
    refused = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    assert main(["run", str(spec), "--storage", refused, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnlab: error: --storage postgresql+psycopg://postgres@127.0.0.1:")
    assert "cannot" in err and err.count("\n") == 1

    assert main(["worker", "--storage", database, "--study", "errors",
                 "--results", str(tmp_path)]) == 2
    assert "--study 'errors': no such study in" in capsys.readouterr().err
    assert main(["run", str(spec), "--storage", database, "--results", str(tmp_path / "a"),
                 "--plan-only"]) == 0
    assert main(["worker", "--storage", database, "--study", "errors",
                 "--results", str(tmp_path / "b")]) == 2
    assert "--results: " in capsys.readouterr().err  # not the folder the study was made in
    assert main(["worker", "--storage", database, "--study", "errors", "--results",
                 str(tmp_path / "a"), "--heartbeat", "5", "--grace", "5"]) == 2
    assert "--grace: expected more seconds than heartbeat.interval (5), got 5" in (
        capsys.readouterr().err)

    # a worker whose nnlab resolves the stored spec to other TrainConfigs runs nothing
    stored = Study.load(tmp_path / "a" / "errors", storage=database).optuna_study()
    stored.set_user_attr("base_config", {**stored.user_attrs["base_config"], "batch_size": 64})
    stored.set_user_attr("spec_digest", "digest-of-another-nnlab")
    assert main(["worker", "--storage", database, "--study", "errors", "--results",
                 str(tmp_path / "a")]) == 2
    assert ("this nnlab resolves its base config differently from the nnlab that created it "
            "(base config batch_size: 64 != 100)") in capsys.readouterr().err
    assert len(stored.get_trials(states=(TrialState.WAITING,))) == 8


def test_a_server_that_never_answers_is_an_error_after_the_connect_timeout(
        tmp_path, capsys, monkeypatch):
    # a port that accepts connections and never speaks: without a connect timeout, libpq
    # waits for the server's reply for minutes (run) or for ever (worker)
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT", 1)
    spec = write_spec(tmp_path, "silent", REPLICATES)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/nowhere"
        for command in (["run", str(spec)], ["worker", "--study", "silent"]):
            assert main([*command, "--storage", url, "--results", str(tmp_path)]) == 2
            err = capsys.readouterr().err
            assert "connection timeout expired" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_run_and_a_worker_share_a_study_and_the_run_waits_for_the_worker(
        tmp_path, database):
    spec = write_spec(tmp_path, "run-and-worker", REPLICATES)
    results = tmp_path / "results"
    run = nnlab("run", str(spec), "--storage", database, "--results", str(results),
                "--jobs", "1", *HEARTBEAT)
    manifest = results / "run-and-worker" / "manifest.json"
    deadline = time.monotonic() + 120
    while not manifest.is_file():
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    worker = nnlab("worker", "--storage", database, "--study", "run-and-worker",
                   "--results", str(results), "--jobs", "1", *HEARTBEAT)
    outputs = [process.communicate(timeout=300) for process in (run, worker)]
    assert (run.returncode, worker.returncode) == (0, 0), outputs
    trials = assert_complete_exactly_once(Study.load(results / "run-and-worker",
                                                          storage=database))
    assert (trials["state"] == "COMPLETE").all()
    assert trials["owner"].nunique() == 2  # both ran trials
    assert "planned 8  complete 8" in outputs[0][0]  # the run waited for the worker's trials


@pytest.mark.slow
def test_a_worker_paused_past_the_grace_period_loses_its_trial_to_a_retry(tmp_path, database):
    _, study = plan(tmp_path, database, "paused")
    paused, other = start_worker(database, study), start_worker(database, study)
    number = running_trial_of(paused, study, study.optuna_study())
    os.killpg(paused.pid, signal.SIGSTOP)  # as a frozen host or a long network partition
    optuna_study = study.optuna_study()
    key = optuna_study.trials[number].user_attrs["key"]
    deadline = time.monotonic() + 180
    while not any(t.state.name == "COMPLETE" and t.user_attrs["key"] == key
                  for t in optuna_study.get_trials(deepcopy=False)):
        assert other.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(paused.pid, signal.SIGCONT)  # it ends its run and finds the trial failed
    (paused_out, paused_err), _ = paused.communicate(timeout=300), other.communicate(
        timeout=300)
    assert (paused.returncode, other.returncode) == (0, 0), paused_err
    # its trial, or its lockstep group of a seed's two learning rates, was retried elsewhere
    assert re.search(r"this worker: \d+ trials completed \(0 diverged, \d+ in lockstep "
                     r"groups\), [12] failed", paused_out)
    trials = assert_complete_exactly_once(study)  # its curve file was removed again
    assert trials.set_index("trial").loc[number, "error"].startswith(
        f"abandoned: process {paused.pid} ")


@pytest.mark.slow
def test_workers_sample_the_configurations_of_a_random_study_under_the_lock(
        tmp_path, database):
    spec = {"study": {"name": "random", "sampler": "random", "n_trials": 3, "replicates": 2},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 2},
            "space": {"eta": {"log_uniform": [0.1, 3.0]}},
            "data": {"train_size": 500, "val_size": 200, "test_size": 100}}
    study = Study(spec, results=tmp_path, storage=database)
    assert study.plan()["waiting"] == 0  # a sampler's configurations come one at a time
    workers = [start_worker(database, study) for _ in range(2)]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    trials = study.trials()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["key"].is_unique and len(complete) == 6
    assert complete.groupby("config_id")["seed"].apply(sorted).tolist() == [[0, 1]] * 3
    assert study.store.trial_numbers("curves") == set(complete["trial"])


@pytest.mark.slow
def test_an_interrupted_worker_hands_its_trial_back(tmp_path, database):
    _, study = plan(tmp_path, database, "interrupted")
    worker = start_worker(database, study)
    number = running_trial_of(worker, study, study.optuna_study())
    os.kill(worker.pid, signal.SIGINT)  # Ctrl-C
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 130 and err.endswith("nnlab: interrupted\n")
    trials = study.trials().set_index("trial")
    assert trials.loc[number, "state"] == "FAIL"
    assert trials.loc[number, "error"].startswith(f"interrupted: process {worker.pid} ")
    again = trials[(trials["key"] == trials.loc[number, "key"]) & (trials.index != number)]
    assert again["state"].tolist() == ["WAITING"]  # its configuration waits for a worker
    assert start_worker(database, study).wait(timeout=300) == 0
    assert_complete_exactly_once(study)
