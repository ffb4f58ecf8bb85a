"""A study run's progress on stderr: a tqdm bar on a terminal; elsewhere (CI logs,
notebooks, a file), where a bar redrawn in place shows nothing until the end, a line every
EVERY seconds and one at the end: runs done of planned, pruned and failed, the best
configuration so far, and an ETA from this run's pace."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

from nnlab.study.status import format_duration

EVERY = 30.0  # seconds between progress lines where stderr is no terminal


class Progress:
    """Runs done of `total` (`done` of them before this run) for the study `name`; `best()`
    describes the best configuration so far (asked only when a line is printed)."""

    def __init__(self, name: str, total: int, done: int, best: Callable[[], str],
                 enabled: bool = True, stream: TextIO | None = None) -> None:
        self.name, self.total, self.done, self.best = name, total, done, best
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar = None
        if enabled and self.stream.isatty():
            self.bar = tqdm(total=total, initial=done, unit="trial", desc=name,
                            file=self.stream, dynamic_ncols=True)
        self._first = done
        self._started = self._printed = time.monotonic()
        self._counts: dict[str, int] = {}

    def update(self, done: int, **counts: int) -> None:
        """`done` more runs ended; `counts` this run's tallies (failed, diverged, pruned)."""
        self.done += done
        self._counts = counts
        if self.bar is not None:
            self.bar.update(done)
            self.bar.set_postfix(**counts, refresh=False)
        self.tick()

    def tick(self) -> None:
        """Print a line if EVERY seconds have passed since the last one."""
        if self.enabled and self.bar is None and time.monotonic() - self._printed >= EVERY:
            self._line()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self._line()

    def _line(self) -> None:
        self._printed = now = time.monotonic()
        tallies = ", ".join(f"{k} {v}" for k, v in self._counts.items() if v)
        ran = self.done - self._first
        remaining = max(self.total - self.done, 0)
        eta = (format_duration((now - self._started) / ran * remaining) if ran and remaining
               else "-" if remaining else "done")
        print(f"{self.name}: {self.done}/{self.total} runs done"
              + (f" ({tallies})" if tallies else "")
              + f"; {self.best()}; ETA {eta}", file=self.stream, flush=True)
