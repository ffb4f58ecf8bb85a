"""Who runs a trial, and whether that process is gone (so its trial can be retried).

The process that claims a trial records itself as the trial's `owner`: host, boot id, pid
and the pid's start time (pids are reused; a pid with another start time is another
process). A trial whose owner is gone was left RUNNING by a killed run. Owners on another
host cannot be checked from here and count as alive.

Past one machine, a database storage keeps Optuna's heartbeat of each trial instead: the
owner records it every few seconds (`HeartbeatRecorder`), and a trial without one for a
grace period is taken as abandoned, wherever its owner ran.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from optuna.storages import BaseStorage

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
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(),
            "started": _start_time(os.getpid())}


def owner_is_gone(owner: dict[str, Any] | None, claimed_at: dt.datetime | None) -> bool:
    """True if the process that claimed a trial no longer runs (on this host)."""
    if owner is None:
        if claimed_at is None:
            return True
        return (dt.datetime.now() - claimed_at).total_seconds() > CLAIM_GRACE_SECONDS
    if owner.get("host") != socket.gethostname():
        return False
    if owner.get("boot") != _boot_id():
        return True
    started = _start_time(int(owner["pid"]))
    return started is None or started not in (owner.get("started"), "unknown")


class HeartbeatRecorder:
    """Records the heartbeat of this process's running trials in `storage` every `interval`
    seconds, from a thread of its own; `interval` None records nothing (a storage without
    heartbeats). A write that fails (the server restarting) is tried again at the next beat;
    the grace period outlasts a few."""

    def __init__(self, storage: BaseStorage, interval: int | None) -> None:
        self._storage = storage
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
                except Exception as err:  # any storage error: beat again next time
                    _log.warning("heartbeat of trial id %s not recorded: %s", trial_id, err)
