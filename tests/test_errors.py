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
                                  "from nnlab import NNLabError, ConfigError"])
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
