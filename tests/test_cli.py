"""The command line as a shell uses it."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from nnlab import cli
from nnlab.errors import ConfigError, NNLabError


@pytest.mark.integration
def test_output_into_a_closed_pipe_ends_quietly():
    # `nnlab ... | head -1`: the reader goes away before nnlab writes; without handling,
    # Python prints a BrokenPipeError traceback
    process = subprocess.Popen([sys.executable, "-m", "nnlab.cli", "presets"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait() == 141
    assert stderr == ""


@pytest.mark.integration
def test_a_usage_error_is_one_line_that_says_where_the_usage_is():
    # argparse printed the whole usage first: 3 lines for a missing --preset
    result = subprocess.run([sys.executable, "-m", "nnlab.cli", "train"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("nnlab train: error: the following arguments are required: "
                             "--preset (see nnlab train -h)\n")


# --- in one process: logging and the names of flags -----------------------------------

def log_each_level(args) -> int:
    log = logging.getLogger("nnlab.some.module")
    log.debug("a debug message")
    log.info("an info message")
    log.warning("a warning")
    return 0


@pytest.mark.parametrize(("argv", "shown"), [
    (["presets"], ["an info message", "a warning"]),
    (["-v", "presets"], ["a debug message", "an info message", "a warning"]),
    (["--quiet", "presets"], ["a warning"]),
    (["run", "spec.toml", "--quiet"], ["a warning"]),  # no progress bar, no info either
])
def test_log_records_are_nnlab_lines_on_stderr_at_the_level_the_flags_set(
        monkeypatch, capsys, argv, shown):
    monkeypatch.setattr(cli, "_presets", log_each_level)
    monkeypatch.setattr(cli, "_study_run", log_each_level)
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "".join(f"nnlab: {message}\n" for message in shown)
    assert not logging.getLogger("nnlab").handlers  # nothing left behind


def test_a_config_error_names_the_flag_that_sets_the_field(monkeypatch, capsys):
    assert cli.main(["train", "--preset", "seed-999"]) == 2
    assert capsys.readouterr().err.startswith(
        "nnlab: error: --preset: expected one of seed-000, ")
    assert cli.main(["train", "--preset", "seed-002", "--set", "batch_size=0"]) == 2
    assert capsys.readouterr().err == (
        "nnlab: error: --set batch_size: expected an integer >= 1, got 0\n")

    def engine_refuses(args):  # the study engine names its parameter, n_jobs
        raise ConfigError("n_jobs", "an integer >= 1", args.jobs)

    monkeypatch.setattr(cli, "_study_run", engine_refuses)
    assert cli.main(["run", "spec.toml", "--jobs", "0"]) == 2
    assert capsys.readouterr().err == "nnlab: error: --jobs: expected an integer >= 1, got 0\n"


def test_errors_of_fields_without_a_flag_are_shown_as_raised():
    assert cli.with_flags(ConfigError("TrainConfig.eta", "a positive number", -1), {}) == (
        "TrainConfig.eta: expected a positive number, got -1")
    assert cli.with_flags(ConfigError("TrainConfig", "a mapping", 3), cli.TRAIN_FLAGS) == (
        "TrainConfig: expected a mapping, got 3")
    assert cli.with_flags(NNLabError("preset: plain"), cli.TRAIN_FLAGS) == "preset: plain"
