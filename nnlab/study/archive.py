"""A study's archive: the curves and test predictions of its complete runs in two parquet
files small enough for git, so that a clone reopens the study and re-derives its findings
without the per-trial files or the Optuna storage (both stay local).

```
<folder>/archive/curves.parquet       every evaluation row of every complete run
<folder>/archive/predictions.parquet  the test predictions of the runs whose predictions
                                      are read (SELECTIONS): index, y_true, top1, top2, p1, p2
```

Rows are ordered by trial, each trial's rows as in its own file. Integers are stored in the
smallest type that holds them, floats as the runs stored them (float32 probabilities,
float64 curves), zstd-compressed (floats byte-stream split, counters delta-encoded, labels
dictionary-encoded); a read gives every column back in the type of the per-trial files
(kept in the file's metadata), so an analysis computes from the archive exactly what it
computes from those files. Predictions keep what is read: top3 and p3 are read by nothing,
and p2 only where the first guess is wrong (the report's gallery of errors), so p2 is null
(NaN when read) where top1 is right.

Which runs' predictions (`SELECTIONS`, kept in predictions.parquet's metadata and by every
refresh): "best", those of the best configuration (what `nnlab report` reads), or "all",
those of every complete run, for studies whose analyses compare configurations by their
predictions (noise-grad's two noise strengths, say). `build` writes both files, each to a
temporary name and renamed into place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nnlab.errors import ConfigError, DataError
from nnlab.study.atomic import atomic_path
from nnlab.study.spec import StudySpec
from nnlab.study.status import best_configuration_trials

if TYPE_CHECKING:
    from nnlab.study.store import ResultsStore

FOLDER = "archive"
KINDS = ("curves", "predictions")
PREDICTION_COLUMNS = ["index", "y_true", "top1", "top2", "p1", "p2"]
WRONG_ONLY = "p2"  # kept where top1 != y_true, the only rows anything reads it from
SELECTIONS = ("best", "all")
DEFAULT_SELECTION = "best"
_DTYPES, _SELECTION = b"nnlab.dtypes", b"nnlab.predictions"
_ROW_GROUP = 1 << 17  # rows: a read of a few trials skips the other groups
_DICTIONARY_MAX = 256  # integer columns with at most this many values: dictionary-encoded


@dataclass(frozen=True)
class ArchiveSummary:
    """What `build` wrote: runs (complete trials with curves), predicted (those with
    predictions), the predictions' selection and each file's size in bytes."""

    runs: int
    predicted: int
    selection: str
    sizes: dict[str, int]


def archive_path(folder: Path, kind: str) -> Path:
    return folder / FOLDER / f"{kind}.parquet"


def selection(folder: Path) -> str | None:
    """The selection of the predictions archive in `folder`, None if it has none."""
    path = archive_path(folder, "predictions")
    if not path.is_file():
        return None
    metadata = _schema(path).metadata or {}
    return metadata.get(_SELECTION, DEFAULT_SELECTION.encode()).decode()


def predicted_trials(chosen: str, spec: StudySpec, trials: pd.DataFrame) -> list[int]:
    """The complete trials whose predictions the selection `chosen` keeps, ascending."""
    if chosen == "all":
        return sorted(trials.loc[trials["state"] == "COMPLETE", "trial"].tolist())
    return best_configuration_trials(spec, trials)


def trial_numbers(path: Path) -> set[int]:
    """The trials an archive file holds rows of (none if it does not exist)."""
    if not path.is_file():
        return set()
    return set(_read_table(path, columns=["trial"])["trial"].unique().to_pylist())


def read(path: Path, trials: list[int], columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of `trials` in the archive file `path`, every column (or `columns`, which
    include "trial") in the type of the per-trial files; NNLabError naming the file if it
    cannot be read or lacks a column."""
    names = _schema(path).names
    unknown = [c for c in columns or [] if c not in names]
    if unknown:
        raise ConfigError("columns", f"some of {names}",
                          problem=f"unknown {path.stem} column(s) {unknown}")
    table = _read_table(path, columns=columns, filters=[("trial", "in", list(trials))])
    recorded = (table.schema.metadata or {}).get(_DTYPES)
    if recorded is None:
        raise DataError(f"{path}: not a study archive (its metadata has no column types)")
    dtypes = json.loads(recorded)
    frame = table.to_pandas()
    return frame.astype({name: dtypes[name] for name in frame.columns})


def build(store: ResultsStore, spec: StudySpec, trials: pd.DataFrame,
          source: ResultsStore | None = None, numbers: dict[int, int] | None = None,
          chosen: str | None = None) -> ArchiveSummary:
    """Write the archive of `store`'s study from its trials table `trials`: the curve of
    every complete trial and the predictions `chosen` keeps (default: the selection of the
    archive there, else DEFAULT_SELECTION), read from `source` (default `store`: per-trial
    files, else its archive), where trial n is numbered numbers[n] (default n). Writes
    nothing while no trial is complete."""
    chosen = chosen or selection(store.folder) or DEFAULT_SELECTION
    if chosen not in SELECTIONS:
        raise ConfigError("predictions", f"one of {', '.join(SELECTIONS)}", chosen)
    source = source or store
    complete = sorted(trials.loc[trials["state"] == "COMPLETE", "trial"].tolist())
    if not complete:
        return ArchiveSummary(0, 0, chosen, {})
    predicted = predicted_trials(chosen, spec, trials)
    numbers = numbers or {n: n for n in complete}
    curves = _renumbered(source.read("curves", [numbers[n] for n in complete]), numbers)
    predictions = _renumbered(source.read("predictions", [numbers[n] for n in predicted],
                                          columns=PREDICTION_COLUMNS), numbers)
    wrong = predictions["top1"] != predictions["y_true"]
    predictions[WRONG_ONLY] = predictions[WRONG_ONLY].where(wrong)
    sizes = {"curves": _write(curves, archive_path(store.folder, "curves")),
             "predictions": _write(predictions, archive_path(store.folder, "predictions"),
                                   {_SELECTION: chosen.encode()})}
    return ArchiveSummary(len(complete), len(predicted), chosen, sizes)


def _renumbered(frame: pd.DataFrame, numbers: dict[int, int]) -> pd.DataFrame:
    """`frame` (read under the numbers' values) under their keys, ordered by trial."""
    back = {theirs: ours for ours, theirs in numbers.items()}
    if any(ours != theirs for ours, theirs in back.items()):
        frame = frame.assign(trial=frame["trial"].map(back).astype(frame["trial"].dtype))
    return frame.sort_values("trial", kind="stable", ignore_index=True)


def _write(frame: pd.DataFrame, path: Path, metadata: dict[bytes, bytes] | None = None) -> int:
    """Write `frame` compactly (see the module docstring) via a temporary file and a
    rename; returns the file's size in bytes."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    dictionary, encodings = [], {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if np.issubdtype(values.dtype, np.integer):
            table = table.set_column(table.column_names.index(name), name,
                                     table[name].cast(pa.from_numpy_dtype(_smallest(values))))
            if len(np.unique(values)) <= _DICTIONARY_MAX:
                dictionary.append(name)
            else:
                encodings[name] = "DELTA_BINARY_PACKED"
        elif np.issubdtype(values.dtype, np.floating):
            encodings[name] = "BYTE_STREAM_SPLIT"
        else:
            dictionary.append(name)
    dtypes = {name: str(frame[name].dtype) for name in frame.columns}
    table = table.replace_schema_metadata({_DTYPES: json.dumps(dtypes).encode(),
                                           **(metadata or {})})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=9,
                       row_group_size=_ROW_GROUP, use_dictionary=dictionary,
                       column_encoding=encodings)
    return path.stat().st_size


def _smallest(values: np.ndarray) -> np.dtype:
    """The smallest integer type that holds every one of `values` (n,)."""
    if values.size == 0:
        return values.dtype
    return np.result_type(np.min_scalar_type(values.min()), np.min_scalar_type(values.max()))


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot be read as a study archive ({err})") from err


def _read_table(path: Path, **options) -> pa.Table:
    try:
        return pq.read_table(path, **options)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot be read as a study archive ({err})") from err
