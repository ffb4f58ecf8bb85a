"""The command line as a shell uses it."""

from __future__ import annotations

import subprocess
import sys


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


def test_a_usage_error_is_one_line_that_says_where_the_usage_is():
    # argparse printed the whole usage first: 3 lines for a missing --preset
    result = subprocess.run([sys.executable, "-m", "nnlab.cli", "train"], capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("nnlab train: error: the following arguments are required: "
                             "--preset (see nnlab train -h)\n")
