"""analysis/tstar.py's judgement of the cosine intervention (studies/eta-vs-n-cosine.toml):
on simulated sweeps with a known optimum, the paired ratio of eta_best, the exponents and
the manipulation check recover what was put in, and tell the mechanism's outcome (the
optimum doubled at every N) from the no-peak alternative's (the optimum flat at the
plateau); the committed findings list every declared hypothesis as not evaluated until the
study has run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nnlab.errors import DataError
from nnlab.study import Study
from nnlab.study.spec import StudySpec
from tests.simulated_eta import eta_trials, power_law

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "studies" / "eta-vs-n-cosine.toml"
ETAS = 2.0 ** np.arange(-6, 3)  # 1/64..4, factor 2
LENGTHS = np.array([10000, 17783, 31623, 56234, 100000])


@pytest.fixture
def tstar(monkeypatch):
    """analysis/ on sys.path, as the scripts run (`python analysis/tstar.py`)."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    import tstar

    return tstar


def sweep(truth, seed: int) -> pd.DataFrame:
    """A simulated arm: 9 etas (1/64..4) x LENGTHS x 10 seeds, optimum at truth(N), as
    sharp as eta-vs-n-long's at N = 10^5 (val_acc 0.0017 lower one grid step either side:
    curvature 0.007 in log eta)."""
    runs = eta_trials(np.random.default_rng(seed), LENGTHS, truth, etas=ETAS, curvature=0.007)
    return runs.assign(trial=np.arange(len(runs)))


def test_the_lengths_of_the_spec_are_the_ones_the_analysis_fits(tstar):
    design = tstar.cosine_design(StudySpec.from_toml(SPEC))
    assert design["lengths"] == tstar.COSINE_FIT == LENGTHS.tolist()
    assert set(tstar.COSINE_LONGEST) < set(design["lengths"])
    assert design["schedule"] == "cosine" and design["planned_seeds"] == 10


def test_a_doubled_optimum_is_measured_as_a_ratio_of_2_with_the_same_b(tstar):
    """The mechanism's outcome: eta*(N) = 2 x 6500 / N with the cosine, 6500 / N at a
    constant eta (independent simulated arms on the same seeds 0-9)."""
    found = tstar.cosine_numbers(sweep(power_law(1.3e4, 1.0), 1), sweep(power_law(6.5e3, 1.0), 2))
    log2 = found["longest"]["log2"]
    assert log2["low"] < 1.0 < log2["high"] and log2["high"] - log2["low"] < 0.6
    for row in found["ratio"]:
        assert row["low"] < 2.0 < row["high"]
    b = found["b_difference"]
    assert b["low"] < 0.0 < b["high"] and b["high"] - b["low"] < 1.0
    for arm in ("cosine", "constant"):
        exponent = found["b"][arm]["exponent"]
        assert exponent["low"] < 1.0 < exponent["high"]
    # at twice the constant arm's best grid eta the cosine arm is at its optimum and the
    # constant arm a grid step past it: the check's gain is positive
    gain = found["gain"]
    assert gain["low"] > 0 and gain["n_seeds"] == 10
    doubled = 2 * pd.DataFrame(found["eta_best"]["constant"])["eta_grid"]
    assert [c["eta"] for c in gain["cells"]] == pytest.approx(doubled.tolist())
    assert {c["eta"] for c in gain["cells"]} <= set(ETAS)  # grid values, not exp(log eta)
    statistics = found["statistics"]
    assert statistics["cos.log2_ratio_longest"].value == pytest.approx(log2["value"])
    assert statistics["cos.b_difference"].n == 10


def test_an_optimum_flat_at_the_plateau_fails_the_declared_predictions(tstar):
    """The no-peak alternative: the cosine optimum stays at 3 at every N."""
    spec = StudySpec.from_toml(SPEC)
    flat = sweep(lambda n: np.full(np.shape(n), 3.0), 3)
    design = {**tstar.cosine_design(spec), "seeds_used": list(range(10)), "runs_finished": 450}
    found = tstar.judged(spec, flat, sweep(power_law(6.5e3, 1.0), 4), design)
    verdicts = {h["name"]: h["verdict"] for h in found["hypotheses"]}
    assert verdicts["cosine-doubles-eta-best"] == "failed"
    assert verdicts["cosine-keeps-b"] == "failed"
    assert found["longest"]["log2"]["low"] > 3.5  # log2(3 / 0.09) = 5.1


@pytest.mark.slow
def test_the_cosine_runs_are_read_at_their_ends_on_the_seeds_that_finished_the_grid(
        tstar, tmp_path):
    """A tiny real cosine study (2 lengths x 3 etas, an MNIST subset): 2 seeds run, a third
    enqueued and not run, as in a study stopped early."""
    spec: dict[str, dict] = {"study": {"name": "cosine-tiny", "replicates": 2},
            "base": {"sizes": [784, 16, 10], "batch_size": 50, "schedule": "cosine",
                     "n_evals": 2},
            "grid": {"n_steps": [20, 40], "eta": [0.5, 1.0, 2.0]},
            "data": {"train_size": 1000, "val_size": 200, "test_size": 200}}
    Study(spec, results=tmp_path).run(progress=False)
    spec["study"]["replicates"] = 3
    Study(spec, results=tmp_path).plan()
    study = Study.load(tmp_path / "cosine-tiny")
    runs, used = tstar.cosine_runs(study)
    assert used == {"seeds_used": [0, 1], "runs_finished": 12}
    assert len(runs) == 12 and sorted(runs["n_steps"].unique()) == [20, 40]
    last = study.curves(columns=["val_acc"]).groupby("trial").tail(1).set_index("trial")
    assert np.array_equal(runs.set_index("trial")["val_acc"].sort_index(),
                          last["val_acc"].sort_index())  # each run at its own end
    with pytest.raises(DataError, match="grid.n_steps must be"):
        tstar.cosine_design(study.spec)


def test_the_paired_ratio_of_an_arm_with_itself_is_1_and_unpaired_arms_are_refused(tstar):
    runs = sweep(power_law(6.5e3, 1.0), 5)
    result = tstar.sweep_eta_best(runs)
    table, boot = tstar.paired_log_ratio(result, result, tstar.COSINE_FIT)
    assert np.allclose(table[["ratio", "low", "high"]], 1.0) and not boot.any()
    fewer = tstar.sweep_eta_best(runs.drop(index=runs.index[0]))  # one run missing
    with pytest.raises(DataError, match="resampled jointly"):
        tstar.paired_log_ratio(result, fewer, tstar.COSINE_FIT)
    with pytest.raises(DataError, match="both arms at N"):
        tstar.paired_log_ratio(result, result, [*tstar.COSINE_FIT, 177828])


def test_the_manipulation_check_is_the_mean_paired_gain_with_a_t_interval(tstar):
    rng = np.random.default_rng(6)
    cells = {10000: 1.0, 100000: 0.125}
    rows = [{"n_steps": n, "eta": eta, "seed": s, "val_acc": 0.96 + 0.002 * rng.normal()}
            for n, eta in cells.items() for s in range(10)]
    constant = pd.DataFrame(rows)
    cosine = constant.assign(val_acc=constant["val_acc"] + 0.001
                             + 0.0005 * rng.normal(size=len(constant)))
    gain = tstar.gain_at_doubled_eta(cosine, constant, cells)
    per_seed = (cosine["val_acc"] - constant["val_acc"]).groupby(constant["seed"]).mean()
    assert gain["value"] == pytest.approx(per_seed.mean())
    half = 2.262 * per_seed.std(ddof=1) / np.sqrt(10)  # t_0.975 with 9 degrees of freedom
    assert gain["high"] - gain["value"] == pytest.approx(half, rel=1e-3)
    assert gain["low"] < 0.001 < gain["high"] and gain["low"] > 0
    with pytest.raises(DataError, match=r"cosine arm's runs at \(N, eta\) = \[\(10000, 2.0\)"):
        tstar.gain_at_doubled_eta(cosine, constant, {10000: 2.0})


def test_the_cosine_section_renders_declared_and_judged(tstar):
    """Not run: the plan and each hypothesis, not evaluated; run: the verdicts and a row
    per length, from findings.json's form of the numbers."""
    spec = StudySpec.from_toml(SPEC)
    text = tstar.cosine_text(json.loads(json.dumps(tstar.not_run(spec), default=float)))
    assert text.startswith("**Declared, not run yet.**") and "400 runs" in text
    for h in spec.hypotheses:
        assert f"**{h.name}**" in text
    design = {**tstar.cosine_design(spec), "seeds_used": list(range(8)), "runs_finished": 330}
    found = tstar.judged(spec, sweep(power_law(1.3e4, 1.0), 7).query("seed < 8"),
                         sweep(power_law(6.5e3, 1.0), 8).query("seed < 8"), design)
    text = tstar.cosine_text(json.loads(json.dumps(found, default=float)))
    assert "the 8 seeds that finished every (eta, N) (0, 1, 2, 3, 4, 5, 6, 7)" in text
    assert "not evaluated" not in text
    assert all(f"\n| {n} | " in text for n in LENGTHS)


def test_every_declared_hypothesis_of_the_cosine_spec_is_listed_in_the_findings():
    committed = json.loads((ROOT / "results" / "eta-vs-n-wd" / "findings.json").read_text())
    records = {h["name"]: h for h in committed["cosine"]["hypotheses"]}
    hypotheses = StudySpec.from_toml(SPEC).hypotheses
    assert set(records) == {h.name for h in hypotheses}
    assert [h.name for h in hypotheses if h.primary] == ["cosine-doubles-eta-best"]
    for h in hypotheses:
        record = records[h.name]
        assert record["prediction"] == h.prediction and record["statistic"] == h.statistic
        if not committed["cosine"]["run"]:
            assert record["verdict"] == "not evaluated" and record["estimate"] is None
            assert record["reason"] == "eta-vs-n-cosine has not run yet"
