"""`nnlab dashboard results/<study>`: the study's Optuna storage in optuna-dashboard.

The storage is the one the study's manifest names (its journal file, SQLite or PostgreSQL),
opened for reading the way the engine opens it, and served on 127.0.0.1 only. A study
folder without its storage (a committed study in a fresh clone) is served from an Optuna
storage in memory built from its trials.parquet and archive (`nnlab.study.replay`), thrown
away when the dashboard stops; nothing is written to the folder.
Two studies are named: the study's runs (one trial per configuration and seed, with live
learning curves) and its companion `<name>:configs` (one trial per configuration, its value
the seed mean: see `nnlab.study.configs`). docs/dashboard.md says how to read them.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import optuna
import optuna_dashboard
from optuna.storages import BaseStorage

from nnlab.errors import ConfigError, NNLabError, StorageError
from nnlab.study import Study
from nnlab.study.configs import companion_name
from nnlab.study.replay import replay
from nnlab.study.storage import open_storage, redact, resolve_storage

_log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on HOST nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def study_url(study: Study, storage: BaseStorage, port: int, name: str | None = None) -> str:
    """The dashboard's page of the study (or of the study `name`) in `storage`."""
    name = name or study.spec.name
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError as err:
        raise StorageError(f"study {name!r}: not in its storage; has it been run?") from err
    return f"http://{HOST}:{port}/dashboard/studies/{study_id}"


def dashboard_storage(study: Study) -> BaseStorage:
    """The study's storage, opened for reading; where it has none, one built in memory
    from its trials.parquet and archive (said on stderr)."""
    if study.has_storage():
        return open_storage(study.storage, study.folder, read_only=True)
    storage = replay(study)
    _log.info("%s has no Optuna storage (%s): serving its trials.parquet and archive from a "
              "temporary storage in memory, discarded on exit", study.folder,
              redact(resolve_storage(study.storage, study.folder)))
    return storage


def companion_line(study: Study, storage: BaseStorage, port: int) -> str:
    """Where the companion study of configurations is, or how to make it."""
    name = companion_name(study.spec.name)
    try:
        url = study_url(study, storage, port, name)
    except NNLabError:
        return (f"its configurations ({name!r}): not made yet; `nnlab run` of the study "
                "makes them")
    return f"its configurations, each the mean over its seeds ({name!r}): {url}"


def serve(folder: str | Path, port: int = 8080, storage: str | None = None) -> None:
    """Serve the study in `folder` until interrupted (Ctrl-C returns normally).

    port 0 picks a free port. The URL of the study's page is printed first."""
    if not 0 <= port <= 65535:
        raise ConfigError("port", "0..65535", port)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.load(folder, storage=storage)
    served = dashboard_storage(study)
    port = port or free_port()
    print(f"optuna-dashboard for study {study.spec.name!r}: {study_url(study, served, port)}",
          flush=True)
    print(companion_line(study, served, port), flush=True)
    print("press Ctrl-C to stop", flush=True)
    _run_server(served, port)


def _run_server(storage: BaseStorage, port: int) -> None:
    """optuna-dashboard's server on HOST:port, in a daemon thread, until Ctrl-C.

    The main thread only waits, so Ctrl-C (a KeyboardInterrupt, raised in the main thread)
    always ends the wait: raised inside a request, wsgiref's handler would take it for an
    application error, answer it and serve on."""
    failure: list[BaseException] = []
    stopped = threading.Event()

    def target() -> None:
        try:
            optuna_dashboard.run_server(storage, host=HOST, port=port)
        except BaseException as err:  # handed to the main thread below
            failure.append(err)
        finally:
            stopped.set()

    threading.Thread(target=target, name="optuna-dashboard", daemon=True).start()
    stopped.wait()
    if failure and isinstance(failure[0], OSError):
        raise NNLabError(f"cannot listen on {HOST} ({failure[0].strerror})", field="port",
                         value=str(port)) from failure[0]
    if failure:
        raise failure[0]
