"""`nnlab dashboard` as a person runs it: a real server on 127.0.0.1 that optuna-dashboard's
HTTP API answers with the study's trials and its companion study of configurations, for
every storage; a browser draws the learning curves of a study in progress; Ctrl-C stops it
cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nnlab.cli import main
from nnlab.report.dashboard import free_port
from nnlab.study import Study, StudySpec
from tests.browser import chromium, dom_showing, inked_screenshot

ROOT = Path(__file__).resolve().parents[1]


def tiny(name: str) -> dict:
    """Six runs of a 784-8-10 net, 20 steps each, on an MNIST subset."""
    return {"study": {"name": name, "replicates": 2},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 2},
            "grid": {"eta": [0.1, 0.5, 2.0]},
            "data": {"train_size": 500, "val_size": 200, "test_size": 100}}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:  # a guard against a hang
        return json.loads(response.read())


def port_is_free(port: int) -> bool:
    """Nobody listens on the port, and a new server can listen there (servers set
    SO_REUSEADDR, so the closed connections' TIME_WAIT does not count)."""
    with socket.socket() as client:
        if client.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
            server.listen()
        except OSError:
            return False
    return True


class Dashboard:
    """`nnlab dashboard <folder> --port <port> [--storage <storage>]` in a subprocess, ready
    when its API answers."""

    def __init__(self, folder: Path, port: int, storage: str | None = None) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nnlab.cli", "dashboard", str(folder), "--port", str(port),
             *(["--storage", storage] if storage else [])],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"dashboard exited: {self.process.communicate()}")
            try:
                get_json(f"{self.base}/api/meta")
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.process.kill()
                    raise AssertionError("the dashboard did not answer within 120 s") from None
                time.sleep(0.2)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def interrupt(self) -> tuple[int, str, str]:
        """Ctrl-C (SIGINT): (exit code, stdout, stderr)."""
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture(params=["journal", "sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def study(request, tmp_path) -> Study:
    storage = {"journal": None, "sqlite": f"sqlite:///{tmp_path}/optuna.db"}.get(request.param)
    if request.param == "postgresql":
        storage = request.getfixturevalue("postgres_url")
    study = Study(tiny(f"dash-{request.param}"), results=tmp_path / "results", storage=storage)
    study.run(n_jobs=2, progress=False)
    return study


@pytest.mark.integration
def test_the_dashboard_serves_the_study_and_stops_on_ctrl_c(study):
    port = free_port()
    dashboard = Dashboard(study.folder, port, study.storage)
    try:
        listed = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
        (summary,) = [s for s in listed if s["study_name"] == study.spec.name]
        detail = get_json(f"{dashboard.base}/api/studies/{summary['study_id']}")
        assert detail["name"] == study.spec.name
        assert len(detail["trials"]) == len(study.trials()) == 6
        assert {t["state"] for t in detail["trials"]} == {"Complete"}
        values = sorted(t["values"][0] for t in detail["trials"])
        assert values == pytest.approx(sorted(study.trials()["val_acc"]))
        assert all(len(t["intermediate_values"]) == 3 for t in detail["trials"])  # 0, 1, 20

        (configs,) = [s for s in listed if s["study_name"] == f"{study.spec.name}:configs"]
        detail = get_json(f"{dashboard.base}/api/studies/{configs['study_id']}")
        means = study.trials().groupby("eta")["value"].mean()
        assert sorted(t["values"][0] for t in detail["trials"]) == pytest.approx(sorted(means))
    finally:
        code, out, err = dashboard.interrupt()
    assert code in (0, 130)
    assert f"http://127.0.0.1:{port}/dashboard/studies/{summary['study_id']}" in out
    assert (f"its configurations, each the mean over its seeds ('{study.spec.name}:configs'): "
            f"http://127.0.0.1:{port}/dashboard/studies/{configs['study_id']}") in out
    assert "Traceback" not in err
    assert port_is_free(port)


@pytest.mark.integration
def test_a_study_without_its_storage_is_served_from_its_trials_and_archive(tmp_path):
    """A committed study in a fresh clone: its trials.parquet and archive, no journal and
    no per-trial files. Before, the dashboard failed ("not in its storage") and left an
    empty journal behind."""
    study = Study(tiny("dash-archived"), results=tmp_path / "results")
    study.run(n_jobs=2, progress=False)
    trials, curves = study.trials(), study.curves()
    for local in ("optuna.journal", "optuna.journal.flock", "study.lock"):
        (study.folder / local).unlink(missing_ok=True)
    for kind in ("curves", "predictions"):
        shutil.rmtree(study.folder / kind)
    before = {p: p.read_bytes() for p in study.folder.rglob("*") if p.is_file()}
    dashboard = Dashboard(study.folder, free_port(), study.storage)
    try:
        (summary,) = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
        detail = get_json(f"{dashboard.base}/api/studies/{summary['study_id']}")
    finally:
        code, _, err = dashboard.interrupt()
    assert code in (0, 130) and "Traceback" not in err
    assert f"{study.folder} has no Optuna storage (optuna.journal): serving" in err
    assert {p: p.read_bytes() for p in study.folder.rglob("*") if p.is_file()} == before
    assert summary["study_name"] == "dash-archived"
    served = sorted(detail["trials"], key=lambda t: t["number"])
    assert [t["number"] for t in served] == trials["trial"].tolist()
    assert [t["values"][0] for t in served] == trials["value"].tolist()
    assert {t["state"] for t in served} == {"Complete"}
    (param,) = served[0]["params"]
    assert param["distribution"] == {"type": "FloatDistribution", "low": 0.1, "high": 2.0,
                                     "step": None, "log": True}  # 0.1, 0.5, 2.0
    first = curves[curves["trial"] == served[0]["number"]]
    assert served[0]["intermediate_values"] == [
        {"step": step, "value": value} for step, value in zip(first["step"], first["val_acc"],
                                                              strict=True)]
    attrs = {a["key"]: a["value"] for a in served[0]["user_attrs"]}
    assert attrs["seed"] == str(trials["seed"].iloc[0]) and attrs["key"] == trials["key"].iloc[0]


@pytest.mark.integration
@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian package "
                    "`chromium`; CI installs it)")
def test_a_browser_shows_the_study_page_of_the_dashboard(tmp_path):
    study = Study(tiny("dash-browser"), results=tmp_path / "results")
    study.run(n_jobs=2, progress=False)
    dashboard = Dashboard(study.folder, free_port(), study.storage)
    try:
        listed = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
        (summary,) = [s for s in listed if s["study_name"] == "dash-browser"]
        ink = inked_screenshot(f"{dashboard.base}/dashboard/studies/{summary['study_id']}",
                               tmp_path / "dashboard.png", 0.02, height=1000, wait_ms=8000)
    finally:
        code, _, err = dashboard.interrupt()
    assert ink > 0.02
    assert code in (0, 130) and "Traceback" not in err


@pytest.mark.integration
@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian package "
                    "`chromium`; CI installs it)")
def test_a_browser_draws_the_learning_curve_of_a_trial_while_it_trains(tmp_path):
    spec = tiny("dash-live")  # runs long enough to be drawn while they train
    spec["base"].update(batch_size=20, n_steps=500_000, n_evals=40)
    path = tmp_path / "dash-live.toml"
    path.write_text(StudySpec.from_dict(spec).to_toml())
    run = subprocess.Popen([sys.executable, "-m", "nnlab.cli", "run", str(path), "--results",
                            str(tmp_path), "--jobs", "2", "--quiet"], cwd=ROOT,
                           start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        folder = tmp_path / "dash-live"
        deadline = time.monotonic() + 180
        while not (folder / "manifest.json").is_file() or not any(
                t.state.name == "RUNNING" and len(t.intermediate_values) >= 3
                for t in Study.load(folder).optuna_study().get_trials()):
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        dashboard = Dashboard(folder, free_port())
        try:
            listed = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
            (summary,) = [s for s in listed if s["study_name"] == "dash-live"]
            url = f"{dashboard.base}/dashboard/studies/{summary['study_id']}"
            page = dom_showing(url, ("Intermediate values", "(running)"), height=2600,
                               wait_ms=8000)
            ink = inked_screenshot(url, tmp_path / "live.png", 0.02, height=2600,
                                   wait_ms=8000)
            trials = Study.load(folder).optuna_study().get_trials()
        finally:
            code, _, err = dashboard.interrupt()
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    running = [t.number for t in trials if t.state.name == "RUNNING"]
    assert running, "the runs ended before the pictures were taken"
    assert "Intermediate values" in page
    # the plot's legend names each drawn curve; a running trial's as "(running)"
    assert any(f"trial #{number} (running)" in page for number in running)
    assert ink > 0.02
    assert code in (0, 130) and "Traceback" not in err


def test_a_port_in_use_is_one_clear_error(tmp_path, capsys):
    study = Study(tiny("dash-busy"), results=tmp_path / "results")
    study.run(n_jobs=2, progress=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", str(study.folder), "--port", str(port)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"nnlab: error: --port {port}: cannot listen on 127.0.0.1")
