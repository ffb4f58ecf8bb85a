"""The question scripts of analysis/: each splits into compute (results -> numbers), render
(numbers -> findings.md, a template filled from findings.json) and one strict JSON writer.
Every committed findings.md renders from its findings.json; every findings.json is strict
JSON; each compute step gives the committed key numbers, checked against the runs' own
records (slow: it reads the committed archives)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import Estimate, Family, HypothesisTest, eta_best
from nnlab.errors import NNLabError
from nnlab.study import Study, StudySpec
from nnlab.study.hypotheses import Estimate as HypothesisEstimate
from nnlab.study.hypotheses import Hypothesis, evaluate, evaluate_all

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
# each script and the results folders its findings go to (generalise.py: one per workload)
SCRIPTS = {"eta_vs_n": ("eta-vs-n",), "restarts": ("restarts",), "noise": ("noise-grad",),
           "errors": ("errors",), "crossed_seeds": ("crossed-seeds",),
           "tstar": ("eta-vs-n-wd",), "generalise": ("digits-eta-vs-n", "wide-eta-vs-n"),
           "noise_scale": ("noise-scale",), "schedules": ("schedules",)}
FINDINGS = [(script, folder) for script, folders in SCRIPTS.items() for folder in folders]


@pytest.fixture
def scripts(monkeypatch):
    """The analysis/ folder on sys.path, as the scripts run (`python analysis/<name>.py`)."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import common

    return common


def committed(folder: str) -> dict:
    return json.loads((RESULTS / folder / "findings.json").read_text())


def refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def test_every_findings_json_is_strict_json():
    paths = sorted(RESULTS.glob("*/findings.json"))
    assert {p.parent.name for p in paths} == {folder for _, folder in FINDINGS}
    for path in paths:
        json.loads(path.read_text(), parse_constant=refuse)  # NaN, Infinity, -Infinity


def test_the_json_writer_writes_nan_and_infinities_as_null_and_refuses_other_objects(scripts):
    numbers = {"a": np.float64("nan"), "b": [np.inf, -np.inf, 1.5, np.int64(3)],
               "c": (np.bool_(True), None, "x"), "d": np.array([0.25, np.nan])}
    text = scripts.findings_json(numbers)
    assert json.loads(text, parse_constant=refuse) == {
        "a": None, "b": [None, None, 1.5, 3], "c": [True, None, "x"], "d": [0.25, None]}
    assert text.endswith("]\n}\n") and text.startswith('{\n "a": null,')
    with pytest.raises(TypeError, match="not JSON-able: Timestamp"):
        scripts.findings_json({"when": pd.Timestamp(0)})
    assert scripts.as_written({"x": (np.float32(0.5), float("nan"))}) == {"x": [0.5, None]}


def test_the_render_helpers_write_what_the_objects_they_stand_for_write(scripts):
    estimate = Estimate(0.123456, 0.1, 0.15)
    for spec, scale, unit in ((".3g", 1, ""), (".1f", 100, "%"), ("+.4f", 1, "")):
        assert scripts.ci(estimate.to_dict(), spec, scale, unit) == estimate.format(
            spec, scale, unit)
    family = Family("q")
    family.add("a", HypothesisTest("t", 1.0, 0.012))
    family.add("b", 3e-320)
    family.add("c", 0.5)
    for name in "abc":
        assert scripts.p_text(family.to_dict(), name) == family.p_text(name)
    records = scripts.claims_table(family, {"a": "A holds", "b": "B holds", "c": "C holds"})
    assert [r["survives"] for r in records] == [True, True, False]
    assert scripts.claims_lines(records).splitlines()[2:] == [
        "| A holds | a | 0.012 | 0.024 | yes |", "| B holds | b | <1e-300 | <1e-300 | yes |",
        "| C holds | c | 0.5 | 0.5 | no |"]


def test_a_verdict_line_gives_the_estimate_or_once_why_there_is_none(scripts):
    """A judged hypothesis reads with its interval (the script's format or the default)
    and verdict; an unjudged one says "not evaluated" once, with the reason."""
    declared = [Hypothesis("share", "interaction_share", "greater_than", 0.5, primary=True,
                           note="most of the variance"),
                Hypothesis("ratio", "eta_ratio", "equals", 1.0, margin=0.5)]
    verdicts = evaluate_all(declared, {"interaction_share": HypothesisEstimate(
        0.64, 0.52, 0.78, "cell", 400)})
    judged, unjudged = (scripts.verdict_line(h) for h in scripts.hypothesis_records(verdicts))
    assert judged == ("- **share** (primary): interaction_share > 0.5; estimate 0.64 "
                      "[0.52, 0.78] (cell, n = 400): **held** (most of the variance).")
    assert unjudged == ("- **ratio** (secondary): eta_ratio = 1 ± 0.5 (in [0.5, 1.5]); "
                        "**not evaluated**: the statistic 'eta_ratio' was not provided "
                        "(an analysis script can provide it).")
    assert unjudged.count("not evaluated") == 1
    record = scripts.hypothesis_records(verdicts)[0]
    assert "estimate +0.64 [+0.52, +0.78] (cell" in scripts.verdict_line(
        record, "+.2f")


def test_the_length_of_a_study_given_in_epochs_is_an_error_naming_it(scripts):
    """The scripts compare runs by their length in steps: a study given in epochs (the
    committed classic-epochs) has none, and the error says which study and why."""
    assert scripts.spec_n_steps(Study.load(RESULTS / "eta-vs-n")) == 10_000
    with pytest.raises(NNLabError, match=r"^classic-epochs: expected base.n_steps .*epochs"):
        scripts.spec_n_steps(Study.load(RESULTS / "classic-epochs"))


def second_guess_range(predictions: pd.DataFrame) -> list[float]:
    """The lowest and highest per-run share of errors whose second guess is right."""
    wrong = predictions[predictions["top1"] != predictions["y_true"]]
    rates = (wrong["top2"] == wrong["y_true"]).groupby(wrong["trial"]).mean()
    return [float(rates.min()), float(rates.max())]


@pytest.mark.parametrize(("script", "folder"), FINDINGS)
def test_each_committed_findings_md_renders_from_its_findings_json(scripts, script, folder):
    """findings.md is a view of findings.json: the render step, given the committed
    numbers (and, for errors, the per-run range the text gives besides), writes the
    committed text byte for byte."""
    module = __import__(script)
    numbers = committed(folder)
    if script == "errors":
        restarts = Study.load(RESULTS / "restarts").predictions()
        text = module.render(numbers, {"second_guess_per_run": second_guess_range(restarts)})
    else:
        text = module.render(numbers)
    assert text.strip() + "\n" == (RESULTS / folder / "findings.md").read_text()


def test_a_template_placeholder_without_a_value_is_an_error(scripts):
    with pytest.raises(KeyError, match="n_seeds"):
        scripts.render("restarts", {})


# --- compute, on the committed archives -----------------------------------------------------

def final(name: str) -> pd.DataFrame:
    """The finished runs of results/<name> at its end, from trials.parquet alone."""
    trials = pd.read_parquet(RESULTS / name / "trials.parquet")
    return trials[(trials["state"] == "COMPLETE") & (trials["status"] == "ok")]


@pytest.mark.slow
def test_restarts_compute_gives_the_spread_and_mean_change_of_the_runs(scripts):
    import restarts

    numbers = restarts.compute()["numbers"]
    short, long = (final(n).set_index("seed")["test_acc"] for n in ("restarts",
                                                                     "restarts-long"))
    summary = numbers["summary"]
    assert summary["n_runs"] == 100 == len(short) == len(long)
    assert summary["std_long"]["value"] == pytest.approx(long.std(ddof=1), rel=1e-12)
    assert summary["std_short"]["value"] == pytest.approx(short.std(ddof=1), rel=1e-12)
    change = numbers["mean_change"]["test_acc"]
    assert change["difference"]["value"] == pytest.approx((long - short).mean(), abs=1e-12)
    assert change["wins"] == int((long > short).sum())
    expected = committed("restarts")
    assert summary["p_zero"] == pytest.approx(expected["summary"]["p_zero"], rel=1e-6)
    assert [c["survives"] for c in numbers["claims"]] == [
        c["survives"] for c in expected["claims"]]


@pytest.mark.slow
def test_noise_compute_pairs_each_arm_with_the_noise_free_runs_of_its_seeds(scripts):
    import noise

    numbers = noise.compute()["numbers"]
    expected = committed("noise-grad")
    assert list(numbers["arms"]) == list(expected["arms"])
    for label, arm in numbers["arms"].items():
        noisy = final(arm["study"])
        if "noise_eta" in noisy:
            noisy = noisy[noisy["noise_eta"] == float(label.split()[1])]
        clean = final(arm["none"]).set_index("seed")["test_acc"]
        paired = noisy.set_index("seed")["test_acc"].to_frame("noisy").join(clean, how="inner")
        assert arm["n"] == len(paired)
        assert arm["comparison"]["mean_difference"]["value"] == pytest.approx(
            (paired["noisy"] - paired["test_acc"]).mean(), abs=1e-12)
        assert arm["comparison"]["std_ratio"]["value"] == pytest.approx(
            paired["noisy"].std(ddof=1) / paired["test_acc"].std(ddof=1), rel=1e-9)
        assert arm["power_at_effect"] == pytest.approx(
            expected["arms"][label]["power_at_effect"], abs=1e-12)
    assert set(numbers["floors"]) == set(expected["floors"])


@pytest.mark.slow
def test_errors_compute_counts_the_errors_of_the_restarts(scripts):
    import errors

    found = errors.compute()
    numbers = found["numbers"]
    predictions = Study.load(RESULTS / "restarts").predictions()
    wrong = predictions[predictions["top1"] != predictions["y_true"]]
    main = numbers[next(iter(numbers))]["run x image"]
    assert (main["n"], main["n_wrong"]) == (len(predictions), len(wrong))
    assert main["accuracy"]["value"] == pytest.approx(1 - len(wrong) / len(predictions))
    assert main["second_guess_rate"]["value"] == pytest.approx(
        (wrong["top2"] == wrong["y_true"]).mean())
    assert main["n_confident_errors"] == int((wrong["p1"] >= 0.99).sum())
    assert found["text"]["second_guess_per_run"] == pytest.approx(
        second_guess_range(predictions))
    assert numbers["left_out"] == committed("errors")["left_out"]


@pytest.mark.slow
def test_eta_vs_n_compute_gives_eta_best_and_the_paired_ratios_of_the_batch_sizes(scripts):
    import eta_vs_n

    numbers = eta_vs_n.compute()["numbers"]
    b100, b25 = (pd.DataFrame(numbers[f"batch_{b}"]["eta_best"]).set_index("n_steps")
                 for b in (100, 25))
    # the longest length of batch 100, read from eta-vs-n-long's archived curves, gives the
    # eta_best of its trials.parquet's final metrics alone
    alone = eta_best(scripts.final_runs("eta-vs-n-long")[eta_vs_n.COLUMNS],
                     stalled_at=scripts.STALLED_AT, small_sample=True)
    assert b100.loc[100_000, "eta_best"] == pytest.approx(
        alone.table["eta_best"].iloc[-1], rel=1e-12)
    for row in numbers["batch_25"]["ratio_equal_steps"]:
        n = row["n_steps"]
        assert row["ratio"] == pytest.approx(b25.loc[n, "eta_best"] / b100.loc[n, "eta_best"])
        assert row["low"] < row["ratio"] < row["high"]
    expected = committed("eta-vs-n")
    assert numbers["summary"]["b"]["value"] == pytest.approx(
        expected["summary"]["b"]["value"], rel=1e-9)
    assert numbers["batch_400"]["n_runs"] == {"eta-vs-n-b400": 100}
    assert [h["verdict"] for h in numbers["batch_400"]["hypotheses"]] == [
        "inconclusive", "held"]


def verdict_records(found: object) -> list[dict]:
    """Every hypothesis record (`common.hypothesis_records`) in a findings.json's content."""
    if isinstance(found, list):
        return [r for item in found for r in verdict_records(item)]
    if not isinstance(found, dict):
        return []
    own = [found] if "verdict" in found and "statistic" in found else []
    return own + [r for value in found.values() for r in verdict_records(value)]


def test_every_committed_verdict_is_the_rule_applied_to_its_recorded_estimate(scripts):
    """Each verdict in results/*/findings.json is what `evaluate` gives its declared
    hypothesis (the committed specs', and eta_vs_n.py's batch-400 header) on the recorded
    estimate, its Monte Carlo error included: no findings judged by another rule or left
    stale. Some are on the margin: a bare interval inside the region whose widened one is
    not."""
    import eta_vs_n

    declared: dict[tuple[str, str], Hypothesis] = {}
    for hypothesis in [*eta_vs_n.B400_HYPOTHESES, *(
            h for path in sorted((ROOT / "studies").glob("*.toml"))
            for h in StudySpec.from_toml(path).hypotheses)]:
        key = (hypothesis.name, hypothesis.statistic)
        assert declared.setdefault(key, hypothesis) == hypothesis, key
    judged, on_the_margin = 0, 0
    for _, folder in FINDINGS:
        for record in verdict_records(committed(folder)):
            if record["estimate"] is None:
                continue
            estimate = dict(record["estimate"])
            if estimate["mc_error"] is None:  # the JSON writer's inf
                estimate["mc_error"] = np.inf
            found = evaluate(declared[(record["name"], record["statistic"])],
                             HypothesisEstimate(**estimate))
            assert (found.verdict, found.reason) == (record["verdict"], record["reason"]), (
                folder, record["name"])
            judged += 1
            on_the_margin += "on the margin" in record["reason"]
    assert judged >= 40 and on_the_margin >= 1
