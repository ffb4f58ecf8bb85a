"""Optuna storage chosen by a URL: the engine never special-cases a backend.

- no URL: an Optuna journal file, `optuna.journal`, in the study's results folder;
- a plain path (`runs/x.journal`): a journal file there;
- `sqlite:///path.db`, `postgresql://user@host/db`, any SQLAlchemy URL: Optuna's RDBStorage.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage

from nnlab.errors import NNLabError

DEFAULT_JOURNAL = "optuna.journal"
_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://")


class FlockJournalLock:
    """The journal file's writer lock as an fcntl.flock on `<journal>.flock`.

    The kernel drops the lock when its process dies, so a writer killed with SIGKILL never
    leaves a stale lock behind (Optuna's default lock file waits out a 30 s grace period).
    Local file systems only; past one machine use PostgreSQL.
    """

    def __init__(self, journal_path: str) -> None:
        self._path = journal_path + ".flock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def is_url(storage: str) -> bool:
    return _URL.match(storage) is not None


def resolve_storage(storage: str | None, folder: Path) -> str:
    """The storage as it is recorded in manifest.json: the default journal as its name
    relative to the study folder, other journal paths absolute, URLs as given."""
    if storage is None or storage == DEFAULT_JOURNAL:
        return DEFAULT_JOURNAL
    if is_url(storage):
        if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
            return "sqlite:///" + str(Path(storage.removeprefix("sqlite:///")).resolve())
        return storage
    return str(Path(storage).resolve())


def redact(storage: str) -> str:
    """The storage with any password in a URL replaced by ***, for printing and manifests."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]+):[^@]*@", r"\1:***@", storage)


def open_storage(storage: str | None, folder: Path) -> BaseStorage:
    """An Optuna storage for `storage` (see the module docstring); relative journal names
    are taken inside the study folder `folder`."""
    resolved = resolve_storage(storage, folder)
    if is_url(resolved):
        try:
            return RDBStorage(resolved)
        except Exception as err:  # a missing driver, a bad URL, a refused connection
            raise NNLabError(f"--storage {redact(resolved)}: cannot open it ({err})") from err
    path = Path(resolved) if Path(resolved).is_absolute() else folder / resolved
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=FlockJournalLock(str(path))))
