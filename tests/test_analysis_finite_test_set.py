"""test_set_variance with unit="run x example": the two-way bootstrap of Jordan's split
centres on the estimate and covers the distribution-wise variance of a known model, also
where runs differ on a subgroup of examples and the bootstrap over runs alone does not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import special

from nnlab.analysis import test_set_variance
from nnlab.errors import InsufficientData, NNLabError

MU, SD_D = -3.5, 1.5  # run r gets example i wrong with probability expit(MU + d_i + u_r z_i)


def runs(rng: np.random.Generator, n_runs: int, n_test: int, share: float, sd_run: float
         ) -> pd.DataFrame:
    """Predictions of n_runs runs on n_test examples: difficulty d_i ~ N(0, SD_D); a run's
    shift u_r ~ N(0, sd_run) acts on a share `share` of the examples (z_i = 1) only."""
    d = SD_D * rng.normal(size=n_test)
    z = rng.random(n_test) < share
    u = sd_run * rng.normal(size=(n_runs, 1))
    wrong = rng.random((n_runs, n_test)) < special.expit(MU + d + u * z)
    return pd.DataFrame({"trial": np.repeat(np.arange(n_runs), n_test),
                         "index": np.tile(np.arange(n_test), n_runs), "y_true": 0,
                         "top1": wrong.ravel().astype(int)})


def distribution_wise(share: float, sd_run: float) -> float:
    """The model's variance over runs of their population error: share^2 Var_u(m(u)),
    m(u) = E_d expit(MU + d + u), by Gauss-Hermite quadrature."""
    z, weight = np.polynomial.hermite_e.hermegauss(80)
    weight = weight / weight.sum()
    m = special.expit(MU + SD_D * z[None, :] + sd_run * z[:, None]) @ weight
    return float(share**2 * np.sum(weight * (m - m @ weight) ** 2))


def population_parts(n_test: int, share: float, sd_run: float) -> dict[str, float]:
    """The model's truths for a test set of n_test examples: mean accuracy, distribution-wise
    part D, test-set part T = E_i[e_i (1 - e_i)] / n_test (e_i: the chance a run errs on
    example i, over runs), observed variance T + (n_test - 1) / n_test D, and T's share."""
    z, weight = np.polynomial.hermite_e.hermegauss(80)
    weight = weight / weight.sum()
    alike = special.expit(MU + SD_D * z)  # e of an example no run differs on, per d
    differing = special.expit(MU + SD_D * z[:, None] + sd_run * z[None, :]) @ weight
    wrong = (1 - share) * alike @ weight + share * differing @ weight
    test_set = ((1 - share) * (alike * (1 - alike)) @ weight
                + share * (differing * (1 - differing)) @ weight) / n_test
    distribution = distribution_wise(share, sd_run)
    observed = test_set + (n_test - 1) / n_test * distribution
    return {"mean_accuracy": float(1 - wrong), "distribution": distribution,
            "test_set": float(test_set), "observed": float(observed),
            "share_test_set": float(test_set / observed)}


def coverage(n_runs: int, n_test: int, n_sims: int, share: float, sd_run: float,
             n_resamples: int = 300) -> dict[str, float]:
    """Shares of simulations whose intervals hold the truth: the distribution-wise part by
    each unit ("run", "run x example"), and every part of the two-way split (the report's)."""
    truth = population_parts(n_test, share, sd_run)
    hits: dict[str, list] = {}
    for sim in range(n_sims):
        data = runs(np.random.default_rng(sim), n_runs, n_test, share, sd_run)
        by_run = test_set_variance(data, n_resamples=n_resamples, seed=sim)
        hits.setdefault("run", []).append(by_run.distribution.contains(truth["distribution"]))
        two_way = test_set_variance(data, unit="run x example", n_resamples=n_resamples,
                                    seed=sim)
        for part, value in truth.items():
            name = "run x example" if part == "distribution" else f"run x example: {part}"
            hits.setdefault(name, []).append(getattr(two_way, part).contains(value))
    return {name: float(np.mean(found)) for name, found in hits.items()}


def test_point_values_do_not_depend_on_the_unit_and_resamples_centre_on_them():
    data = runs(np.random.default_rng(0), 30, 400, 1.0, 0.3)
    by_run = test_set_variance(data, n_resamples=2000)
    two_way = test_set_variance(data, unit="run x example", n_resamples=2000)
    for part in ("mean_accuracy", "observed", "test_set", "distribution", "share_test_set"):
        found, reference = getattr(two_way, part), getattr(by_run, part)
        assert found.value == pytest.approx(reference.value, rel=1e-12), part
        assert found.low < found.value < found.high, part
    # a duplicated example's copies err together; without taking out the variance that
    # adds, the resampled observed and distribution-wise parts would sit about a test-set
    # part above the estimates
    for part in ("observed", "distribution"):
        found = getattr(two_way, part)
        assert abs((found.low + found.high) / 2 - found.value) < 0.3 * two_way.test_set.value
    assert two_way.unit == "run x example" and by_run.unit == "run"
    assert "runs and test examples (two-way)" in two_way.summary()
    assert two_way.to_dict()["unit"] == "run x example" and "unit" not in by_run.to_dict()
    json.dumps(two_way.to_dict())


def test_the_parts_are_named_by_what_they_measure():
    result = test_set_variance(runs(np.random.default_rng(1), 20, 200, 1.0, 0.3),
                               n_resamples=200)
    text = result.summary()
    assert "test-set part (runs erring on different examples)" in text
    assert "distribution-wise part (spread of the runs' population accuracy)" in text
    assert "binomial" not in text


def test_runs_that_agree_on_every_example_have_no_test_set_part():
    wrong = np.tile(np.arange(50) % 7 == 0, (6, 1))  # every run wrong on the same examples
    wrong[:3, 1] = True  # ... and half of them on one more
    data = pd.DataFrame({"trial": np.repeat(np.arange(6), 50), "index": np.tile(np.arange(50), 6),
                         "y_true": 0, "top1": wrong.ravel().astype(int)})
    result = test_set_variance(data, unit="run x example", n_resamples=200)
    assert result.test_set.value == pytest.approx(6 / 5 * 0.25 / 50**2)
    agreeing = data.assign(top1=np.tile(np.arange(50) % 7 == 0, 6).astype(int))
    with pytest.raises(InsufficientData, match=r"all 6 runs have the same test accuracy "
                                               r"\(0.84 on 50 examples\): no variance"):
        test_set_variance(agreeing, n_resamples=200)


@pytest.mark.parametrize("unit", ["run", "run x example"])
def test_runs_of_equal_accuracy_on_a_tiny_test_set_are_insufficient_data(unit):
    # 3 runs on 10 examples, each wrong on another one: equal accuracy, no variance to split
    wrong = np.eye(3, 10, dtype=bool)
    data = pd.DataFrame({"trial": np.repeat(np.arange(3), 10), "index": np.tile(np.arange(10), 3),
                         "y_true": 0, "top1": wrong.ravel().astype(int)})
    with pytest.raises(InsufficientData, match="all 3 runs have the same test accuracy"):
        test_set_variance(data, unit=unit, n_resamples=200)
    wrong[0, 5] = True  # one run one error more: a variance, and every part finite
    result = test_set_variance(data.assign(top1=wrong.ravel().astype(int)), unit=unit,
                               n_resamples=200)
    assert result.observed.value > 0 and "nan" not in result.summary()
    assert np.isfinite([result.share_test_set.low, result.share_test_set.high]).all()


def test_two_way_intervals_cover_where_runs_differ_on_a_subgroup_and_the_run_bootstrap_does_not():
    # runs differ on 10% of the examples: which examples the test set holds moves the
    # estimate, which the bootstrap over runs alone leaves out (0.79 in 100 simulations of
    # 60 runs x 400 examples); the two-way bootstrap covers (conservatively: it counts the
    # runs' disagreement on single examples under both resamplings)
    found = coverage(60, 400, 60, share=0.1, sd_run=1.5)
    assert found.pop("run") < 0.85, found
    assert min(found.values()) >= 0.85, found


def test_rejects_an_unknown_unit():
    with pytest.raises(NNLabError, match="unit: expected one of"):
        test_set_variance(runs(np.random.default_rng(2), 3, 20, 1.0, 0.1), unit="example")


@pytest.mark.slow
def test_two_way_coverage_at_the_studies_size():
    # 100 runs x 10^4 examples, as the restarts; 200 simulations of each model
    exchangeable = coverage(100, 10_000, 200, share=1.0, sd_run=0.1, n_resamples=500)
    subgroup = coverage(100, 10_000, 200, share=0.05, sd_run=1.0, n_resamples=500)
    print("exchangeable", exchangeable, "subgroup", subgroup)
    for found in (exchangeable, subgroup):
        found.pop("run")  # resampling runs alone: not the report's, and short of 0.9
        assert min(found.values()) >= 0.9, found
