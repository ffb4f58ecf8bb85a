"""Report sections on study results with known answers: eta_best and its power law, the
variance floor, and the choice of what applies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from nnlab.report import sections
from nnlab.report.sections import NotApplicable, Options
from tests.synthetic_study import synthetic

OPTIONS = Options(n_resamples=400)
N_VALUES = [100, 1000, 10_000, 100_000]
ETAS = [float(e) for e in np.geomspace(1e-3, 10, 9)]


def final(val_acc: float, test_acc: float) -> pd.DataFrame:
    """A one-row curve: the run's final metrics."""
    return pd.DataFrame({"step": [1], "epoch": [1.0], "val_acc": [val_acc],
                         "test_acc": [test_acc], "train_loss": [0.1], "val_loss": [0.1]})


@pytest.fixture(scope="module")
def scaling():
    """val_acc peaks at eta_best = 2 N^-0.5 (a parabola in log eta); test_acc's spread over
    seeds falls as N^-0.5 to a floor of std 0.002."""
    rng = np.random.default_rng(0)
    runs = {}
    for n in N_VALUES:
        for eta in ETAS:
            for seed in range(4):
                val = 0.9 - 0.02 * np.log(eta / (2 * n**-0.5)) ** 2 + 0.002 * rng.normal()
                spread = np.sqrt(0.002**2 + 0.05**2 / n**0.5)
                runs[(eta, n), seed] = final(val, 0.9 + spread * rng.normal())
    return synthetic({"eta": ETAS, "n_steps": N_VALUES}, runs, replicates=4)


def test_eta_best_section_fits_the_power_law_it_was_built_with(scaling):
    section = sections.eta_best_section(scaling, OPTIONS)
    (table,) = section.data["eta_best"]
    found = pd.DataFrame(table["table"]).set_index("n_steps")["eta_best"]
    np.testing.assert_allclose(found, 2 * np.array(N_VALUES, float) ** -0.5, rtol=0.25)
    (fit,) = section.data["power_law"]
    assert fit["exponent"]["low"] < 0.5 < fit["exponent"]["high"]
    assert {item.name for item in section.figures} == {"eta_curves", "power_law"}
    # four lengths: too few for a headline (5), so the fit is shown as exploratory
    assert any(text.startswith("exploratory, not a headline") and "power law y = a x^-b" in text
               for text in section.notes)


def test_variance_section_shows_std_per_length_and_the_fitted_floor(scaling):
    one_eta = scaling.complete[scaling.complete["eta"] == ETAS[4]]
    section = sections.variance_section(replace(scaling, complete=one_eta, varied=["n_steps"]),
                                        OPTIONS)
    (result,) = section.data["variance_vs_n"]
    table = pd.DataFrame(result["table"])
    assert table["n_runs"].tolist() == [4] * 4
    assert result["fit"] is not None  # four training lengths: the floor is fitted
    assert [item.name for item in section.figures] == ["variance"]
    assert "var(N) = c + a N^-b" in section.findings[-1]


def test_variance_section_fits_from_later_n_when_an_early_transient_bends_the_fit():
    # var = 0.003^2 + 0.3 / N, but 30x that at the shortest N
    rng = np.random.default_rng(0)
    lengths = [100, 300, 1000, 3000, 10_000, 30_000, 100_000]
    runs = {}
    for n in lengths:
        spread = np.sqrt((30 if n == lengths[0] else 1) * (0.003**2 + 0.3 / n))
        for seed in range(100):
            runs[(n,), seed] = final(0.9, 0.9 + spread * rng.normal())
    results = synthetic({"n_steps": lengths}, runs, replicates=100)
    section = sections.variance_section(results, OPTIONS)
    (result,) = section.data["variance_vs_n"]
    assert result["fit"]["exponent_at_bound"]
    assert not result["fit"]["floor"]["low"] < 0.003**2 < result["fit"]["floor"]["high"]
    later = section.data["floor_from_later_n"]
    assert [fit["n_from"] for fit in later] == [300, 1000, 3000]
    assert later[0]["floor"]["low"] < 0.003**2 < later[0]["floor"]["high"]
    assert not later[0]["exponent_at_bound"]
    assert section.findings[-1].startswith("The floor fitted from later N")


def test_sections_that_do_not_apply_say_why(scaling):
    with pytest.raises(NotApplicable, match="noise is not varied"):
        sections.noise_section(scaling, OPTIONS)
    with pytest.raises(NotApplicable, match="no test predictions stored"):
        sections.errors_section(scaling, OPTIONS)
    one_seed = replace(scaling, spec=replace(scaling.spec, replicates=1))
    with pytest.raises(NotApplicable, match="a CI over seeds needs 2"):
        sections.eta_best_section(one_seed, OPTIONS)
    with pytest.raises(NotApplicable, match="a normality test needs 3"):
        sections.normality_section(one_seed, OPTIONS)
