"""Damaged studies: a journal with a damaged record, stray, garbage and missing result files,
an unreadable manifest. Each is named in one line (no traceback); `nnlab repair` keeps what
is intact and sets the rest aside, and `nnlab run` then runs exactly the trials that lost
something, each (configuration, seed) once."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nnlab.cli import main
from nnlab.study import Study
from nnlab.study.liveness import StudyHold
from nnlab.study.repair import read_journal
from tests.small_study import planned, write_spec

PLANNED = planned(1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished small study (4 runs, journal storage): its results root."""
    root = tmp_path_factory.mktemp("finished")
    spec = write_spec(root, "mended", 1)
    assert main(["run", str(spec), "--results", str(root), "--jobs", "1", "--quiet"]) == 0
    return root


@pytest.fixture
def study(finished, tmp_path) -> Study:
    """A copy of the finished study, in tmp_path."""
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return Study.load(tmp_path / "mended")


def run(study: Study) -> int:
    return main(["run", str(study.folder.parent / "mended.toml"), "--results",
                 str(study.folder.parent), "--jobs", "1", "--quiet"])


def assert_each_key_complete_once(study: Study) -> pd.DataFrame:
    trials = study.trials()
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["key"].is_unique and not trials["state"].isin(["RUNNING", "WAITING"]).any()
    assert set(zip(complete["eta"], complete["n_steps"], complete["seed"], strict=True)) == PLANNED
    assert study.status()["missing_files"] == {}
    return trials


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("nnlab: error: ") and err.count("\n") == 1, err
    return err


def damage(journal: Path, line: int, cut: int, glue: bool) -> dict:
    """Cut line `line` (from 0) of `journal` short after `cut` bytes; `glue`: its newline
    goes too (the next record follows on the same line). Returns the record it was."""
    lines = journal.read_bytes().split(b"\n")
    record = json.loads(lines[line])
    lines[line] = lines[line][:cut]
    if glue:
        lines[line:line + 2] = [lines[line] + lines[line + 1]]
    journal.write_bytes(b"\n".join(lines))
    return record


def test_a_damaged_journal_record_is_named_and_repaired_and_its_trial_run_again(
        study, capsys):
    journal = study.folder / "optuna.journal"
    before = study.trials()
    lines = journal.read_bytes().split(b"\n")
    # the record that ends trial 2: cut, its trial is left without an end
    line = next(i for i, raw in enumerate(lines) if raw and json.loads(raw).get("op_code") == 6
                and json.loads(raw)["trial_id"] == 2 and json.loads(raw)["state"] == 1)
    damage(journal, line, 25, glue=False)
    for command in (["status", str(study.folder)], ["run", str(study.folder.parent /
                                                                "mended.toml"),
                                                    "--results", str(study.folder.parent)]):
        assert main(command) == 2
        err = one_line_error(capsys)
        assert err.startswith(f"nnlab: error: {journal}: damaged: line {line + 1} (byte ")
        assert "), not a record: " in err
        assert f"`nnlab repair {study.folder}`" in err

    assert main(["repair", str(study.folder)]) == 0
    out = capsys.readouterr().out
    assert "1 damaged stretch(es) (25 bytes" in out and "kept " in out
    aside = list(study.folder.glob("optuna.journal.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes().split(b"\n")[line] == lines[line][:25]
    assert run(study) == 0
    trials = assert_each_key_complete_once(study).set_index("trial")
    kept = before.set_index("trial").drop(index=2)
    pd.testing.assert_series_equal(trials.loc[kept.index, "completed"], kept["completed"])
    assert trials.loc[2, "state"] == "FAIL"  # run again as a new trial
    assert (trials["key"] == before.set_index("trial").loc[2, "key"]).sum() == 2


def test_glued_records_are_split_and_nothing_is_lost(study, capsys):
    journal = study.folder / "optuna.journal"
    whole = journal.read_bytes()
    lines = whole.split(b"\n")
    journal.write_bytes(b"\n".join([*lines[:9], lines[9] + lines[10], *lines[11:]]))
    assert main(["status", str(study.folder)]) == 2
    one_line_error(capsys)
    assert main(["repair", str(study.folder)]) == 0
    assert journal.read_bytes().startswith(whole)  # and the companion study, to build again
    assert run(study) == 0
    assert "this run: 0 trials completed" in capsys.readouterr().out


def test_stray_files_are_ignored_and_named_by_status(study, capsys):
    curves = study.folder / "curves"
    shutil.copy(curves / "trial=3.parquet", curves / "trial=3 (copy).parquet")
    (study.folder / "predictions" / "notes.txt").write_text("mine\n")
    assert main(["status", str(study.folder)]) == 0
    out = capsys.readouterr().out
    assert ("stray files, ignored: curves/trial=3 (copy).parquet, predictions/notes.txt"
            in out)
    assert len(study.curves()) == len(pd.concat(
        pd.read_parquet(curves / f"trial={n}.parquet") for n in range(4)))
    assert run(study) == 0
    assert main(["report", str(study.folder), "--no-train", "--resamples", "100"]) == 0


@pytest.mark.parametrize("harm", ["garbage", "cut", "deleted"])
def test_a_complete_trials_bad_curve_file_is_flagged_and_the_trial_run_again(
        study, capsys, harm):
    path = study.store.trial_path("curves", 1)
    shutil.rmtree(study.folder / "archive")  # or the archive would still hold its curve
    good = path.read_bytes()
    if harm == "garbage":
        path.write_bytes(b"not a parquet file\n")
    elif harm == "cut":
        path.write_bytes(good[: len(good) // 2])
    else:
        path.unlink()
    assert main(["status", str(study.folder)]) == 0
    what = "missing" if harm == "deleted" else "unreadable"
    assert (f"{what} result files: curves of trial(s) 1 (restore them, or `nnlab repair "
            f"{study.folder}`") in capsys.readouterr().out

    assert main(["repair", str(study.folder)]) == 0
    out = capsys.readouterr().out
    assert "trials #1 lost records or files: failed" in out
    if harm != "deleted":
        assert [p.read_bytes() != good for p in (study.folder / "curves").glob(
            "trial=1.parquet.damaged-*")] == [True]  # set aside, not deleted
    assert run(study) == 0
    assert "this run: 1 trials completed" in capsys.readouterr().out
    trials = assert_each_key_complete_once(study).set_index("trial")
    assert trials.loc[1, "state"] == "FAIL" and len(trials) == len(PLANNED) + 1
    again = pd.read_parquet(study.store.trial_path("curves", 4))
    pd.testing.assert_frame_equal(again.drop(columns=["trial", "seconds"]), pd.read_parquet(
        io.BytesIO(good)).drop(columns=["trial", "seconds"]))  # the same seed: the same run


def test_repair_is_refused_while_a_run_works_on_the_study(study, capsys):
    hold = StudyHold(study.folder)
    hold.share()
    try:
        assert main(["repair", str(study.folder)]) == 2
    finally:
        hold.release()
    assert one_line_error(capsys) == (
        f"nnlab: error: {study.folder}: another nnlab process works on this study (it holds "
        "run.lock); repair it once it has stopped\n")
    assert main(["repair", str(study.folder)]) == 0
    assert capsys.readouterr().out == f"{study.folder}: nothing to repair\n"


def test_an_unreadable_manifest_is_named_then_written_again(study, capsys):
    manifest = study.folder / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text[: len(text) // 2])
    assert main(["status", str(study.folder)]) == 2
    assert one_line_error(capsys).startswith(f"nnlab: error: {manifest}: expected the study's "
                                             "JSON manifest, cannot parse it")
    assert main(["repair", str(study.folder)]) == 0
    assert [p.read_text() for p in study.folder.glob("manifest.json.damaged-*")] == [
        text[: len(text) // 2]]
    assert run(study) == 0
    assert_each_key_complete_once(study)


@pytest.mark.slow
def test_a_journal_cut_at_20_random_offsets_is_repaired_keeping_every_intact_trial(
        finished, tmp_path):
    journal = finished / "mended" / "optuna.journal"
    lines = journal.read_bytes().split(b"\n")[:-1]
    before = Study.load(finished / "mended").trials().set_index("trial")
    rng = random.Random(20)
    for attempt in range(20):
        line = rng.randrange(1, len(lines) - 1)  # not the study's own creation
        root = tmp_path / str(attempt)
        shutil.copytree(finished, root)
        study = Study.load(root / "mended")
        record = damage(study.folder / "optuna.journal", line, rng.randrange(1, len(lines[line])),
                        glue=attempt % 2 == 1)
        assert any(p.record is None for p in read_journal(study.folder / "optuna.journal"))
        assert main(["repair", str(study.folder)]) == 0
        assert run(study) == 0, (attempt, record)
        trials = assert_each_key_complete_once(study).set_index("trial")
        # every trial but the one the damaged record was about is kept as it was
        touched = {record.get("trial_id")} if record["op_code"] != 4 else set()
        kept = [n for n in before.index if n not in touched and n < len(before)]
        if record["op_code"] == 4:  # a lost creation: that trial, whichever it was, runs again
            kept = [n for n in kept if trials.loc[n, "state"] != "FAIL"]
            assert len(kept) >= len(before) - 1
        assert (trials.loc[kept, "state"] == "COMPLETE").all(), (attempt, record)
        pd.testing.assert_frame_equal(trials.loc[kept, ["key", "value", "completed"]],
                                      before.loc[kept, ["key", "value", "completed"]])
