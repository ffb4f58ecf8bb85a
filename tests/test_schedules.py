"""analysis/schedules.py on simulated runs with a known answer (families better or worse
than the best constant eta by set amounts, seeds shared by every arm), its selection on
validation by leave-one-seed-out (no winner's curse), and the six specs of the design:
the same seeds and network, budgets the script reads, hypotheses on statistics it computes,
and the derived schedule's numbers as the committed findings give them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.study import StudySpec
from nnlab.study.hypotheses import hypotheses_from

ROOT = Path(__file__).resolve().parent.parent
SPECS = ["schedules", "schedules-constant", "schedules-inv-t", "schedules-anneal-1e3",
         "schedules-anneal-1e4", "schedules-anneal-1e5"]
BUDGETS = [1000, 10000, 100000]
# true test_acc (= val_acc) of each (family, config): the best constant eta 0.970; cosine
# 0.004 above it, step 0.006 below, the derived schedule level with it
TRUE_MEANS = {
    ("constant", "eta=0.25"): 0.966, ("constant", "eta=0.5"): 0.970,
    ("constant", "eta=1"): 0.962,
    ("cosine", "eta=1"): 0.974, ("cosine", "eta=2"): 0.968,
    ("step", "eta=1"): 0.964, ("step", "eta=2"): 0.960,
    ("inv_t", "eta=2, inv_t_decay=0.001"): 0.969, ("inv_t", "eta=4, inv_t_decay=0.001"): 0.965,
    ("derived", "eta=3.1, inv_t_decay=0.000477"): 0.970,
}


@pytest.fixture
def schedules(monkeypatch):
    """analysis/schedules.py as a module (the analysis/ folder on sys.path, as it runs)."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import schedules

    return schedules


def simulated_frame(means: dict, n_seeds: int, rng: np.random.Generator,
                    seed_sd: float = 0.0015, run_sd: float = 0.0007, split_sd: float = 0.0005,
                    budgets: list[int] = BUDGETS) -> pd.DataFrame:
    """runs_frame's rows for every (family, config) of `means` at every budget: true mean +
    a seed effect shared by all arms of the seed + a run effect shared by its val_acc and
    test_acc + independent noise on each."""
    rows = []
    for seed in range(10, 10 + n_seeds):
        shared = rng.normal(0, seed_sd)
        for (family, config), mean in means.items():
            for n in budgets:
                run = mean + shared + rng.normal(0, run_sd)
                rows.append({"family": family, "config": config, "seed": seed, "n_steps": n,
                             "status": "ok", "val_acc": run + rng.normal(0, split_sd),
                             "test_acc": run + rng.normal(0, split_sd)})
    return pd.DataFrame(rows)


HYPOTHESES = hypotheses_from([
    {"name": "derived-ties", "statistic": "derived-constant.N100000", "equals": 0.0,
     "margin": 0.002, "primary": True},
    {"name": "cosine-beats", "statistic": "cosine-constant.N10000", "greater_than": 0.0},
    {"name": "step-ties", "statistic": "step-constant.N1000", "equals": 0.0, "margin": 0.002},
    {"name": "absent", "statistic": "adam-constant.N1000", "greater_than": 0.0},
])


def test_each_seed_is_tuned_on_the_other_seeds(schedules):
    val = pd.DataFrame({"a": [0.90, 0.98, 0.98], "b": [0.99, 0.94, 0.94],
                        "c": [0.99, np.nan, 0.99]}, index=[10, 11, 12])
    picks = schedules.leave_one_seed_out(val)
    # seed 10's own val_acc favours b and c; seeds 11 and 12 favour a. c has no value for
    # seed 11: it never wins where 11 is among the others (for 10 and 12), and wins for 11
    # itself (0.99 on seeds 10 and 12); for 12, b's 0.965 beats a's 0.94
    assert picks.to_dict() == {10: "a", 11: "c", 12: "b"}


def test_compute_recovers_the_known_differences_and_judges_the_hypotheses(schedules):
    frame = simulated_frame(TRUE_MEANS, 20, np.random.default_rng(1))
    numbers = schedules.compute_from(frame, HYPOTHESES)["numbers"]
    comparisons = numbers["comparisons"]
    for n in BUDGETS:
        for family, truth in (("cosine", 0.004), ("step", -0.006), ("derived", 0.0),
                              ("inv_t", -0.001)):
            d = comparisons[f"{family}-constant.N{n}"]["difference"]
            assert d["low"] < truth < d["high"], (family, n, d)
            assert d["high"] - d["low"] < 0.0015  # 20 seeds, paired: the seed effect cancels
        assert comparisons[f"derived-inv_t.N{n}"]["n_pairs"] == 20
    verdicts = {h["name"]: h["verdict"] for h in numbers["hypotheses"]}
    assert verdicts == {"derived-ties": "held", "cosine-beats": "held", "step-ties": "failed",
                        "absent": "not evaluated"}
    assert numbers["hypotheses"][0]["primary"]
    # a gap of 0.004 between etas is far beyond the noise of 19 seeds' mean: every seed's
    # pick is the best eta, and so is the pick on all seeds
    rows = {(r["family"], r["n_steps"]): r for r in numbers["families"]}
    assert rows[("constant", 10000)]["picks"] == [{"config": "eta=0.5", "seeds": 20}]
    assert rows[("cosine", 1000)]["all_seeds_pick"] == "eta=1"
    assert rows[("derived", 1000)]["n_configs"] == 1
    # the equivalence bound is the larger end of the 90% interval: the tie with derived is
    # shown within 0.002, the step's 0.006 gap is not a tie
    tost = comparisons["derived-constant.N100000"]["tost"]
    assert tost["equivalent"] and tost["bound"] < 0.002
    assert not comparisons["step-constant.N1000"]["tost"]["equivalent"]
    # Holm over every comparison: adjusted p-values are no smaller than raw ones
    claims = numbers["claims"]
    assert len(claims) == 3 * len(schedules.COMPARISONS) - 3  # no derived_smooth here
    assert all(c["p_holm"] >= c["p"] for c in claims)
    by_test = {c["test"]: c for c in claims}
    assert by_test["step-constant.N10000"]["survives"]
    assert not by_test["derived-constant.N10000"]["survives"]


def test_leave_one_seed_out_has_no_winners_curse(schedules):
    """Nine configurations with the same true accuracy against one: picking on all seeds'
    val_acc and reading the same seeds' test_acc inflates the nine (a run's luck is in
    both); leave-one-seed-out does not. 300 simulated studies of 10 seeds."""
    means = {**{("many", f"eta={k}"): 0.97 for k in range(9)}, ("one", "eta=1"): 0.97}
    rng = np.random.default_rng(2)
    in_sample, held_out = [], []
    for _ in range(300):
        frame = simulated_frame(means, 10, rng, run_sd=0.002, split_sd=0.0005,
                                budgets=[1000])
        many = frame[frame["family"] == "many"]
        best = many.groupby("config")["val_acc"].mean().idxmax()
        one = frame.loc[frame["family"] == "one", "test_acc"].mean()
        in_sample.append(many.loc[many["config"] == best, "test_acc"].mean() - one)
        results = schedules.tuned(frame)
        held_out.append(results.loc[results["family"] == "many", "test_acc"].mean() - one)
    se = np.std(held_out) / math.sqrt(len(held_out))
    assert abs(np.mean(held_out)) < 3 * se
    assert np.mean(in_sample) > 10 * se  # ~0.002 / sqrt(10) x E[max of 9 normals] ~ 0.0009


def test_a_seed_without_every_family_is_left_out(schedules):
    frame = simulated_frame(TRUE_MEANS, 6, np.random.default_rng(3))
    frame = frame[~((frame["seed"] == 12) & (frame["family"] == "cosine")
                    & (frame["config"] == "eta=2") & (frame["n_steps"] == 1000))]
    numbers = schedules.compute_from(frame, HYPOTHESES)["numbers"]
    assert numbers["design"]["seeds"] == [10, 11, 13, 14, 15]
    assert numbers["design"]["left_out"] == [12]
    with pytest.raises(Exception, match="2 seed\\(s\\) have every family's runs"):
        schedules.compute_from(frame[frame["seed"] <= 12], HYPOTHESES)


def test_findings_render_from_the_numbers_as_written(schedules, monkeypatch, tmp_path):
    import common

    frame = simulated_frame(TRUE_MEANS, 8, np.random.default_rng(4))
    frame.loc[(frame["family"] == "constant") & (frame["config"] == "eta=1"), "status"] = (
        "diverged")
    numbers = common.as_written(schedules.compute_from(frame, HYPOTHESES)["numbers"])
    text = schedules.render(numbers)
    assert "**derived-ties** (primary): derived-constant.N100000 = 0 ± 0.002" in text
    assert "| 10000 | cosine - constant | +0.00" in text
    assert "240 (family, configuration, seed, N) cells, 24 of them diverged" in text
    assert "$" not in text  # every placeholder filled
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    schedules.draw(numbers)
    assert (tmp_path / "schedules" / "findings" / "differences.png").stat().st_size > 0


# --- the design's specs -----------------------------------------------------------------

def spec(name: str) -> StudySpec:
    return StudySpec.from_toml(ROOT / "studies" / f"{name}.toml")


def test_the_six_specs_share_seeds_network_and_batch_and_read_the_budgets(schedules):
    specs = {name: spec(name) for name in SPECS}
    assert {(s.seed, s.replicates, s.objective) for s in specs.values()} == {(10, 16, "val_acc")}
    networks = {(c.sizes[1], c.sizes[2], c.activation, c.batch_size, c.optimizer)
                for c in (s.base_config() for s in specs.values())}
    assert networks == {(36, 16, "sigmoid", 100, "sgd")}
    budgets = [specs[name].base_config().n_steps for name in schedules.ANNEAL]
    assert budgets == BUDGETS
    for name in ("schedules", "schedules-constant", "schedules-inv-t"):  # read at each N
        assert set(BUDGETS) <= set(specs[name].base_config().eval_steps)
    for name in schedules.ANNEAL:  # step decay: eta, eta/10, eta/100, a third each
        config = specs[name].base_config()
        assert config.decay_every * 3 >= config.n_steps > config.decay_every * 2
    assert specs["schedules"].grid["schedule"] == list(schedules.DERIVED)


def test_the_hypotheses_name_statistics_the_script_computes(schedules):
    hypotheses = spec("schedules").hypotheses
    computed = {schedules.statistic_name(a, b, n) for a, b in schedules.COMPARISONS
                for n in BUDGETS}
    assert {h.statistic for h in hypotheses} <= computed
    assert [h.name for h in hypotheses if h.primary] == ["derived-ties-constant-1e5"]
    assert all(h.margin == schedules.MARGIN for h in hypotheses if h.kind == "equals")


def test_the_derived_schedule_is_the_committed_eta_best_curve():
    """eta = the plateau's eta_best (geometric mean over N = 100..1778) and T = eta_best x N
    (geometric mean over N = 3162..10^5), from results/eta-vs-n/findings.json, rounded."""
    rows = json.loads((ROOT / "results" / "eta-vs-n" / "findings.json").read_text())[
        "batch_100"]["eta_best"]
    plateau = [r["eta_best"] for r in rows if 100 <= r["n_steps"] <= 1778]
    falling = [r["eta_best"] * r["n_steps"] for r in rows if r["n_steps"] >= 3162]
    eta = math.exp(np.mean(np.log(plateau)))
    t_star = math.exp(np.mean(np.log(falling)))
    config = spec("schedules").base_config()
    assert config.eta == pytest.approx(eta, abs=0.05)
    assert config.eta / config.inv_t_decay == pytest.approx(t_star, rel=0.01)


# --- reading the six studies ------------------------------------------------------------

TINY = {"sizes": [784, 8, 10], "batch_size": 50}
TINY_DATA = {"train_size": 500, "val_size": 200, "test_size": 200}


def tiny_specs() -> dict[str, dict]:
    """The six studies' shapes on a small net and an MNIST subset, budgets 6, 12 and 24."""
    step_local = {**TINY, "n_steps": 24, "eval_steps": [0, 3, 6, 12, 24]}

    def study(name: str, base: dict, grid: dict) -> dict:
        return {"study": {"name": name, "replicates": 3, "seed": 10}, "base": base,
                "grid": grid, "data": TINY_DATA}

    specs = {
        "schedules-constant": study("schedules-constant", step_local, {"eta": [0.5, 2.0]}),
        "schedules-inv-t": study("schedules-inv-t", {**step_local, "schedule": "inv_t"},
                                 {"eta": [2.0], "inv_t_decay": [0.01, 0.1]}),
        "schedules": study("schedules", {**step_local, "eta": 3.0, "inv_t_decay": 0.25},
                           {"schedule": ["capped_inv_t", "inv_t"]}),
    }
    for name, n in zip(("schedules-anneal-1e3", "schedules-anneal-1e4",
                        "schedules-anneal-1e5"), (6, 12, 24), strict=True):
        specs[name] = study(name, {**TINY, "n_steps": n, "eval_steps": [0, n],
                                   "decay_every": n // 3}, {"schedule": ["cosine", "step"],
                                                            "eta": [1.0]})
    return specs


@pytest.mark.slow
def test_runs_frame_reads_each_family_at_each_budget(schedules, monkeypatch, tmp_path):
    import common

    from nnlab.study import Study

    for values in tiny_specs().values():
        Study(values, results=tmp_path).run(n_jobs=1, progress=False)
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    frame = schedules.runs_frame()
    assert sorted(frame["n_steps"].unique()) == [6, 12, 24]
    configs = frame.groupby("family")["config"].unique().map(sorted).to_dict()
    assert configs == {
        "constant": ["eta=0.5", "eta=2"], "cosine": ["eta=1"], "step": ["eta=1"],
        "derived": ["eta=3, inv_t_decay=0.25"], "derived_smooth": ["eta=3, inv_t_decay=0.25"],
        "inv_t": ["eta=2, inv_t_decay=0.01", "eta=2, inv_t_decay=0.1"]}
    assert (frame.groupby(["family", "config", "n_steps"]).size() == 3).all()  # 3 seeds
    # a step-local run read at N = 6 is its curve's record there; a cosine run its end
    constant = Study.load(tmp_path / "schedules-constant")
    curves = constant.curves(with_params=True)
    at_6 = curves[(curves["step"] == 6) & (curves["eta"] == 2.0) & (curves["seed"] == 11)]
    row = frame[(frame["family"] == "constant") & (frame["config"] == "eta=2")
                & (frame["seed"] == 11) & (frame["n_steps"] == 6)]
    assert row["val_acc"].item() == at_6["val_acc"].item()
    cosine = Study.load(tmp_path / "schedules-anneal-1e4").trials()
    cosine = cosine[(cosine["schedule"] == "cosine") & (cosine["seed"] == 12)]
    row = frame[(frame["family"] == "cosine") & (frame["seed"] == 12) & (frame["n_steps"] == 12)]
    assert row["test_acc"].item() == cosine["test_acc"].item()
    numbers = schedules.compute_from(frame, ())["numbers"]
    assert numbers["design"]["seeds"] == [10, 11, 12]
    assert "derived-constant.N24" in numbers["comparisons"]
