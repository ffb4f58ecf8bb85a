"""A newcomer's first hour, as a shell runs it: `make demo` (on a tiny spec) ends with its
report and the next commands, and each command it prints works as printed from the clone's
folder in a new shell with nothing activated; the README's Python example runs as printed.

The clone is a temporary folder with this repository's Makefile, a tiny studies/demo.toml
and a .venv whose bin/ is this repository's (so nothing is installed)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_dashboard import get_json, port_is_free

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TINY_DEMO = """
[study]
name = "demo"
replicates = 2
[base]
preset = "seed-000"
batch_size = 100
n_steps = 60
[grid]
eta = [1.0, 3.0]
[data]
train_size = 2000
val_size = 500
test_size = 500
"""
EXPECTED = ["make dashboard STUDY=demo", "make report STUDY=demo",
            ".venv/bin/nnlab status results/demo", ".venv/bin/nnlab --help",
            ". .venv/bin/activate"]


def fresh_shell_env() -> dict[str, str]:
    """What a new login shell has: no activated venv, no PYTHONPATH, the system PATH."""
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/local/bin:/usr/bin:/bin",
           "LANG": "C.UTF-8"}
    if "NNLAB_DATA" in os.environ:  # where MNIST is cached, if not ~/.cache/nnlab
        env["NNLAB_DATA"] = os.environ["NNLAB_DATA"]
    return env


def shell(command: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=fresh_shell_env(),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def clone(tmp_path_factory, mnist) -> Path:
    if not (ROOT / ".venv" / "bin" / "nnlab").exists():
        pytest.skip("needs the repository's .venv (make .venv/.installed)")
    folder = tmp_path_factory.mktemp("clone")
    shutil.copy2(ROOT / "Makefile", folder)
    shutil.copy2(ROOT / "pyproject.toml", folder)
    (folder / "studies").mkdir()
    (folder / "studies" / "demo.toml").write_text(TINY_DEMO)
    venv = folder / ".venv"
    venv.mkdir()
    (venv / "bin").symlink_to(ROOT / ".venv" / "bin")
    (venv / ".installed").touch()  # newer than pyproject.toml: make installs nothing
    return folder


@pytest.fixture(scope="module")
def demo(clone) -> list[str]:
    """`make demo`'s output lines."""
    result = shell("make demo", clone, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def printed_commands(lines: list[str]) -> list[str]:
    """The commands listed after "Next": indented lines, command and description separated
    by two or more spaces."""
    start = next(i for i, line in enumerate(lines) if "Next, from this folder" in line)
    return [re.split(r"\s{2,}", line.strip())[0] for line in lines[start + 1:]
            if line.startswith("  ")]


def test_demo_ends_with_its_report_and_the_next_commands(clone, demo):
    assert any("results/demo/report.html" in line for line in demo)  # where the report is
    assert (clone / "results" / "demo" / "report.html").stat().st_size > 10_000
    assert printed_commands(demo) == EXPECTED


def test_printed_report_and_status_commands_work_in_a_new_shell(clone, demo):
    report = clone / "results" / "demo" / "report.html"
    report.unlink()
    result = shell("make report STUDY=demo", clone)
    assert result.returncode == 0, result.stderr
    assert report.is_file()
    result = shell(".venv/bin/nnlab status results/demo", clone)
    assert result.returncode == 0, result.stderr
    assert "planned 4  complete 4" in result.stdout


def test_printed_help_and_activate_commands_work_in_a_new_shell(clone, demo):
    result = shell(".venv/bin/nnlab --help", clone)
    assert result.returncode == 0 and result.stdout.startswith("usage: nnlab")
    # "then type nnlab without .venv/bin/": activate, then the bare command
    result = shell(". .venv/bin/activate && nnlab presets", clone)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("seed-000")


def test_printed_dashboard_command_serves_the_study_in_a_new_shell(clone, demo):
    if not port_is_free(8080):
        pytest.skip("port 8080, which `make dashboard` uses as printed, is taken")
    # a new shell in a terminal takes Ctrl-C; a test runner started in the background may
    # pass SIGINT on as ignored, so the shell gets the default back
    process = subprocess.Popen(["bash", "-c", "make dashboard STUDY=demo"], cwd=clone,
                               env=fresh_shell_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               stdin=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url = next(line for line in process.stdout if "optuna-dashboard for study" in line)
        assert "http://127.0.0.1:8080/dashboard/studies/" in url
        deadline = time.monotonic() + 60
        while True:
            try:
                listed = get_json("http://127.0.0.1:8080/api/studies")["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not answer in 60 s"
                time.sleep(0.2)
        # the study and its companion of configurations (seed means)
        assert sorted(summary["study_name"] for summary in listed) == ["demo", "demo:configs"]
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the printed line says
        try:
            out, _ = process.communicate(timeout=60)  # make exits 2 on Ctrl-C
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out = None
    assert out is not None, "Ctrl-C did not stop the dashboard within 60 s"
    assert port_is_free(8080)


def test_readme_python_example_runs_as_printed(tmp_path, mnist):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) == 1 and len(blocks[0].splitlines()) <= 20
    (tmp_path / "example.py").write_text(blocks[0])
    result = shell(f"{ROOT}/.venv/bin/python example.py", tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "quickstart.png").stat().st_size > 10_000
    assert (tmp_path / "results" / "quickstart" / "trials.parquet").is_file()
