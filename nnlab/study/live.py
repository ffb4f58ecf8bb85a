"""Learning curves while runs train: how an evaluation travels from the worker process that
trains to the process that claimed the trial, the study's only Optuna writer.

Each trial's task carries a `Link`: at every evaluation the worker puts (trial number, step,
objective value, waits) on the study's report queue; the claiming process drains the queue
a few times a second and stores each value as an Optuna intermediate value, with any
storage (journal, SQLite, PostgreSQL). With a pruner the worker then waits on its own
verdict queue for the claiming process's decision (`nnlab.study.pruning`): go on, or stop
there.

The queues live where the workers can reach them: a `multiprocessing` manager process
(forked from the claiming process, and gone with it) for loky's workers or any local
process pool; queues of the Dask scheduler (`distributed.Queue`) for a Dask cluster's
workers, on any host.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from multiprocessing.managers import SyncManager
from typing import Any, Protocol

# how long a Dask worker waits for a verdict before it gives up on a claiming process that
# is gone (a local worker learns it at once: the manager process ends with it)
DASK_VERDICT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Link:
    """What a worker gets with trial `number` (picklable): where its evaluations go and,
    with a pruner, where the verdicts come from (`verdicts` None: it never waits)."""

    number: int
    reports: Any
    verdicts: Any | None = None
    timeout: float | None = None

    def __call__(self, step: int, value: float, last: bool) -> bool:
        """Report `value` at `step`; whether the run goes on. Non-finite values (a diverged
        run's loss) are not reported. No verdict is asked at step 0 or at the last step."""
        if not math.isfinite(value):
            return True
        waits = self.verdicts is not None and step > 0 and not last
        self.reports.put((self.number, step, float(value), waits))
        if not waits or self.verdicts is None:
            return True
        try:
            return bool(self.verdicts.get(timeout=self.timeout))
        except (queue.Empty, TimeoutError) as err:
            raise RuntimeError(f"no pruning verdict for step {step} within {self.timeout} s; "
                               "is the process that claimed the trial gone?") from err

    def close(self) -> None:
        """Let go of the queues (in the worker, once the run is over)."""
        for end in (self.reports, self.verdicts):
            if isinstance(end, _DaskQueue):
                end.close()


class Channel(Protocol):
    """The claiming process's end of the queues."""

    def link(self, number: int, waits: bool) -> Link: ...

    def drain(self) -> list[tuple[int, int, float, bool]]: ...

    def send(self, number: int, go_on: bool) -> None: ...

    def release(self, number: int) -> None: ...


class _ManagerChannel:
    """Queues in a manager process forked from this one (loky's workers, spawned by this
    process, share its authentication key and reach the manager's socket)."""

    def __init__(self) -> None:
        self._manager = SyncManager(ctx=multiprocessing.get_context("fork"))
        self._manager.start(initializer=_exit_with_parent)
        self._reports = self._manager.Queue()
        self._verdicts: dict[int, Any] = {}

    def link(self, number: int, waits: bool) -> Link:
        if waits:
            self._verdicts[number] = self._manager.Queue()
        return Link(number, self._reports, self._verdicts.get(number))

    def drain(self) -> list[tuple[int, int, float, bool]]:
        reports = []
        while True:
            try:
                reports.append(self._reports.get_nowait())
            except queue.Empty:
                return reports

    def send(self, number: int, go_on: bool) -> None:
        self._verdicts[number].put(go_on)

    def release(self, number: int) -> None:
        self._verdicts.pop(number, None)

    def close(self) -> None:
        self._verdicts.clear()
        self._manager.shutdown()


class _DaskQueue:
    """A `distributed.Queue` by name, made where it is first used: the scheduler unpickles
    a task's arguments too, and a queue made there would wait on the scheduler itself."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name, self._client = name, client
        self._queue: Any = None

    def __getstate__(self) -> dict[str, str]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.name, self._client, self._queue = state["name"], None, None

    def made(self) -> Any:
        """The queue, made (on the scheduler) at the first call."""
        if self._queue is None:
            from distributed import Queue

            self._queue = Queue(self.name, client=self._client)
        return self._queue

    def put(self, value: Any) -> None:
        self.made().put(value)

    def get(self, timeout: float | None = None, batch: bool = False) -> Any:
        return self.made().get(timeout=timeout, batch=batch)

    def close(self) -> None:
        """Release the queue made here, once (the links of a lockstep group share theirs)."""
        if self._queue is not None:
            self._queue.close()
            self._queue = None


class _DaskChannel:
    """Queues of the Dask scheduler that `client` talks to."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._prefix = f"nnlab-{uuid.uuid4().hex}"
        self._reports = _DaskQueue(f"{self._prefix}-reports", client)
        self._reports.made()  # before any worker puts to it
        self._verdicts: dict[int, Any] = {}

    def link(self, number: int, waits: bool) -> Link:
        if waits:
            self._verdicts[number] = _DaskQueue(f"{self._prefix}-verdicts-{number}",
                                                self._client)
            self._verdicts[number].made()
        return Link(number, self._reports, self._verdicts.get(number), DASK_VERDICT_TIMEOUT)

    def drain(self) -> list[tuple[int, int, float, bool]]:
        return [tuple(report) for report in self._reports.get(batch=True)]

    def send(self, number: int, go_on: bool) -> None:
        self._verdicts[number].put(go_on)

    def release(self, number: int) -> None:
        verdicts = self._verdicts.pop(number, None)
        if verdicts is not None:
            verdicts.close()

    def close(self) -> None:
        for number in list(self._verdicts):
            self.release(number)
        self._reports.close()


@contextlib.contextmanager
def open_channel(executor: Executor | None) -> Iterator[Channel]:
    """The channel for workers of `executor` (None: loky's processes)."""
    client = getattr(executor, "_client", None)
    is_dask = client is not None and type(executor).__module__.startswith("distributed")
    channel = _DaskChannel(client) if is_dask else _ManagerChannel()
    try:
        yield channel
    finally:
        channel.close()


def _exit_with_parent() -> None:
    """In the manager process: end when the process that started it ends (even by
    SIGKILL), so that no manager outlives its study run."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a child process: nothing to outlive
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
