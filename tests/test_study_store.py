"""The results store: atomic parquet files, never a half-written one read as data."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.errors import NNLabError
from nnlab.study.store import ResultsStore

ROWS = 2_000_000  # ~32 MB per file, so a kill lands mid-write most of the time


def frame(number: int, rows: int = ROWS) -> pd.DataFrame:
    """A deterministic curve-like frame for trial `number`."""
    step = np.arange(rows, dtype=np.int64)
    return pd.DataFrame({"step": step, "val_acc": step * 0.5 + number})


def test_trial_files_read_back_as_one_table_with_a_trial_column(tmp_path):
    store = ResultsStore(tmp_path)
    for number in (3, 0, 12):
        store.write_trial("curves", number, frame(number, rows=5))
    assert store.trial_numbers("curves") == {0, 3, 12}
    both = store.read("curves", [12, 0], columns=["val_acc"])
    assert list(both.columns) == ["trial", "val_acc"]
    assert list(both["trial"]) == [0] * 5 + [12] * 5
    np.testing.assert_array_equal(both["val_acc"][5:], frame(12, rows=5)["val_acc"])
    assert store.read("curves", []).empty
    store.discard_trial(3)
    assert store.trial_numbers("curves") == {0, 12}


def test_a_lost_or_damaged_trial_file_or_unknown_column_is_a_clear_error(tmp_path):
    """Before, a missing file was skipped (its trial silently left out of every analysis),
    and a damaged file or unknown column raised pyarrow's ArrowInvalid."""
    store = ResultsStore(tmp_path)
    for number in (0, 1, 2):
        store.write_trial("curves", number, frame(number, rows=5))
    with pytest.raises(NNLabError, match=r"curves: no file for complete trial\(s\) 7"):
        store.read("curves", [0, 7])
    with pytest.raises(NNLabError, match=r"unknown curves column\(s\) \['nope'\]; expected "
                       r"some of \['trial', 'step'"):
        store.read("curves", [0], columns=["nope"])
    damaged = store.trial_path("curves", 2)
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(NNLabError, match=r"a trial's file cannot be read: .*trial=2\.parquet"):
        store.read("curves", [0, 1, 2])


@pytest.mark.parametrize("columns", ["val_acc", [1], {"val_acc": 1}])
def test_columns_that_are_not_a_list_of_names_are_a_clear_error(tmp_path, columns):
    """Before, a string was read as its letters: unknown curves column(s) ['v', 'a', ...]."""
    store = ResultsStore(tmp_path)
    store.write_trial("curves", 0, frame(0, rows=5))
    with pytest.raises(NNLabError, match=r"^columns: expected a list of column names, got "):
        store.read("curves", [0], columns=columns)
    both = store.read("curves", [0], columns=["val_acc", "trial", "val_acc"])
    assert list(both.columns) == ["trial", "val_acc"]


@pytest.mark.parametrize("content", ['{"study": "x", "storage": "optuna.journal"',  # cut short
                                     '["optuna.journal"]', '{"study": "x"}', "\udcff",
                                     '{"storage": "optuna.journal", "invocations": 5}',
                                     '{"storage": "optuna.journal", "invocations": [1]}'])
def test_a_broken_manifest_is_a_clear_error_naming_the_file(tmp_path, content):
    store = ResultsStore(tmp_path)
    store.manifest_path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(NNLabError, match=r"manifest\.json: expected "):
        store.read_manifest()


def test_a_manifest_without_invocations_reads_as_having_none(tmp_path):
    store = ResultsStore(tmp_path)
    store.manifest_path.write_text('{"storage": "optuna.journal"}')
    assert store.read_manifest() == {"storage": "optuna.journal", "invocations": []}


def test_a_results_folder_below_a_file_or_of_no_path_is_refused(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NNLabError, match=r"a_file: expected a folder for study results, found"):
        ResultsStore(tmp_path / "a_file" / "study")
    with pytest.raises(NNLabError, match=r"results folder: expected a path, got None"):
        ResultsStore(None)


def test_a_leftover_temporary_file_is_never_read_and_is_discarded_with_its_trial(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_trial("curves", 0, frame(0, rows=5))
    whole = (tmp_path / "curves" / "trial=0.parquet").read_bytes()
    leftover = tmp_path / "curves" / ".trial=7.parquet.0123abcd.tmp"
    leftover.write_bytes(whole[: len(whole) // 2])  # what a writer killed mid-write leaves
    assert store.trial_numbers("curves") == {0}
    assert list(store.read("curves", [0])["trial"].unique()) == [0]
    assert store.missing("curves", range(10)) == list(range(1, 10))
    store.discard_trial(7)
    assert not leftover.exists()


WRITER = """
import sys
sys.path.insert(0, {tests!r})
from test_study_store import frame
from nnlab.errors import NNLabError
from nnlab.study.store import ResultsStore
store = ResultsStore({folder!r})
first = frame(0)
print("ready", flush=True)
for number in range(1000):
    store.write_trial("curves", number, first.assign(val_acc=first["val_acc"] + number))
"""


@pytest.mark.integration
def test_a_writer_killed_mid_write_leaves_whole_files_or_none(tmp_path):
    """SIGKILL a real writer at several moments: the files under final names are whole and
    read back exactly; what it was writing stays a hidden temporary file, never read."""
    tests = str(Path(__file__).parent)
    killed_mid_write = 0
    for attempt, delay in enumerate([0.5, 0.8, 1.1, 0.65, 0.95]):
        folder = tmp_path / str(attempt)
        code = textwrap.dedent(WRITER.format(tests=tests, folder=str(folder)))
        writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        store = ResultsStore(folder)
        written = store.trial_numbers("curves")
        assert written == set(range(len(written))) and len(written) < 1000
        leftovers = list((folder / "curves").glob(".trial=*.tmp"))
        killed_mid_write += bool(leftovers)
        table = store.read("curves", written)
        assert len(table) == len(written) * ROWS
        for number in written:
            part = table[table["trial"] == number].drop(columns="trial")
            pd.testing.assert_frame_equal(part.reset_index(drop=True), frame(number))
        if killed_mid_write >= 2:
            break
    assert killed_mid_write >= 2, "no kill landed mid-write"
