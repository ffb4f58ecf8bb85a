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

from nnlab.errors import NNLabError, as_path, file_in_the_way

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
        self.folder = as_path(folder, "results folder")
        blocker = file_in_the_way(self.folder)
        if blocker is not None:
            raise NNLabError(f"{blocker}: expected a folder for study results, found a file")

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

    def missing(self, kind: str, trials: Iterable[int]) -> list[int]:
        """Those of `trials` that have no `kind` file."""
        return sorted(set(trials) - self.trial_numbers(kind))

    def read(self, kind: str, trials: Iterable[int],
             columns: list[str] | None = None) -> pd.DataFrame:
        """The `kind` files of `trials` as one DataFrame with a `trial` column, ordered by
        trial; read as one pyarrow dataset. Files of other trials are never opened.
        NNLabError if a trial's file is missing or unreadable, or a column unknown."""
        if columns is not None:
            columns = _column_names(columns)
        wanted = sorted(set(trials))
        lost = self.missing(kind, wanted)
        if lost:
            raise NNLabError(f"{self.folder / kind}: no file for complete trial(s) "
                             f"{_numbers(lost)} (deleted or moved?); restore them, or rerun "
                             "the study with --new")
        if not wanted:
            return pd.DataFrame(columns=columns or ["trial"])
        try:
            dataset = ds.dataset([str(self.trial_path(kind, n)) for n in wanted],
                                 format="parquet")
            unknown = [c for c in columns or [] if c not in dataset.schema.names]
            if unknown:
                raise NNLabError(f"columns: unknown {kind} column(s) {unknown}; expected "
                                 f"some of {dataset.schema.names}")
            frame = dataset.to_table(columns=columns).to_pandas()
        except (pa.ArrowException, OSError) as err:
            raise NNLabError(f"{self.folder / kind}: a trial's file cannot be read: {err}"
                             ) from err
        return frame.sort_values("trial", kind="stable", ignore_index=True)

    def write_trials(self, frame: pd.DataFrame) -> None:
        write_parquet_atomic(frame, self.trials_path)

    def read_manifest(self) -> dict:
        """manifest.json: an object naming the study's storage, its "invocations" a list
        of objects (an empty one if it has none); else NNLabError naming the file."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise NNLabError(f"{self.manifest_path}: expected the study's JSON manifest, "
                             f"cannot parse it ({err})") from err
        if not isinstance(manifest, dict) or not isinstance(manifest.get("storage"), str):
            raise NNLabError(f"{self.manifest_path}: expected a JSON object naming the "
                             "study's storage, got something else")
        invocations = manifest.setdefault("invocations", [])
        if not isinstance(invocations, list) or not all(isinstance(run, dict)
                                                        for run in invocations):
            raise NNLabError(f"{self.manifest_path}: expected \"invocations\" to be a list of "
                             "JSON objects (one per run of the study), got something else")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=False) + "\n",
                          self.manifest_path)


def _column_names(columns: object) -> list[str]:
    """"trial" and `columns` (a list of names), each once, else NNLabError."""
    if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
        raise NNLabError(f"columns: expected a list of column names, got {columns!r}")
    return list(dict.fromkeys(["trial", *columns]))


def _numbers(trials: list[int], shown: int = 10) -> str:
    return ", ".join(map(str, trials[:shown])) + (", ..." if len(trials) > shown else "")
