"""A real, throw-away PostgreSQL server for tests: initdb into a temp dir, listen on
127.0.0.1 at a free port, stop and remove it afterwards."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_bin_dir() -> Path | None:
    """Folder of initdb/pg_ctl (Debian keeps them out of PATH), or None if not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as `postgres` when we are root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(database: str = "nnlab") -> Iterator[str]:
    """Start a server in a fresh temp dir; yield its URL
    `postgresql://postgres@127.0.0.1:PORT/DB`; stop it and remove the dir afterwards."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    # a dir of its own under the system temp dir, which the server user can reach
    root = Path(tempfile.mkdtemp(prefix="nnlab-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, log, port = root / "data", root / "server.log", free_port()
    run = lambda *cmd: subprocess.run(  # noqa: E731
        _as_server_user([str(bin_dir / cmd[0]), *cmd[1:]]), check=True,
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=100"
    run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
    try:
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
