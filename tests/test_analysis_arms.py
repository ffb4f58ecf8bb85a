"""Two arms compared by their variance floors and eta_best: arms on the same seeds are
resampled together (identical arms differ by exactly 0), and pairing narrows the interval
of arms that share a seed effect."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nnlab.analysis import end_mc_error, eta_best, eta_best_ratio, floor_difference
from nnlab.errors import NNLabError

NS = [100, 300, 1000, 3000, 10_000, 30_000]


def restarts(rng: np.random.Generator, seeds: np.ndarray, floor_std: float,
             seed_effect: np.ndarray, shared: float = 0.5) -> pd.DataFrame:
    """test_acc per (seed, N): var = floor + 0.003 / N, where a share `shared` of the floor is
    the seed's own effect (seed_effect, the same in every arm that shares the seed)."""
    rows = []
    for n in NS:
        spread = np.sqrt((1 - shared) * floor_std**2 + 0.003 / n)
        values = (0.95 + np.sqrt(shared) * floor_std * seed_effect
                  + spread * rng.normal(size=seeds.size))
        rows.append(pd.DataFrame({"n_steps": n, "seed": seeds, "status": "ok",
                                  "test_acc": values}))
    return pd.concat(rows, ignore_index=True)


def sweep(rng: np.random.Generator, seeds: np.ndarray, best: float,
          seed_shift: np.ndarray | None = None) -> pd.DataFrame:
    """val_acc over a grid of eta at two N, a parabola in log eta peaked at log best plus
    the seed's own shift (seed_shift, shared by arms on the same seeds; mean 0 over the
    population, so the seed-mean curve peaks at best), plus noise."""
    etas = np.geomspace(0.1, 10, 7)
    shift = np.zeros(seeds.size) if seed_shift is None else seed_shift
    rows = [{"n_steps": n, "eta": eta, "seed": s, "status": "ok",
             "val_acc": 0.9 - 0.01 * (np.log(eta / best) - shift[k]) ** 2
             + 0.002 * rng.normal()}
            for n in (1000, 10_000) for eta in etas for k, s in enumerate(seeds)]
    return pd.DataFrame(rows)


def test_identical_arms_on_the_same_seeds_differ_by_exactly_zero():
    # the same seeds resampled in both arms: every resampled difference is 0. A change to
    # how variance_vs_n or eta_best draws its resamples that breaks the pairing fails here.
    seeds = np.arange(20)
    rng = np.random.default_rng(0)
    arm = restarts(rng, seeds, 0.002, rng.normal(size=seeds.size))
    result = floor_difference(arm, arm.sample(frac=1, random_state=1), paired=True,
                              n_resamples=300)
    assert (result.difference.value, result.difference.low, result.difference.high) == (0, 0, 0)
    grid = sweep(rng, seeds, 1.0)
    ratio = eta_best_ratio(grid, grid, paired=True, n_resamples=300)
    np.testing.assert_allclose(ratio.table[["ratio", "low", "high"]], 1.0)
    assert "paired by seed" in ratio.summary() and "paired by seed" in result.summary()
    json.dumps(result.to_dict())
    json.dumps(ratio.to_dict())


def test_pairing_is_asked_for_and_checked():
    rng = np.random.default_rng(1)
    a = restarts(rng, np.arange(10), 0.002, rng.normal(size=10))
    b = restarts(rng, np.arange(10), 0.002, rng.normal(size=10))
    with pytest.raises(NNLabError, match="floor_difference.paired: the two groups share 10 values"):
        floor_difference(a, b)
    assert not floor_difference(a, b, paired=False, n_resamples=200).paired
    holes = b[~((b["seed"] == 3) & (b["n_steps"] == 1000))]
    with pytest.raises(NNLabError, match="every n_steps of both arms to hold the same seeds"):
        floor_difference(a, holes, paired=True, n_resamples=200)
    other = restarts(rng, np.arange(10, 20), 0.002, rng.normal(size=10))
    with pytest.raises(NNLabError, match="share no value of 'seed'"):
        floor_difference(a, other, paired=True)


def test_the_small_sample_ratio_pairs_and_equals_the_widened_eta_best_of_each_arm():
    # eta_best(small_sample=True) marks its resampling ", widened by t/z": pairing still holds
    rng = np.random.default_rng(2)
    seeds = np.arange(10)
    shift = 0.3 * rng.normal(size=seeds.size)
    a, b = sweep(rng, seeds, 2.0, shift), sweep(rng, seeds, 0.5, shift)
    ratio = eta_best_ratio(a, b, paired=True, small_sample=True, n_resamples=500)
    each = [eta_best(arm, small_sample=True, n_resamples=500) for arm in (a, b)]
    assert ratio.paired and each[0].resampling.endswith(", widened by t/z")
    np.testing.assert_allclose(ratio.table["ratio"], each[0].table["eta_best"]
                               / each[1].table["eta_best"])
    low, high = np.percentile(each[0].boot_log_eta - each[1].boot_log_eta, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(ratio.table[["low", "high"]], np.exp([low, high]).T)
    plain = eta_best_ratio(a, b, paired=True, small_sample=False, n_resamples=500)
    assert (ratio.table["high"] - ratio.table["low"] > plain.table["high"]
            - plain.table["low"]).all()
    assert np.all((ratio.table["low"] < 4) & (4 < ratio.table["high"]))
    # each row's ends carry the Monte Carlo error of the ratio's 500 replicates
    for j, row in ratio.table.iterrows():
        replicates = np.exp(each[0].boot_log_eta[:, j] - each[1].boot_log_eta[:, j])
        assert row["mc_error"] == end_mc_error(replicates, [row["low"], row["high"]]) > 0


def test_pairing_narrows_the_floor_difference_of_arms_that_share_a_seed_effect():
    # two arms of 100 seeds with the same floor, 90% of it a seed effect they share
    rng = np.random.default_rng(2)
    seeds = np.arange(100)
    effect = rng.normal(size=seeds.size)
    a = restarts(rng, seeds, 0.002, effect, shared=0.9)
    b = restarts(rng, seeds, 0.002, effect, shared=0.9)
    paired = floor_difference(a, b, paired=True, n_resamples=1000)
    unpaired = floor_difference(a, b, paired=False, n_resamples=1000)
    assert paired.difference.contains(0.0)
    width = {name: r.difference.high - r.difference.low
             for name, r in (("paired", paired), ("unpaired", unpaired))}
    assert width["paired"] < 0.7 * width["unpaired"], width


def arm_coverage(n_sims: int, n_resamples: int) -> dict[str, float]:
    """Share of simulated pairs of arms on the same 100 seeds whose paired 95% interval
    holds the true floor difference (floors 4e-6 and 6.25e-6, 3.6e-6 of them a seed effect
    both arms share) and the true eta_best ratio (0.8 / 1.6, each seed's optimum shifted
    alike in both arms)."""
    seeds = np.arange(100)
    hits = {"floor": [], "eta": []}
    for sim in range(n_sims):
        rng = np.random.default_rng(sim)
        effect = rng.normal(size=seeds.size)
        a = restarts(rng, seeds, 0.002, effect, shared=0.9)
        b = restarts(rng, seeds, 0.0025, effect, shared=0.9 * 0.002**2 / 0.0025**2)
        floor = floor_difference(a, b, paired=True, n_resamples=n_resamples, seed=sim)
        hits["floor"].append(floor.difference.contains(0.002**2 - 0.0025**2))
        shift = 0.3 * rng.normal(size=seeds.size)
        ratio = eta_best_ratio(sweep(rng, seeds, 0.8, shift), sweep(rng, seeds, 1.6, shift),
                               paired=True, n_resamples=n_resamples, seed=sim)
        hits["eta"] += [low <= 0.5 <= high for low, high in zip(ratio.table["low"],
                                                                ratio.table["high"],
                                                                strict=True)]
    return {key: float(np.mean(found)) for key, found in hits.items()}


def test_paired_arm_intervals_cover_at_100_seeds():
    found = arm_coverage(40, 300)
    assert min(found.values()) >= 0.85, found


@pytest.mark.slow
def test_paired_arm_intervals_cover_in_200_simulations():
    found = arm_coverage(200, 1000)
    print("arms", found)
    assert min(found.values()) >= 0.9, found
