"""Provenance: what ran a study, where and when (results/<study>/manifest.json).

The manifest names the study and its storage, records the data it trains on ("data": name,
source, content digest, n_classes, image_shape, n_features, split sizes; see
`nnlab.datasets.Dataset.identity`), and lists every invocation that worked on it (resumed
and concurrent runs and workers on other hosts each add one): command, host, pid, workers,
where they run and their BLAS threads, whether they train runs that share a data order in
lockstep groups and how many trials they trained so, the digest of the data it checked,
start and end times, package versions, git commit, Python, BLAS and CPU.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_info

PACKAGES = ("nnlab", "numpy", "scipy", "pandas", "pyarrow", "optuna", "loky",
            "threadpoolctl", "tqdm")


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    """The commit of the nnlab source tree, with "+dirty" if it has uncommitted changes."""
    source = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """Package versions, git commit, Python, OS, CPU and the BLAS libraries numpy loaded."""
    import numpy  # noqa: F401  (loads the BLAS that threadpool_info reports)

    return {
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "blas": [{key: pool.get(key) for key in ("internal_api", "version", "num_threads",
                                                    "threading_layer", "architecture")}
                 for pool in threadpool_info()],
    }


def invocation(n_jobs: int, blas_threads: int, executor: Executor | None = None,
               lockstep: bool = False) -> dict[str, Any]:
    """One run of the study by this process, its end still open. n_jobs 0: it planned
    the study and ran nothing; `executor`: where trials ran (None: loky's processes);
    `lockstep`: whether it trains runs that share a data order in lockstep groups."""
    where = (None if n_jobs == 0 else "loky" if executor is None
             else f"{type(executor).__module__}.{type(executor).__name__}")
    return {"command": sys.argv, "host": socket.gethostname(), "pid": os.getpid(),
            "n_jobs": n_jobs, "executor": where, "blas_threads_per_worker": blas_threads,
            "lockstep": lockstep, "start": now(), "end": None, **environment()}
