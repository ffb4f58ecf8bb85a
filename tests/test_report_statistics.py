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
    assert all(text.startswith("< ") for text in table["excluded"])
    spread, location = section.data["families"]
    assert [len(f["tests"]) for f in (spread, location)] == [2, 2]
    adjusted = pd.DataFrame(location["tests"])
    assert (adjusted["p_adjusted"] >= adjusted["p"]).all()
    comparison = section.data["comparisons"][0]
    assert comparison["paired"] and comparison["detectable_std_ratio"] > 1
    assert any("Holm-adjusted" in text for text in section.findings)


def test_normality_shows_holm_adjusted_p_values_and_what_the_test_can_detect(noise_study):
    section = sections.normality_section(noise_study, OPTIONS)
    table = section.tables[0].frame
    assert "p (Holm)" in table.columns and len(table) == 4
    assert len(section.data["family"]["tests"]) == 4
    assert "With 80% power at n=30" in section.findings[0]
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
    assert "resampling runs only, with this test set fixed" in text
    assert variance.data["test_set_variance"]["unit"] == "run x example"
