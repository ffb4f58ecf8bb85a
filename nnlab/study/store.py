"""The results folder of one study: one parquet file per trial, written atomically.

```
<folder>/spec.toml  manifest.json  trials.parquet
<folder>/curves/trial=<n>.parquet        one row per evaluation point
<folder>/predictions/trial=<n>.parquet   one row per test example: true class, top-3
<folder>/probabilities/trial=<n>.parquet one row per test example: all class probabilities
                                         (only with save_probs = true)
```

Every file is written under a temporary name starting with "." and renamed into place
(`os.replace`), so a reader sees a whole file or none; readers skip names starting with "."
or "_" (pyarrow's default), so a half-written file is never read as data. Each trial file
also holds a `trial` column (hive partitioning reads folder names, not file names), so
the files read as one table with pyarrow.dataset.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

KINDS = ("curves", "predictions", "probabilities")


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` via a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_beside(path)
    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_beside(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ResultsStore:
    """Reads and writes the files of the study folder `folder`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def spec_path(self) -> Path:
        return self.folder / "spec.toml"

    @property
    def manifest_path(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def trials_path(self) -> Path:
        return self.folder / "trials.parquet"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the study's lock (an fcntl.flock on `study.lock`, released by the kernel if
        the process dies): one process at a time plans the study."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "study.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def trial_path(self, kind: str, number: int) -> Path:
        return self.folder / kind / f"trial={number}.parquet"

    def write_trial(self, kind: str, number: int, frame: pd.DataFrame) -> None:
        """Write one trial's curve or predictions, with a leading int64 `trial` column."""
        write_parquet_atomic(frame.assign(trial=number)[["trial", *frame.columns]],
                             self.trial_path(kind, number))

    def trial_numbers(self, kind: str) -> set[int]:
        """Trials that have a (complete) file of `kind`."""
        folder = self.folder / kind
        if not folder.is_dir():
            return set()
        return {int(p.name[len("trial="):-len(".parquet")])
                for p in folder.glob("trial=*.parquet")}

    def discard_trial(self, number: int) -> None:
        """Remove the files of a trial that did not complete, temporary ones included."""
        for kind in KINDS:
            folder = self.folder / kind
            for path in [self.trial_path(kind, number),
                         *folder.glob(f".trial={number}.parquet.*.tmp")]:
                path.unlink(missing_ok=True)

    def read(self, kind: str, trials: Iterable[int],
             columns: list[str] | None = None) -> pd.DataFrame:
        """The `kind` files of `trials` as one DataFrame with a `trial` column, ordered by
        trial; read as one pyarrow dataset. Files of other trials are never opened."""
        wanted = sorted(set(trials) & self.trial_numbers(kind))
        if columns is not None:
            columns = ["trial", *[c for c in columns if c != "trial"]]
        if not wanted:
            return pd.DataFrame(columns=columns or ["trial"])
        dataset = ds.dataset([str(self.trial_path(kind, n)) for n in wanted], format="parquet")
        frame = dataset.to_table(columns=columns).to_pandas()
        return frame.sort_values("trial", kind="stable", ignore_index=True)

    def write_trials(self, frame: pd.DataFrame) -> None:
        write_parquet_atomic(frame, self.trials_path)

    def read_manifest(self) -> dict:
        return json.loads(self.manifest_path.read_text())

    def write_manifest(self, manifest: dict) -> None:
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=False) + "\n",
                          self.manifest_path)
