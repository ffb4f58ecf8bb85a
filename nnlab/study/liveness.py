"""Who runs a trial, and whether that process is gone (so its trial can be retried).

Every storage keeps a heartbeat of each running trial: its owner records one every
`interval` seconds (`HeartbeatRecorder`), and a RUNNING trial without one for the grace
period is taken as abandoned, whoever and wherever its owner was (another host, another
container, a host that is down). A live owner is never taken for gone: its heartbeats keep
its trials.

The process that claims a trial also records itself as the trial's `owner`: host, boot id,
pid namespace, pid and the pid's start time (pids are reused; a pid with another start time
is another process). Where the owner ran on this kernel and in this pid namespace, its pid
says at once whether it still runs (`owner_is_gone`), and its trials are retried without
waiting out the grace period. Anywhere else (another boot id or pid namespace, whatever the
host names say) only the heartbeat decides.

`StudyHold`: the processes that work on a study hold it together; `run --new` and `nnlab
repair` need it alone.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import logging
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

from nnlab.errors import StorageError

_log = logging.getLogger(__name__)

# A RUNNING trial with no owner yet is being claimed; after this long its claimer is gone.
CLAIM_GRACE_SECONDS = 60.0


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@functools.cache
def _boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id") or ""


def _pid_namespace() -> str:
    """This process's pid namespace ("pid:[4026531836]"), or "" where there is none to read."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot, or None if there is no
    such process (or no /proc, where os.kill tells only whether the pid exists)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is not None:
        return stat.rsplit(")", 1)[1].split()[19]
    if Path("/proc/self/stat").exists():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return "unknown"


def this_process() -> dict[str, Any]:
    """This process as a trial owner."""
    return {"host": socket.gethostname(), "boot": _boot_id(), "pidns": _pid_namespace(),
            "pid": os.getpid(), "started": _start_time(os.getpid())}


def owner_is_gone(owner: dict[str, Any] | None, claimed_at: dt.datetime | None = None) -> bool:
    """True if the process that claimed a trial certainly no longer runs: it ran on this
    kernel (boot id) in this pid namespace, and its pid is no longer that process. An owner
    recorded before pid namespaces were (no "pidns") is checked where its host name is this
    host's. Anywhere else False: the heartbeat decides. No owner: a claim cut short, gone
    once `claimed_at` is CLAIM_GRACE_SECONDS old (or unknown)."""
    if owner is None:
        if claimed_at is None:
            return True
        return (dt.datetime.now() - claimed_at).total_seconds() > CLAIM_GRACE_SECONDS
    if owner.get("boot") != _boot_id() or not _boot_id():
        return False
    here = owner["pidns"] == _pid_namespace() if "pidns" in owner else (
        owner.get("host") == socket.gethostname())
    if not here:
        return False
    started = _start_time(int(owner["pid"]))
    return started is None or started not in (owner.get("started"), "unknown")


class HeartbeatRecorder:
    """Records the heartbeat of this process's running trials in `storage` every `interval`
    seconds, from a thread of its own; `interval` None records nothing. A write that fails
    (the server restarting) is tried again at the next beat; the grace period outlasts a
    few."""

    def __init__(self, storage: BaseStorage, interval: int | None) -> None:
        self._storage: Any = storage  # with a heartbeat (Optuna's BaseHeartbeat is private)
        self._interval = interval
        self._trial_ids: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="nnlab-heartbeat", daemon=True)

    def __enter__(self) -> HeartbeatRecorder:
        if self._interval is not None:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def add(self, trial_id: int) -> None:
        """Beat for trial `trial_id` now and from now on."""
        if self._interval is not None:
            self._storage.record_heartbeat(trial_id)
            with self._guard:
                self._trial_ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._guard:
            self._trial_ids.discard(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._guard:
                trial_ids = sorted(self._trial_ids)
            for trial_id in trial_ids:
                try:
                    self._storage.record_heartbeat(trial_id)
                except UpdateFinishedTrialError:  # recorded meanwhile: no more beats
                    self.discard(trial_id)
                except Exception as err:  # any storage error: beat again next time
                    _log.warning("heartbeat of trial id %s not recorded: %s", trial_id, err)


class StudyHold:
    """The hold of the processes that work on the study in `folder`: each `share`s it (an
    fcntl.flock LOCK_SH on `<folder>/run.lock`, dropped by the kernel when the process
    dies); `alone` takes it exclusively or refuses at once, naming `what` could not be done.
    Past one machine the storage's running trials say the rest (see `Study`)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "run.lock"
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:  # a read-only or unreachable folder
                raise StorageError(f"{self.path.parent}: cannot write the study's results "
                                   f"there ({err.strerror or err})") from err
        return self._fd

    def share(self) -> None:
        """Hold the study with the other processes that work on it (waits while a `--new`
        or `repair` holds it alone)."""
        fcntl.flock(self._open(), fcntl.LOCK_SH)

    def alone(self, what: str) -> None:
        """Hold the study alone, else NNLabError: another process works on it."""
        try:
            fcntl.flock(self._open(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise StorageError(f"{self.path.parent}: another nnlab process works on this study "
                               f"(it holds {self.path.name}); {what} once it has stopped") from err

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # drops the lock
