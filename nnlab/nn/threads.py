"""BLAS threads: how many BLAS may use now, and one BLAS thread for small steps (for one
example, or a few, handing a gemv or ger to a second thread costs more than the work
itself, and far more on a loaded machine)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _blas_libraries() -> list:
    return ThreadpoolController().select(user_api="blas").lib_controllers


def blas_threads() -> int:
    """The number of threads BLAS may use now (as limited by threadpoolctl or --threads)."""
    return max((lib.get_num_threads() for lib in _blas_libraries()), default=1)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Limit every loaded BLAS library to one thread inside the block, then restore.
    Costs ~1 us per library when already single-threaded."""
    changed = []
    for lib in _blas_libraries():
        n_threads = lib.get_num_threads()
        if n_threads != 1:
            lib.set_num_threads(1)
            changed.append((lib, n_threads))
    try:
        yield
    finally:
        for lib, n_threads in changed:
            lib.set_num_threads(n_threads)
