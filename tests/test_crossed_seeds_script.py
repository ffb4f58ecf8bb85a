"""analysis/crossed_seeds.py's pieces for the declared follow-ups (crossed-seeds-best and
crossed-seeds-long): the change of the interaction's share between two lengths of the same
runs, on simulated crossed designs with known components; the bit-for-bit prefix check; the
statistics the specs' hypotheses name; and the follow-ups as declared before any run (their
specs against crossed-seeds', and the "not run yet" verdicts and text)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import variance_components
from nnlab.study import StudySpec
from tests.test_analysis_variance_components import crossed

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def script(monkeypatch):
    """analysis/crossed_seeds.py, imported as the scripts run (analysis/ on sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import crossed_seeds

    return crossed_seeds


def residual_share(truth: dict[str, float]) -> float:
    return truth["residual"] / sum(truth.values())


EARLY = {"init_seed": 1.0, "order_seed": 1.0, "residual": 1.0}  # interaction share 1/3
LATE = {"init_seed": 0.25, "order_seed": 0.25, "residual": 1.0}  # 2/3


def test_the_share_change_covers_the_true_change_and_sees_a_large_one(script):
    """Two lengths of 16 x 16 designs with known components: the interval of the change of
    the interaction's share covers the true change (+1/3) in nearly every design (it is
    conservative: the lengths are simulated independently here, as the pivots are drawn),
    and excludes 0 in most; with no change it covers 0."""
    rng = np.random.default_rng(7)
    true_change = residual_share(LATE) - residual_share(EARLY)
    covered = above_zero = still_covered = 0
    n_sims = 40
    for k in range(n_sims):
        early, late, same = (variance_components(crossed(rng, 16, 16, truth), n_draws=2000,
                                                 seed=3 * k + j)  # independent pivots
                             for j, truth in enumerate((EARLY, LATE, EARLY)))
        change = script.share_change(early, late)
        assert change["value"] == pytest.approx(
            late["residual"].share.value - early["residual"].share.value)
        assert change["low"] <= change["value"] <= change["high"]
        covered += change["low"] <= true_change <= change["high"]
        above_zero += change["low"] > 0
        unchanged = script.share_change(early, same)
        still_covered += unchanged["low"] <= 0 <= unchanged["high"]
    assert covered >= 0.9 * n_sims
    assert above_zero >= 0.5 * n_sims
    assert still_covered >= 0.9 * n_sims


def test_the_share_change_of_a_main_effect_is_the_same_function_of_its_pivots(script):
    rng = np.random.default_rng(3)
    early, late = (variance_components(crossed(rng, 10, 12, truth), n_draws=2000, seed=k)
                   for k, truth in enumerate((EARLY, LATE)))
    change = script.share_change(early, late, "init_seed")
    assert change["value"] == pytest.approx(
        late["init_seed"].share.value - early["init_seed"].share.value)
    with pytest.raises(ValueError):
        script.share_change(early, late, "no such component")


def test_the_statistics_the_hypotheses_name_are_the_components_estimates(script):
    result = variance_components(crossed(np.random.default_rng(5), 6, 5), n_draws=2000)
    beyond = {"value": 0.5, "low": 0.1, "high": 0.9, "confidence": 0.95, "mc_error": 0.01}
    found = script.split_statistics("crossed_best", result, beyond, 30)
    assert set(found) == {f"crossed_best.{k}" for k in (
        "share_residual", "share_init", "sigma2_init", "sigma2_order",
        "residual_minus_test_set")}
    share = found["crossed_best.share_residual"]
    assert (share.value, share.low, share.high) == (
        result["residual"].share.value, result["residual"].share.low,
        result["residual"].share.high)
    assert found["crossed_best.sigma2_order"].value == result["order_seed"].value.value
    assert found["crossed_best.residual_minus_test_set"].high == 0.9
    # the GCI's percentile ends carry the Monte Carlo error of its 2000 draws
    assert share.mc_error == result["residual"].share.mc_error > 0
    assert found["crossed_best.residual_minus_test_set"].mc_error == 0.01
    assert share.n == 30 and share.unit == "cell (6 init x 5 order seeds)"


def by_length(table: pd.DataFrame, lengths: list[int]) -> pd.DataFrame:
    """A crossed table (init_seed, order_seed, test_acc) as runs read at `lengths`, each
    length's values shifted by it; val_acc = test_acc + 1."""
    runs = pd.concat([table.assign(n_steps=n, test_acc=table["test_acc"] + n)
                      for n in lengths], ignore_index=True)
    return runs.assign(val_acc=runs["test_acc"] + 1)


def test_the_prefix_check_counts_the_values_a_longer_study_shares_bit_for_bit(script):
    """A 3 x 3 sub-grid read at 3 lengths against a 4 x 4 reference read at the first 2:
    18 shared values, all equal; one value changed in its last bit is counted."""
    table = crossed(np.random.default_rng(1), 4, 4)
    reference = by_length(table, [100, 1000])
    longer = by_length(table[(table["init_seed"] < 3) & (table["order_seed"] < 3)],
                       [100, 1000, 100000])
    found = script.prefix_check(longer, reference)
    assert found == {"n_cells": 9, "lengths": [100, 1000], "n_values": 18, "n_equal": 18}
    k = longer.index[(longer["n_steps"] == 1000)][4]
    longer.loc[k, "val_acc"] = np.nextafter(longer.loc[k, "val_acc"], np.inf)
    assert script.prefix_check(longer, reference)["n_equal"] == 17


def test_the_follow_ups_are_crossed_seeds_design_at_another_eta_and_a_sub_grid_longer(
        script):
    """crossed-seeds-best: the same seeds and evaluations at eta_best(10^4); crossed-seeds-
    long: a square sub-grid of its seeds at the same eta, evaluated where it was and
    beyond, so its first 10^4 steps are crossed-seeds' runs; one primary hypothesis each,
    on the statistics the script provides."""
    specs = {name: StudySpec.from_toml(ROOT / "studies" / f"{name}.toml")
             for name in ("crossed-seeds", *script.FOLLOW_UPS)}
    crossed_spec, best, long = specs.values()
    base = crossed_spec.base_config()
    assert best.grid == crossed_spec.grid
    assert best.base_config().eval_steps == base.eval_steps
    assert best.base_config().eta == pytest.approx(0.665)
    for factor in script.FACTORS:
        assert set(long.grid[factor]) < set(crossed_spec.grid[factor])
    assert list(long.grid["init_seed"]) == list(long.grid["order_seed"])
    assert long.base_config().eta == base.eta
    steps, shorter = long.base_config().eval_steps, base.eval_steps
    assert steps is not None and shorter is not None
    assert steps[:len(shorter)] == shorter and steps[-1] == 100000
    assert base.n_steps == script.SHORTER
    statistics = {"share_residual", "share_init", "sigma2_init", "sigma2_order",
                  "residual_minus_test_set", "share_residual_change"}
    for name, prefix in script.FOLLOW_UPS.items():
        hypotheses = specs[name].hypotheses
        assert sum(h.primary for h in hypotheses) == 1
        assert {h.statistic.split(".")[0] for h in hypotheses} == {prefix}
        assert {h.statistic.split(".")[1] for h in hypotheses} <= statistics


def test_a_follow_up_not_run_yet_is_declared_with_every_hypothesis_not_evaluated(
        script, monkeypatch, tmp_path):
    monkeypatch.setattr("common.RESULTS", tmp_path)  # no results/<follow-up> there
    found = script.follow_up("crossed-seeds-long", "crossed_long", pd.DataFrame())
    assert found["run"] is False
    assert found["planned"]["n_runs"] == 256 and found["planned"]["n_steps"] == 100000
    assert [h["verdict"] for h in found["hypotheses"]] == ["not evaluated"] * 3
    assert {h["reason"] for h in found["hypotheses"]} == {
        "crossed-seeds-long has not run yet"}
    assert found["hypotheses"][0]["primary"]
    text = script.follow_up_text(found)
    assert "Declared, not run yet: `nnlab run studies/crossed-seeds-long.toml --jobs 2`" in text
    assert "16 init seeds (0-15) x 16 order seeds (0-15), 256 runs of 100000 steps" in text
    assert "- **long-interaction-stops-growing** (primary): crossed_long.share_residual_change" \
        " < 0.25 (basis: share of the init x order interaction" in text
    assert text.count("(secondary)") == 2 and "not evaluated" not in text


@pytest.mark.slow
def test_a_follow_up_that_has_run_is_judged_on_its_runs(script, monkeypatch, tmp_path):
    """A small crossed study (3 init x 3 order seeds on an MNIST subset) run for real: its
    components at the longest length are those of its runs' final test accuracies, and its
    declared hypothesis is judged on them, not "not evaluated"."""
    from nnlab.study import Study

    results = tmp_path / "results"
    monkeypatch.setattr("common.RESULTS", results)
    name = "tiny-crossed"
    Study({"study": {"name": name, "replicates": 1},
           "base": {"preset": "seed-000", "batch_size": 100, "eta": 1.0, "n_steps": 200,
                    "eval_steps": [0, 100, 200]},
           "grid": {"order_seed": [0, 1, 2], "init_seed": [0, 1, 2]},
           "data": {"train_size": 2000, "val_size": 500, "test_size": 500},
           "hypothesis": [{"name": "some-interaction", "statistic": "crossed_best.share_residual",
                           "greater_than": 0.0, "primary": True}]},
          results=results).run(n_jobs=1, progress=False)
    found = script.follow_up(name, "crossed_best", pd.DataFrame())
    assert found["run"] and found["design"]["n_runs"] == 9
    assert found["design"]["lengths"] == [100, 200]
    trials = pd.read_parquet(results / name / "trials.parquet")
    expected = variance_components(trials, n_draws=script.N_DRAWS, seed=200)
    assert found["components"]["200"] == expected.to_dict()
    (verdict,) = found["hypotheses"]
    assert verdict["verdict"] in ("held", "inconclusive")
    assert verdict["estimate"]["value"] == expected["residual"].share.value
    assert "share_residual_change" not in found  # not longer than crossed-seeds
    assert "Its predictions:" in script.follow_up_text(found)
