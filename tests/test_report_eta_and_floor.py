"""The eta_best and variance sections show what the seed CI does not cover: edge shares,
b by estimator and grid beside the headline, the breakpoint and the held-out check, and
"plateau" where a floor and a slow decline cannot be told apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnlab.report import sections
from nnlab.report.sections import Options
from tests.simulated_eta import ETAS, broken, eta_trials
from tests.simulated_restarts import restart_trials
from tests.synthetic_study import synthetic

OPTIONS = Options(n_resamples=300)
LENGTHS = [316, 562, 1000, 1778, 3162, 5623, 10_000, 17_783, 31_623, 56_234, 100_000]
N_SEEDS = 5


def final(val_acc: float, test_acc: float) -> pd.DataFrame:
    return pd.DataFrame({"step": [1], "epoch": [1.0], "val_acc": [val_acc],
                         "test_acc": [test_acc], "train_loss": [0.1], "val_loss": [0.1]})


def study(runs: pd.DataFrame, grid: dict, params: list[str], replicates: int):
    curves = {(tuple(row[p] for p in params), int(row["seed"])):
              final(row["val_acc"], row["test_acc"]) for row in runs.to_dict("records")}
    return synthetic(grid, curves, replicates=replicates)


@pytest.fixture(scope="module")
def eta_section():
    """eta* flat at 3 up to N = 3000, then falling as N^-1; 11 log2 etas, 5 seeds."""
    runs = eta_trials(np.random.default_rng(0), np.array(LENGTHS), broken(), n_seeds=N_SEEDS)
    runs = runs.assign(test_acc=runs["val_acc"], eta=runs["eta"].astype(float),
                       n_steps=runs["n_steps"].astype(int))
    results = study(runs, {"eta": [float(e) for e in ETAS], "n_steps": LENGTHS},
                    ["eta", "n_steps"], N_SEEDS)
    return sections.eta_best_section(results, OPTIONS)


def test_the_table_shows_each_lengths_edge_share(eta_section):
    (table,) = [t for t in eta_section.tables if t.caption == "eta_best per n_steps"]
    assert "edge share" in table.frame.columns
    assert table.frame["edge share"].str.contains("%").all()
    (data,) = eta_section.data["eta_best"]
    assert len(data["edge_shares"]) == len(LENGTHS)


def test_breakpoint_held_out_check_and_sensitivity_are_shown(eta_section):
    text = "\n".join(eta_section.findings)
    assert "headline: a power law from n_steps = " in text
    assert "breakpoint chosen by the data: broken power law" in text
    assert any("one power law over all lengths, not a headline" in n for n in eta_section.notes)
    (broken_fit,) = eta_section.data["broken_power_law"]
    assert broken_fit["breakpoint"]["low"] < 3000 * 1.5 and broken_fit["breakpoint"]["high"] > 2000
    assert "held-out check" in text
    (sensitivity,) = eta_section.data["sensitivity"]
    assert sensitivity["n_from"] >= 1778  # past the breakpoint: the slopes differ
    (table,) = [t for t in eta_section.tables if t.caption.startswith("b by estimator")]
    assert list(table.frame["role"]).count("headline") == 1
    assert "the estimator and the grid move it over" in text
    assert {item.name for item in eta_section.figures} == {"eta_curves", "power_law"}


def test_variance_section_says_plateau_for_a_slow_decline():
    runs = restart_trials(np.random.default_rng(3), floor=0.0, scale=4e-5, exponent=0.1,
                          n_seeds=30)
    lengths = [int(n) for n in runs["n_steps"].unique()]
    results = study(runs.assign(val_acc=runs["test_acc"], n_steps=runs["n_steps"].astype(int)),
                    {"n_steps": lengths}, ["n_steps"], 30)
    section = sections.variance_section(results, OPTIONS)
    (result,) = section.data["variance_vs_n"]
    assert result["fit"]["floor_interval"] == "profile" and result["fit"]["plateau"]
    assert any("Plateau: the fit does not separate" in text for text in section.findings)


def test_the_power_law_figure_draws_the_broken_fit_and_its_breakpoint():
    from nnlab.analysis import eta_best, fit_broken_power_law
    from nnlab.report import figures

    runs = eta_trials(np.random.default_rng(1), np.array(LENGTHS), broken(), n_seeds=N_SEEDS)
    result = eta_best(runs, n_resamples=300)
    fit = fit_broken_power_law(LENGTHS, result.table["eta_best"],
                               y_boot=np.exp(result.boot_log_eta), n_resamples=300)
    figure = figures.power_law_figure(result.power_law(), eta_best=result, broken=fit)
    ax = figure.axes[0]
    (line,) = [item for item in ax.get_lines() if item.get_label() == "broken fit"]
    np.testing.assert_allclose(line.get_ydata(), fit.predict(line.get_xdata()))
    text = "\n".join(t.get_text() for t in ax.texts)
    assert f"breakpoint {fit.breakpoint}" in text
