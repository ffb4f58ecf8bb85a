"""Input checks shared by the analyses: each failure is one error naming the argument or
column: ConfigError (an argument's form), DataError (a table's content) or InsufficientData
(too few values or runs)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from nnlab.errors import ConfigError, DataError, InsufficientData


def require_columns(df: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Raise if `df` is not a DataFrame or lacks one of `columns`."""
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(where, "a pandas DataFrame", shown=f"{type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{where}: missing column {missing[0]!r} (needed columns: {list(columns)}; "
            f"the table has {list(df.columns)})"
        )


def finite_values(values: object, name: str, min_n: int, where: str) -> np.ndarray:
    """`values` as a 1-D float array of at least `min_n` finite numbers, else NNLabError."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.{name}", "numbers", shown=f"{values!r:.60}") from exc
    if array.ndim != 1:
        raise ConfigError(f"{where}.{name}", "a 1-D sequence", shown=f"shape {array.shape}")
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise DataError(
            f"{where}.{name}: expected finite numbers, got {n_bad} NaN/inf of {array.size}"
        )
    if array.size < min_n:
        raise InsufficientData(f"{where}.{name}: needs at least {min_n} values, got {array.size}")
    return array


def finite_column(df: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """Column `column` as a float array; NaN or non-numeric values raise NNLabError."""
    try:
        array = df[column].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: column {column!r} must hold numbers") from exc
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise DataError(
            f"{where}: column {column!r} has {n_bad} NaN/inf values among {array.size} rows; "
            "expected finite numbers"
        )
    return array


def check_resampling(n_resamples: int, confidence: float, where: str) -> None:
    """Validate the bootstrap settings every analysis takes."""
    if not isinstance(n_resamples, int | np.integer) or n_resamples < 100:
        raise ConfigError(f"{where}.n_resamples", "an integer >= 100", n_resamples)
    if not 0.5 <= confidence < 1:
        raise ConfigError(f"{where}.confidence", "a level in [0.5, 1)", confidence)


def split_runs(
    trials: pd.DataFrame, status_col: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(finished runs, diverged runs, number of other rows) by `status_col`.

    "ok" = finished, "diverged" = diverged; other rows (failed, running or waiting trials
    without a status) are not results and are dropped. Without the column (or with
    `status_col=None`) every row counts as finished.
    """
    if status_col is None or status_col not in trials.columns:
        return trials, trials.iloc[:0], 0
    status = trials[status_col].astype(str)
    ok, diverged = status == "ok", status == "diverged"
    return trials[ok], trials[diverged], int(np.count_nonzero(~ok & ~diverged))


def run_table(
    predictions: pd.DataFrame,
    columns: list[str],
    *,
    trial_col: str,
    index_col: str,
    y_col: str,
    min_runs: int,
    purpose: str,
    where: str,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Predictions of several runs on one test set as a runs x examples table.

    predictions: one row per (run `trial_col`, test example `index_col`) with `y_col` and
        `columns`; every run must predict the same test examples, once each.
    Returns (the examples' `index_col` values (n_test,), {column: (n_runs, n_test) array}
    for `y_col` and each of `columns`), runs in `trial_col` order and examples in
    `index_col` order. Fewer than `min_runs` runs is an error naming `purpose`.
    """
    require_columns(predictions, [trial_col, index_col, y_col, *columns], where)
    data = predictions.sort_values([trial_col, index_col], kind="stable")
    sizes = data.groupby(trial_col, sort=True).size()
    if sizes.size < min_runs:
        raise InsufficientData(
            f"{where}: column {trial_col!r} holds {sizes.size} run; {purpose} needs at least "
            f"{min_runs}"
        )
    if sizes.nunique() != 1:
        raise DataError(
            f"{where}: runs in {trial_col!r} cover different numbers of test examples "
            f"({sizes.min()} to {sizes.max()}); every run must predict the same test set"
        )
    shape = (sizes.size, int(sizes.iloc[0]))
    index = data[index_col].to_numpy().reshape(shape)
    labels = data[y_col].to_numpy().reshape(shape)
    if not (np.all(index == index[0]) and np.all(labels == labels[0])):
        raise DataError(
            f"{where}: columns {index_col!r}/{y_col!r} differ between runs; every run must "
            "predict the same test examples"
        )
    if np.any(np.diff(index[0]) == 0):
        raise DataError(f"{where}: column {index_col!r} repeats a test example within a run")
    if shape[1] < 2:
        raise InsufficientData(f"{where}: needs at least 2 test examples, got {shape[1]}")
    table = {column: data[column].to_numpy().reshape(shape) for column in [y_col, *columns]}
    return index[0], table
