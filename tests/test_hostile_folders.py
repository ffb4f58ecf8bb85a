"""Results folders and flags that work against the user: a manifest that names a storage
outside its folder or a database server, a typo that names a user's file as the storage,
read-only folders, a full disk, damaged manifests, names that are no folder names, layer
sizes beyond the memory, temporary files of killed writers. Each refusal is one line on
stderr with exit code 2, and writes, creates or connects to nothing (the tree of every file
and folder is compared before and after)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from nnlab.cli import main
from nnlab.errors import ConfigError, NNLabError, StorageError
from nnlab.study import Study, StudySpec
from nnlab.study.atomic import remove_dead_temporaries
from nnlab.study.spec import MAX_NAME, study_name
from nnlab.study.store import ResultsStore
from nnlab.train_config import TrainConfig, check_memory, mlp_bytes

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"study": {"name": "s", "replicates": 1},
        "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 2},
        "grid": {"eta": [0.5]},
        "data": {"train_size": 500, "val_size": 200, "test_size": 100}}
TEMPORARIES = ".*.tmp"


def tree(root: Path) -> dict[str, str]:
    """Every file, folder and link under `root`: its path -> "folder", "-> target" or the
    sha256 of its bytes."""
    def entry(path: Path) -> str:
        if path.is_symlink():
            return f"-> {os.readlink(path)}"
        return "folder" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return {str(p.relative_to(root)): entry(p) for p in sorted(root.rglob("*"))}


def nnlab(*args: str | Path, **env: str) -> subprocess.CompletedProcess:
    """The `nnlab` command as a user runs it, in a process of its own."""
    return subprocess.run([sys.executable, "-m", "nnlab.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=300, env={**os.environ, **env})


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one-line error of a command that refused (exit 2, no traceback)."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("nnlab: error: ").strip()


def refused_in_process(args: list[str], capsys) -> str:
    """The one-line error of `nnlab <args>` run in this process."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.removeprefix("nnlab: error: ").strip()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A complete one-run study: its spec file and results folder (copied by each test)."""
    root = tmp_path_factory.mktemp("made")
    (root / "s.toml").write_text(StudySpec.from_dict(SPEC).to_toml())
    Study(SPEC, results=root / "results").run(progress=False)
    return root


@pytest.fixture
def copy(made: Path, tmp_path: Path) -> Path:
    """tmp_path with a copy of `made`: s.toml and results/s."""
    shutil.copytree(made, tmp_path, dirs_exist_ok=True)
    return tmp_path


def set_storage(folder: Path, storage: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "storage": storage}))


# --- 1. a folder does not choose what is opened outside it, nor which server is called ---


def outside_storages(root: Path, folder: Path) -> dict[str, str]:
    """Storages a hostile manifest may name, each outside `folder` (made under `root`)."""
    shutil.copy(folder / "optuna.journal", root / "elsewhere.journal")  # a real journal
    (root / "config.json").write_text('{"keep": "me", "n": 1}')
    (folder / "link.journal").symlink_to(root / "elsewhere.journal")
    return {"a journal elsewhere": str(root / "elsewhere.journal"),
            "a user's file": str(root / "config.json"),
            "a folder to make": str(root / "new" / "deep" / "x.journal"),
            "a path out of the folder": "../../elsewhere.journal",
            "a link out of the folder": "link.journal",
            "sqlite elsewhere": f"sqlite:///{root / 'new.db'}"}


@pytest.mark.parametrize("command", [["status"], ["report", "--no-train"],
                                     ["dashboard", "--port", "0"], ["archive"]])
def test_a_storage_outside_the_folder_is_opened_only_when_named(copy, command, capsys):
    folder = copy / "results" / "s"
    for what, storage in outside_storages(copy, folder).items():
        set_storage(folder, storage)
        before = tree(copy)
        error = refused_in_process([command[0], str(folder), *command[1:]], capsys)
        assert error.startswith(f"{folder / 'manifest.json'}: names {storage}"), what
        assert "outside the study folder" in error and "give it as --storage" in error
        assert tree(copy) == before, what
    assert main(["status", str(folder), "--storage", str(copy / "elsewhere.journal")]) == 0
    assert "planned 1  complete 1" in capsys.readouterr().out  # named: it is used


@pytest.mark.integration
def test_a_user_file_a_manifest_names_is_left_whole_by_the_command_line(copy):
    folder = copy / "results" / "s"
    (copy / "config.json").write_text('{"keep": "me", "n": 1}')
    set_storage(folder, str(copy / "config.json"))
    before = tree(copy)
    error = refusal(nnlab("report", folder, "--no-train"))
    assert error.startswith(f"{folder / 'manifest.json'}: names {copy / 'config.json'} ")
    assert tree(copy) == before


@contextlib.contextmanager
def fake_server() -> Iterator[tuple[int, list[bytes]]]:
    """A listener on 127.0.0.1 that records the first bytes of every connection to it:
    (port, records)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    records: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                with contextlib.suppress(OSError):
                    records.append(connection.recv(1024))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], records
    finally:
        stop.set()
        thread.join()
        server.close()


@pytest.mark.integration
def test_a_database_a_manifest_names_is_never_sent_credentials(copy, capsys, monkeypatch):
    pytest.importorskip("psycopg")
    monkeypatch.setenv("PGPASSWORD", "secret")  # what libpq would send to any server
    folder = copy / "results" / "s"
    with fake_server() as (port, records):
        url = f"postgresql://victim@127.0.0.1:{port}/db?connect_timeout=2"
        set_storage(folder, url)
        before = tree(copy)
        expected = (f"{folder / 'manifest.json'}: names the database "
                    f"postgresql+psycopg://victim@127.0.0.1:{port}/db?connect_timeout=2 as the "
                    "study's storage; nnlab connects to a database only when you name it: give "
                    "it as --storage URL")
        assert refusal(nnlab("status", folder)) == expected
        for command in (["report", "--no-train"], ["dashboard", "--port", "0"], ["archive"]):
            assert refused_in_process([command[0], str(folder), *command[1:]], capsys) == expected
        assert records == [] and tree(copy) == before
        # the listener does see a client: the same URL named on the command line is called
        error = refused_in_process(["status", str(folder), "--storage", url], capsys)
        assert "cannot open it" in error and records


# --- 2. a typo never destroys a file ----------------------------------------------------------


@pytest.mark.integration
def test_a_typo_naming_a_user_file_as_storage_leaves_it_whole(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    config = tmp_path / "config.json"
    config.write_text('{"keep": "me", "n": 1}')
    before = tree(tmp_path)
    error = refusal(nnlab("run", spec, "--results", tmp_path / "results", "--storage", config))
    assert error.startswith(f"--storage {config}: not an Optuna journal")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("content", ['{"keep": "me", "n": 1}\n', '{"keep": "me"}\n{"n": 1}\n',
                                     '{"op_code": "x"}\n', "notes\n", "\x00\xff", ""])
def test_a_file_given_as_storage_is_used_only_if_it_is_a_journal(tmp_path, content, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    config = tmp_path / "config.json"
    config.write_text(content)
    before = tree(tmp_path)
    args = ["run", str(spec), "--results", str(tmp_path / "results"), "--storage", str(config),
            "--plan-only"]
    if content:
        assert refused_in_process(args, capsys).startswith(
            f"--storage {config}: not an Optuna journal")
        assert tree(tmp_path) == before
    else:  # an empty file is a new journal
        assert main(args) == 0
        assert config.read_text().startswith('{"op_code":')


def test_a_sqlite_url_opens_only_a_sqlite_database(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    (tmp_path / "config.db").write_text('{"keep": "me"}\n')
    before = tree(tmp_path)
    error = refused_in_process(["run", str(spec), "--results", str(tmp_path / "results"),
                                "--storage", f"sqlite:///{tmp_path / 'config.db'}"], capsys)
    assert error.endswith(f"{tmp_path / 'config.db'} is not a SQLite database; nnlab "
                          "overwrites no file it did not make")
    assert tree(tmp_path) == before


# --- 8. read-only folders, a full disk, damaged manifests ---------------------------------


@contextlib.contextmanager
def mounted(*args: str, target: Path) -> Iterator[None]:
    """`mount <args> <target>` for the block; skips the test where mounting is not
    permitted (not root, or no CAP_SYS_ADMIN in a container)."""
    target.mkdir(exist_ok=True)
    made = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(target)], check=True)  # once no file is open


@contextlib.contextmanager
def read_only(source: Path, target: Path) -> Iterator[None]:
    """`source` seen read-only at `target` (a read-only bind mount: root ignores chmod)."""
    with mounted("--bind", str(source), target=target):
        remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(target)],
                                   capture_output=True, text=True)
        if remounted.returncode != 0:
            pytest.skip(f"a read-only bind mount is not permitted: {remounted.stderr.strip()}")
        yield


@pytest.mark.integration
def test_a_read_only_folder_is_read_and_never_written(copy, capsys):
    results = copy / "ro"
    with read_only(copy / "results", results):
        folder = results / "s"
        before = tree(folder)
        status = nnlab("status", folder)
        assert status.returncode == 0 and "planned 1  complete 1" in status.stdout, status.stderr
        trials = Study.load(folder).trials()
        pd.testing.assert_frame_equal(trials, Study.load(copy / "results" / "s").trials())
        out = copy / "report"
        assert main(["report", str(folder), "--no-train", "--out", str(out)]) == 0
        assert (out / "report.html").is_file() and (out / "report.json").is_file()
        error = refused_in_process(["report", str(folder), "--no-train"], capsys)
        assert error == (f"{folder}: cannot write the report there (read-only file system); "
                         "give another folder for it (--out DIR)")
        error = refusal(nnlab("run", copy / "s.toml", "--results", results))
        assert error == (f"{folder}: cannot write the study's results there (Read-only file "
                         "system)")
        assert tree(folder) == before


@pytest.mark.integration
def test_a_full_disk_is_one_line_and_leaves_every_file_whole(copy):
    disk = copy / "disk"
    with mounted("-t", "tmpfs", "-o", "size=1m", "tmpfs", target=disk):
        shutil.copytree(copy / "results", disk / "results")
        folder = disk / "results" / "s"
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as fill, contextlib.suppress(OSError):
            while fill.write(bytes(4096)):  # until the disk is full
                pass
        kept = {name: (folder / name).read_bytes()
                for name in ("manifest.json", "trials.parquet", "spec.toml")}
        store = ResultsStore(folder)
        full = r": cannot write it \(.*No space left on device.*\); the file is as it was$"
        with pytest.raises(StorageError, match="manifest.json" + full):
            store.write_manifest(store.read_manifest())
        with pytest.raises(StorageError, match="trials.parquet" + full):
            store.write_trials(store.read_trials())
        error = refusal(nnlab("run", copy / "s.toml", "--results", disk / "results"))
        assert "No space left on device" in error
        report = refusal(nnlab("report", folder, "--no-train", "--out", disk / "report"))
        assert "No space left on device" in report
        assert {name: (folder / name).read_bytes() for name in kept} == kept
        assert list(folder.rglob(TEMPORARIES)) == []


@pytest.mark.parametrize("field", ["spec_digest", "storage"])
def test_a_manifest_without_a_field_is_named_with_the_field(copy, field, capsys):
    folder = copy / "results" / "s"
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest[field]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = tree(copy)
    expected = f"{folder / 'manifest.json'}: expected \"{field}\" to be "
    assert refused_in_process(["run", str(copy / "s.toml"), "--results", str(copy / "results")],
                              capsys).startswith(expected)
    if field == "storage":  # what reading needs
        assert refused_in_process(["status", str(folder)], capsys).startswith(expected)
    assert tree(copy) == before


def test_a_folder_in_place_of_trials_parquet_is_named(copy, capsys):
    folder = copy / "results" / "s"
    (folder / "trials.parquet").unlink()
    (folder / "trials.parquet").mkdir()
    before = tree(copy)
    expected = f"{folder / 'trials.parquet'}: is a folder or other non-file"
    assert refused_in_process(["run", str(copy / "s.toml"), "--results", str(copy / "results")],
                              capsys).startswith(expected)
    (folder / "optuna.journal").rename(copy / "journal")  # status reads trials.parquet now
    before = tree(copy)
    assert refused_in_process(["status", str(folder)], capsys).startswith(expected)
    assert tree(copy) == before


# --- 9. refusals write nothing -----------------------------------------------------------


def test_bad_storages_are_refused_before_anything_is_made(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml())
    (tmp_path / "notes.txt").write_text("not a journal\n")
    (tmp_path / "a-folder").mkdir()
    storages = {
        "postgresql:/db": "a URL needs '//' after its scheme",
        "sqlite:x.db": "a URL needs '//' after its scheme",
        "": "expected a journal file path or a database URL",
        str(tmp_path / "a-folder"): "is a folder",
        str(tmp_path / "notes.txt"): "not an Optuna journal",
        str(tmp_path / "notes.txt" / "x.journal"): f"{tmp_path / 'notes.txt'} is a file",
        f"sqlite:///{tmp_path / 'no' / 'x.db'}": f"{tmp_path / 'no'} is not a folder that exists",
        f"sqlite:///{tmp_path / 'notes.txt'}": "is not a SQLite database",
        "/dev/zero": "not a regular file (a device, pipe or socket)",
        "sqlite:////dev/null": "/dev/null is not a SQLite database",
        "nosuchdb://host/db": "not a database URL nnlab can open",
    }
    before = tree(tmp_path)
    for storage, expected in storages.items():
        error = refused_in_process(["run", str(spec), "--results", str(tmp_path / "results"),
                                    "--storage", storage], capsys)
        assert expected in error, (storage, error)
        assert tree(tmp_path) == before, storage  # no results/s/study.lock
    for storage in (f"sqlite:///{tmp_path / 'w.db'}", str(tmp_path / "w.journal")):
        error = refused_in_process(["worker", "--storage", storage, "--study", "s",
                                    "--results", str(tmp_path / "results")], capsys)
        assert error.startswith("--study 's': no such study in ")
        assert tree(tmp_path) == before, storage  # no empty database or journal


@pytest.mark.integration
def test_a_results_root_that_cannot_be_made_is_one_line():
    error = refusal(nnlab("run", ROOT / "studies" / "demo.toml", "--results", "/proc/self/nope"))
    assert error == ("/proc/self/nope/demo: cannot write the study's results there (No such "
                     "file or directory)")


@pytest.mark.parametrize("name", ["fz\n", "a" * (MAX_NAME + 1), "a b", "-a", ".a", "a/b",
                                  "caf\u00e9", "a\x00b", "tab\t", ""])
def test_a_name_that_is_no_safe_folder_name_is_refused(name):
    with pytest.raises(NNLabError, match=r"^study.name: expected a name of letters, digits"):
        study_name(name)


@pytest.mark.integration
def test_safe_names_are_kept_and_a_refused_one_makes_nothing(tmp_path, capsys):
    for name in ("a", "a" * MAX_NAME, "eta-vs-n", "v1.2_final", "0"):
        assert study_name(name) == name
    spec = tmp_path / "s.toml"
    spec.write_text(StudySpec.from_dict(SPEC).to_toml().replace('name = "s"', 'name = "fz\\n"'))
    before = tree(tmp_path)
    error = refusal(nnlab("run", spec, "--results", tmp_path / "results"))
    assert error.endswith("(it names the results folder), got 'fz\\n'")
    assert tree(tmp_path) == before
    spec.write_text(StudySpec.from_dict(SPEC).to_toml().replace('name = "s"',
                                                                 f'name = "{"a" * 300}"'))
    before = tree(tmp_path)
    error = refused_in_process(["run", str(spec), "--results", str(tmp_path / "results")],
                               capsys)
    assert error.endswith(f"got {'a' * 40!r}... (300 characters)")
    assert tree(tmp_path) == before


@pytest.mark.integration
def test_temporary_files_of_killed_writers_are_removed_when_the_study_is_opened(copy):
    folder = copy / "results" / "s"
    killed = ("import os, signal, sys\n"
              "from pathlib import Path\n"
              "from nnlab.study.atomic import atomic_path\n"
              "with atomic_path(Path(sys.argv[1])) as tmp:\n"
              "    tmp.write_bytes(b'PAR1 half a file')\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n")
    for path in (folder / "trials.parquet", folder / "curves" / "trial=0.parquet"):
        writer = subprocess.run([sys.executable, "-c", killed, str(path)], cwd=ROOT)
        assert writer.returncode == -signal.SIGKILL
    dead = sorted(folder.rglob(TEMPORARIES))
    assert len(dead) == 2
    alive = folder / f".manifest.json.{os.getpid()}@{socket.gethostname()}.0123456789ab.tmp"
    other_host = folder / ".manifest.json.1@elsewhere.example.0123456789ab.tmp"
    for path in (alive, other_host):
        path.write_text("in progress")
    Study.load(folder).trials()  # reading removes nothing
    assert len(list(folder.rglob(TEMPORARIES))) == 4
    Study(SPEC, results=copy / "results").run(progress=False)  # opened to run
    assert sorted(folder.rglob(TEMPORARIES)) == sorted([alive, other_host])
    assert remove_dead_temporaries(folder) == []


# --- layer sizes beyond the memory ---------------------------------------------------------


def test_the_memory_of_an_mlp_run_is_counted_from_its_layers():
    config = TrainConfig(sizes=[784, 100, 10], batch_size=50)
    n_params = 784 * 100 + 100 + 100 * 10 + 10
    activations = 2 * 50 * (784 + 100 + 10)
    assert mlp_bytes(config, 50) == 4 * (2 * n_params + activations)  # weights, gradients
    adam = config.replace(optimizer="adam", dtype="float64")
    assert mlp_bytes(adam, 50) == 8 * (4 * n_params + activations)  # and two moments
    check_memory(config, 50)  # fits


def test_layer_sizes_beyond_the_memory_are_a_config_error_before_anything_starts(tmp_path,
                                                                                   capsys):
    def needed(batch_size: int) -> int:  # float32 weights and gradients, and activations
        return 4 * (2 * (784 * 10**10 + 10**10 + 10**11 + 10) + 2 * batch_size * (794 + 10**10))

    with pytest.raises(ConfigError) as raised:
        check_memory(TrainConfig(sizes=[784, 10**10, 10]), 128)
    assert str(raised.value).startswith(
        f"TrainConfig.sizes: [784, 10000000000, 10] need at least {needed(128):,} bytes (")
    spec = {**SPEC, "base": {**SPEC["base"]}, "grid": {"sizes": [[784, 8, 10],
                                                                [784, 10**10, 10]]}}
    del spec["base"]["sizes"]
    path = tmp_path / "s.toml"
    path.write_text(StudySpec.from_dict(spec).to_toml())
    before = tree(tmp_path)
    error = refused_in_process(["run", str(path), "--results", str(tmp_path / "results")],
                               capsys)
    assert error.startswith("grid point {'sizes': [784, 10000000000, 10]}: TrainConfig.sizes: "
                            f"[784, 10000000000, 10] need at least {needed(50):,} bytes")
    assert tree(tmp_path) == before
    error = refused_in_process(["train", "--preset", "seed-000", "--set",
                                f"sizes=[784,{10**10},10]"], capsys)
    assert error.startswith("--set sizes: [784, 10000000000, 10] need at least ")
