"""Optuna storage chosen by a URL: the engine never special-cases a backend.

- no URL: an Optuna journal file, `optuna.journal`, in the study's results folder;
- a plain path (`runs/x.journal`): a journal file there;
- `sqlite:///path.db`, `postgresql://user@host/db`, any SQLAlchemy URL: Optuna's RDBStorage,
  with Optuna's heartbeat on (see `Heartbeat`). A plain `postgresql://` (or `postgres://`)
  URL is driven by psycopg 3 (`postgresql+psycopg://`).

Past one machine the storage also holds the study's lock (`study_lock`): a PostgreSQL
advisory lock, so processes on any host take turns planning.

A study folder committed without its storage (a fresh clone) has none: `storage_exists`
says so without creating anything, and readers then use trials.parquet and the archive.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy.pool import NullPool

from nnlab.errors import NNLabError, file_in_the_way

DEFAULT_JOURNAL = "optuna.journal"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?P<slashes>//)?")  # a URL has both
_PLAIN_POSTGRES = re.compile(r"^postgres(ql)?://")
PSYCOPG_SCHEME = "postgresql+psycopg://"
CONNECT_TIMEOUT = 10  # seconds to reach a database server before giving up
_EXPECTED = ("expected a journal file path or a database URL (sqlite:///study.db, "
             "postgresql://user@host/db)")


@dataclass(frozen=True)
class Heartbeat:
    """Optuna's RDB heartbeat: a process records the heartbeat of each trial it runs every
    `interval` seconds (in the database's clock); a RUNNING trial without one for more than
    `grace` seconds belongs to a process that is gone (killed, its host down), and is failed
    and its configuration run again."""

    interval: int = 10
    grace: int = 60

    def __post_init__(self) -> None:
        for name, value in (("heartbeat", self.interval), ("grace", self.grace)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise NNLabError(f"--{name}: expected a whole number of seconds >= 1, "
                                 f"got {value!r}")
        if self.grace <= self.interval:
            raise NNLabError(f"--grace: expected more seconds than --heartbeat "
                             f"({self.interval}), got {self.grace}")


DEFAULT_HEARTBEAT = Heartbeat()


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
    scheme = _SCHEME.match(storage)
    return scheme is not None and scheme["slashes"] is not None


def resolve_storage(storage: str | None, folder: Path) -> str:
    """The storage as it is recorded in manifest.json: the default journal as its name
    relative to the study folder, other journal paths absolute, URLs as given."""
    if storage is None or storage == DEFAULT_JOURNAL:
        return DEFAULT_JOURNAL
    if not isinstance(storage, str) or not storage.strip():
        raise NNLabError(f"--storage: {_EXPECTED}, got {storage!r}")
    if (scheme := _SCHEME.match(storage)) and scheme["slashes"] is None:
        raise NNLabError(f"--storage {redact(storage)}: a URL needs '//' after its scheme; "
                         f"{_EXPECTED}")
    if scheme:  # a URL (with '//', as checked above)
        if _PLAIN_POSTGRES.match(storage):
            return _PLAIN_POSTGRES.sub(PSYCOPG_SCHEME, storage)
        if storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
            return "sqlite:///" + str(Path(storage.removeprefix("sqlite:///")).resolve())
        return storage
    return str(Path(storage).resolve())


def redact(storage: str) -> str:
    """The storage with any password in a URL replaced by ***, for printing and manifests."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]+):[^@]*@", r"\1:***@", storage)


def storage_exists(storage: str | None, folder: Path) -> bool:
    """Whether `storage` holds anything to read, checked without creating it: a journal
    file (relative names inside `folder`) or SQLite file that exists and is not empty; any
    other database URL is taken to exist."""
    resolved = resolve_storage(storage, folder)
    if resolved.startswith("sqlite:///"):
        path = Path(resolved.removeprefix("sqlite:///"))
    elif is_url(resolved):
        return True
    else:
        path = _journal_path(resolved, folder)
    return path.is_file() and path.stat().st_size > 0


def _journal_path(resolved: str, folder: Path) -> Path:
    return Path(resolved) if Path(resolved).is_absolute() else folder / resolved


def open_storage(storage: str | None, folder: Path,
                 heartbeat: Heartbeat = DEFAULT_HEARTBEAT, read_only: bool = False
                 ) -> BaseStorage:
    """An Optuna storage for `storage` (see the module docstring); relative journal names
    are taken inside the study folder `folder`; `heartbeat` for database storages.
    `read_only`: for readers of a storage that exists (`storage_exists`): its folder is not
    made and a journal's torn last record is left to Optuna, which skips it."""
    resolved = resolve_storage(storage, folder)
    if is_url(resolved):
        try:
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since 2.9
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RDBStorage(resolved, engine_kwargs=_engine_options(resolved),
                                  heartbeat_interval=heartbeat.interval,
                                  grace_period=heartbeat.grace)
        except ImportError as err:
            raise NNLabError(f"--storage {redact(resolved)}: its database driver is not "
                             f"installed ({err.__cause__ or err}; for PostgreSQL: "
                             "pip install 'nnlab[postgres]')") from err
        except Exception as err:  # a bad URL, a refused connection, a wrong password
            message = " ".join(str(err).split())[:400]
            raise NNLabError(f"--storage {redact(resolved)}: cannot open it ({message})") from err
    path = _journal_path(resolved, folder)
    if path.is_dir():
        raise NNLabError(f"--storage {path}: is a folder; {_EXPECTED}")
    if (blocker := file_in_the_way(path.parent)) is not None:
        raise NNLabError(f"--storage {path}: {blocker} is a file, not a folder; {_EXPECTED}")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    lock = FlockJournalLock(str(path))
    _check_journal(path, lock, repair=not read_only)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


def _check_journal(path: Path, lock: FlockJournalLock, repair: bool) -> None:
    """Refuse a file that is not an Optuna journal, and (`repair`) drop a torn last record.

    A writer killed inside a write leaves a last line without its newline. Optuna skips it
    when reading, but the next append would glue a record onto it and make the journal
    unreadable; under the writer lock no write is in progress, so the torn tail is cut.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as journal:
        if journal.read(1) != b"{":
            raise NNLabError(f"--storage {path}: not an Optuna journal (its lines are JSON "
                             f"records); {_EXPECTED}")
    if not repair:
        return
    lock.acquire()
    try:
        with path.open("rb+") as journal:
            journal.seek(-1, os.SEEK_END)
            if journal.read(1) == b"\n":
                return
            journal.seek(0)
            keep = journal.read().rfind(b"\n") + 1
            journal.truncate(keep)
        print(f"nnlab: {path}: dropped a torn last record (a writer stopped mid-write)",
              file=sys.stderr)
    finally:
        lock.release()


def _engine_options(url: str) -> dict:
    """SQLAlchemy engine options: a server's connections are checked before use, so a
    long-lived worker survives a restarted server or a dropped idle connection; a server
    that does not answer fails the connection after CONNECT_TIMEOUT seconds (unless the URL
    sets its own connect_timeout)."""
    if url.startswith("sqlite"):
        return {}
    options: dict = {"pool_pre_ping": True}
    if url.startswith("postgresql") and "connect_timeout=" not in url:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return options


def study_lock(storage: str | None, folder: Path,
               name: str) -> Callable[[], contextlib.AbstractContextManager] | None:
    """The lock that serialises planning of study `name` on every host, where the storage
    has one: a PostgreSQL advisory lock. None for other storages (the results folder's
    file lock serves them, on one machine)."""
    resolved = resolve_storage(storage, folder)
    if not resolved.startswith("postgresql"):
        return None
    key = int.from_bytes(hashlib.sha256(f"nnlab.study:{name}".encode()).digest()[:8], "big",
                         signed=True)

    @contextlib.contextmanager
    def advisory_lock() -> Iterator[None]:
        """Hold the lock on a connection of its own; the server drops it if the process
        (or its connection) dies."""
        try:
            engine = sqlalchemy.create_engine(
                resolved, poolclass=NullPool,
                connect_args=_engine_options(resolved).get("connect_args", {}))
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except (ImportError, sqlalchemy.exc.SQLAlchemyError) as err:
            message = " ".join(str(err).split())[:400]
            raise NNLabError(f"--storage {redact(resolved)}: cannot lock study {name!r} "
                             f"({message})") from err
        with connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": key})

    return advisory_lock
