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
