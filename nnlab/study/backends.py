"""Where trials run: loky's processes on this machine, or an existing Dask cluster.

The engine hands each trial to a `concurrent.futures.Executor` when a worker slot is free
and records each outcome as it arrives. On a Dask cluster that executor is the client's own
(`Client.get_executor()`): one Dask future per trial, so a trial is claimed only when it can
start, a trial that raises fails alone, and Dask runs the trial of a lost worker again
elsewhere. (joblib's dask backend drives `joblib.Parallel`, which batches tasks and
dispatches them ahead from an iterator; the engine has no Parallel call to give it.)

Dask workers need nnlab and the data (`nnlab data fetch mnist`), and the results root
at the same path; run them with one thread each (`dask worker ... --nthreads 1`):
parallelism comes from worker processes, as with loky.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor

from nnlab.errors import ConfigError, StorageError

BACKENDS = ("loky", "dask")


@contextlib.contextmanager
def trial_executor(backend: str, scheduler: str | None) -> Iterator[tuple[Executor | None, int]]:
    """(executor, trials it runs at once by default) for `backend`: (None, 1) for loky (the
    engine's own pool of --jobs processes); for dask, the executor of a client of the
    scheduler at `scheduler` (e.g. tcp://10.0.0.1:8786) and the cluster's worker threads
    (at least 1).
    The client is closed on exit."""
    if backend not in BACKENDS:
        raise ConfigError("backend", f"one of {', '.join(BACKENDS)}", backend)
    if backend == "loky":
        if scheduler is not None:
            raise ConfigError("scheduler", "", problem="only with backend 'dask'")
        yield None, 1
        return
    if scheduler is None:
        raise ConfigError("scheduler", "the address of a Dask scheduler (e.g. "
                          "tcp://10.0.0.1:8786) with backend 'dask'")
    try:
        from distributed import Client
    except ImportError as err:
        raise ConfigError("backend", "", problem="'dask' needs Dask's distributed scheduler "
                          "(pip install 'nnlab[dask]')") from err
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except (OSError, ValueError, TypeError) as err:
        raise StorageError(f"cannot connect to a Dask scheduler "
                           f"({' '.join(str(err).split())})", field="scheduler",
                           value=scheduler) from err
    with client:  # a cluster without workers yet (adaptive): trials wait for one
        yield client.get_executor(pure=False), max(sum(client.nthreads().values()), 1)
