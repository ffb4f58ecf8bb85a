"""Processes that die on other hosts, SQLite shared by two runs, `run --new` beside a run:
every planned (configuration, seed) is trained once and recorded once, and a refusal is one
line on stderr.

Another host is another UTS and pid namespace (`unshare`, as root): its host name differs
and its pids cannot be checked from here, as in a container."""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from nnlab.cli import build_parser
from nnlab.study import Study
from nnlab.study.storage import (
    DEFAULT_HEARTBEAT,
    JOURNAL_HEARTBEAT_ATTR,
    Heartbeat,
    open_storage,
)
from tests.small_study import planned, write_spec

REPLICATES = 2
PLANNED = planned(REPLICATES)
SHORT = ["--heartbeat", "1", "--grace", "3"]
NAMESPACES = shutil.which("unshare") is not None and os.geteuid() == 0
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="needs unshare, as root")


def nnlab(spec: Path, results: Path, *extra: str, host: str | None = None,
          own_pids: bool = False) -> subprocess.Popen:
    """`nnlab -v run SPEC` as a process; on host `host` (a UTS namespace of its own) and,
    `own_pids`, in a pid namespace of its own (the process is that namespace's init)."""
    command = [sys.executable, "-m", "nnlab.cli", "-v", "run", str(spec), "--results",
               str(results), "--jobs", "2", *extra]
    if host is not None:
        namespaces = ["--uts", *(["--pid", "--fork", "--mount", "--mount-proc"]
                                 if own_pids else [])]
        inner = " ".join(f"'{part}'" for part in command)
        command = ["unshare", *namespaces, "sh", "-c", f"hostname {host} && exec {inner}"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_curves(folder: Path, n: int, run: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while len(list((folder / "curves").glob("trial=*"))) < n:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def namespace_init(run: subprocess.Popen) -> int:
    """The pid (here) of the first process in the pid namespace `run` (unshare) made."""
    deadline = time.monotonic() + 10
    while not (children := Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return int(children.split()[0])


def trained_keys(stderr: str) -> list[str]:
    """The keys of the runs a process trained (its `-v` lines "trial N claimed: key K")."""
    return re.findall(r"^nnlab: trial \d+ claimed: key (\w+)$", stderr, re.MULTILINE)


def assert_each_key_complete_once(study: Study) -> pd.DataFrame:
    trials = study.trials()
    assert not trials["state"].isin(["RUNNING", "WAITING"]).any()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["key"].is_unique and len(complete) == len(PLANNED)
    assert set(zip(complete["eta"], complete["n_steps"], complete["seed"], strict=True)) == PLANNED
    return trials


@needs_namespaces
@pytest.mark.integration
@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_run_killed_on_another_host_is_run_again_once_after_the_grace_period(
        tmp_path, storage):
    spec = write_spec(tmp_path, "lost-host", REPLICATES)
    folder = tmp_path / "lost-host"
    url = [] if storage == "journal" else ["--storage", f"sqlite:///{tmp_path}/optuna.db"]
    first = nnlab(spec, tmp_path, *url, *SHORT, host="host-a", own_pids=True)
    wait_for_curves(folder, 1, first)
    os.kill(namespace_init(first), 9)  # the run and its workers: the namespace ends with it
    first.communicate()
    killed_at = time.monotonic()

    study = Study.load(folder, url[1] if url else None)  # a database is named, never read
    running = study.trials().query("state == 'RUNNING'")
    # the kill can land inside a claim: in a database a trial is RUNNING before it names
    # its owner (a journal claim names it first), and such a trial names no process
    named = running["owner"].notna()
    assert len(running) >= 1 and running.loc[named, "owner"].str.endswith("@host-a").all()
    assert named.all() or storage == "sqlite"

    second = nnlab(spec, tmp_path, *url, *SHORT, host="host-b")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert time.monotonic() - killed_at > 3  # it waited out the grace period
    trials = assert_each_key_complete_once(study).set_index("trial")
    lost = trials.loc[running["trial"]]
    assert (lost["state"] == "FAIL").all()
    for owner, error in zip(lost["owner"], lost["error"], strict=True):
        who = r"process \d+ on host-a" if pd.notna(owner) else r"process \? on \?"
        assert re.fullmatch(rf"abandoned: {who} sent no heartbeat for over 3 s; its "
                            r"configuration is run again", error), error
    # each lost run was trained once more, by the second run, and recorded once
    retrained = collections.Counter(trained_keys(err))
    assert all(retrained[key] == 1 for key in lost["key"])
    complete = trials[trials["state"] == "COMPLETE"]
    by_second = complete[complete["owner"].str.endswith("@host-b")]
    assert sorted(retrained.elements()) == sorted(by_second["key"])


@needs_namespaces
@pytest.mark.integration
def test_a_live_run_on_another_host_is_never_stolen_from(tmp_path):
    spec = write_spec(tmp_path, "two-hosts", REPLICATES)
    runs = [nnlab(spec, tmp_path, *SHORT, host="host-a", own_pids=True),
            nnlab(spec, tmp_path, *SHORT, host="host-b", own_pids=True)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    trials = assert_each_key_complete_once(Study.load(tmp_path / "two-hosts"))
    assert (trials["state"] == "COMPLETE").all()  # no trial taken for gone
    keys = trained_keys(outputs[0][1]) + trained_keys(outputs[1][1])
    assert sorted(keys) == sorted(trials["key"])  # each trained once, by one of them


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_a_process_never_takes_its_own_trials_for_gone_however_late_its_heartbeats(
        tmp_path, storage):
    # a busy machine can delay a process's heartbeats past a short grace period: another
    # process then takes its trials for gone (the heartbeat decides), the process itself never
    url = None if storage == "journal" else f"sqlite:///{tmp_path}/optuna.db"
    spec = write_spec(tmp_path, "late-beats", 1)
    mine, theirs = (Study.from_toml(spec, tmp_path, url, Heartbeat(1, 2)) for _ in range(2))
    mine.plan()
    runner = mine._runner(mine.optuna_study())
    claimed = runner.claim_next()  # beats once; no more beats outside Runner.execute
    assert claimed is not None
    time.sleep(3.5)  # past the grace period (SQLite keeps heartbeats in whole seconds)
    assert runner.recover() == 0
    assert mine.trials().set_index("trial").loc[claimed.number, "state"] == "RUNNING"
    assert theirs._runner(theirs.optuna_study()).recover() == 1
    failed = mine.trials().set_index("trial").loc[claimed.number]
    assert failed["state"] == "FAIL" and failed["error"].startswith("abandoned: process ")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_the_default_heartbeat_is_every_10_s_with_60_s_of_grace_on_every_storage(tmp_path):
    assert (DEFAULT_HEARTBEAT.interval, DEFAULT_HEARTBEAT.grace) == (10, 60)
    run = build_parser().parse_args(["run", "x.toml"])
    worker = build_parser().parse_args(["worker", "--storage", "x", "--study", "x"])
    assert (run.heartbeat, run.grace) == (worker.heartbeat, worker.grace) == (10, 60)

    storage = open_storage(None, tmp_path)  # a journal file, the default storage
    assert storage.get_heartbeat_interval() == 10
    study = optuna.create_study(storage=storage, study_name="beats")
    trial_ids = [study.ask()._trial_id for _ in range(3)]
    now = time.time()
    for trial_id, age in zip(trial_ids, [59.0, 61.0, 0.0], strict=True):
        storage.set_trial_system_attr(trial_id, JOURNAL_HEARTBEAT_ATTR, now - age)
    assert storage._get_stale_trial_ids(study._study_id) == [trial_ids[1]]
    study.tell(trial_ids[1], state=TrialState.FAIL)
    assert storage._get_stale_trial_ids(study._study_id) == []  # only RUNNING trials

    sqlite = open_storage(f"sqlite:///{tmp_path}/optuna.db", tmp_path)
    assert (sqlite.heartbeat_interval, sqlite.grace_period) == (10, 60)
    assert Heartbeat(1, 3) != DEFAULT_HEARTBEAT


@pytest.mark.integration
def test_two_concurrent_sqlite_runs_train_each_configuration_and_seed_once(tmp_path):
    spec = write_spec(tmp_path, "sqlite-pair", REPLICATES)
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert subprocess.run([sys.executable, "-m", "nnlab.cli", "run", str(spec), "--results",
                           str(tmp_path), "--storage", url, "--plan-only"],
                          capture_output=True).returncode == 0
    runs = [nnlab(spec, tmp_path, "--storage", url) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    trained = collections.Counter(trained_keys(outputs[0][1]) + trained_keys(outputs[1][1]))
    trials = assert_each_key_complete_once(Study.load(tmp_path / "sqlite-pair", url))
    assert trained == collections.Counter(trials["key"])  # each key trained exactly once
    assert (trials["state"] == "COMPLETE").all()
    assert all(trained_keys(err) for _, err in outputs)  # both ran trials


@pytest.mark.integration
def test_run_new_is_refused_while_another_run_works_on_the_study(tmp_path):
    # 200 runs: ~10 s even where lockstep pairs train them fast, so the refused
    # `run --new` (a new interpreter, ~2 s to its check) comes while the first still works
    spec = write_spec(tmp_path, "busy", 50)
    folder = tmp_path / "busy"
    first = nnlab(spec, tmp_path)
    wait_for_curves(folder, 1, first)
    again = subprocess.run([sys.executable, "-m", "nnlab.cli", "run", str(spec), "--results",
                            str(tmp_path), "--new", "--quiet"], capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr == (f"nnlab: error: {folder}: another nnlab process works on this "
                            "study (it holds run.lock); run it with --new once it has "
                            "stopped\n")
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    study = Study.load(folder)
    trials = study.trials()
    assert (trials["state"] == "COMPLETE").all() and len(trials) == len(planned(50))
    assert trials["key"].is_unique
    assert study.store.trial_numbers("curves") == set(trials["trial"])
    assert len(study.store.read_manifest()["invocations"]) == 1  # the refusal wrote none
