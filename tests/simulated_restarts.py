"""Simulated restarts with a known variance floor, at the studies' sizes.

test_acc of seed s at length N is mean + sqrt(floor) f_s,N + sqrt(scale N^-exponent) e_s,N:
the floor part f is the solution a run settles in, the other part e fades as it trains.
Read at several N, one run per seed (as the studies do), both parts are correlated along N
(AR(1) over the N in order, correlations `floor_rho` and `rho`); `df` gives the innovations
Student-t tails (None: normal). Defaults: restarts-long's floor (std 0.0017) and decline
(std 0.007 at N = 316, b = 1.1), 100 seeds at 11 lengths N = 316..10^5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NS = np.array([316, 562, 1000, 1778, 3162, 5623, 10_000, 17_783, 31_623, 56_234, 100_000])
N_SEEDS = 100
FLOOR, SCALE, EXPONENT = 0.0017**2, 0.028, 1.1


def _ar(rng: np.random.Generator, shape: tuple[int, int], rho: float,
        df: float | None) -> np.ndarray:
    """(seeds, k) unit-variance AR(1) series along axis 1 with lag-one correlation rho."""
    draw = (rng.normal(size=shape) if df is None else
            rng.standard_t(df, size=shape) * np.sqrt((df - 2) / df))
    out = np.empty(shape)
    out[:, 0] = draw[:, 0]
    for j in range(1, shape[1]):
        out[:, j] = rho * out[:, j - 1] + np.sqrt(1 - rho**2) * draw[:, j]
    return out


def restart_trials(rng: np.random.Generator, *, floor: float = FLOOR, scale: float = SCALE,
                   exponent: float = EXPONENT, ns: np.ndarray = NS, n_seeds: int = N_SEEDS,
                   rho: float = 0.5, floor_rho: float = 0.9, df: float | None = None,
                   paired: bool = True) -> pd.DataFrame:
    """One simulated study: a row per (seed, N) with n_steps, seed, status, test_acc; with
    paired=False each N has its own seeds (independent runs)."""
    shape = (n_seeds, ns.size)
    settled = _ar(rng, shape, floor_rho if paired else 0.0, df)
    fading = _ar(rng, shape, rho if paired else 0.0, df)
    test_acc = 0.966 + np.sqrt(floor) * settled + np.sqrt(scale * ns**-exponent) * fading
    seeds = np.arange(n_seeds)[:, None] + (0 if paired else n_seeds * np.arange(ns.size))
    return pd.DataFrame({"n_steps": np.tile(ns, n_seeds), "seed": np.broadcast_to(
        seeds, shape).ravel(), "status": "ok", "test_acc": test_acc.ravel()})
