"""Split a batch across Python threads, each with one BLAS thread.

numpy releases the GIL in array copies, ufuncs and matmul, so per-image work (im2col, the
conv GEMMs, col2im, pooling) runs in parallel when the batch is cut into contiguous parts.
With as many parts as BLAS threads were allowed, this uses the same cores as multithreaded
BLAS but also parallelises the elementwise work, and it degrades gracefully on a busy
machine: threads that wait for each other block instead of spinning as OpenBLAS threads
do (measured at load 7: a (8192 x 64) @ (64 x 160) GEMM took 1.4 ms on one BLAS thread
and 8-24 ms on two).

A model runs its passes inside `batch_parallel()`: BLAS stays on one thread for the whole
pass (OpenBLAS workers woken by one multithreaded GEMM keep a core busy for a while and
would slow the batch threads down: a CNN step measured 56 ms with 2 BLAS threads around
2 batch threads, 35 ms with BLAS on one thread throughout).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from nnlab.nn.threads import blas_threads, one_blas_thread

_executor: ThreadPoolExecutor | None = None
_n_parts: int | None = None  # set inside batch_parallel() (one model pass at a time)


def _forget_executor() -> None:
    global _executor
    _executor = None


os.register_at_fork(after_in_child=_forget_executor)  # a forked child has no pool threads


@contextmanager
def batch_parallel() -> Iterator[None]:
    """Inside: BLAS on one thread, and batch_parts() cuts batches into as many parts as
    BLAS threads were allowed when the (outermost) block was entered."""
    global _n_parts
    if _n_parts is not None:
        yield
        return
    _n_parts = blas_threads()
    try:
        with one_blas_thread():
            yield
    finally:
        _n_parts = None


def batch_parts(n: int) -> list[slice]:
    """[0, n) cut into min(threads, n) contiguous, near-equal parts; threads: as set by
    batch_parallel(), else the BLAS thread count."""
    n_parts = max(1, min(blas_threads() if _n_parts is None else _n_parts, n))
    bounds = [n * i // n_parts for i in range(n_parts + 1)]
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def run_parallel(tasks: Sequence[Callable[[], None]]) -> None:
    """Run the tasks (one per batch part) in parallel threads, each with one BLAS thread;
    the calling thread runs the first. Exceptions are re-raised."""
    global _executor
    if len(tasks) == 1:
        tasks[0]()
        return
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                       thread_name_prefix="nnlab-batch")
    with one_blas_thread():
        futures = [_executor.submit(task) for task in tasks[1:]]
        try:
            tasks[0]()
        finally:
            for future in futures:
                future.result()
