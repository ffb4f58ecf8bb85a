"""Readers for the file formats data come in: IDX, CSV, .npz, parquet and Nielsen's
mnist.pkl.gz.

Each reader validates what it reads and raises NNLabError naming the file (and row, for CSV)
and what was expected; none returns a partly read array.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from nnlab.errors import DataError

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dtype.newbyteorder("="): code for code, dtype in _IDX_DTYPES.items()}


def _open(path: Path) -> io.BufferedIOBase:
    """Open a file for reading bytes, transparently un-gzipping `.gz` files."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_bytes(path: Path) -> bytes:
    try:
        with _open(path) as f:
            return f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest (md5, sha256, ...) of a file's bytes as stored on disk."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (`.gz` or plain): magic (0, 0, type code, ndim), ndim big-endian
    uint32 sizes, then the data. Returns an array of shape (d0, d1, ...) in native byte order,
    e.g. (60000, 28, 28) uint8 for images and (60000,) uint8 for labels."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file: expected magic bytes 00 00 <type code> <ndim>, "
            f"got {raw[:4].hex(' ') or 'an empty file'}"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header: expected {header} bytes, got {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: IDX file {problem}: header says shape {shape}, so {expected} bytes "
            f"were expected, got {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write `array` as an IDX file (gzipped when `path` ends in .gz)."""
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype)
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


def check_labels(path: Path, labels: np.ndarray, n_classes: int | None,
                 rows: np.ndarray | None = None) -> None:
    """NNLabError naming the file and the first bad row unless every label is in
    0..n_classes-1 (n_classes None: any integer >= 0). rows: the row number of each label
    in the file (None: its index, counted from 0, called an example)."""
    high = np.inf if n_classes is None else n_classes
    bad = np.flatnonzero((labels < 0) | (labels >= high))
    if bad.size:
        i = bad[0]
        where = f"example {i}" if rows is None else f"row {rows[i]}"
        expected = "an integer >= 0" if n_classes is None else f"an integer in 0..{n_classes - 1}"
        raise DataError(f"{path}: {where}: label must be {expected}, got {labels[i]:g}")


def label_array(labels: np.ndarray) -> np.ndarray:
    """Integer labels >= 0 as uint8 when all fit, else int64."""
    return labels.astype(np.uint8 if labels.size and labels.max() < 256 else np.int64)


def csv_has_header(path: Path) -> bool:
    """Whether the CSV's first line is a header: its first field is not a number."""
    try:
        with _open(path) as f:
            first = f.readline().decode("utf-8", "replace").split(",")[0].strip()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    try:
        float(first)
    except ValueError:
        return True
    return False


def _csv_width(path: Path) -> int:
    """The number of fields on the CSV's first line."""
    with _open(path) as f:
        return f.readline().decode("utf-8", "replace").count(",") + 1


def read_csv(
    path: str | Path, n_features: int | None = 784, n_classes: int | None = 10,
    pixels: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Read the label-first CSV form (`mnist_train.csv`): the label in the first column,
    then `n_features` feature columns (None: as many as the first line has), with or without
    a header line; `.gz` or plain.

    pixels: the features must be integers in 0..255 and come back as uint8; else they are
    any finite numbers and come back as float32, as written. Labels must be integers in
    0..n_classes-1 (None: any integer >= 0). Returns x (n, n_features) and y (n,) (uint8
    when every label is below 256, else int64). Row numbers in errors count lines of the
    file from 1, the header included.
    """
    path = Path(path)
    has_header = csv_has_header(path)
    width = _csv_width(path) if n_features is None else n_features + 1
    what = "pixels" if pixels else "features"
    try:
        frame = pd.read_csv(
            path, header=None, skiprows=1 if has_header else 0, names=range(width),
            dtype=np.float64, on_bad_lines="error", engine="c", index_col=False,
        )
    except (ValueError, pd.errors.ParserError) as err:
        raise DataError(
            f"{path}: expected {width} comma-separated numbers per row "
            f"(label + {width - 1} {what}): {err}"
        ) from None
    values = frame.to_numpy()
    rows = np.arange(len(values)) + 1 + int(has_header)
    short = np.flatnonzero(np.isnan(values).any(axis=1))
    if short.size:
        i = short[0]
        n_given = int(np.isfinite(values[i]).sum()) - 1
        raise DataError(
            f"{path}: row {rows[i]}: expected a label and {width - 1} {what}, "
            f"got {n_given} {what}"
        )
    labels, features = values[:, 0], values[:, 1:]
    not_int = np.flatnonzero(labels != np.round(labels))
    if not_int.size:
        raise DataError(f"{path}: row {rows[not_int[0]]}: label must be an integer, "
                        f"got {labels[not_int[0]]}")
    check_labels(path, labels, n_classes, rows)
    if not pixels:
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        if bad.size:
            raise DataError(f"{path}: row {rows[bad[0]]}: features must be finite numbers")
        return features.astype(np.float32), label_array(labels)
    bad = np.flatnonzero(((features < 0) | (features > 255)
                          | (features != np.round(features))).any(1))
    if bad.size:
        raise DataError(f"{path}: row {rows[bad[0]]}: pixels must be integers in 0..255")
    return features.astype(np.uint8), label_array(labels)


def write_csv(path: str | Path, x: np.ndarray, y: np.ndarray, header: bool = True) -> None:
    """Write x (n, n_features) and y (n,) in the label-first CSV form `read_csv` reads."""
    frame = pd.DataFrame(np.column_stack([y, x]).astype(np.int64))
    frame.columns = ["label"] + [f"pixel{i}" for i in range(x.shape[1])]
    frame.to_csv(path, index=False, header=header)


def read_parquet(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a parquet table of one example per row: an integer `label` column and numeric
    feature columns (all the others, in file order). Returns x (n, n_features) in the
    columns' common dtype (uint8 columns stay uint8: pixels) and y (n,) the labels."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise DataError(f"{path}: not a readable parquet file ({err})") from None
    if "label" not in frame.columns:
        raise DataError(f"{path}: expected a 'label' column; it has "
                        f"{[str(c) for c in frame.columns[:5]]}"
                        + (" ..." if len(frame.columns) > 5 else ""))
    labels = frame["label"].to_numpy()
    if labels.dtype.kind not in "iu":
        raise DataError(f"{path}: label column: expected integers, got {labels.dtype}")
    features = frame.drop(columns="label")
    if features.shape[1] == 0:
        raise DataError(f"{path}: expected feature columns beside 'label', got none")
    not_numeric = [str(c) for c, t in features.dtypes.items()
                   if not (pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t))]
    if not_numeric:
        raise DataError(f"{path}: column {not_numeric[0]!r}: expected numbers, got "
                        f"{features[not_numeric[0]].dtype}")
    return features.to_numpy(), labels


def read_npz(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read the arrays named `keys` from an .npz file (no pickled objects allowed)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; it has {archive.files}")
            return {k: archive[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that admits only what a pickled tuple of numpy arrays needs."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"  # numpy >= 2 moved it; avoid the shim's warning
        return super().find_class(module, name)


def load_numpy_pickle(path: str | Path, sha256: str) -> Any:
    """Unpickle a gzipped pickle of numpy arrays, but only after its sha256 matches and only
    through an unpickler that admits numpy arrays and nothing else."""
    path = Path(path)
    actual = file_digest(path, "sha256")
    if actual != sha256:
        raise DataError(f"{path}: sha256 mismatch: expected {sha256}, got {actual}")
    try:
        with gzip.open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as err:
        raise DataError(f"{path}: not a pickle of numpy arrays ({err})") from None
