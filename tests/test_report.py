"""The report of a small real study: every figure written, embedded and not blank; the
numbers on the page are the analyses' own; a browser renders it."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from html import escape, unescape

import numpy as np
import pytest
from matplotlib import image as mpimg
from PIL import Image
from scipy import stats

from nnlab import analysis
from nnlab.cli import main
from nnlab.report import write_report
from nnlab.report.html import provenance_html
from nnlab.study import Study
from tests.browser import chromium, ink_fraction, screenshot

RESAMPLES = 200


def tiny_study(name: str) -> dict:
    """784-8-10 nets for 30 or 60 steps of 50 images (10 steps an epoch) on an MNIST subset,
    evaluated at every epoch: eta x n_steps x noise, 3 seeds (36 runs, a few seconds)."""
    return {"study": {"name": name, "replicates": 3},
            "base": {"sizes": [784, 8, 10], "batch_size": 50, "eval_steps": [10, 20, 30]},
            "grid": {"eta": [0.1, 0.5, 2.0], "n_steps": [30, 60], "noise": ["none", "grad"]},
            "data": {"train_size": 500, "val_size": 200, "test_size": 200}}


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """(study, path of report.html, the page's text, what `nnlab report` printed) for the
    tiny study, reported by the command a person types."""
    study = Study(tiny_study("report"), results=tmp_path_factory.mktemp("results"))
    study.run(n_jobs=2, progress=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["report", str(study.folder), "--resamples", str(RESAMPLES)]) == 0
    report = study.folder / "report.html"
    return study, report, report.read_text(), printed.getvalue()


def section_text(html: str, key: str) -> str:
    """The unescaped text of the page's section `key`."""
    match = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    assert match, f"no section {key}"
    return unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def test_the_page_embeds_every_figure_file_and_each_decodes_and_is_not_blank(reported):
    study, report, html, _ = reported
    folder = study.folder
    files = {p.relative_to(folder).as_posix() for p in (folder / "figures").iterdir()}
    images = re.findall(r'<img src="data:(image/\w+);base64,([^"]+)"[^>]*data-file="([^"]+)"',
                        html)
    assert {file for _, _, file in images} == files
    assert {"figures/curves.png", "figures/eta_curves.png", "figures/normality.png",
            "figures/variance.png", "figures/noise_grad.png", "figures/reliability.png",
            "figures/confusion.png", "figures/gallery.png", "figures/overfit.png",
            "figures/lr_epochs_heatmap.png", "figures/lr_epochs.gif",
            "figures/takeoff.png"} <= files
    epochs = json.loads((folder / "report.json").read_text())["sections"]["lr_epochs"]
    n_epochs = len(next(iter(epochs["test_acc"].values())))
    for media_type, encoded, file in images:
        data = base64.b64decode(encoded)
        assert data == (folder / file).read_bytes()  # the page holds the file itself
        if media_type == "image/png":
            pixels = mpimg.imread(io.BytesIO(data), format="png")[..., :3]
            assert min(pixels.shape[:2]) >= 400, file
            assert (pixels < 0.9).any(axis=-1).mean() > 0.01, f"{file} is blank"
        else:
            gif = Image.open(io.BytesIO(data))
            assert gif.n_frames == n_epochs >= 3  # one frame per evaluated epoch
            frames = [np.asarray(gif.seek(i) or gif.convert("L")) for i in range(n_epochs)]
            assert all(np.ptp(frame) > 100 for frame in frames)
            assert not np.array_equal(frames[0], frames[-1])
    assert "http://" not in html and "https://" not in html  # nothing fetched to view it
    assert 'href="figures/curves.png"' in html


def test_only_the_analyses_that_apply_are_shown_and_the_others_say_why(reported):
    _, _, html, _ = reported
    sections = re.findall(r'<section id="([a-z_-]+)">', html)
    assert sections == ["study", "overview", "curves", "eta_best", "takeoff", "overfit",
                        "lr_epochs", "normality", "variance", "noise", "errors", "gallery",
                        "not-shown", "provenance"]
    assert "not an all-sigmoid MLP" in section_text(html, "not-shown")  # the inverse query


def test_the_numbers_shown_are_the_analyses_results(reported):
    study, report, html, _ = reported
    trials = study.trials()
    complete = trials[trials["state"] == "COMPLETE"]
    options = {"n_resamples": RESAMPLES, "seed": 0, "confidence": 0.95}

    # the best configuration (ranked on val_acc) with the t interval of its seed mean
    means = complete.groupby(["eta", "n_steps", "noise"])["val_acc"].mean()
    eta, n_steps, noise = means.idxmax()
    best = complete[(complete["eta"] == eta) & (complete["n_steps"] == n_steps)
                    & (complete["noise"] == noise)]
    values = best["val_acc"].to_numpy()
    half = stats.t.ppf(0.975, len(values) - 1) * stats.sem(values)
    overview = section_text(html, "overview")
    assert (f"Best configuration (on val_acc): eta={eta} n_steps={n_steps} noise={noise} — "
            f"val_acc {values.mean():.4f} [{values.mean() - half:.4f}, "
            f"{values.mean() + half:.4f}]") in overview
    assert "n=3 seeds" in overview

    # eta_best for the best noise level: the page shows the analysis' own summary
    result = analysis.eta_best(complete[complete["noise"] == noise], "n_steps", "eta",
                               "val_acc", stalled_at=0.2, small_sample=True, **options)
    assert escape(result.summary()) in html
    for row in result.table.itertuples():
        assert f"{row.eta_best:.3g} [{row.low:.3g}, {row.high:.3g}]" in section_text(
            html, "eta_best")

    # noise against none, in the best configuration's group: the same seeds, paired
    group = complete[(complete["eta"] == eta) & (complete["n_steps"] == n_steps)]
    comparison = analysis.compare_variance_by(group, "noise", "grad", "none", paired=True,
                                              **options)
    assert escape(comparison.summary()) in html

    # errors of the best configuration pooled over its seeds, intervals over runs x images
    predictions = study.predictions(best["trial"].tolist())
    errors = analysis.error_analysis(predictions, unit="run x image", **options)
    assert escape(errors.summary()) in html
    assert "runs and test images (two-way bootstrap)" in section_text(html, "errors")
    data = json.loads((study.folder / "report.json").read_text())
    assert data["sections"]["errors"]["error_analysis"]["n_wrong"] == errors.n_wrong
    assert data["sections"]["errors"]["error_analysis"]["confusion"] == errors.confusion.tolist()

    # normality of the best configuration's test accuracy
    normal = analysis.normality(best["test_acc"].to_numpy(), name="test_acc", seed=0)
    assert escape(normal.summary()) in html


def test_the_report_command_prints_where_it_wrote_and_refuses_a_folder_without_a_study(
        reported, capsys, tmp_path):
    _, report, _, printed = reported
    assert printed == f"report: {report} (figures in {report.parent / 'figures'})\n"
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a study results folder" in error
    assert main(["report", str(report.parent), "--resamples", "10"]) == 2
    assert capsys.readouterr().err == ("nnlab: error: --resamples: expected an integer >= 100, "
                                       "got 10\n")


def test_a_study_without_a_complete_trial_gets_a_page_that_says_so(tmp_path):
    spec = {"study": {"name": "failed", "replicates": 2},
            "base": {"preset": "cnn", "layers": f"dense{10**12}",  # too big: each run fails
                     "optimizer": "sgd", "schedule": "constant", "n_steps": 5, "batch_size": 50},
            "data": {"train_size": 100, "val_size": 100, "test_size": 100}}
    study = Study(spec, results=tmp_path)
    study.run(n_jobs=2, progress=False)
    html = write_report(study.folder, n_resamples=RESAMPLES).read_text()
    overview = section_text(html, "overview")
    assert "0 of 2 planned runs complete" in overview and "; 2 failed" in overview
    assert "No trial is complete yet" in overview
    assert "no trial is complete yet" in section_text(html, "not-shown")
    assert not list((study.folder / "figures").iterdir())


@pytest.mark.integration
@pytest.mark.skipif(chromium() is None, reason="no Chromium installed (Debian package "
                    "`chromium`; CI installs it)")
def test_a_browser_renders_the_report_with_text_and_figures(reported, tmp_path):
    _, report, _, _ = reported
    shot = screenshot(report.as_uri(), tmp_path / "report.png", height=2400, wait_ms=1000)
    assert ink_fraction(shot) > 0.03
    pixels = mpimg.imread(shot)[..., :3]
    lower = pixels[1400:]  # below the contents and the study facts: tables and figures
    assert np.ptp(lower) > 0.5 and (np.abs(lower - lower[0, 0]).sum(axis=-1) > 0.1).mean() > 0.03


def test_provenance_shows_a_hand_edited_manifest_instead_of_failing():
    """A manifest whose invocation fields have the wrong types (edited by hand) made the
    whole report fail with TypeError: can only join an iterable."""
    html = provenance_html({"study": "x", "storage": "optuna.journal", "invocations": [
        {"command": 5, "blas": 3, "packages": "numpy", "host": "h", "git_commit": "abc"},
        {"command": ["nnlab", "run", "x.toml"], "blas": [{"version": "0.3"}, "?"],
         "packages": {"numpy": "2.4"}}]})
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    assert "nnlab run x.toml" in text and "abc" in text
    assert re.search(r"BLAS\s+None 0\.3 \(None threads, None\)\s+numpy\s+2\.4", text)
