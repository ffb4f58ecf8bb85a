"""Input checks shared by the analyses: each failure is one NNLabError naming the column."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from nnlab.errors import NNLabError


def require_columns(df: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    """Raise if `df` is not a DataFrame or lacks one of `columns`."""
    if not isinstance(df, pd.DataFrame):
        raise NNLabError(f"{where}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise NNLabError(
            f"{where}: missing column {missing[0]!r} (needed columns: {list(columns)}; "
            f"the table has {list(df.columns)})"
        )


def finite_values(values: object, name: str, min_n: int, where: str) -> np.ndarray:
    """`values` as a 1-D float array of at least `min_n` finite numbers, else NNLabError."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise NNLabError(f"{where}.{name}: expected numbers, got {values!r:.60}") from exc
    if array.ndim != 1:
        raise NNLabError(f"{where}.{name}: expected a 1-D sequence, got shape {array.shape}")
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise NNLabError(
            f"{where}.{name}: expected finite numbers, got {n_bad} NaN/inf of {array.size}"
        )
    if array.size < min_n:
        raise NNLabError(f"{where}.{name}: needs at least {min_n} values, got {array.size}")
    return array


def finite_column(df: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """Column `column` as a float array; NaN or non-numeric values raise NNLabError."""
    try:
        array = df[column].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise NNLabError(f"{where}: column {column!r} must hold numbers") from exc
    n_bad = int(np.count_nonzero(~np.isfinite(array)))
    if n_bad:
        raise NNLabError(
            f"{where}: column {column!r} has {n_bad} NaN/inf values among {array.size} rows; "
            "expected finite numbers"
        )
    return array


def check_resampling(n_resamples: int, confidence: float, where: str) -> None:
    """Validate the bootstrap settings every analysis takes."""
    if not isinstance(n_resamples, int | np.integer) or n_resamples < 100:
        raise NNLabError(f"{where}.n_resamples: expected an integer >= 100, got {n_resamples!r}")
    if not 0.5 <= confidence < 1:
        raise NNLabError(f"{where}.confidence: expected a level in [0.5, 1), got {confidence!r}")


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
