"""Files written whole or not at all: each goes to a temporary name beside it and is renamed
into place (`os.replace`), so a reader sees the old file or the new one, never half of one.

A write that fails (a full disk, a read-only folder) removes its temporary file and raises
StorageError naming the file, which is left as it was. The temporary name holds the
writer's process id and host (`.<name>.<pid>@<host>.<hex>.tmp`), so the temporary files of
writers that were killed mid-write can be told from those of writers still at work and
removed (`remove_dead_temporaries`, when a study is opened to run).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nnlab.errors import StorageError

_TEMPORARY = re.compile(r"\.(?P<target>.+)\.(?P<pid>\d{1,10})@(?P<host>[^@/]+)\.[0-9a-f]{12}\.tmp")


def temporary_beside(path: Path) -> Path:
    """A temporary name beside `path` that names its writer: .<name>.<pid>@<host>.<hex>.tmp"""
    return path.with_name(f".{path.name}.{os.getpid()}@{socket.gethostname()}."
                          f"{uuid.uuid4().hex[:12]}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write (its folder made); renamed to `path` when the
    block ends, and removed if anything fails. OSError (a full disk, a read-only folder)
    as StorageError naming `path`."""
    tmp = temporary_beside(path)
    try:
        if path.exists() and not path.is_file():
            raise not_a_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:  # pyarrow's I/O errors are OSErrors too
        raise StorageError(f"{path}: cannot write it ({err.strerror or err}); the file "
                           "is as it was") from err
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)


def write_text_atomic(text: str, path: Path) -> None:
    """Write `text` to `path` via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def not_a_file(path: Path) -> StorageError:
    """The error for a folder (or other non-file) where nnlab writes a file."""
    return StorageError(f"{path}: is a folder or other non-file, expected a file that nnlab "
                        "writes; move it away")


def remove_dead_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files in `folder` and its subfolders whose writer, a process on
    this host, is gone (killed mid-write); returns them. Those of live processes, and of
    other hosts (whose processes cannot be seen from here), are left alone."""
    host = socket.gethostname()
    removed = []
    for path in sorted([*folder.glob(".*.tmp"), *folder.glob("*/.*.tmp")]):
        found = _TEMPORARY.fullmatch(path.name)
        if found and found["host"] == host and not _alive(int(found["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only whether the process exists
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True
