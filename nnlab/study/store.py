"""The results folder of one study: one parquet file per trial, written atomically, and
the study's archive of them (`nnlab.study.archive`).

```
<folder>/spec.toml  manifest.json  trials.parquet
<folder>/curves/trial=<n>.parquet        one row per evaluation point
<folder>/predictions/trial=<n>.parquet   one row per test example: true class, top-3
<folder>/probabilities/trial=<n>.parquet one row per test example: all class probabilities
                                         (only with save_probs = true)
<folder>/archive/curves.parquet          the curves of every complete trial, one file
<folder>/archive/predictions.parquet     the test predictions that are read, compactly
```

The per-trial files are local (git-ignored); spec.toml, manifest.json, trials.parquet and
the archive are committed, so a clone reopens the study without its per-trial files or its
Optuna storage. The study writes its archive at the end of every `run` or `work` and
`nnlab archive` rebuilds it; its layout is in `nnlab.study.archive` and docs/archive.md.
Reads take each trial's per-trial file where there is one, else its rows in the archive;
a trial in neither is an error naming both.

Every file is written under a temporary name starting with "." and renamed into place
(`nnlab.study.atomic`), so a reader sees a whole file or none; readers skip names starting
with "." or "_" (pyarrow's default), so a half-written file is never read as data. Each
trial file also holds a `trial` column (hive partitioning reads folder names, not file
names), so the files read as one table with pyarrow.dataset.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from nnlab.errors import ConfigError, StorageError, as_path, file_in_the_way
from nnlab.study import archive
from nnlab.study.atomic import not_a_file, write_parquet_atomic, write_text_atomic

KINDS = ("curves", "predictions", "probabilities")
TRIAL_FILE = re.compile(r"trial=(0|[1-9][0-9]*)\.parquet")  # what a trial's file is named
MANIFEST_FIELDS = {"storage": "the study's storage (a journal file or a database URL)",
                   "spec_digest": "the digest of the study's spec (a string)"}


class ResultsStore:
    """Reads and writes the files of the study folder `folder`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = as_path(folder, "results folder")
        blocker = file_in_the_way(self.folder)
        if blocker is not None:
            raise StorageError(f"{blocker}: expected a folder for study results, found a file")

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
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / "study.lock", "a")  # noqa: SIM115 (closed below)
        except OSError as err:  # a read-only or unreachable folder
            raise StorageError(f"{self.folder}: cannot write the study's results there "
                               f"({err.strerror or err})") from err
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check_files(self) -> None:
        """StorageError naming the first of spec.toml, manifest.json and trials.parquet that
        is there but is no file (a run would train, then fail to write it)."""
        for path in (self.spec_path, self.manifest_path, self.trials_path):
            if path.exists() and not path.is_file():
                raise not_a_file(path)

    def trial_path(self, kind: str, number: int) -> Path:
        return self.folder / kind / f"trial={number}.parquet"

    def write_trial(self, kind: str, number: int, frame: pd.DataFrame) -> None:
        """Write one trial's curve or predictions, with a leading int64 `trial` column."""
        write_parquet_atomic(frame.assign(trial=number)[["trial", *frame.columns]],
                             self.trial_path(kind, number))

    def trial_numbers(self, kind: str) -> set[int]:
        """Trials that have a (complete) file of `kind`; other files there are ignored
        (`stray_files`)."""
        folder = self.folder / kind
        if not folder.is_dir():
            return set()
        return {int(match[1]) for p in folder.iterdir()
                if (match := TRIAL_FILE.fullmatch(p.name)) and p.is_file()}

    def stray_files(self, kind: str) -> list[Path]:
        """The files and folders in the `kind` folder that are no trial's file (a copy, a
        file moved aside), which readers ignore; temporary files (".<name>") excepted."""
        folder = self.folder / kind
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not (
            TRIAL_FILE.fullmatch(p.name) and p.is_file()))

    def unreadable(self, kind: str, trials: Iterable[int]) -> list[int]:
        """Those of `trials` whose `kind` file is there but no parquet file (it does not
        begin and end with parquet's magic bytes: garbage, or cut short)."""
        on_disk = self.trial_numbers(kind)
        return sorted(n for n in set(trials) & on_disk
                      if not _looks_like_parquet(self.trial_path(kind, n)))

    def discard_trial(self, number: int) -> None:
        """Remove the files of a trial that did not complete, temporary ones included."""
        for kind in KINDS:
            folder = self.folder / kind
            for path in [self.trial_path(kind, number),
                         *folder.glob(f".trial={number}.parquet.*.tmp")]:
                path.unlink(missing_ok=True)

    def archive_path(self, kind: str) -> Path:
        return archive.archive_path(self.folder, kind)

    def archived(self, kind: str) -> set[int]:
        """Trials whose `kind` rows the study's archive holds."""
        if kind not in archive.KINDS:
            return set()
        return archive.trial_numbers(self.archive_path(kind))

    def missing(self, kind: str, trials: Iterable[int]) -> list[int]:
        """Those of `trials` that have neither a `kind` file nor rows in the archive."""
        lost = set(trials) - self.trial_numbers(kind)
        return sorted(lost - self.archived(kind)) if lost else []

    def read(self, kind: str, trials: Iterable[int],
             columns: list[str] | None = None) -> pd.DataFrame:
        """The `kind` rows of `trials` as one DataFrame with a `trial` column, ordered by
        trial: from each trial's file where it has one (read as one pyarrow dataset; files
        of other trials are never opened), else from the archive; when both are read, the
        columns both hold. NNLabError if a trial is in neither, a file is unreadable, or a
        column unknown."""
        if columns is not None:
            columns = _column_names(columns)
        wanted = sorted(set(trials))
        if not wanted:
            return pd.DataFrame(columns=columns or ["trial"])
        on_disk = self.trial_numbers(kind)
        rest = [n for n in wanted if n not in on_disk]
        from_archive = self._read_archive(kind, rest, columns) if rest else None
        files = [n for n in wanted if n in on_disk]
        from_files = self._read_files(kind, files, columns) if files else None
        parts = [part for part in (from_files, from_archive) if part is not None]
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, join="inner",
                                                           ignore_index=True)
        return frame.sort_values("trial", kind="stable", ignore_index=True)

    def _read_archive(self, kind: str, trials: list[int],
                      columns: list[str] | None) -> pd.DataFrame:
        """The archive's rows of `trials`, which have no `kind` file; NNLabError naming
        the folder and the archive if it does not hold them all."""
        path = self.archive_path(kind)
        where = f"{self.folder / kind}: no file for complete trial(s)"
        if kind not in archive.KINDS or not path.is_file():
            raise StorageError(f"{where} {_numbers(trials)} (deleted or moved?) and no archive "
                               f"{path}; restore them, or rerun the study with --new")
        frame = archive.read(path, trials, columns)
        lost = sorted(set(trials) - set(frame["trial"]))
        if lost:
            why = (" (it keeps the test predictions of the best configuration's runs only)"
                   if kind == "predictions" and archive.selection(self.folder) == "best"
                   else "")
            raise StorageError(f"{where} {_numbers(lost)}, nor does {path} hold them{why}; "
                               "restore them, or rerun the study with --new")
        return frame

    def _read_files(self, kind: str, trials: list[int],
                    columns: list[str] | None) -> pd.DataFrame:
        """The `kind` files of `trials` (which all have one) as one DataFrame."""
        try:
            dataset = ds.dataset([str(self.trial_path(kind, n)) for n in trials],
                                 format="parquet")
            unknown = [c for c in columns or [] if c not in dataset.schema.names]
            if unknown:
                raise ConfigError("columns", f"some of {dataset.schema.names}",
                                  problem=f"unknown {kind} column(s) {unknown}")
            frame = dataset.to_table(columns=columns).to_pandas()
        except (pa.ArrowException, OSError) as err:
            raise StorageError(f"{self.folder / kind}: a trial's file cannot be read: {err}"
                               ) from err
        return frame

    def write_trials(self, frame: pd.DataFrame) -> None:
        write_parquet_atomic(frame, self.trials_path)

    def read_trials(self) -> pd.DataFrame:
        """trials.parquet as the engine wrote it; NNLabError naming it if it is missing or
        unreadable."""
        if self.trials_path.exists() and not self.trials_path.is_file():
            raise not_a_file(self.trials_path)
        try:
            return pd.read_parquet(self.trials_path)
        except FileNotFoundError as err:
            raise StorageError(f"{self.trials_path}: not found, and the study has no Optuna "
                               "storage either; has it been run?") from err
        except (pa.ArrowException, OSError) as err:
            raise StorageError(f"{self.trials_path}: cannot be read ({err})") from err

    def read_manifest(self, fields: tuple[str, ...] = ("storage",)) -> dict:
        """manifest.json: an object whose `fields` are strings (MANIFEST_FIELDS says what
        each holds), its "invocations" a list of objects (an empty one if it has none);
        else NNLabError naming the file and the field."""
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StorageError(f"{self.manifest_path}: expected the study's JSON manifest, "
                               f"cannot parse it ({err})") from err
        except OSError as err:
            raise StorageError(f"{self.manifest_path}: cannot read it ({err.strerror or err})"
                               ) from err
        if not isinstance(manifest, dict):
            raise StorageError(f"{self.manifest_path}: expected a JSON object naming the "
                               "study's storage, got something else")
        for name in fields:
            if not isinstance(manifest.get(name), str):
                found = "it is missing" if name not in manifest else f"got {manifest[name]!r}"
                raise StorageError(f"{self.manifest_path}: expected \"{name}\" to be "
                                   f"{MANIFEST_FIELDS[name]}, {found}; restore the file, or "
                                   "run the study with --new to start over")
        invocations = manifest.setdefault("invocations", [])
        if not isinstance(invocations, list) or not all(isinstance(run, dict)
                                                        for run in invocations):
            raise StorageError(f"{self.manifest_path}: expected \"invocations\" to be a list of "
                               "JSON objects (one per run of the study), got something else")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=False) + "\n",
                          self.manifest_path)


def _looks_like_parquet(path: Path) -> bool:
    """Whether `path` begins and ends with parquet's magic bytes (b"PAR1")."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            handle.seek(-4, os.SEEK_END)
            return head == handle.read(4) == b"PAR1"
    except OSError:  # shorter than 4 bytes, unreadable
        return False


def _column_names(columns: object) -> list[str]:
    """"trial" and `columns` (a list of names), each once, else NNLabError."""
    if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
        raise ConfigError("columns", "a list of column names", columns)
    return list(dict.fromkeys(["trial", *columns]))


def _numbers(trials: list[int], shown: int = 10) -> str:
    return ", ".join(map(str, trials[:shown])) + (", ..." if len(trials) > shown else "")
