"""Optuna storage chosen by a URL: the engine never special-cases a backend.

- no URL: an Optuna journal file, `optuna.journal`, in the study's results folder;
- a plain path (`runs/x.journal`): a journal file there;
- `sqlite:///path.db`, `postgresql://user@host/db`, any SQLAlchemy URL: Optuna's RDBStorage.
  A plain `postgresql://` (or `postgres://`) URL is driven by psycopg 3
  (`postgresql+psycopg://`). SQLite opens every transaction with BEGIN IMMEDIATE, so that
  Optuna's claim of a waiting trial (read WAITING, write RUNNING) is one atomic step there
  too (`serialize_sqlite_transactions`).

Every storage keeps a heartbeat of each running trial (see `Heartbeat`): Optuna's own in a
database; in a journal file, a trial system attribute `JOURNAL_HEARTBEAT_ATTR` that the
trial's owner rewrites every interval (`JournalHeartbeatStorage`; Optuna's journal storage
has no heartbeat of its own).

Past one machine the storage also holds the study's lock (`study_lock`): a PostgreSQL
advisory lock, so processes on any host take turns planning.

A study folder committed without its storage (a fresh clone) has none: `storage_exists`
says so without creating anything, and readers then use trials.parquet and the archive.

Nothing is overwritten that nnlab did not make: `check_storage` refuses, before anything is
created, an existing file that is not an Optuna journal (or, for `sqlite:///`, a SQLite
database), and a URL whose database driver is not there. A results folder is not trusted to
choose a storage: `folder_storage` takes the one its manifest records only where that is
the folder's own journal or SQLite file; any other (a path outside the folder, a database
server) is used only when given explicitly, so nnlab never connects, with the user's
credentials, to a server that only a folder names.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from sqlalchemy.pool import NullPool

from nnlab.errors import ConfigError, NNLabError, StorageError, file_in_the_way, is_int

_log = logging.getLogger(__name__)

DEFAULT_JOURNAL = "optuna.journal"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?P<slashes>//)?")  # a URL has both
_PLAIN_POSTGRES = re.compile(r"^postgres(ql)?://")
PSYCOPG_SCHEME = "postgresql+psycopg://"
CONNECT_TIMEOUT = 10  # seconds to reach a database server before giving up
_SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database
_RECORD_START = re.compile(rb'^\{\s*"op_code"\s*:')  # how Optuna begins each journal record
_MAX_FIRST_RECORD = 1 << 20  # bytes read to see a journal's first record
_EXPECTED = ("a journal file path or a database URL (sqlite:///study.db, "
             "postgresql://user@host/db)")


SQLITE_BUSY_SECONDS = 60  # how long a SQLite transaction waits for another's to end
JOURNAL_HEARTBEAT_ATTR = "nnlab:heartbeat"  # a journal trial's last heartbeat (Unix time)


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat of running trials, on every storage: a process records the heartbeat
    of each trial it runs every `interval` seconds; a RUNNING trial without one for more
    than `grace` seconds belongs to a process that is gone (killed, its host down), and is
    failed and its configuration run again, once. Times are the database's clock, or this
    machine's for a journal file (which serves one machine)."""

    interval: int = 10
    grace: int = 60

    def __post_init__(self) -> None:
        for name, value in (("interval", self.interval), ("grace", self.grace)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"heartbeat.{name}", "a whole number of seconds >= 1", value)
        if self.grace <= self.interval:
            raise ConfigError("heartbeat.grace", f"more seconds than heartbeat.interval "
                              f"({self.interval})", self.grace)


DEFAULT_HEARTBEAT = Heartbeat()


class JournalHeartbeatStorage(JournalStorage, BaseHeartbeat):
    """A journal storage with a heartbeat: `record_heartbeat` writes the time as the trial
    system attribute JOURNAL_HEARTBEAT_ATTR (one journal record per running trial and
    `interval`); a RUNNING trial whose last heartbeat, or start where it has none (a claim
    by an older nnlab), is over `grace` seconds old is stale."""

    def __init__(self, backend: JournalFileBackend, heartbeat: Heartbeat) -> None:
        super().__init__(backend)
        self._heartbeat = heartbeat

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, JOURNAL_HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now, grace = time.time(), self._heartbeat.grace
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            last = trial.system_attrs.get(JOURNAL_HEARTBEAT_ATTR)
            if last is None and trial.datetime_start is not None:
                last = trial.datetime_start.timestamp()
            if last is None or now - last > grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int:
        return self._heartbeat.interval

    def get_heartbeat_stale_trial_callback(self) -> None:
        return None


def heartbeat_age(storage: BaseStorage, trial_id: int) -> float | None:
    """Seconds since the last heartbeat of a journal trial (None: none recorded, or a
    database storage, whose heartbeats Optuna keeps to itself)."""
    trial = storage.get_trial(trial_id)
    last = trial.system_attrs.get(JOURNAL_HEARTBEAT_ATTR)
    return None if last is None else max(time.time() - last, 0.0)


def stale_trial_ids(storage: BaseStorage, study_id: int) -> set[int]:
    """The ids of the study's RUNNING trials without a heartbeat for the grace period."""
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return set()
    return set(storage._get_stale_trial_ids(study_id))


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


class _JournalFile(JournalFileBackend):
    """Optuna's journal file, whose appends that fail (a full disk, a read-only folder)
    raise StorageError naming it. What part of a record reached the disk is a torn last
    record, dropped when the journal is next opened to write (`open_storage`)."""

    def append_logs(self, logs: list[dict]) -> None:
        try:
            super().append_logs(logs)
        except OSError as err:
            raise StorageError(f"{self._file_path}: cannot append to the study's journal "
                               f"({err.strerror or err})") from err


def journal_backend(path: Path) -> Any:
    """Optuna's journal file backend of `path` with its writer lock, a FlockJournalLock."""
    # FlockJournalLock has the methods of Optuna's lock base class, which is private
    return _JournalFile(str(path), lock_obj=cast(Any, FlockJournalLock(str(path))))


def is_url(storage: str) -> bool:
    scheme = _SCHEME.match(storage)
    return scheme is not None and scheme["slashes"] is not None


def resolve_storage(storage: str | None, folder: Path) -> str:
    """The storage as it is recorded in manifest.json: the default journal as its name
    relative to the study folder, other journal paths absolute, URLs as given."""
    if storage is None or storage == DEFAULT_JOURNAL:
        return DEFAULT_JOURNAL
    if not isinstance(storage, str) or not storage.strip():
        raise ConfigError("storage", _EXPECTED, storage)
    if (scheme := _SCHEME.match(storage)) and scheme["slashes"] is None:
        raise ConfigError("storage", _EXPECTED, redact(storage),
                          problem="a URL needs '//' after its scheme")
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


def check_storage(storage: str | None, folder: Path) -> str:
    """The storage resolved (`resolve_storage`), once it is seen to be usable without
    creating or changing anything; else NNLabError naming it. A journal path must not be a
    folder, a device or pipe, or lie below a file, and an existing file there must be empty
    or an Optuna journal; a `sqlite:///` file must be in a folder that exists (or the study
    folder, which nnlab makes), and be empty or a SQLite database; any other URL must name
    a database whose driver is installed (no connection is made)."""
    resolved = resolve_storage(storage, folder)
    try:
        _check_storage_file(resolved, folder)
    except OSError as err:  # a file that cannot be read
        raise StorageError(f"cannot read it ({err.strerror or err})", field="storage",
                           value=redact(resolved)) from err
    return resolved


def _check_storage_file(resolved: str, folder: Path) -> None:
    """`check_storage` of the resolved storage; OSError from reading a file."""
    if resolved.startswith("sqlite:///"):
        path = Path(resolved.removeprefix("sqlite:///"))
        if not path.parent.is_dir() and path.parent.resolve() != folder.resolve():  # made
            raise StorageError(f"{path.parent} is not a folder that exists; SQLite makes the "
                               "file, not its folder", field="storage", value=str(resolved))
        if (path.exists() and not path.is_file()) or (
                _has_content(path) and not _starts_with(path, _SQLITE_HEADER)):
            raise StorageError(f"{path} is not a SQLite database; nnlab overwrites no file it "
                               "did not make", field="storage", value=str(resolved))
    elif is_url(resolved):
        _check_driver(resolved)
    else:
        path = _journal_path(resolved, folder)
        if path.is_dir():
            raise StorageError(f"is a folder; expected {_EXPECTED}", field="storage",
                               value=str(path))
        if path.exists() and not path.is_file():
            raise StorageError(f"not a regular file (a device, pipe or "
                               f"socket); expected {_EXPECTED}", field="storage", value=str(path))
        if (blocker := file_in_the_way(path.parent)) is not None:
            raise StorageError(f"{blocker} is a file, not a folder; "
                               f"expected {_EXPECTED}", field="storage", value=str(path))
        if _has_content(path) and not _is_journal(path):
            raise StorageError(f"not an Optuna journal (its lines are JSON "
                               "records with an op_code); nnlab overwrites no file it did not "
                               f"make; expected {_EXPECTED}", field="storage", value=str(path))


def _check_driver(url: str) -> None:
    """NNLabError unless SQLAlchemy knows the URL's database and its driver is installed
    (an engine is made, no connection)."""
    try:
        sqlalchemy.create_engine(url, poolclass=NullPool).dispose()
    except ImportError as err:
        raise StorageError(f"its database driver is not installed ({err}; for PostgreSQL: pip "
                           "install 'nnlab[postgres]')", field="storage",
                           value=redact(url)) from err
    except (sqlalchemy.exc.ArgumentError, ValueError) as err:
        message = " ".join(str(err).split())[:200]
        raise StorageError(f"not a database URL nnlab can open ({message}); expected {_EXPECTED}",
                           field="storage", value=redact(url)) from err


def _has_content(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _starts_with(path: Path, prefix: bytes) -> bool:
    with path.open("rb") as file:
        return file.read(len(prefix)) == prefix


def _is_journal(path: Path) -> bool:
    """Whether the file (not empty) reads as an Optuna journal: its first line a JSON
    record with an integer op_code and a worker_id; a first line without its newline (a
    writer stopped inside its first record) must begin as Optuna writes records."""
    with path.open("rb") as journal:
        first = journal.readline(_MAX_FIRST_RECORD)
    if not first.endswith(b"\n"):
        return _RECORD_START.match(first) is not None
    try:
        record = json.loads(first)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(record, dict) and is_int(record.get("op_code"))
            and isinstance(record.get("worker_id"), str))


def folder_storage(recorded: str, folder: Path, manifest: Path) -> str:
    """The storage `recorded` in the manifest of study folder `folder`, if it is the
    folder's own file: its journal (a relative name is taken inside the folder) or a
    `sqlite:///` file, whose real path (symbolic links followed) lies inside the folder.
    Else NNLabError naming the manifest and the storage: a results folder does not choose
    what nnlab opens elsewhere or which server it connects to (give it as --storage)."""
    try:
        resolved = resolve_storage(recorded, folder)
        path = (Path(resolved.removeprefix("sqlite:///")) if resolved.startswith("sqlite:///")
                else None if is_url(resolved) else folder / recorded)
        real = None if path is None else path.resolve()
        inside = real is not None and real.is_relative_to(folder.resolve())
    except (NNLabError, ValueError) as err:  # ValueError: a NUL in the path
        raise StorageError(f"{manifest}: expected \"storage\" to be the study's journal file or "
                           f"a database URL, got {redact(recorded)!r}") from err
    if path is None:
        raise StorageError(f"{manifest}: names the database {redact(resolved)} as the study's "
                           "storage; nnlab connects to a database only when you name it: "
                           "give it as --storage URL")
    if not inside:
        where = "" if str(real) in (recorded, resolved.removeprefix("sqlite:///")) else \
            f" (that is {real})"
        raise StorageError(f"{manifest}: names {redact(recorded)}{where} as the study's storage, "
                           f"outside the study folder {folder}; nnlab opens it only when you "
                           "name it: give it as --storage")
    return recorded if recorded == DEFAULT_JOURNAL or resolved.startswith("sqlite:///") \
        else str(path)


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


def journal_path(storage: str | None, folder: Path) -> Path | None:
    """The journal file of `storage` (relative names inside `folder`); None for a URL."""
    resolved = resolve_storage(storage, folder)
    return None if is_url(resolved) else _journal_path(resolved, folder)


def _journal_path(resolved: str, folder: Path) -> Path:
    return Path(resolved) if Path(resolved).is_absolute() else folder / resolved


def open_storage(storage: str | None, folder: Path,
                 heartbeat: Heartbeat = DEFAULT_HEARTBEAT, read_only: bool = False
                 ) -> BaseStorage:
    """An Optuna storage for `storage` (see the module docstring); relative journal names
    are taken inside the study folder `folder`; `heartbeat` for database storages.
    `read_only`: for readers of a storage that exists (`storage_exists`): its folder is not
    made and a journal's torn last record is left to Optuna, which skips it. A journal with
    a damaged record is an NNLabError naming the file, the record and `nnlab repair`."""
    resolved = check_storage(storage, folder)
    if is_url(resolved):
        try:
            with warnings.catch_warnings():  # heartbeat_interval is "experimental" since 2.9
                warnings.simplefilter("ignore", ExperimentalWarning)
                opened = RDBStorage(resolved, engine_kwargs=_engine_options(resolved),
                                    heartbeat_interval=heartbeat.interval,
                                    grace_period=heartbeat.grace)
            if opened.engine.name == "sqlite":
                serialize_sqlite_transactions(opened.engine)
            return opened
        except ImportError as err:
            raise StorageError(f"its database driver is not installed ({err.__cause__ or err}; "
                               "for PostgreSQL: pip install 'nnlab[postgres]')", field="storage",
                               value=redact(resolved)) from err
        except Exception as err:  # a bad URL, a refused connection, a wrong password
            message = " ".join(str(err).split())[:400]
            raise StorageError(f"cannot open it ({message})", field="storage",
                               value=redact(resolved)) from err
    path = _journal_path(resolved, folder)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    _check_journal(path, FlockJournalLock(str(path)), repair=not read_only)
    try:
        return JournalHeartbeatStorage(journal_backend(path), heartbeat)
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        raise damaged_journal_error(path, folder) from err


def damaged_journal_error(path: Path, folder: Path) -> NNLabError:
    """The error for a journal Optuna cannot replay: the file, its first damaged record,
    and the way out."""
    from nnlab.study.repair import first_damage  # the repair reads journals line by line

    where = first_damage(path) or "a record Optuna cannot replay"
    return StorageError(f"{path}: damaged: {where}; `nnlab repair {folder}` keeps every intact "
                        "record, moves the damaged ones aside and lets `nnlab run` run the "
                        "trials they touched again")


def _check_journal(path: Path, lock: FlockJournalLock, repair: bool) -> None:
    """(`repair`) Drop a torn last record of the journal (`check_storage` saw it is one).

    A writer killed inside a write leaves a last line without its newline. Optuna skips it
    when reading, but the next append would glue a record onto it and make the journal
    unreadable; under the writer lock no write is in progress, so the torn tail is cut.
    """
    if not repair or not _has_content(path):
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
        _log.warning("%s: dropped a torn last record (a writer stopped mid-write)", path)
    finally:
        lock.release()


def _engine_options(url: str) -> dict:
    """SQLAlchemy engine options: a server's connections are checked before use, so a
    long-lived worker survives a restarted server or a dropped idle connection; a server
    that does not answer fails the connection after CONNECT_TIMEOUT seconds (unless the URL
    sets its own connect_timeout). SQLite: a transaction waits up to SQLITE_BUSY_SECONDS
    for another's to end (all of them take the write lock, see below)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    options: dict = {"pool_pre_ping": True}
    if url.startswith("postgresql") and "connect_timeout=" not in url:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    return options


def serialize_sqlite_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Open every transaction of `engine` (SQLite) with BEGIN IMMEDIATE: it takes the
    database's write lock at once, so a read and the write that depends on it are atomic.

    Python's sqlite3 begins a transaction only before the first write, and SQLite ignores
    SELECT ... FOR UPDATE: two processes could both read a trial WAITING and both set it
    RUNNING, and both train it. SQLAlchemy's documented recipe ("Serializable isolation /
    Savepoints / Transactional DDL" in its SQLite dialect): the driver's own BEGIN off, our
    own on SQLAlchemy's begin event. Connections opened before are dropped.
    """
    @sqlalchemy.event.listens_for(engine, "connect")
    def _driver_begins_nothing(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()


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
            raise StorageError(f"cannot lock study {name!r} "
                               f"({message})", field="storage", value=redact(resolved)) from err
        with connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": key})

    return advisory_lock
