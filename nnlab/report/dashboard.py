"""`nnlab dashboard results/<study>`: the study's Optuna storage in optuna-dashboard.

The storage is the one the study's manifest names (its journal file, SQLite or PostgreSQL),
opened the way the engine opens it, and served on 127.0.0.1 only. Two studies are named:
the study's runs (one trial per configuration and seed, with live learning curves) and its
companion `<name>:configs` (one trial per configuration, its value the seed mean: see
`nnlab.study.configs`). docs/dashboard.md says how to read them.
"""

from __future__ import annotations

import socket
from pathlib import Path

import optuna
import optuna_dashboard

from nnlab.errors import NNLabError
from nnlab.study import Study
from nnlab.study.configs import companion_name
from nnlab.study.storage import open_storage

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on HOST nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def study_url(study: Study, port: int, name: str | None = None) -> str:
    """The dashboard's page of the study (or of the study `name` in its storage)."""
    name = name or study.spec.name
    storage = open_storage(study.storage, study.folder)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError as err:
        raise NNLabError(f"study {name!r}: not in its storage; has it been run?") from err
    return f"http://{HOST}:{port}/dashboard/studies/{study_id}"


def companion_line(study: Study, port: int) -> str:
    """Where the companion study of configurations is, or how to make it."""
    name = companion_name(study.spec.name)
    try:
        url = study_url(study, port, name)
    except NNLabError:
        return (f"its configurations ({name!r}): not made yet; `nnlab run` of the study "
                "makes them")
    return f"its configurations, each the mean over its seeds ({name!r}): {url}"


def serve(folder: str | Path, port: int = 8080, storage: str | None = None) -> None:
    """Serve the study in `folder` until interrupted (Ctrl-C returns normally).

    port 0 picks a free port. The URL of the study's page is printed first."""
    if not 0 <= port <= 65535:
        raise NNLabError(f"--port: expected 0..65535, got {port}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.load(folder, storage=storage)
    port = port or free_port()
    print(f"optuna-dashboard for study {study.spec.name!r}: {study_url(study, port)}",
          flush=True)
    print(companion_line(study, port), flush=True)
    print("press Ctrl-C to stop", flush=True)
    try:
        optuna_dashboard.run_server(open_storage(study.storage, study.folder), host=HOST,
                                    port=port)
    except OSError as err:
        raise NNLabError(f"--port {port}: cannot listen on {HOST} ({err.strerror})") from err
