"""Who runs a trial, and whether that process is gone (so its trial can be retried).

The process that claims a trial records itself as the trial's `owner`: host, boot id, pid
and the pid's start time (pids are reused; a pid with another start time is another
process). A trial whose owner is gone was left RUNNING by a killed run. Owners on another
host cannot be checked from here and count as alive.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import socket
from pathlib import Path
from typing import Any

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
