"""Runs read at their evaluation steps: the record at step N of a long run is a run of
length N bit for bit, a schedule that depends on the run's length is refused, and the
report compares eta_best and the spread of restarts across those lengths."""

from __future__ import annotations

import json
import re
from html import unescape

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from nnlab.errors import NNLabError
from nnlab.report import write_report
from nnlab.report.build import load_results
from nnlab.report.sections import runs_per_length
from nnlab.study import Study, StudySpec
from nnlab.study.lengths import prefix_lengths, prefix_refusal, runs_by_length
from nnlab.study.runner import BLAS_THREADS
from nnlab.train import train

EVAL_STEPS = [0, 6, 12, 24, 48]
DATA = {"train_size": 500, "val_size": 200, "test_size": 200}


def tiny_spec(**base) -> dict:
    """784-8-10 sigmoid nets, batches of 50 on an MNIST subset, 48 steps evaluated at
    6, 12, 24 and 48; eta = 50 diverges at step 12 (for both seeds)."""
    return {"study": {"name": "prefix", "replicates": 2},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 48,
                     "eval_steps": EVAL_STEPS, **base},
            "grid": {"eta": [0.5, 2.0, 8.0, 50.0]}, "data": DATA}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Study:
    study = Study(tiny_spec(), results=tmp_path_factory.mktemp("results"))
    study.run(n_jobs=1, progress=False)
    return study


def test_a_run_read_at_step_n_is_a_run_of_length_n_bit_for_bit(study):
    spec = study.spec
    runs = runs_by_length(spec, study.trials(), study.curves())
    assert sorted(runs["n_steps"].unique()) == [6, 12, 24, 48]
    assert len(runs) == 4 * spec.n_planned
    data = spec.data.load()
    trials = study.trials().set_index("trial")
    checked_diverged = 0
    for n in (6, 24):
        for row in runs[runs["n_steps"] == n].itertuples():
            params = {"eta": trials.loc[row.trial, "eta"]}
            config = spec.config_for(params, int(row.seed)).replace(
                n_steps=n, eval_steps=[s for s in EVAL_STEPS if s <= n])
            with threadpool_limits(limits=BLAS_THREADS):  # as in the study's workers (a
                alone = train(config, data)  # GEMM split over threads sums in another order)
            assert row.status == alone.status
            assert row.steps_run == alone.metrics["n_steps"]
            for metric in ("val_acc", "test_acc", "train_loss", "val_loss"):
                assert getattr(row, metric) == alone.metrics[metric], (row.trial, n, metric)
            checked_diverged += alone.status == "diverged"
    assert checked_diverged == 2  # eta 50 at N = 24: both seeds diverged at step 12
    at_six = runs[(runs["n_steps"] == 6) & (runs["eta"] == 50.0)]
    assert (at_six["status"] == "ok").all()  # before step 12 it is an ordinary run


def test_a_schedule_that_depends_on_the_run_length_is_refused():
    cosine = StudySpec.from_dict(tiny_spec(schedule="cosine"))
    assert "schedule: cosine" in prefix_refusal(cosine)
    with pytest.raises(NNLabError, match="cannot read its runs at their eval_steps"):
        prefix_lengths(cosine)
    # rightly: cosine's run of 48 steps at step 24 is not a cosine run of 24 steps
    data = cosine.data.load()
    config = cosine.config_for({"eta": 2.0}, 0)
    long = train(config, data).curve.set_index("step")
    short = train(config.replace(n_steps=24, eval_steps=[0, 6, 12, 24]), data)
    assert long.loc[24, "val_loss"] != short.metrics["val_loss"]

    mixed = StudySpec.from_dict({**tiny_spec(), "grid": {"schedule": ["constant", "cosine"]}})
    assert "schedule: cosine" in prefix_refusal(mixed)
    assert prefix_lengths(StudySpec.from_dict(tiny_spec(schedule="step"))) == [6, 12, 24, 48]
    by_n_steps = {**tiny_spec(), "grid": {"n_steps": [24, 48]}}
    del by_n_steps["base"]["n_steps"]
    assert prefix_refusal(StudySpec.from_dict(by_n_steps)).startswith("n_steps is varied")
    log_spaced = tiny_spec()
    del log_spaced["base"]["eval_steps"]
    assert "base.eval_steps" in prefix_refusal(StudySpec.from_dict(log_spaced))


def test_the_report_compares_eta_best_and_the_spread_at_every_evaluated_length(study):
    write_report(study.folder, train=False, n_resamples=200)
    report = json.loads((study.folder / "report.json").read_text())["sections"]
    (eta_best,) = report["eta_best"]["eta_best"]
    assert [row["n_steps"] for row in eta_best["table"]] == [6, 12, 24, 48]
    n_diverged = {row["n_steps"]: row["n_diverged"] for row in eta_best["table"]}
    assert n_diverged == {6: 0, 12: 2, 24: 2, 48: 2}
    # several lengths: the power law is fitted, or the page says why not (lengths whose
    # optimum sits at a grid edge or beside a diverged cell too often are left out)
    page = (study.folder / "report.html").read_text()
    assert report["eta_best"].get("power_law") or "no power-law fit" in page
    variance = {item["group"]: item["table"] for item in report["variance"]["variance_vs_n"]}
    assert [row["n_steps"] for row in variance["eta=2.0"]] == [6, 12, 24, 48]
    assert "eta=50.0" not in variance  # diverged from step 12 on: no spread to measure

    # the numbers are those of the per-length runs, and the page says where they come from
    lengths = runs_per_length(load_results(study))
    assert lengths.from_curves
    runs = lengths.frame[(lengths.frame["eta"] == 2.0) & (lengths.frame["status"] == "ok")]
    std = runs.groupby("n_steps")["test_acc"].std()
    np.testing.assert_allclose([row["std"] for row in variance["eta=2.0"]], std, rtol=1e-12)
    html = (study.folder / "report.html").read_text()
    for key in ("eta_best", "variance"):
        (section,) = re.findall(rf'<section id="{key}">(.*?)</section>', html, re.S)
        assert ("The training lengths N = 6, 12, 24, 48 are read from the curves: one run of "
                "48 steps per (configuration, seed)") in unescape(section)
