"""nnlab.errors: the kinds of error and their messages, how they survive a trip to a worker
process and back; and that `import nnlab` stays cheap (the study engine loads on use)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

import nnlab
from nnlab.errors import (
    ConfigError,
    DataError,
    InsufficientData,
    NNLabError,
    StorageError,
    as_path,
    checked_int,
)

HEAVY = ("optuna", "pandas", "sqlalchemy")


def modules_after(code: str) -> list[str]:
    """The HEAVY modules loaded by a fresh interpreter that runs `code`."""
    probe = (f"{code}\nimport json, sys\n"
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, stdin=subprocess.DEVNULL)
    return json.loads(result.stdout)


@pytest.mark.parametrize("code", ["import nnlab.errors", "import nnlab",
                                  "from nnlab import NNLabError, ConfigError",
                                  "import nnlab.validation"])
def test_importing_the_package_or_its_errors_loads_no_study_engine(code):
    # before, `import nnlab.errors` imported the study engine: ~1.2 s and 190 MB
    assert modules_after(code) == []


def test_the_study_engine_loads_when_first_used():
    assert modules_after("from nnlab import Study, StudySpec") == list(HEAVY)
    from nnlab.study import Study, StudySpec

    assert nnlab.Study is Study and nnlab.StudySpec is StudySpec
    assert {"Study", "StudySpec", "NNLabError", "ConfigError"} <= set(dir(nnlab))
    with pytest.raises(AttributeError, match="module 'nnlab' has no attribute 'Sudy'"):
        nnlab.Sudy  # noqa: B018


def test_a_config_error_names_the_field_and_what_was_expected_and_given():
    error = ConfigError("TrainConfig.eta", "a positive number", -1)
    assert str(error) == "TrainConfig.eta: expected a positive number, got -1"
    assert (error.field, error.expected, error.got, error.problem) == (
        "TrainConfig.eta", "a positive number", -1, "")
    assert isinstance(error, NNLabError) and isinstance(error, ValueError)
    assert str(ConfigError("preset", "one of a, b", "c")) == "preset: expected one of a, b, got 'c'"
    shown = ConfigError("x", "an array of shape (batch, 3)", [1], shown="list")
    assert str(shown) == "x: expected an array of shape (batch, 3), got list"
    assert shown.got == [1]
    problem = ConfigError("layers[0] (Conv2D)", "height and width >= 5",
                          problem="kernel 5x5 does not fit the input 4x4 with padding 0")
    assert str(problem) == ("layers[0] (Conv2D): kernel 5x5 does not fit the input 4x4 with "
                            "padding 0; expected height and width >= 5")
    assert problem.got is None


def test_every_kind_is_an_nnlab_error_and_only_config_errors_are_value_errors():
    for kind in (ConfigError, DataError, StorageError, InsufficientData):
        assert issubclass(kind, NNLabError)
        assert getattr(nnlab, kind.__name__) is kind
    assert [k for k in (DataError, StorageError, InsufficientData) if issubclass(k, ValueError)
            ] == []


@pytest.mark.parametrize("error", [
    ConfigError("n_jobs", "an integer >= 1", 0),
    ConfigError("sizes", "a list", (3,), shown="a tuple"),
    ConfigError("TrainConfig.etaa", "one of eta, seed", problem="unknown field"),
    DataError("m.csv: row 3: expected a label and 784 pixels, got 783 values"),
    StorageError("optuna.journal: not a journal"),
    InsufficientData("variance: expected at least 2 seeds, got 1"),
    NNLabError("plain"),
], ids=lambda e: type(e).__name__)
def test_errors_survive_pickling_with_their_message_and_fields(error):
    # a study's worker processes send their errors back pickled; ConfigError's
    # constructor does not take the message, so the default pickling failed on it
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


def test_the_shared_checks_raise_config_errors_naming_the_field():
    with pytest.raises(ConfigError, match=r"^study\.replicates: expected an integer >= 1, got 0$"):
        checked_int("study.replicates", 0, 1)
    with pytest.raises(ConfigError) as caught:
        checked_int("port", 70000, 0, 65535, " (a TCP port)")
    assert str(caught.value) == "port: expected an integer in 0..65535 (a TCP port), got 70000"
    assert caught.value.field == "port" and caught.value.got == 70000
    with pytest.raises(ConfigError, match=r"^results: expected a path, got 3$"):
        as_path(3, "results")


def test_an_error_about_a_parameter_is_renamed_or_placed_with_its_kind_and_parts():
    config = ConfigError("n_jobs", "an integer >= 1", 0).within("grid point {'eta': 1}")
    assert str(config) == "grid point {'eta': 1}: n_jobs: expected an integer >= 1, got 0"
    renamed = config.renamed("--jobs")
    assert isinstance(renamed, ConfigError) and renamed.expected == "an integer >= 1"
    assert str(renamed) == "grid point {'eta': 1}: --jobs: expected an integer >= 1, got 0"
    storage = StorageError("is a folder", field="storage", value="/tmp")
    assert str(storage) == "storage /tmp: is a folder"
    assert str(storage.renamed("--storage")) == "--storage /tmp: is a folder"
    assert type(storage.renamed("--storage")) is StorageError
    plain = InsufficientData("needs 2 seeds")
    assert plain.renamed("--x") is plain and type(plain.within("fit")) is InsufficientData
    assert str(ConfigError("data.split_seed", "", problem="only with data.split")) == (
        "data.split_seed: only with data.split")


def test_the_cli_shows_each_parameter_as_its_flag():
    from nnlab.cli import with_flags

    assert with_flags(ConfigError("n_jobs", "an integer >= 1", 0), {"n_jobs": "--jobs"}) == (
        "--jobs: expected an integer >= 1, got 0")
    assert with_flags(StorageError("is a folder", field="storage", value="/x"), {}) == (
        "--storage /x: is a folder")
    assert with_flags(ConfigError("heartbeat.grace", "more seconds than 5", 5), {}) == (
        "--grace: expected more seconds than 5, got 5")
    assert with_flags(DataError("m.csv: row 3: bad"), {}) == "m.csv: row 3: bad"


def _bad_idx(tmp_path):
    from nnlab.loaders import read_idx

    path = tmp_path / "x.idx"
    path.write_bytes(b"not an idx file at all")
    read_idx(path)


def _storage_is_a_folder(tmp_path):
    from nnlab.study.storage import check_storage

    check_storage(str(tmp_path), tmp_path)


def _variance(trials, **kwargs):
    from nnlab.analysis import variance_vs_n

    variance_vs_n(trials, "n_steps", "test_acc", fit=False, **kwargs)


def _runs(n_seeds: int):
    import pandas as pd

    return pd.DataFrame({"n_steps": [100] * n_seeds + [1000] * n_seeds,
                         "seed": list(range(n_seeds)) * 2,
                         "test_acc": [0.9 + 0.001 * i for i in range(2 * n_seeds)]})


@pytest.mark.parametrize(("bad", "kind", "field"), [
    (lambda tmp: __import__("nnlab.train_config").train_config.TrainConfig(eta=-1.0),
     ConfigError, "TrainConfig.eta"),
    (lambda tmp: _variance(_runs(5), n_resamples=5), ConfigError, "variance_vs_n.n_resamples"),
    (_bad_idx, DataError, None),
    (lambda tmp: _variance(_runs(5).drop(columns="test_acc")), DataError, None),
    (_storage_is_a_folder, StorageError, "storage"),
    (lambda tmp: _variance(_runs(1)), InsufficientData, None),
], ids=["config", "analysis-parameter", "data-file", "data-table", "storage", "too-few-runs"])
def test_each_kind_of_bad_input_raises_its_kind_of_error(tmp_path, bad, kind, field):
    with pytest.raises(NNLabError) as caught:
        bad(tmp_path)
    assert type(caught.value) is kind and caught.value.field == field
    assert isinstance(caught.value, ValueError) == (kind is ConfigError)


def test_a_study_spec_names_its_own_key_for_a_bad_train_config_value():
    from nnlab.study.spec import StudySpec

    with pytest.raises(ConfigError) as caught:
        StudySpec.from_dict({"study": {"name": "x"}, "grid": {"eta": [0.1, -1.0]}})
    assert caught.value.field == "grid.eta[1]"
    assert str(caught.value).startswith("grid.eta[1]: expected ")


def test_the_report_turns_only_too_little_data_into_a_note():
    from nnlab.report.sections import run_sections

    def too_few_section(results, options):
        raise InsufficientData("variance_vs_n: n_steps=100 has 1 finished run")

    def broken_section(results, options):
        raise DataError("variance_vs_n: column 'test_acc' must hold numbers")

    sections, skipped = run_sections([too_few_section], None, None)
    assert sections == [] and skipped == [
        ("too_few", "variance_vs_n: n_steps=100 has 1 finished run")]
    with pytest.raises(DataError, match="must hold numbers"):
        run_sections([too_few_section, broken_section], None, None)
