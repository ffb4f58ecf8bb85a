"""Test predictions of runs that err on the same hard images, with known population rates.

Image i has a difficulty d_i, run r a skill u_r: run r gets image i wrong with probability
expit(MU + d_i + u_r), so the same images are hard in every run (errors are correlated
across runs, as in real studies). When wrong, the second guess is right with an image's
own probability g_i ~ Beta(G_A, G_B); the top-1 confidence is expit(m + c_i + e_ri), m
depending on right or wrong, c_i an image's shift. The population rates (over runs and
images) follow from the model by quadrature: `population_rates`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

MU, SD_D, SD_U = -3.3, 1.5, 0.2
M_WRONG, M_RIGHT, SD_C, SD_E = 1.8, 5.0, 1.2, 0.8
G_A, G_B = 2.0, 1.0
N_CLASSES = 10


def images(rng: np.random.Generator, n_images: int) -> dict[str, np.ndarray]:
    """One test set: each image's label, difficulty, second-guess chance and confidence
    shift."""
    return {"y": rng.integers(0, N_CLASSES, n_images), "d": SD_D * rng.normal(size=n_images),
            "g": rng.beta(G_A, G_B, size=n_images), "c": SD_C * rng.normal(size=n_images)}


def predictions(rng: np.random.Generator, n_runs: int, n_images: int,
                test_set: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Compact predictions (trial, index, y_true, top1, top2, p1) of n_runs runs on a new
    test set of n_images images, or on `test_set` (from `images`)."""
    test_set = images(rng, n_images) if test_set is None else test_set
    y, d, g, c = (test_set[k] for k in ("y", "d", "g", "c"))
    shape = (n_runs, y.size)
    wrong = rng.random(shape) < special.expit(MU + d + SD_U * rng.normal(size=(n_runs, 1)))
    top1 = np.where(wrong, (y + rng.integers(1, N_CLASSES, shape)) % N_CLASSES, y)
    # the second guess: the true class when "right", else a class that is neither
    other = (top1 + rng.integers(1, N_CLASSES - 1, shape)) % N_CLASSES
    other = np.where(other == y, (other + 1) % N_CLASSES, other)
    other = np.where(other == top1, (other + 1) % N_CLASSES, other)
    top2 = np.where(wrong & (rng.random(shape) < g), y, other)
    p1 = special.expit(np.where(wrong, M_WRONG, M_RIGHT) + c + SD_E * rng.normal(size=shape))
    return pd.DataFrame({"trial": np.repeat(np.arange(n_runs), y.size),
                         "index": np.tile(np.arange(y.size), n_runs),
                         "y_true": np.tile(y, n_runs), "top1": top1.ravel(),
                         "top2": top2.ravel(), "p1": p1.ravel().astype(np.float32)})


def population_rates(n_bins: int = 15, confident: float = 0.99) -> dict[str, float]:
    """The rates of `error_analysis` over the population of runs and images."""
    z, weight = np.polynomial.hermite_e.hermegauss(100)
    weight = weight / weight.sum()
    p_wrong = float(np.sum(special.expit(MU + np.hypot(SD_D, SD_U) * z) * weight))
    sd = np.hypot(SD_C, SD_E)  # of logit p1 given right or wrong
    grid = np.linspace(-9, 9, 200_001)
    density = stats.norm.pdf(grid) * (grid[1] - grid[0])
    edges = np.linspace(0, 1, n_bins + 1)
    gaps = np.zeros(n_bins)  # E[(right - p1) 1{p1 in bin}]
    for m, right, share in ((M_RIGHT, 1, 1 - p_wrong), (M_WRONG, 0, p_wrong)):
        p = special.expit(m + sd * grid)
        in_bin = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, n_bins - 1)
        gaps += share * np.bincount(in_bin, weights=(right - p) * density, minlength=n_bins)
    return {
        "accuracy": 1 - p_wrong,
        "second_guess_rate": G_A / (G_A + G_B),
        "confident_error_share": float(stats.norm.sf((special.logit(confident) - M_WRONG) / sd)),
        "confidence_wrong": float(np.sum(special.expit(M_WRONG + sd * z) * weight)),
        "confidence_right": float(np.sum(special.expit(M_RIGHT + sd * z) * weight)),
        "auc": float(stats.norm.cdf((M_RIGHT - M_WRONG) / (np.sqrt(2) * sd))),
        "ece": float(np.abs(gaps).sum()),
    }
