"""Studies on your own data and network, with the data's identity recorded: scikit-learn's
digits end to end, CSV files cut by a split rule, an entry-point data set and model, a
Dataset object from Python. Changed data are refused on resume and by workers; bad input
is one line on stderr, exit 2, and nothing is trained or written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.cli import main
from nnlab.data import load_digits
from nnlab.datasets import Dataset, Split
from nnlab.errors import NNLabError
from nnlab.nn import Dropout
from nnlab.report.dashboard import free_port
from nnlab.study import Study
from nnlab.study.data_spec import DataSpec
from nnlab.study.task import TrialTask, run_trial
from nnlab.train import train
from nnlab.train_config import TrainConfig
from tests.data_entry import blobs, blobs_dataset
from tests.test_dashboard import Dashboard, get_json


def tree_digest(folder: Path) -> str:
    """sha256 over every file's path and bytes under `folder` (nothing there: one value)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("nnlab: error: ").strip()


DIGITS = """
[study]
name = "digits"
replicates = 2
[base]
preset = "seed-000"
batch_size = 50
n_steps = 300
n_evals = 3
[grid]
eta = [1.0, 3.0]
[data]
name = "digits"
"""


def test_a_digits_study_runs_reports_and_shows_in_the_dashboard(tmp_path, capsys):
    spec, results = tmp_path / "digits.toml", tmp_path / "results"
    spec.write_text(DIGITS)
    assert main(["run", str(spec), "--results", str(results), "--jobs", "2", "--quiet"]) == 0
    folder = results / "digits"
    digits = load_digits()
    assert manifest(folder)["data"] == {
        "name": "digits", "digest": digits.digest, "n_classes": 10, "image_shape": [1, 8, 8],
        "n_features": 64, "sizes": {"train": 1079, "val": 359, "test": 359},
        "source": "digits (scikit-learn's 8x8 digits, stratified 60/20/20 split, seed 0)"}
    assert "sizes = [64, 36, 16, 10]" in (folder / "spec.toml").read_text()  # seed-000's net
    trials = pd.read_parquet(folder / "trials.parquet")
    assert list(trials["data_digest"]) == [digits.digest] * 4
    assert trials.groupby("eta")["val_acc"].mean()[3.0] > 0.9
    capsys.readouterr()
    assert main(["status", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["complete"] == 4
    assert main(["report", str(folder), "--resamples", "200"]) == 0
    report = json.loads((folder / "report.json").read_text())
    errors = report["sections"]["errors"]["error_analysis"]
    assert errors["n_classes"] == 10 and errors["chance"] == pytest.approx(1 / 9)
    assert len(report["sections"]["gallery"]["shown"]) > 0
    assert "digest " + digits.digest[:16] in (folder / "report.html").read_text()
    dashboard = Dashboard(folder, free_port())
    try:
        summaries = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
        assert sorted(s["study_name"] for s in summaries) == ["digits", "digits:configs"]
        (summary,) = [s for s in summaries if s["study_name"] == "digits"]
        detail = get_json(f"{dashboard.base}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 4
        values = sorted(t["values"][0] for t in detail["trials"])
        assert values == pytest.approx(sorted(Study.load(folder).trials()["val_acc"]))
    finally:
        dashboard.interrupt()


def write_blobs_csv(path: Path, n: int = 600) -> None:
    x, y = blobs(n, spread=1.5)  # overlapping blobs: some errors to analyse
    pd.DataFrame(np.column_stack([y, x])).to_csv(path, index=False, header=False)


def csv_spec(tmp_path: Path, name: str = "csv") -> Path:
    """A study of 2 runs of TrainConfig's default MLP on blobs in all.csv, cut 60/20/20."""
    write_blobs_csv(tmp_path / "all.csv")
    spec = tmp_path / f"{name}.toml"
    spec.write_text(f"""
[study]
name = "{name}"
[base]
batch_size = 50
n_steps = 200
n_evals = 2
[grid]
eta = [0.5, 2.0]
[data]
files = "{tmp_path / 'all.csv'}"
split = [0.6, 0.2, 0.2]
split_seed = 1
""")
    return spec


def test_a_csv_study_records_its_data_and_refuses_it_once_changed(tmp_path, capsys):
    spec, results = csv_spec(tmp_path), tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--quiet"]) == 0
    folder = results / "csv"
    recorded = manifest(folder)["data"]
    expected = DataSpec(name=None, files=str(tmp_path / "all.csv"), split=(0.6, 0.2, 0.2),
                        split_seed=1, stratify=True).load()
    assert recorded["digest"] == expected.digest
    assert recorded["source"] == (f"files: {tmp_path / 'all.csv'} split [0.6, 0.2, 0.2] "
                                  "with seed 1, stratified")
    assert (recorded["n_features"], recorded["n_classes"]) == (12, 3)
    assert set(pd.read_parquet(folder / "trials.parquet")["data_digest"]) == {expected.digest}
    assert main(["report", str(folder), "--resamples", "200"]) == 0
    report = json.loads((folder / "report.json").read_text())
    assert report["sections"]["errors"]["error_analysis"]["chance"] == 0.5  # 1 / (3 - 1)
    assert report["skipped"]["gallery"] == ("the examples are not images (1x1x12); the gallery "
                                            "shows images only")
    assert main(["run", str(spec), "--results", str(results), "--quiet"]) == 0  # resumes
    capsys.readouterr()
    lines = (tmp_path / "all.csv").read_text().splitlines()
    lines[17] = lines[17].replace(",", ",1", 1)  # one feature of one example
    (tmp_path / "all.csv").write_text("\n".join(lines) + "\n")
    before = tree_digest(results)
    assert main(["run", str(spec), "--results", str(results), "--quiet"]) == 2
    error = one_error_line(capsys)
    assert error.startswith(f"study 'csv': its data changed: {folder} holds runs on files: "
                            f"{tmp_path / 'all.csv'} split [0.6, 0.2, 0.2] with seed 1, "
                            f"stratified of digest {expected.digest[:16]}, the data now")
    assert "run with --new to delete its results and start over" in error
    assert tree_digest(results) == before


def test_a_worker_refuses_data_other_than_the_studys(tmp_path, capsys):
    spec, results = csv_spec(tmp_path, "shared"), tmp_path / "results"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert main(["run", str(spec), "--results", str(results), "--storage", storage,
                 "--plan-only"]) == 0
    good = (tmp_path / "all.csv").read_text()
    write_blobs_csv(tmp_path / "all.csv", n=603)  # another host's copy: other data
    before = tree_digest(results)
    worker = ["worker", "--storage", storage, "--study", "shared", "--results", str(results),
              "--quiet"]
    capsys.readouterr()
    assert main(worker) == 2
    assert one_error_line(capsys).startswith("study 'shared': its data changed: ")
    assert tree_digest(results) == before
    assert set(Study.load(results / "shared", storage=storage).trials()["state"]) == {"WAITING"}
    (tmp_path / "all.csv").write_text(good)
    assert main(worker) == 0
    assert Study.load(results / "shared", storage=storage).status()["complete"] == 2


def test_a_trial_given_other_data_fails_before_it_trains(tmp_path):
    config = TrainConfig(sizes=[64, 10], n_steps=1).to_dict()
    task = TrialTask(0, config, DataSpec(name="digits").with_digest("0" * 64), str(tmp_path),
                     False, 1)
    outcome = run_trial(task)
    assert "refusing to train on other data" in outcome.error
    assert not any(tmp_path.iterdir())


def blobs_spec(name: str, **base) -> dict:
    return {"study": {"name": name, "replicates": 2},
            "base": {"batch_size": 50, "n_steps": 150, "n_evals": 2, **base},
            "grid": {"eta": [0.5, 2.0]}}


def test_an_entry_point_data_set_and_model_builder(tmp_path):
    spec = blobs_spec("entry", model="tests.data_entry:small_net", activation="relu",
                      init="he")
    spec["data"] = {"entry_point": "tests.data_entry:blobs_dataset"}
    study = Study(spec, results=tmp_path)
    summary = study.run(n_jobs=2, progress=False)
    assert summary["complete"] == 4 and summary["failed"] == 0
    assert summary["best_configuration"]["val_acc_mean"] > 0.9
    recorded = manifest(study.folder)["data"]
    assert recorded["source"] == "entry point tests.data_entry:blobs_dataset"
    assert recorded["digest"] == blobs_dataset().digest
    config = study.spec.config_for({"eta": 0.5}, 0)
    run = train(config, blobs_dataset())
    assert any(isinstance(layer, Dropout) for layer in run.model.layers)  # the builder's net
    stored = study.curves(trials=[0])
    assert stored["val_acc"].iloc[-1] == run.metrics["val_acc"]  # the same run


def test_a_dataset_object_from_python_is_known_by_its_digest(tmp_path, capsys):
    spec = blobs_spec("object")
    study = Study(spec, results=tmp_path, data=blobs_dataset())
    assert study.run(n_jobs=2, progress=False)["complete"] == 4
    recorded = manifest(study.folder)["data"]
    assert recorded["digest"] == blobs_dataset().digest
    assert recorded["source"] == "a Dataset object 'blobs' given to Study(spec, data=...)"
    assert 'dataset = "blobs"' in (study.folder / "spec.toml").read_text()
    again = Study(spec, results=tmp_path, data=blobs_dataset())
    assert again.run(n_jobs=1, progress=False)["this_run"]["completed"] == 0
    data = blobs_dataset()
    other = Dataset("blobs", data.train, data.val, Split(data.test.x + 1, data.test.y),
                    n_classes=3, image_shape=(1, 3, 4))
    with pytest.raises(NNLabError, match=r"^study 'object': its data changed: .* holds runs on "
                                         r"a Dataset object 'blobs' given to Study\(spec, "
                                         rf"data=...\) of digest {data.digest[:16]}, the data now "
                                         rf"have digest {other.digest[:16]}; "):
        Study(spec, results=tmp_path, data=other).run(progress=False)
    assert main(["status", str(study.folder)]) == 0
    capsys.readouterr()
    assert main(["run", str(study.folder / "spec.toml"), "--results", str(tmp_path)]) == 2
    assert one_error_line(capsys).startswith("data.dataset: 'blobs' is a Dataset object given "
                                             "from Python (Study(spec, data=...))")
    with pytest.raises(NNLabError, match=r"^data: given a Dataset object and a \[data\] source "
                                         r"\(name\); give one or the other$"):
        Study({**spec, "data": {"name": "digits"}}, results=tmp_path, data=data)
    with pytest.raises(NNLabError, match=r"^data: expected a nnlab.datasets.Dataset, got dict$"):
        Study(spec, results=tmp_path, data={"x": 1})


def test_a_study_from_before_data_identity_resumes_and_records_it(tmp_path):
    spec = {"study": {"name": "older"}, "base": {"sizes": [784, 8, 10], "batch_size": 50,
                                                  "n_steps": 20, "n_evals": 2},
            "grid": {"eta": [0.5]}, "data": {"train_size": 500, "val_size": 100,
                                             "test_size": 100}}
    study = Study(spec, results=tmp_path)
    study.run(progress=False)
    record = manifest(study.folder)
    del record["data"]
    for entry in record["invocations"]:
        del entry["data_digest"]
    (study.folder / "manifest.json").write_text(json.dumps(record))
    resumed = Study(spec, results=tmp_path).run(progress=False)
    assert resumed["this_run"]["completed"] == 0 and resumed["complete"] == 1
    assert manifest(study.folder)["data"]["digest"] == study.spec.data.load().digest


BAD_RUNS = [
    ({"files": "{d}/train.csv", "split": [0.6, 0.2, 0.2]}, {},
     "{d}/train.csv: expected 3 comma-separated numbers per row (label + 2 features)"),
    ({"train": "{d}/train.csv", "val": "{d}/val.csv", "test": "{d}/test.csv",
      "n_classes": 2}, {}, "{d}/train.csv: row 3: label must be an integer in 0..1, got 2"),
    ({"files": "{d}", "n_classes": 3}, {},
     "{d}/test.csv: row 2 is the same example as {d}/val.csv row 2: given splits must be "
     "disjoint (val and test share 1)"),
    ({"entry_point": "tests.nowhere:load"}, {},
     "data.entry_point: cannot import 'tests.nowhere' (ModuleNotFoundError"),
    ({"entry_point": "tests.data_entry:not_a_dataset"}, {},
     "data.entry_point: tests.data_entry:not_a_dataset returned dict; expected a "
     "nnlab.datasets.Dataset"),
    ({"name": "digits"}, {"model": "tests.nowhere:build"},
     "[base]: TrainConfig.model: cannot import 'tests.nowhere' (ModuleNotFoundError"),
    ({"name": "digits"}, {"model": "tests.data_entry:not_layers"},
     "[base]: TrainConfig.model: tests.data_entry:not_layers returned str; expected a "
     "non-empty list of nnlab layers (nnlab.nn.Layer instances)"),
    ({"name": "digits"}, {"model": "tests.data_entry:three_outputs"},
     "[base]: TrainConfig.model: tests.data_entry:three_outputs's network gives 3 outputs per "
     "example; expected 10, one per class of the data"),
    ({"name": "digits"}, {"model": "tests.data_entry:no_flatten"},
     "[base]: TrainConfig.model: tests.data_entry:no_flatten's network on the data's 1x8x8 "
     "examples: layers[0] (Dense): expected a flat per-example input (n_in,): put a "
     "Flatten layer before it, got shape (1, 8, 8)"),
    ({"name": "digits"}, {"preset": "cnn"},
     "[base] on data of 64 features and 10 classes (sizes [64, 36, 16, 10]): base.sizes: "
     "TrainConfig.layers: 'conv64k5' in 'conv32k5-pool2-conv64k5-pool2-dense128-dropout0.5' "
     "on a 1x8x8 input"),
]


@pytest.mark.parametrize(("data", "base", "message"), BAD_RUNS)
def test_bad_data_or_model_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, data,
                                                                     base, message):
    x, y = blobs(9)
    for i, split in enumerate(("train", "val", "test")):
        frame = pd.DataFrame(np.column_stack([y[3 * i:3 * i + 3], x[3 * i:3 * i + 3]]))
        frame.to_csv(tmp_path / f"{split}.csv", index=False, header=False)
    (tmp_path / "test.csv").write_text((tmp_path / "test.csv").read_text().splitlines()[0]
                                       + "\n" + (tmp_path / "val.csv").read_text()
                                       .splitlines()[1] + "\n")
    if "split" in data:
        (tmp_path / "train.csv").write_text("1,2,3\n1,x,3\n")
    table = {k: v.format(d=tmp_path) if isinstance(v, str) else v for k, v in data.items()}
    spec = tmp_path / "bad.toml"
    spec.write_text("[study]\nname = \"bad\"\n[base]\nn_steps = 10\n"
                    + "".join(f"{k} = {json.dumps(v)}\n" for k, v in base.items())
                    + "[data]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items()))
    before = tree_digest(tmp_path)
    assert main(["run", str(spec), "--results", str(tmp_path / "results")]) == 2
    assert one_error_line(capsys).startswith(message.format(d=tmp_path))
    assert tree_digest(tmp_path) == before and not (tmp_path / "results").exists()
