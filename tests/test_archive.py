"""The archive: a study's curves and predictions in two compact files that read back as the
per-trial files do, written by the engine at the end of each run, rebuilt by `nnlab
archive`, and built from a rerun only when the rerun's metrics equal the study's bit for
bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from nnlab.cli import main
from nnlab.errors import NNLabError
from nnlab.study import Study
from nnlab.study.archive import archive_path

N_TEST = 100


def tiny(name: str, replicates: int = 2) -> dict:
    """Three etas x `replicates` seeds of a 784-8-10 net, 20 steps on 500 MNIST images."""
    return {"study": {"name": name, "replicates": replicates},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 3},
            "grid": {"eta": [0.1, 0.5, 2.0]},
            "data": {"train_size": 500, "val_size": 200, "test_size": N_TEST}}


def committed_copy(study: Study, to: Path) -> Path:
    """The study's folder as a clone has it: spec, manifest, trials and archive only."""
    to.mkdir(parents=True)
    for name in ("spec.toml", "manifest.json", "trials.parquet"):
        shutil.copy(study.folder / name, to / name)
    shutil.copytree(study.folder / "archive", to / "archive")
    return to


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> Study:
    """A study run with one seed, then grown to two (so seed 1's trials come last)."""
    results = tmp_path_factory.mktemp("grown")
    Study(tiny("arch", replicates=1), results=results).run(n_jobs=2, progress=False)
    study = Study(tiny("arch"), results=results)
    study.run(n_jobs=2, progress=False)
    return study


@pytest.fixture(scope="module")
def rerun(tmp_path_factory) -> Study:
    """The grown study's spec run afresh elsewhere: the same runs, numbered in grid order."""
    study = Study(tiny("arch"), results=tmp_path_factory.mktemp("rerun"))
    study.run(n_jobs=2, progress=False)
    return study


def test_the_run_archives_every_curve_and_the_best_configurations_predictions(grown):
    trials = grown.trials()
    files_curves, files_predictions = grown.curves(), grown.predictions()
    clone = Study.load(committed_copy(grown, grown.folder.parent / "clone" / "arch"))
    assert not clone.has_storage()
    pd.testing.assert_frame_equal(clone.trials(), trials)
    pd.testing.assert_frame_equal(clone.curves(), files_curves)

    best = trials.loc[trials["eta"] == 2.0, "trial"].tolist()  # best on val_acc here
    assert grown.status()["best_configuration"]["params"] == {"eta": 2.0}
    archived = clone.predictions()
    assert sorted(archived["trial"].unique()) == sorted(best)
    assert list(archived.columns) == ["trial", "index", "y_true", "top1", "top2", "p1", "p2"]
    expected = files_predictions[files_predictions["trial"].isin(best)][archived.columns]
    expected = expected.reset_index(drop=True)
    wrong = expected["top1"] != expected["y_true"]
    pd.testing.assert_frame_equal(archived.drop(columns="p2"), expected.drop(columns="p2"))
    pd.testing.assert_series_equal(archived["p2"][wrong], expected["p2"][wrong])
    assert archived["p2"][~wrong].isna().all() and wrong.any()
    with pytest.raises(NNLabError, match=r"predictions: no file for complete trial\(s\) 0, "
                       r".*archive/predictions\.parquet hold them \(it keeps the test "
                       r"predictions of the best configuration's runs only\)"):
        clone.predictions(trials=[0])

    stored = pq.read_schema(archive_path(clone.folder, "predictions"))
    assert [str(stored.field(c).type) for c in ("trial", "index", "y_true", "p1")] == [
        "uint8", "uint8", "uint8", "float"]
    rows = pq.read_table(archive_path(clone.folder, "curves"))["trial"].to_pylist()
    assert rows == sorted(rows)


def test_nnlab_archive_rebuilds_it_and_all_predictions_are_kept_on_every_refresh(grown,
                                                                                  capsys):
    before = archive_path(grown.folder, "curves").read_bytes()
    assert main(["archive", str(grown.folder), "--predictions", "all"]) == 0
    assert "predictions of 6 (all)" in capsys.readouterr().out
    assert archive_path(grown.folder, "curves").read_bytes() == before
    grown.run(n_jobs=1, progress=False)  # nothing to run; the archive is refreshed
    assert Study.load(grown.folder).status()["missing_files"] == {}
    clone = Study.load(committed_copy(grown, grown.folder.parent / "all" / "arch"))
    assert sorted(clone.predictions()["trial"].unique()) == list(range(6))


def test_an_archive_is_built_from_a_rerun_numbered_otherwise(grown, rerun, tmp_path, capsys):
    ours = grown.trials().set_index("key")["trial"]
    theirs = rerun.trials().set_index("key")["trial"]
    assert (ours != theirs[ours.index]).any()  # the grown study numbers its seeds otherwise
    own = grown.curves()
    clone = Study.load(committed_copy(grown, tmp_path / "arch"))
    shutil.rmtree(clone.folder / "archive")
    assert main(["archive", str(clone.folder), "--from", str(rerun.folder)]) == 0
    assert capsys.readouterr().out.startswith(
        f"checked 6 complete trials against {rerun.folder}: val_acc, test_acc, val_loss, "
        "train_loss, steps_run, status equal bit for bit\n")
    pd.testing.assert_frame_equal(clone.curves().drop(columns="seconds"),
                                  own.drop(columns="seconds"))


def test_a_rerun_whose_metrics_differ_is_refused(grown, rerun, tmp_path, capsys):
    edited = tmp_path / "rerun" / "arch"
    shutil.copytree(rerun.folder, edited)
    (edited / "optuna.journal").unlink()  # its trials now come from trials.parquet
    trials = pd.read_parquet(edited / "trials.parquet")
    trials.loc[trials["trial"] == 4, "test_acc"] += 1e-12
    trials.to_parquet(edited / "trials.parquet")
    committed = trials.loc[trials["trial"] == 4, "key"].item()
    ours = grown.trials().set_index("key").loc[committed, "trial"]
    clone = committed_copy(grown, tmp_path / "arch")
    before = archive_path(clone, "curves").read_bytes()
    assert main(["archive", str(clone), "--from", str(edited)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"nnlab: error: study 'arch', trial {ours}: test_acc ")
    assert f"rerun's trial 4 in {edited}" in error and error.count("\n") == 1
    assert archive_path(clone, "curves").read_bytes() == before


def test_curves_missing_from_files_and_archive_are_one_error_naming_both(grown, tmp_path):
    clone = Study.load(committed_copy(grown, tmp_path / "arch"))
    archive_path(clone.folder, "curves").unlink()
    with pytest.raises(NNLabError, match=r"arch/curves: no file for complete trial\(s\) 0, "
                       r"1, .* and no archive .*arch/archive/curves\.parquet; restore them"):
        clone.curves()
    assert clone.status()["missing_files"] == {"curves": list(range(6))}


def test_new_starts_the_archive_over_with_the_other_results(tmp_path):
    study = Study(tiny("fresh", replicates=1), results=tmp_path)
    study.run(n_jobs=1, progress=False)
    for kind in ("curves", "predictions"):
        archive_path(study.folder, kind).write_bytes(b"not parquet")
    assert study.run(n_jobs=1, new=True, progress=False)["complete"] == 3
    shutil.rmtree(study.folder / "curves")  # read from the new archive
    assert len(Study.load(study.folder).curves()) == 3 * 3  # three evaluations per run
