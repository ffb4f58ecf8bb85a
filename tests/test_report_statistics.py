"""Report sections print the unit of their intervals, pair arms that share seeds, adjust the
tests of one question together and say what a test that does not reject could have seen."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnlab.report import sections
from nnlab.report.sections import Options
from tests.simulated_predictions import predictions
from tests.synthetic_study import synthetic

OPTIONS = Options(n_resamples=300)


def final(test_acc: float) -> pd.DataFrame:
    return pd.DataFrame({"step": [1], "epoch": [1.0], "val_acc": [test_acc],
                         "test_acc": [test_acc], "train_loss": [0.1], "val_loss": [0.1]})


@pytest.fixture(scope="module")
def noise_study():
    """Two noise levels on the same 30 seeds (a shared seed effect), at two etas."""
    rng = np.random.default_rng(0)
    runs = {}
    for eta in (0.5, 1.0):
        seed_effect = 0.004 * rng.normal(size=30)
        for noise, extra in (("none", 0.0), ("grad", 0.002)):
            for seed in range(30):
                value = 0.95 + seed_effect[seed] + 0.002 * rng.normal() - extra
                runs[(eta, noise), seed] = final(value)
    return synthetic({"eta": [0.5, 1.0], "noise": ["none", "grad"]}, runs, replicates=30)


def test_noise_arms_on_the_same_seeds_are_paired_and_their_tests_adjusted_together(noise_study):
    section = sections.noise_section(noise_study, OPTIONS)
    table = section.tables[0].frame
    assert len(table) == 2 and set(table["design"]) == {"paired, 30 seeds"}
    assert set(table["spread test"]) == {"Pitman-Morgan"}
    assert set(table["mean test"]) == {"paired t"}
    assert all("(Holm " in text for text in table["spread p (Holm)"])
    assert all(text.startswith("< ") for text in table["std ratio excluded"])
    assert all(text.startswith("beyond +-") for text in table["mean difference excluded"])
    spread, location = section.data["families"]
    assert [len(f["tests"]) for f in (spread, location)] == [2, 2]
    adjusted = pd.DataFrame(location["tests"])
    assert (adjusted["p_adjusted"] >= adjusted["p"]).all()
    comparison = section.data["comparisons"][0]
    assert comparison["paired"] and comparison["detectable_std_ratio"] > 1
    assert comparison["detectable_mean_difference"] > 0
    assert comparison["mean_difference_excluded"]["unit"] == "seed"
    assert any("Holm-adjusted" in text for text in section.findings)
    # each comparison in the findings: the adjusted p beside the raw one, what the data
    # exclude at 95% and what the tests detect with 80% power, at a named effect
    first = section.findings[0]
    assert "adjusted over the table's 2 comparisons: spread p=" in first
    assert "(Holm " in first.split("adjusted over the table")[1]
    assert "ratios outside" in first and "differences beyond +-" in first
    assert "80% power (alpha 0.05, simulated at n=30 pairs) at a std ratio of " in first
    assert "(Pitman-Morgan) and a mean difference of " in first


def shared_seed_study(paired_seeds: bool):
    """noise=grad against none, 40 runs each, with a large seed effect both arms share
    (sd 0.01), small run noise (sd 0.001) and noise costing 0.002: on the same seeds
    (paired_seeds) or on seeds 0-39 against 100-139 (each run its own seed effect)."""
    rng = np.random.default_rng(5)
    effect = 0.01 * rng.normal(size=40)
    runs = {}
    for noise, cost, offset in (("none", 0.0, 0), ("grad", 0.002, 0 if paired_seeds else 100)):
        other = 0.01 * rng.normal(size=40)
        for k in range(40):
            seed_effect = effect[k] if paired_seeds or noise == "none" else other[k]
            runs[(noise,), k + offset] = final(0.95 + seed_effect - cost
                                               + 0.001 * rng.normal())
    return synthetic({"noise": ["none", "grad"]}, runs, replicates=40)


def test_arms_on_the_same_seeds_are_compared_with_the_paired_methods_and_others_not():
    from nnlab import analysis

    paired = sections.noise_section(shared_seed_study(True), OPTIONS)
    comparison = paired.data["comparisons"][0]
    runs = shared_seed_study(True).complete
    expected = analysis.compare_variance_by(runs, "noise", "grad", "none", paired=True,
                                            n_resamples=OPTIONS.n_resamples)
    unpaired = analysis.compare_variance_by(runs, "noise", "grad", "none", paired=False,
                                            n_resamples=OPTIONS.n_resamples)
    # the report's numbers are the paired method's; the unpaired ones, which the seed
    # effect swamps, would not see what noise costs
    assert comparison["std_ratio"] == expected.to_dict()["std_ratio"]
    assert comparison["mean_difference"] == expected.to_dict()["mean_difference"]
    assert comparison["paired_t"]["p_value"] < 1e-6 and unpaired.welch.p_value > 0.05
    width = {name: result.mean_difference.high - result.mean_difference.low
             for name, result in (("paired", expected), ("unpaired", unpaired))}
    assert width["paired"] < 0.3 * width["unpaired"], width
    excluded = comparison["mean_difference_excluded"]
    assert excluded["method"] == "paired t" and excluded["unit"] == "seed"
    assert comparison["std_ratio_excluded"]["unit"] == "seed"
    table = paired.tables[0].frame
    assert table["design"].iloc[0] == "paired, 40 seeds"
    assert (table["spread test"].iloc[0], table["mean test"].iloc[0]) == ("Pitman-Morgan",
                                                                          "paired t")
    independent = sections.noise_section(shared_seed_study(False), OPTIONS)
    comparison = independent.data["comparisons"][0]
    assert "paired" not in comparison and comparison["brown_forsythe"] is not None
    assert comparison["std_ratio_excluded"]["method"] == "bonett"
    assert comparison["mean_difference_excluded"]["unit"] == "run"
    assert independent.tables[0].frame["design"].iloc[0] == "independent, 40 / 40 runs"


def test_normality_shows_holm_adjusted_p_values_and_what_the_test_can_detect(noise_study):
    section = sections.normality_section(noise_study, OPTIONS)
    table = section.tables[0].frame
    assert "p (Holm)" in table.columns and len(table) == 4
    assert len(section.data["family"]["tests"]) == 4
    assert "With 80% power at n=30" in section.findings[0]
    assert "Shapiro-Wilk p adjusted over the 4 configurations: " in section.findings[0]
    assert "(Holm " in section.findings[0]
    assert "tails as heavy as t(" in section.findings[0]


def test_errors_and_the_test_set_split_say_what_their_intervals_resample():
    rng = np.random.default_rng(1)
    runs = {((1.0,), seed): final(0.9) for seed in range(20)}
    results = synthetic({"eta": [1.0]}, runs, replicates=20)
    data = predictions(rng, 20, 300).assign(trial=lambda d: d["trial"].astype(int))
    results = replace(results, best_predictions=data)
    errors = sections.errors_section(results, OPTIONS)
    assert errors.data["error_analysis"]["unit"] == "run x image"
    assert "resample runs and test images (two-way bootstrap)" in errors.intro
    assert "intervals over runs and test images" in errors.findings[0]
    variance = sections.variance_section(results, OPTIONS)
    text = next(f for f in variance.findings if "test-set part" in f)
    assert "runs and test examples (two-way)" in text
    assert "resampling runs only, with the test set fixed, covers too rarely" in text
    assert "test_set_variance_by_run" not in variance.data
    assert variance.data["test_set_variance"]["unit"] == "run x example"


def test_runs_of_equal_test_accuracy_leave_the_split_out_with_a_note_not_a_crash():
    # a tiny test set: 4 runs, 10 images, each run wrong on one other image
    runs = {((1.0,), seed): final(0.9) for seed in range(4)}
    results = synthetic({"eta": [1.0]}, runs, replicates=4)
    wrong = np.eye(4, 10, dtype=bool)
    data = pd.DataFrame({"trial": np.repeat(np.arange(4), 10), "index": np.tile(np.arange(10), 4),
                         "y_true": 0, "top1": wrong.ravel().astype(int), "top2": 0,
                         "p1": np.float32(0.9)})
    section = sections.variance_section(replace(results, best_predictions=data), OPTIONS)
    assert "test_set_variance" not in section.data
    assert any(note.startswith("Finite-test-set share: test_set_variance: all 4 runs have "
                               "the same test accuracy (0.9 on 10 examples)")
               for note in section.notes)
    assert section.tables[0].frame["n"].tolist() == [4]  # the rest of the section stands
