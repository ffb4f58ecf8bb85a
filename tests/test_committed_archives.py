"""Every committed study reopens from a clone: its archive holds every complete run, the
read-only commands work on its folder without an Optuna storage and change nothing there,
and its findings re-derive from the archives byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from nnlab.cli import main
from nnlab.report.dashboard import free_port
from nnlab.study import Study
from nnlab.study import archive as study_archive
from tests.test_dashboard import Dashboard, get_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def committed_studies() -> list[str]:
    """The studies of results/ that git tracks: not one run here into results/ (`make
    demo`'s, which .gitignore keeps local, with a report made under this host's kernels).
    Outside a git checkout, every folder with a trials.parquet."""
    try:
        tracked = subprocess.run(["git", "ls-files", "--", "results/*/trials.parquet"],
                                 cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return sorted(path.parent.name for path in RESULTS.glob("*/trials.parquet"))
    return sorted(Path(path).parent.name for path in tracked.split())


STUDIES = committed_studies()
# committed studies without an archive: none (a study committed without one, or an archive
# lost, fails the test below)
WITHOUT_ARCHIVE: set[str] = set()
ARCHIVED = [name for name in STUDIES if name not in WITHOUT_ARCHIVE]
# the AMD EPYC's kernels, under which the committed findings were computed (Makefile)
EPYC_KERNELS = {"OPENBLAS_CORETYPE": "Haswell",
                "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
SMALL = "restarts"  # the fast reopening test's study: one configuration, 100 runs
# each analysis script: the studies it reads (those without an archive through their
# trials.parquet and report.json only), and the folders its findings go to
SCRIPTS = {
    "crossed_seeds": (("crossed-seeds", "crossed-seeds-best", "crossed-seeds-long", "restarts",
                       "restarts-init", "restarts-order", "restarts-long", "restarts-init-long",
                       "restarts-order-long"),
                      ("crossed-seeds",)),
    "errors": (("restarts", "eta-vs-n", "restarts-long", "noise-grad", "noise-weight", "cnn"),
               ("errors",)),
    "eta_vs_n": (("eta-vs-n", "eta-vs-n-long", "eta-vs-n-b25", "eta-vs-n-b25-long",
                  "eta-vs-n-b400", "classic-seed000-eta"), ("eta-vs-n",)),
    "noise": (("noise-grad", "noise-weight", "noise-weight-strong", "restarts",
               "noise-grad-long", "noise-weight-long", "restarts-long"), ("noise-grad",)),
    "restarts": (("restarts", "restarts-long", "restarts-init", "restarts-init-long",
                  "restarts-order", "restarts-order-long"), ("restarts",)),
    "tstar": (("eta-vs-n", "eta-vs-n-long", "eta-vs-n-wd", "eta-vs-n-cosine"),
              ("eta-vs-n-wd",)),
    "generalise": (("digits-eta-vs-n", "digits-restarts", "eta-vs-n", "restarts",
                    "wide-eta-vs-n", "wide-restarts"), ("digits-eta-vs-n", "wide-eta-vs-n")),
    "noise_scale": (("noise-scale", "eta-vs-n", "eta-vs-n-long", "eta-vs-n-b25",
                     "eta-vs-n-b25-long", "eta-vs-n-b400", "eta-vs-n-b1600"),
                    ("noise-scale",)),
    "schedules": (("schedules", "schedules-constant", "schedules-inv-t", "schedules-anneal-1e3",
                   "schedules-anneal-1e4", "schedules-anneal-1e5"), ("schedules",)),
}
# the studies each batch size of eta_vs_n.py reads
BATCH_STUDIES = {100: ("eta-vs-n", "eta-vs-n-long"), 25: ("eta-vs-n-b25", "eta-vs-n-b25-long")}


def has_archive(name: str) -> bool:
    return study_archive.archive_path(RESULTS / name, "curves").is_file()


def committed_copy(name: str, results: Path) -> Path:
    """results/<name> as a clone has it (without what .gitignore keeps local: the storage,
    the per-trial files, report.html), copied to `results`/<name>."""
    local = shutil.ignore_patterns("curves", "predictions", "probabilities", "optuna.journal*",
                                   "*.lock", "report.html")
    return Path(shutil.copytree(RESULTS / name, results / name, ignore=local))


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_studies_without_an_archive_are_the_expected_ones():
    assert {name for name in STUDIES if not has_archive(name)} == WITHOUT_ARCHIVE


@pytest.mark.parametrize("name", ARCHIVED)
def test_an_archive_holds_every_complete_run_and_its_final_metrics(name):
    study = Study.load(RESULTS / name)
    trials = pd.read_parquet(study.store.trials_path)
    complete = trials[trials["state"] == "COMPLETE"].set_index("trial")
    assert study.store.archived("curves") == set(complete.index)
    chosen = study_archive.selection(study.folder)
    assert study.store.archived("predictions") == set(
        study_archive.predicted_trials(chosen, study.spec, trials))
    last = study.curves(columns=["val_acc", "test_acc"]).groupby("trial").tail(1)
    for metric in ("val_acc", "test_acc"):
        np.testing.assert_array_equal(last[metric], complete[metric].sort_index())


def test_a_committed_study_reopens_without_its_storage_and_reading_changes_nothing(
        tmp_path, capsys):
    folder = committed_copy(SMALL, tmp_path / "results")
    before = hashes(folder)
    assert main(["status", str(folder), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    trials = pd.read_parquet(folder / "trials.parquet")
    assert status["complete"] == (trials["state"] == "COMPLETE").sum()
    assert status["missing_files"] == {}
    study = Study.load(folder)
    assert study.curves()["trial"].nunique() == status["complete"]
    assert study.predictions()["trial"].nunique() == status["complete"]  # one configuration
    dashboard = Dashboard(folder, free_port())
    try:
        (summary,) = get_json(f"{dashboard.base}/api/studies")["study_summaries"]
        assert summary["study_name"] == SMALL
        detail = get_json(f"{dashboard.base}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == len(trials)
    finally:
        code, _, err = dashboard.interrupt()
    assert code in (0, 130) and f"{folder} has no Optuna storage" in err
    assert hashes(folder) == before
    assert main(["report", str(folder), "--no-train", "--resamples", "100"]) == 0
    after = hashes(folder)
    changed = {path for path in before.keys() | after.keys()
               if before.get(path) != after.get(path)}
    assert "report.html" in changed
    assert all(path in ("report.html", "report.json") or path.startswith("figures/")
               for path in changed), changed


# `nnlab report` at a number of BLAS threads (argv[1]): OpenBLAS starts as many as asked,
# whatever the machine's cores (OPENBLAS_NUM_THREADS stops at them)
REPORT_AT_THREADS = """
import sys
from threadpoolctl import threadpool_limits
import nnlab.report.build  # loads numpy's and scipy's BLAS, so that the limit reaches both
from nnlab.cli import main
with threadpool_limits(limits=int(sys.argv[1]), user_api="blas"):
    sys.exit(main(sys.argv[2:]))
"""


def assert_report_re_derives(name: str, tmp_path: Path, threads: int | None = None) -> None:
    """`nnlab report` on a clone of the study (at `threads` BLAS threads; None: the
    machine's default) writes its committed report.json again (all but the time it was
    generated), under the EPYC's kernels (a subprocess: they are chosen when numpy loads)."""
    folder = committed_copy(name, tmp_path / "results")
    out = tmp_path / "report"
    command = ["-m", "nnlab.cli"] if threads is None else ["-c", REPORT_AT_THREADS, str(threads)]
    run = subprocess.run([sys.executable, *command, "-q", "report", str(folder),
                          "--out", str(out)], text=True, capture_output=True,
                         env={**os.environ, **EPYC_KERNELS})
    assert run.returncode == 0, run.stderr
    derived, committed = (json.loads(path.read_text()) for path in
                          (out / "report.json", RESULTS / name / "report.json"))
    assert derived.pop("generated") and committed.pop("generated")
    assert derived == committed


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in ARCHIVED
                                  if (RESULTS / name / "report.json").is_file()])
def test_a_committed_report_re_derives_from_its_archive(tmp_path, name):
    assert_report_re_derives(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 8])
def test_a_committed_report_re_derives_at_any_number_of_blas_threads(tmp_path, threads):
    # classic-epochs has both parts that threaded BLAS moved: the error analysis's two-way
    # intervals (9th digit) and the inverse query's outputs (7th digit, 5 of 10 classes)
    assert_report_re_derives("classic-epochs", tmp_path, threads)


@pytest.mark.slow
def test_the_main_error_findings_re_derive_from_the_restarts_archive(tmp_path):
    """errors.py's numbers of its main prediction set (restarts) in both units and its
    confident errors, from clones of the two studies it requires (the others are left out),
    under the EPYC's kernels (a subprocess: they are chosen when numpy loads)."""
    results = tmp_path / "results"
    for name in ("restarts", "eta-vs-n"):
        committed_copy(name, results)
    code = ("import common, errors\n"
            "sets, missing = errors.prediction_sets()\n"
            "label, main = next(iter(sets.items()))\n"
            "print('=' * 20 + common.findings_json({\n"
            "    'label': label, 'n_sets': len(sets), 'missing': missing,\n"
            "    'numbers': errors.set_numbers(errors.analyse_set(main)),\n"
            "    'confident_errors': errors.confident_errors(main).to_dict(orient='records')}))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "analysis", text=True,
                         capture_output=True,
                         env={**os.environ, **EPYC_KERNELS, "NNLAB_RESULTS": str(results)})
    assert run.returncode == 0, run.stderr
    derived = json.loads(run.stdout.split("=" * 20)[-1])
    committed = json.loads((RESULTS / "errors" / "findings.json").read_text())
    assert derived["label"].startswith("restarts ") and derived["n_sets"] == 2
    assert derived["missing"] == ["restarts-long", "noise-grad", "noise-weight", "cnn"]
    assert derived["numbers"] == committed[derived["label"]]
    assert derived["confident_errors"] == committed["confident_errors"]


@pytest.mark.slow
@pytest.mark.parametrize("batch", list(BATCH_STUDIES))
def test_each_batch_size_s_numbers_re_derive_from_the_archives(tmp_path, batch):
    """eta_vs_n.py's numbers of one batch size, byte for byte, from clones of its studies."""
    results = tmp_path / "results"
    for name in BATCH_STUDIES[batch]:
        committed_copy(name, results)
    code = ("import sys, common, eta_vs_n\n"
            "found = eta_vs_n.analyse(int(sys.argv[1]))\n"
            "print('=' * 20 + common.findings_json(eta_vs_n.numbers_of(found)))")
    run = subprocess.run([sys.executable, "-c", code, str(batch)], cwd=ROOT / "analysis",
                         text=True, capture_output=True,
                         env={**os.environ, **EPYC_KERNELS, "NNLAB_RESULTS": str(results)})
    assert run.returncode == 0, run.stderr
    committed = json.loads((RESULTS / "eta-vs-n" / "findings.json").read_text())
    derived = json.loads(run.stdout.split("=" * 20)[-1])
    assert derived == {key: committed[f"batch_{batch}"][key] for key in derived}


def test_the_batch_400_amendment_quotes_its_spec_header(monkeypatch):
    """The hypotheses eta_vs_n.py judges quote the prediction written into the spec's header
    before the study ran, word for word."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import eta_vs_n

    header = " ".join(line.removeprefix("#").strip() for line in
                      (ROOT / "studies" / "eta-vs-n-b400.toml").read_text().splitlines()
                      if line.startswith("#"))
    assert eta_vs_n.B400_HEADER in header and eta_vs_n.B400_PLATEAU in header
    assert [h.name for h in eta_vs_n.B400_HYPOTHESES] == ["b400-linear-scaling",
                                                         "b400-plateau-below-4x"]


def test_a_script_missing_a_study_s_archive_says_which_file_in_one_line(tmp_path):
    results = tmp_path / "results"
    committed_copy("eta-vs-n", results)
    shutil.rmtree(results / "eta-vs-n" / "archive", ignore_errors=True)
    run = subprocess.run([sys.executable, "analysis/eta_vs_n.py"], cwd=ROOT, text=True,
                         capture_output=True, env={**os.environ, "NNLAB_RESULTS": str(results)})
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"eta_vs_n.py: error: {results}/eta-vs-n/curves: no file "
                                 "for complete trial(s) 0, 1, ")
    assert f"no archive {results}/eta-vs-n/archive/curves.parquet" in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_make_findings_re_derives_every_finding_from_the_archives(tmp_path, script):
    """The script on a clone's results (archives, no per-trial files; the studies without
    an archive through their trials.parquet and the quoted numbers): findings.md and
    findings.json byte for byte, each figure pixel for pixel (PNG metadata may differ)."""
    studies, folders = SCRIPTS[script]
    results = tmp_path / "results"
    for name in {*studies, *folders}:
        committed_copy(name, results)
    # the script's own findings go; the others' findings.json stay (generalise.py reads
    # eta_vs_n.py's and restarts.py's)
    stale = [path for folder in folders for path in (results / folder).glob("findings.*")]
    for path in [*stale, *results.glob("*/findings/*.png")]:
        path.unlink()
    run = subprocess.run([sys.executable, f"analysis/{script}.py"], cwd=ROOT, text=True,
                         capture_output=True,
                         env={**os.environ, **EPYC_KERNELS, "NNLAB_RESULTS": str(results)})
    assert run.returncode == 0, run.stderr
    for folder in folders:
        for name in ("findings.md", "findings.json"):
            assert (results / folder / name).read_bytes() == (RESULTS / folder / name
                                                              ).read_bytes(), f"{folder}/{name}"
    figures = sorted(results.glob("*/findings/*.png"))
    assert figures
    for written in figures:
        committed = RESULTS / written.relative_to(results)
        np.testing.assert_array_equal(imread(written), imread(committed), str(committed))
