"""`nnlab run` under SIGKILL and side by side: every planned (configuration, seed) ends up
complete exactly once, with exactly one curve file, and nothing complete is redone."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from optuna.trial import TrialState

from nnlab.cli import main
from nnlab.study import Study
from nnlab.study.runner import OWNER
from tests.small_study import planned, write_spec

REPLICATES = 3
PLANNED = planned(REPLICATES)


def nnlab_run(spec: Path, results: Path, jobs: int = 2, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "nnlab.cli", "run", str(spec), "--results", str(results),
               "--jobs", str(jobs), "--quiet"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)




def assert_complete_exactly_once(study: Study) -> pd.DataFrame:
    trials = study.trials()
    assert not trials["state"].isin(["RUNNING", "WAITING"]).any()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["key"].is_unique and len(complete) == len(PLANNED)
    assert set(zip(complete["eta"], complete["n_steps"], complete["seed"], strict=True)) == PLANNED
    assert study.store.trial_numbers("curves") == set(complete["trial"])
    assert study.store.trial_numbers("predictions") == set(complete["trial"])
    return trials


@pytest.mark.integration
def test_a_run_killed_with_sigkill_resumes_without_losing_or_redoing_a_trial(tmp_path):
    spec = write_spec(tmp_path, "killed", REPLICATES)
    folder = tmp_path / "killed"
    first = nnlab_run(spec, tmp_path, start_new_session=True)  # its own process group
    deadline = time.monotonic() + 120
    # past the first two lockstep groups (a seed's two learning rates each), whose four
    # trials end at once: some trials are recorded, some still run
    while len(list((folder / "curves").glob("trial=*"))) < 5:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the parent and its loky workers, mid-study
    first.wait()

    study = Study.load(folder)
    before = study.trials()
    complete_before = before[before["state"] == "COMPLETE"].set_index("trial")["completed"]
    abandoned = before[before["state"] == "RUNNING"]
    # curve files are written before the parent records the trial: some may be orphans
    assert 1 <= len(complete_before) < len(PLANNED) and len(abandoned) >= 1
    assert abandoned["abandoned"].all()
    assert study.status()["abandoned"] == len(abandoned)

    second = nnlab_run(spec, tmp_path)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    trials = assert_complete_exactly_once(study)
    after = trials.set_index("trial")
    pd.testing.assert_series_equal(after.loc[complete_before.index, "completed"],
                                   complete_before)  # nothing complete was redone
    retried = after.loc[abandoned["trial"]]
    assert (retried["state"] == "FAIL").all()
    assert retried["error"].str.startswith(f"abandoned: process {first.pid} ").all()
    done_now = int(re.search(r"this run: (\d+) trials completed", out).group(1))
    assert done_now == len(PLANNED) - len(complete_before)
    assert len(study.store.read_manifest()["invocations"]) == 2


@pytest.mark.integration
def test_two_runs_of_one_study_at_once_share_the_work_exactly_once(tmp_path):
    spec = write_spec(tmp_path, "shared", REPLICATES)
    runs = [nnlab_run(spec, tmp_path) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    trials = assert_complete_exactly_once(Study.load(tmp_path / "shared"))
    assert (trials["state"] == "COMPLETE").all()  # no trial was claimed twice or abandoned
    done = [int(re.search(r"this run: (\d+) trials completed", out).group(1))
            for out, _ in outputs]
    assert sum(done) == len(PLANNED)
    assert len(set(trials["owner"])) == 2  # both processes ran trials


def loky_workers(pid: int) -> list[int]:
    """The loky worker processes among the children of process `pid`."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children
            if b"LokyProcess" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_killed_mid_trial_fails_its_trials_and_the_study_goes_on(tmp_path):
    spec = write_spec(tmp_path, "worker-killed", REPLICATES)
    folder = tmp_path / "worker-killed"
    run = nnlab_run(spec, tmp_path)
    deadline = time.monotonic() + 120
    while not (folder / "curves").is_dir() or len(loky_workers(run.pid)) < 2:
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(loky_workers(run.pid)[0], signal.SIGKILL)  # as the out-of-memory killer would
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1, (out, err)  # the run went on to the end, then said so
    study = Study.load(folder)
    trials = study.trials()
    failed = trials[trials["state"] == "FAIL"]
    # the killed worker's trials (a lockstep group of two), maybe its pool neighbour's
    assert 1 <= len(failed) <= 4
    assert failed["error"].str.startswith("worker process failed: TerminatedWorkerError").all()
    assert (trials["state"] == "COMPLETE").sum() == len(PLANNED) - len(failed)
    again = nnlab_run(spec, tmp_path)
    assert again.wait(timeout=300) == 0
    assert_complete_exactly_once(study)


def test_a_torn_last_journal_record_is_dropped_and_the_study_completes(tmp_path, capsys):
    # a writer killed inside a write leaves a last line without its newline; the next append
    # must not glue its record onto it (Optuna could no longer read the journal)
    spec = write_spec(tmp_path, "torn", 1)
    assert main(["run", str(spec), "--results", str(tmp_path), "--plan-only"]) == 0
    journal = tmp_path / "torn" / "optuna.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 4, "worker_id": "gone", "trial_id": 0, "sta')
    assert main(["run", str(spec), "--results", str(tmp_path), "--jobs", "1", "--quiet"]) == 0
    assert "dropped a torn last record" in capsys.readouterr().err
    assert journal.read_bytes().startswith(whole)
    trials = Study.load(tmp_path / "torn").trials()
    assert (trials["state"] == "COMPLETE").sum() == len(planned(1)) == len(trials)


def test_a_storage_that_is_no_journal_or_a_malformed_url_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, "refused", 1)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal\n")
    needs_slashes = ("a URL needs '//' after its scheme; expected a journal file path or a "
                     "database URL (sqlite:///study.db, postgresql://user@host/db)")
    for storage, expected in [
        ("postgresql:/db", f"--storage: {needs_slashes}, got 'postgresql:/db'\n"),
        ("sqlite:x.db", f"--storage: {needs_slashes}, got 'sqlite:x.db'\n"),
        ("", "--storage: expected a journal file path or a database URL"),
        (str(tmp_path), f"--storage {tmp_path}: is a folder"),
        (str(notes), f"--storage {notes}: not an Optuna journal"),
        (str(notes / "x.journal"), f"--storage {notes / 'x.journal'}: {notes} is a file, "
                                   "not a folder"),
    ]:
        assert main(["run", str(spec), "--results", str(tmp_path), "--storage", storage]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nnlab: error: {expected}") and err.count("\n") == 1
    assert notes.read_text() == "not a journal\n"
    assert not (tmp_path / "db").exists() and not (tmp_path / "sqlite:x.db").exists()


def test_a_claim_cut_short_at_any_point_is_run_again_by_the_next_run(tmp_path):
    # a run killed inside a claim, before or after the WAITING -> RUNNING transition: the
    # next run completes the study at once, without waiting out a grace period
    spec = write_spec(tmp_path, "cut", 1)
    assert main(["run", str(spec), "--results", str(tmp_path), "--plan-only"]) == 0
    study = Study.load(tmp_path / "cut")
    storage, study_id = study.optuna_study()._storage, study.optuna_study()._study_id
    waiting = storage.get_all_trials(study_id)
    dead = {"host": socket.gethostname(), "boot": "another boot", "pid": 1, "started": "0"}
    storage.set_trial_user_attr(waiting[0]._trial_id, OWNER, dead)  # owner, not yet RUNNING
    storage.set_trial_state_values(waiting[1]._trial_id, TrialState.RUNNING)  # RUNNING, no owner
    trials = study.trials().set_index("trial")
    assert trials.loc[waiting[0].number, "state"] == "WAITING"
    assert pd.isna(trials.loc[waiting[0].number, "owner"])

    assert main(["run", str(spec), "--results", str(tmp_path), "--jobs", "1", "--quiet"]) == 0
    trials = study.trials().set_index("trial")
    assert trials.loc[waiting[1].number, "state"] == "FAIL"
    complete = trials[trials["state"] == "COMPLETE"]
    assert set(zip(complete["eta"], complete["n_steps"], complete["seed"], strict=True)) == (
        planned(1))
    assert complete["key"].is_unique and (trials["state"] != "RUNNING").all()
