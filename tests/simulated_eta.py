"""Simulated learning-rate studies with a known best learning rate, at the studies' sizes.

The seed-mean metric at each N is an asymmetric bowl in log eta (steeper towards small eta,
as in eta-vs-n) whose maximum is exactly at eta*(N); seeds add an offset shared by all their
runs at one N plus independent noise per run; runs at eta >= `cliff` stall at chance (0.1),
as eta >= 16 do on MNIST. Scales (curvature, seed and run noise) are those of eta-vs-n at
N = 10^4: val_acc falls by ~0.012 two grid steps below the optimum and ~0.005 two above,
std over seeds ~0.002.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

ETAS = 2.0 ** np.arange(-6, 5)  # 11 learning rates, factor 2, 1/64..16
N_SEEDS = 10


def linex(d: np.ndarray, skew: float) -> np.ndarray:
    """An asymmetric bowl with minimum 0 at d = 0 and curvature 1 there:
    2 (e^(skew d) - 1 - skew d) / skew^2 (the LINEX loss of Varian 1975)."""
    return 2 * (np.exp(skew * d) - 1 - skew * d) / skew**2


def eta_trials(rng: np.random.Generator, ns: np.ndarray, truth: Callable, *,
               n_seeds: int = N_SEEDS, etas: np.ndarray = ETAS, curvature: float = 0.003,
               skew: float | Callable = -0.6, seed_sd: float = 0.001, run_sd: float = 0.0015,
               cliff: float = 16.0) -> pd.DataFrame:
    """One simulated study: a row per (N, eta, seed) with n_steps, eta, seed, status,
    val_acc; eta*(N) = truth(N). `skew` may be a function of N (the bowl's asymmetry)."""
    n, eta, seed = (a.ravel() for a in np.meshgrid(ns, etas, np.arange(n_seeds),
                                                   indexing="ij"))
    d = np.log(eta / truth(n.astype(float)))
    skew = skew(n.astype(float)) if callable(skew) else skew
    offsets = seed_sd * rng.normal(size=(len(ns), 1, n_seeds))
    offsets = np.broadcast_to(offsets, (len(ns), etas.size, n_seeds)).ravel()
    val_acc = 0.965 - curvature * linex(d, skew) + offsets + run_sd * rng.normal(size=n.size)
    val_acc = np.where(eta >= cliff, 0.1 + 0.003 * rng.normal(size=n.size), val_acc)
    return pd.DataFrame({"n_steps": n, "eta": eta, "seed": seed, "status": "ok",
                         "val_acc": val_acc})


def power_law(a: float = 9.5e3, b: float = 1.04) -> Callable:
    """eta*(N) = a N^-b (eta-vs-n-long from N = 3162 on)."""
    return lambda n: a * np.asarray(n, dtype=float) ** -b


def broken(plateau: float = 3.0, n_break: float = 3000.0, b: float = 1.0) -> Callable:
    """eta*(N) flat at `plateau` up to n_break, then falling as N^-b (eta-vs-n's shape)."""
    return lambda n: plateau * np.minimum(1.0, (np.asarray(n, dtype=float) / n_break) ** -b)
