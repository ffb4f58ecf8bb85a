"""analysis/generalise.py: finding 1's analysis of one sweep of learning rates
(`common.eta_best_fits`, shared with analysis/eta_vs_n.py) tells a sweep whose eta_best
falls as N^-1 past a breakpoint from one whose eta_best stays flat (simulated, known
answers); each workload's committed findings judge every prediction its specs declared
and set the other workload's verdicts beside its own; a workload's predictions are listed
as declared while its studies have not run, and judged on small real studies of the wide
specs' shape (a 784-32-10 relu network on an MNIST subset) with the statistics computed
directly from their runs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from nnlab.errors import NNLabError
from nnlab.study import Study
from nnlab.study.spec import StudySpec
from tests.simulated_eta import broken, eta_trials

ROOT = Path(__file__).resolve().parent.parent
FINDINGS = ROOT / "results" / "digits-eta-vs-n"
SPECS = ("digits-eta-vs-n", "digits-restarts")
WIDE_SPECS = ("wide-eta-vs-n", "wide-restarts")
LENGTHS = np.array([32, 56, 100, 178, 316, 562, 1000, 1778, 3162, 5623, 10000, 17783, 31623,
                    56234, 100000])


@pytest.fixture
def common(monkeypatch):
    """analysis/ on sys.path, as the scripts run (`python analysis/generalise.py`)."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import common

    return common


def sweep(truth, seed: int = 0):
    """A simulated study of 11 etas (1/64..16, 16 stalls) x 10 seeds at LENGTHS."""
    runs = eta_trials(np.random.default_rng(seed), LENGTHS, truth)
    return runs.assign(trial=np.arange(len(runs)))


@pytest.mark.slow
def test_eta_best_fits_recovers_a_fall_as_1_over_n_past_the_breakpoint(common):
    found = common.eta_best_fits(sweep(broken(plateau=3.0, n_break=3000.0, b=1.0)))
    tail, breakpoint = found["tail"].exponent, found["broken"].breakpoint
    assert tail.low < 1.0 < tail.high and tail.high - tail.low < 0.4
    assert breakpoint.low < 3000 < breakpoint.high
    assert found["tail_mask"].sum() >= 4  # the held-out check and the sensitivity ran
    assert {"extrapolation", "sensitivity"} <= set(found)


@pytest.mark.slow
def test_eta_best_fits_finds_no_fall_where_eta_best_stays_at_the_plateau(common):
    """The outcome the digits pilot suggested: eta_best flat at every N. The power law
    past the fitted breakpoint then excludes b = 1 (so a prediction b in [0.8, 1.2]
    fails) and is near 0; its interval is too narrow to hold 0 reliably (the breakpoint is
    chosen where the noise bends the curve: -0.04 [-0.07, -0.01] in this simulation)."""
    found = common.eta_best_fits(sweep(lambda n: np.full(np.shape(n), 4.0), seed=1))
    tail = found["tail"].exponent
    assert tail.high < 0.8
    assert abs(tail.value) < 0.1


def declared_hypotheses(specs: tuple[str, ...]) -> list:
    """The hypotheses studies/<spec>.toml declared, for each of `specs` in turn."""
    return [h for name in specs
            for h in StudySpec.from_toml(ROOT / "studies" / f"{name}.toml").hypotheses]


@pytest.mark.parametrize(("folder", "specs"), [("digits-eta-vs-n", SPECS),
                                               ("wide-eta-vs-n", WIDE_SPECS)])
def test_every_declared_prediction_of_a_workload_is_judged_in_its_findings(folder, specs):
    judged = json.loads((ROOT / "results" / folder / "findings.json").read_text())
    records = {h["name"]: h for part in ("eta", "restarts") for h in judged[part]["hypotheses"]}
    declared = declared_hypotheses(specs)
    assert sorted(records) == sorted(h.name for h in declared)
    for h in declared:
        record = records[h.name]
        assert record["prediction"] == h.prediction
        if record["verdict"] == "not evaluated":  # the declared fit could not be made
            assert record["estimate"] is None and "not fitted" in record["reason"]
        else:
            assert record["verdict"] in ("held", "failed", "inconclusive")
            assert record["estimate"]["n"] >= 2


@pytest.mark.parametrize(("folder", "other", "title", "specs"), [
    ("digits-eta-vs-n", "wide", "A wider network", WIDE_SPECS),
    ("wide-eta-vs-n", "digits", "The 8x8 digits", SPECS)])
def test_each_workload_s_findings_set_the_other_s_verdicts_beside_its_own(folder, other,
                                                                           title, specs):
    """Both workloads have run: each findings file's table of which findings carry over
    holds, in the other workload's column, every prediction its specs declared, with the
    estimate and verdict its own findings give."""
    found = json.loads((ROOT / "results" / folder / "findings.json").read_text())
    assert [o["workload"] for o in found["others"]] == [other]
    assert found["others"][0]["run"] == dict.fromkeys(specs, True)
    records = found["others"][0]["hypotheses"]
    own = json.loads((ROOT / "results" / specs[0] / "findings.json").read_text())
    assert records == own["eta"]["hypotheses"] + own["restarts"]["hypotheses"]
    text = (ROOT / "results" / folder / "findings.md").read_text()
    assert "not evaluated" not in text and "not run yet" not in text
    section = text.split(f"\n## {title}: which findings carry over\n\n", 1)[1]
    table = section.split("\n\n")[1]  # after the paragraph that introduces it
    header, _, *rows = table.splitlines()
    column = header.strip("| ").split(" | ").index(other)
    cells = [row.strip("| ").split(" | ")[column] for row in rows]
    assert sorted(h["name"] for h in records) == sorted(
        h.name for h in declared_hypotheses(specs))
    for h in records:
        cell = next(c for c in cells if f"{h['name']} ({h['prediction']})" in c)
        assert f"{h['name']} ({h['prediction']}) **{h['verdict']}**" in cell
        estimate = h["estimate"]
        assert estimate is not None and estimate["n"] >= 5


def small(name: str, base: dict, replicates: int) -> dict:
    """studies/<name>.toml made small, its hypotheses as declared: a 784-32-10 relu network
    (He init, as the spec's 784-256-10) on the first 2000/1000/1000 MNIST images, `base`'s
    lengths, `replicates` seeds."""
    values = tomllib.loads((ROOT / "studies" / f"{name}.toml").read_text())
    values["study"]["replicates"] = replicates
    values["base"] |= {"sizes": [784, 32, 10], **base}
    values["data"] = {"train_size": 2000, "val_size": 1000, "test_size": 1000}
    return values


SWEEP_LENGTHS = [0, 10, 18, 32, 56, 100, 178, 316, 562]
SHORTER, LONGEST = 100, 562  # the small restarts' std ratio: N = 562 over N = 100


@pytest.fixture(scope="module")
def wide_results(tmp_path_factory) -> Path:
    """A results folder with small wide-eta-vs-n (7 etas x 3 seeds) and wide-restarts (12
    seeds) run by `nnlab.study`, and MNIST's findings.json (eta-vs-n's, restarts')."""
    results = tmp_path_factory.mktemp("results")
    sweep = small("wide-eta-vs-n", {"n_steps": LONGEST, "eval_steps": SWEEP_LENGTHS}, 3)
    sweep["grid"]["eta"] = [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0]
    restarts = small("wide-restarts", {"n_steps": LONGEST,  # the floor fit: 4 N >= 316
                                       "eval_steps": [0, SHORTER, 316, 400, 500, LONGEST]}, 12)
    for values in (sweep, restarts):
        Study(values, results=results).run(n_jobs=2, progress=False)
    for name in ("eta-vs-n", "restarts"):
        (results / name).mkdir()
        shutil.copy(ROOT / "results" / name / "findings.json", results / name)
    return results


@pytest.fixture
def script(monkeypatch):
    """analysis/generalise.py, imported as the scripts run (analysis/ on sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import generalise

    return generalise


def reading(monkeypatch, script, results: Path) -> None:
    """The scripts read and write `results` (as $NNLAB_RESULTS makes them)."""
    import common

    monkeypatch.setattr(common, "RESULTS", results)
    monkeypatch.setattr(script, "RESULTS", results)


def small_wide(script):
    """WIDE with the small studies' lengths: the restarts' shorter one, the take-off."""
    return dataclasses.replace(script.WIDE, flat_from=SHORTER, taken_off=SHORTER)


@pytest.mark.slow
def test_the_wide_predictions_are_judged_with_the_statistics_of_the_runs(script, monkeypatch,
                                                                         wide_results):
    """On small real studies of the wide specs' shape every declared prediction is judged;
    the std ratio is the ratio of the stds of test_acc over seeds at the two lengths, read
    from the runs' curves, the report's std the trials' final test_acc's, the test-set
    split's total variance their variance, and b the power law past the breakpoint."""
    reading(monkeypatch, script, wide_results)
    import common

    found = script.parts(small_wide(script))
    assert found["run"] == {name: True for name in WIDE_SPECS}
    records = {h["name"]: h for h in found["hypotheses"]}
    assert set(records) == {"b-near-1", "b-positive", "spread-flat", "spread-smaller",
                            "test-set-dominates"}
    for h in records.values():
        assert h["verdict"] in ("held", "failed", "inconclusive"), (h["name"], h["reason"])
    restarts = Study.load(wide_results / "wide-restarts")
    curves = restarts.curves()
    std = {n: curves[curves["step"] == n]["test_acc"].std(ddof=1) for n in (SHORTER, LONGEST)}
    ratio = records["spread-flat"]["estimate"]
    assert ratio["value"] == pytest.approx(std[LONGEST] / std[SHORTER])
    assert ratio["n"] == 12 and ratio["low"] < ratio["value"] < ratio["high"]
    final = restarts.trials()["test_acc"]
    assert records["spread-smaller"]["estimate"]["value"] == pytest.approx(final.std(ddof=1))
    assert final.std(ddof=1) == pytest.approx(std[LONGEST])
    split = found["restarts"]["split"]
    assert split.n_runs == 12 and split.n_test == 1000
    assert split.observed.value == pytest.approx(final.var(ddof=1))
    share = records["test-set-dominates"]["estimate"]
    assert share["value"] == pytest.approx(split.test_set.value / split.observed.value)
    sweep = Study.load(wide_results / "wide-eta-vs-n")
    tail = common.eta_best_fits(common.complete_seeds(sweep)[0])["tail"]
    assert records["b-near-1"]["estimate"]["value"] == pytest.approx(tail.exponent.value)
    assert records["b-near-1"]["estimate"]["n"] == 3


@pytest.mark.slow
def test_the_script_writes_the_wide_findings_with_the_digits_as_declared(
        script, monkeypatch, wide_results, capsys):
    """With the wide studies run and the digits' absent, the script writes the wide
    findings (findings.md a view of findings.json, the figure), lists the digits'
    predictions as declared, not run yet, and says so in one line on stderr; given the
    digits' judged predictions, the findings give the table of which findings carry over."""
    reading(monkeypatch, script, wide_results)
    small = small_wide(script)
    monkeypatch.setattr(script, "WORKLOADS", (script.DIGITS, small))
    monkeypatch.setattr(script, "WORKLOAD", {"digits": script.DIGITS, "wide": small})
    script.main()
    err = capsys.readouterr().err
    assert err == (f"generalise.py: digits-eta-vs-n, digits-restarts not run yet (no folder "
                   f"in {wide_results}): the digits workload's predictions are listed as declared, "
                   "not evaluated\n")
    assert not (wide_results / "digits-eta-vs-n").exists()
    folder = wide_results / "wide-eta-vs-n"
    numbers = json.loads((folder / "findings.json").read_text())
    text = (folder / "findings.md").read_text()
    assert script.render(numbers).strip() == text.strip()
    assert (folder / "findings" / "generalise.png").stat().st_size > 0
    assert numbers["workload"] == "wide" and numbers["summary"]["n_hypotheses"] == 5
    assert numbers["restarts"]["flat_from"] == SHORTER
    assert "## The 8x8 digits: declared, digits-eta-vs-n, digits-restarts not run yet" in text
    assert text.count("not evaluated") == 6  # the digits' six predictions, once each
    digits = json.loads((FINDINGS / "findings.json").read_text())
    judged = [*digits["eta"]["hypotheses"], *digits["restarts"]["hypotheses"]]
    numbers["others"] = [{"workload": "digits", "hypotheses": judged,
                          "run": {name: True for name in SPECS}}]
    table = script.render(numbers).split("## The 8x8 digits: which findings carry over")[1]
    rows = [line for line in table.split("\n\n")[2].splitlines()]
    assert rows[0] == "| finding | quantity | wide | digits |"
    assert len(rows) == 2 + len(script.CARRY_OVER)
    assert "b-near-1 (wide.b = 1 ± 0.2 (in [0.8, 1.2]))" in rows[2]
    assert "b-near-1 (digits.b = 1 ± 0.2 (in [0.8, 1.2])) **failed**" in rows[2]
    assert rows[3].split(" | ")[2] == "not declared"  # the wide specs: no breakpoint


def test_a_restarts_study_not_evaluated_at_the_ratio_s_shorter_length_is_an_error(
        script, monkeypatch, tmp_path):
    """The wide spec's ratio is over N = 17783: restarts without that length are refused
    in one line naming the study and the lengths it has."""
    values = small("wide-restarts", {"n_steps": 20, "eval_steps": [0, 10, 20]}, 2)
    study = Study(values, results=tmp_path)
    study.run(n_jobs=1, progress=False)
    with pytest.raises(NNLabError, match=r"^wide-restarts: expected runs evaluated at N = "
                                         r"17783 \(the std ratio's shorter length\), got "
                                         r"N = 10, 20$"):
        script.restarts_part(script.WIDE, Study.load(study.folder))


def test_without_any_study_the_script_writes_nothing_and_says_what_has_not_run(tmp_path):
    """Each workload whose studies have no folder: one line on stderr; no findings."""
    results = tmp_path / "results"
    for name in ("eta-vs-n", "restarts"):
        (results / name).mkdir(parents=True)
        shutil.copy(ROOT / "results" / name / "findings.json", results / name)
    run = subprocess.run([sys.executable, "analysis/generalise.py"], cwd=ROOT, text=True,
                         capture_output=True, env={**os.environ, "NNLAB_RESULTS": str(results)})
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [
        f"generalise.py: {a}, {b} not run yet (no folder in {results}): the {w} workload's "
        "predictions are listed as declared, not evaluated"
        for w, (a, b) in (("digits", SPECS), ("wide", WIDE_SPECS))]
    assert sorted(p.name for p in results.iterdir()) == ["eta-vs-n", "restarts"]


def test_a_workload_without_its_study_folders_lists_its_declared_predictions(script,
                                                                             monkeypatch,
                                                                             tmp_path):
    """The not-run path itself (no committed file read): no wide folder in results/, so
    no part is computed and each prediction the wide specs declared is "not evaluated",
    with the study that has not run as the reason."""
    reading(monkeypatch, script, tmp_path)
    found = script.parts(script.WIDE)
    assert found["eta"] is None and found["restarts"] is None
    assert found["run"] == {name: False for name in WIDE_SPECS}
    assert [(h["name"], h["verdict"], h["reason"]) for h in found["hypotheses"]] == [
        ("b-near-1", "not evaluated", "wide-eta-vs-n has not run yet"),
        ("b-positive", "not evaluated", "wide-eta-vs-n has not run yet"),
        ("spread-flat", "not evaluated", "wide-restarts has not run yet"),
        ("spread-smaller", "not evaluated", "wide-restarts has not run yet"),
        ("test-set-dominates", "not evaluated", "wide-restarts has not run yet")]
