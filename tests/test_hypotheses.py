"""Hypotheses declared in a spec: parsing and refusals, the digest, verdicts at their
boundaries, the statistics a study gives, and a real study whose report judges two."""

from __future__ import annotations

import math
import re
from html import unescape

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnlab.errors import ConfigError, NNLabError
from nnlab.report import write_report
from nnlab.report.hypotheses import (
    EXPLORATORY_NONE,
    EXPLORATORY_REST,
    STATISTICS,
    study_statistics,
    with_hypotheses,
)
from nnlab.report.sections import Options, overview_section
from nnlab.study import Study, StudySpec
from nnlab.study.hypotheses import Estimate, Hypothesis, evaluate, evaluate_all
from tests.synthetic_study import ramp, synthetic

HELD = {"name": "learns", "statistic": "best.val_acc", "greater_than": 0.0, "primary": True,
        "note": "any training beats an accuracy of 0"}
FAILS = {"name": "chance", "statistic": "best.test_acc", "less_than": 0.05}
CLOSE = {"name": "close", "statistic": "best.test_acc", "equals": 0.9, "margin": 0.02}


def spec_values(hypotheses: list[dict] | None = None, replicates: int = 3) -> dict:
    """A study of 784-8-10 nets trained for 20 steps on 500 MNIST images (2 etas)."""
    values = {"study": {"name": "hyp", "replicates": replicates},
              "base": {"sizes": [784, 8, 10], "batch_size": 50, "n_steps": 20, "n_evals": 2},
              "grid": {"eta": [0.5, 2.0]},
              "data": {"train_size": 500, "val_size": 200, "test_size": 100}}
    if hypotheses is not None:
        values["hypothesis"] = hypotheses
    return values


# --- the spec --------------------------------------------------------------------------------


def test_hypotheses_parse_and_round_trip_through_dict_and_toml(tmp_path):
    spec = StudySpec.from_dict(spec_values([HELD, FAILS, CLOSE]))
    assert spec.hypotheses == (
        Hypothesis("learns", "best.val_acc", "greater_than", 0.0, None, True,
                   "any training beats an accuracy of 0"),
        Hypothesis("chance", "best.test_acc", "less_than", 0.05),
        Hypothesis("close", "best.test_acc", "equals", 0.9, 0.02))
    assert spec.hypotheses[2].region == pytest.approx((0.88, 0.92))
    assert StudySpec.from_dict(spec.to_dict()) == spec
    text = spec.to_toml()
    assert text.count("[[hypothesis]]") == 3
    path = tmp_path / "hyp.toml"
    path.write_text(text)
    assert StudySpec.from_toml(path) == spec


@pytest.mark.parametrize(("hypotheses", "message"), [
    ({"name": "x"}, "hypothesis: expected an array of [[hypothesis]] tables, got {'name': 'x'}"),
    ([1], "hypothesis[0]: expected a table of keys, got 1"),
    ([{**HELD, "sign": 1}], "hypothesis[0].sign: unknown key; expected one of name, "),
    ([{**HELD, "name": ""}], "hypothesis[0].name: expected a non-empty string, got ''"),
    ([HELD, {**FAILS, "name": "learns"}],
     "hypothesis[1].name: expected a name no other hypothesis has, got 'learns'"),
    ([{k: v for k, v in HELD.items() if k != "statistic"}],
     "hypothesis[0].statistic: expected a non-empty string, got None"),
    ([{"name": "a", "statistic": "s"}],
     "hypothesis[0]: 0 given (none); expected exactly one of equals, greater_than, less_than"),
    ([{**HELD, "less_than": 1.0}], "hypothesis[0]: 2 given (greater_than, less_than); "),
    ([{**HELD, "greater_than": "high"}],
     "hypothesis[0].greater_than: expected a finite number, got 'high'"),
    ([{**CLOSE, "equals": math.inf}], "hypothesis[0].equals: expected a finite number, got inf"),
    ([HELD, {**CLOSE, "margin": -0.1}],
     "hypothesis[1].margin: expected a number > 0, got -0.1"),
    ([{**CLOSE, "margin": 0}], "hypothesis[0].margin: expected a number > 0, got 0"),
    ([{k: v for k, v in CLOSE.items() if k != "margin"}],
     "hypothesis[0].margin: expected a number > 0, got None"),
    ([{**HELD, "margin": 0.1}],
     "hypothesis[0].margin: expected no margin with greater_than (only with equals), got 0.1"),
    ([{**HELD, "primary": "yes"}], "hypothesis[0].primary: expected true or false, got 'yes'"),
    ([{**HELD, "note": 3}], "hypothesis[0].note: expected a string, got 3"),
])
def test_every_bad_field_is_refused_in_one_line_naming_it(hypotheses, message):
    with pytest.raises(ConfigError) as err:
        StudySpec.from_dict(spec_values(hypotheses))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_the_digest_covers_hypotheses_and_is_unchanged_without_them():
    plain = StudySpec.from_dict(spec_values())
    assert StudySpec.from_dict(spec_values([])) == plain
    assert "hypothesis" not in plain.to_dict() and "hypothesis" not in plain.to_toml()
    declared = StudySpec.from_dict(spec_values([HELD, CLOSE]))
    moved = StudySpec.from_dict(spec_values([HELD, {**CLOSE, "margin": 0.03}]))
    assert len({plain.digest(), declared.digest(), moved.digest()}) == 3
    assert moved.differences(declared) == ["hypothesis[1].margin: 0.03 != 0.02"]
    grown = StudySpec.from_dict(spec_values([HELD, CLOSE], replicates=5))
    assert grown.extends(declared) and not moved.extends(declared)


# --- verdicts --------------------------------------------------------------------------------


def hypothesis(**prediction) -> Hypothesis:
    return StudySpec.from_dict(spec_values([{"name": "h", "statistic": "s", **prediction}])
                               ).hypotheses[0]


def interval(low: float, high: float) -> Estimate:
    return Estimate((low + high) / 2, low, high, "seed", 5)


@pytest.mark.parametrize(("prediction", "low", "high", "verdict"), [
    ({"equals": 1.0, "margin": 0.5}, 0.5, 1.5, "held"),          # the region's ends count
    ({"equals": 1.0, "margin": 0.5}, 0.6, 1.4, "held"),
    ({"equals": 1.0, "margin": 0.5}, 0.4, 1.0, "inconclusive"),
    ({"equals": 1.0, "margin": 0.5}, 0.4, 1.6, "inconclusive"),  # wider than the region
    ({"equals": 1.0, "margin": 0.5}, 1.5, 2.0, "inconclusive"),  # touches it
    ({"equals": 1.0, "margin": 0.5}, 1.5001, 2.0, "failed"),
    ({"equals": 1.0, "margin": 0.5}, 0.0, 0.4999, "failed"),
    ({"greater_than": 1.0}, 1.0001, 3.0, "held"),
    ({"greater_than": 1.0}, 1.0, 3.0, "inconclusive"),
    ({"greater_than": 1.0}, 0.5, 1.0, "failed"),
    ({"greater_than": 1.0}, 0.5, 1.0001, "inconclusive"),
    ({"less_than": 1.0}, 0.0, 0.9999, "held"),
    ({"less_than": 1.0}, 0.0, 1.0, "inconclusive"),
    ({"less_than": 1.0}, 1.0, 2.0, "failed"),
    ({"less_than": 1.0}, 0.9999, 2.0, "inconclusive"),
])
def test_a_verdict_compares_the_interval_with_the_predicted_region(prediction, low, high,
                                                                   verdict):
    assert evaluate(hypothesis(**prediction), interval(low, high)).verdict == verdict


def test_an_undefined_interval_or_a_missing_statistic_is_not_evaluated_with_the_reason():
    one_seed = Estimate(0.9, math.nan, math.nan, "seed", 1)
    judged = evaluate(hypothesis(greater_than=0.5), one_seed)
    assert judged.verdict == "not evaluated" and "n=1 seeds" in judged.reason
    spec = StudySpec.from_dict(spec_values([FAILS, HELD, {**CLOSE, "statistic": "eta_ratio"}]))
    verdicts = evaluate_all(spec.hypotheses, {"best.test_acc": interval(0.8, 0.9),
                                              "best.val_acc": "no trial is complete"})
    assert [(v.hypothesis.name, v.verdict) for v in verdicts] == [
        ("learns", "not evaluated"), ("chance", "failed"), ("close", "not evaluated")]
    assert verdicts[0].reason == "no trial is complete"
    assert "'eta_ratio' was not provided" in verdicts[2].reason
    ratio = evaluate_all(spec.hypotheses, {"eta_ratio": interval(0.895, 0.91)})[2]
    assert ratio.verdict == "held"



@pytest.mark.parametrize(("prediction", "low", "high", "mc_error", "verdict", "raw"), [
    ({"greater_than": 0.5}, 0.51, 0.9, 0.005, "held", "held"),        # clear of the bound
    ({"greater_than": 0.5}, 0.51, 0.9, 0.02, "inconclusive", "held"),
    ({"greater_than": 0.5}, 0.2, 0.49, 0.02, "inconclusive", "failed"),
    ({"equals": 0.0, "margin": 0.5}, -0.4996, 0.01, 0.03, "inconclusive", "held"),
    ({"equals": 0.0, "margin": 0.5}, -0.52, 0.1, 0.03, "inconclusive", "inconclusive"),
    ({"less_than": 1.0}, 1.2, 2.0, 0.1, "failed", "failed"),
])
def test_an_end_within_its_monte_carlo_error_of_a_bound_leaves_the_verdict_inconclusive(
        prediction, low, high, mc_error, verdict, raw):
    estimate = Estimate((low + high) / 2, low, high, "seed", 10, mc_error)
    judged = evaluate(hypothesis(**prediction), estimate)
    assert judged.verdict == verdict
    assert evaluate(hypothesis(**prediction), interval(low, high)).verdict == raw
    assert ("on the margin" in judged.reason) == (verdict != raw)
    if verdict != raw:
        assert f"would be {raw}" in judged.reason

# --- statistics ------------------------------------------------------------------------------


def trials_table(values: dict[str, list[tuple[float, float]]]) -> pd.DataFrame:
    """Complete runs: {config_id: [(val_acc, test_acc) per seed]}."""
    return pd.DataFrame([
        {"state": "COMPLETE", "config_id": config, "seed": seed, "value": val,
         "val_acc": val, "test_acc": test}
        for config, runs in values.items() for seed, (val, test) in enumerate(runs)])


def test_the_statistics_take_the_configuration_chosen_on_validation():
    spec = StudySpec.from_dict(spec_values())
    trials = trials_table({"a": [(0.80, 0.99), (0.82, 0.99)],
                           "b": [(0.90, 0.85), (0.92, 0.87), (0.91, 0.86)]})
    trials.loc[len(trials)] = {"state": "FAIL", "config_id": "a", "seed": 2, "value": 1.0,
                               "val_acc": 1.0, "test_acc": 1.0}
    found = study_statistics(spec, trials, {"best.val_acc", "best.test_acc",
                                            "base.test_acc.std", "eta_ratio"})
    assert found["best.val_acc"].value == pytest.approx(0.91)
    test = found["best.test_acc"]
    assert (test.value, test.unit, test.n) == (pytest.approx(0.86), "seed", 3)
    half = stats.t.ppf(0.975, 2) * 0.01 / np.sqrt(3)  # the t interval of 0.85, 0.87, 0.86
    assert (test.low, test.high) == (pytest.approx(0.86 - half), pytest.approx(0.86 + half))
    assert found["base.test_acc.std"] == ("base.test_acc.std: needs a study of one "
                                          "configuration, got 2 with complete runs")
    assert "'eta_ratio' is not computed from a single study" in found["eta_ratio"]
    restarts = STATISTICS["base.test_acc.std"](spec, trials_table({"b": [
        (0.9, 0.85), (0.9, 0.87), (0.9, 0.86), (0.9, 0.89)]}))
    assert restarts.value == pytest.approx(np.std([0.85, 0.87, 0.86, 0.89], ddof=1))
    assert restarts.low <= restarts.value <= restarts.high and restarts.n == 4


def test_the_interval_of_the_seed_mean_covers_the_true_mean():
    spec = StudySpec.from_dict(spec_values())
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        test = rng.normal(0.95, 0.01, size=20)
        trials = trials_table({"only": [(0.9, t) for t in test]})
        found = STATISTICS["best.test_acc"](spec, trials)
        covered += found.low <= 0.95 <= found.high
    assert covered >= 180


# --- the report ------------------------------------------------------------------------------


def test_a_report_without_hypotheses_only_labels_the_page_exploratory():
    steps = np.array([10, 20])
    results = synthetic({"eta": [0.1, 1.0]}, {((eta,), seed): ramp(steps, 10)
                                              for eta in (0.1, 1.0) for seed in (0, 1)})
    overview = overview_section(results, Options(n_resamples=100))
    sections = with_hypotheses([overview], results, Options(n_resamples=100))
    assert [s.key for s in sections] == ["overview"] and overview.notes[0] == EXPLORATORY_NONE


def section_text(html: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    assert match, f"no section {key}"
    return unescape(re.sub(r"<[^>]+>", " ", match.group(1)))


def test_a_real_study_reports_the_held_and_the_failed_hypothesis_first(tmp_path):
    study = Study(spec_values([FAILS, HELD]), results=tmp_path)
    study.run(n_jobs=2, progress=False)
    html = write_report(study.folder, n_resamples=200, train=False).read_text()
    assert html.index('<section id="hypotheses">') < html.index('<section id="overview">')
    text = section_text(html, "hypotheses")
    assert "Confirmatory: declared hypotheses" in text and EXPLORATORY_REST in text
    learns, chance = text.index("Primary: learns"), text.index("chance (best.test_acc < 0.05)")
    assert learns < chance  # primary first
    assert re.search(r"learns \(best\.val_acc > 0\): [\d.]+ \[[\d.]+, [\d.]+\] \(seeds, n=3\) "
                     r"-> held", text)
    assert re.search(r"chance \(best\.test_acc < 0\.05\): [\d.]+ \[[\d.]+, [\d.]+\] "
                     r"\(seeds, n=3\) -> failed", text)
    assert EXPLORATORY_NONE not in html

    # changed hypotheses are refused like any changed spec; more seeds grow the study
    changed = Study(spec_values([FAILS, {**HELD, "greater_than": 0.5}]), results=tmp_path)
    with pytest.raises(NNLabError, match=r"different spec \(hypothesis\[1\]\.greater_than: "):
        changed.run(n_jobs=1, progress=False)
    grown = Study(spec_values([FAILS, HELD], replicates=4), results=tmp_path)
    assert grown.run(n_jobs=2, progress=False)["this_run"]["completed"] == 2
    assert Study.load(study.folder).spec.hypotheses == study.spec.hypotheses
