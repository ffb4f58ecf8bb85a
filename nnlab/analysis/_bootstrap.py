"""Estimates with confidence intervals and the vectorised bootstraps behind them.

Every resampling here draws all resamples at once (index arrays of shape
(n_resamples, n)), or in fixed chunks of them, from `numpy.random.default_rng(seed)`, so
results are reproducible and a whole study's analysis takes seconds.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.nn.threads import one_blas_thread

FEW_SEEDS = 5  # below this many replicates a bootstrap CI is too narrow to trust


def sample_std(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Standard deviation (ddof=1) along `axis`, of the values sorted and shifted by their
    minimum: the same value, but exactly 0 when all values are equal (np.std leaves ~1e-16
    there, the mean of equal floats not always being that float), and the same bits for
    any order of the same values. So bootstrap resamples that repeat one value give 0, not
    1.4e-16, and those that permute the sample give exactly the sample's std (BCa counts
    resamples below the estimate: rounding noise there moved an interval's end)."""
    x = np.sort(x, axis=axis)
    return np.std(x - np.take(x, [0], axis=axis), axis=axis, ddof=1)


def std_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """std(a) / std(b) along `axis` (`sample_std`, ddof=1)."""
    return sample_std(a, axis) / sample_std(b, axis)


def few_seeds_warning(n: int) -> str:
    """A summary line when a group has fewer than FEW_SEEDS replicates, else ''."""
    if n >= FEW_SEEDS:
        return ""
    return (
        f"  (!) only {n} seeds in some cells: with fewer than {FEW_SEEDS} the bootstrap "
        "has few distinct resamples and its CIs are too narrow"
    )


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided confidence interval [low, high]. mc_error: for an
    interval read off bootstrap replicates, how far its ends may lie from where unlimited
    resamples would put them (`end_mc_error`); 0 for one computed exactly."""

    value: float
    low: float
    high: float
    confidence: float = 0.95
    mc_error: float = 0.0

    def __str__(self) -> str:
        return self.format()

    def format(self, spec: str = ".3g", scale: float = 1.0, unit: str = "") -> str:
        """'0.512 [95% CI 0.431, 0.598]'; `scale` multiplies all three (100 for percent)."""
        value, low, high = (scale * v for v in (self.value, self.low, self.high))
        level = f"{100 * self.confidence:g}%"
        return f"{value:{spec}}{unit} [{level} CI {low:{spec}}, {high:{spec}}{unit}]"

    def contains(self, x: float) -> bool:
        """Whether x lies inside the closed interval."""
        return bool(self.low <= x <= self.high)

    def to_dict(self) -> dict[str, float | None]:
        return {
            "value": _plain(self.value),
            "low": _plain(self.low),
            "high": _plain(self.high),
            "confidence": float(self.confidence),
            "mc_error": _plain(self.mc_error),
        }


def _plain(x: float) -> float | None:
    """A JSON-able float (None for NaN)."""
    x = float(x)
    return None if math.isnan(x) else x


def metric_bounds(metric: str) -> tuple[float, float]:
    """The values a metric can take, by its name: accuracies (*_acc) [0, 1], losses
    (*_loss) [0, inf), anything else unbounded."""
    if metric.endswith("_acc"):
        return 0.0, 1.0
    if metric.endswith("_loss"):
        return 0.0, math.inf
    return -math.inf, math.inf


def interval(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple:
    """Percentile interval (low, high) of bootstrap `samples` along `axis`."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=axis)
    return low, high


def estimate(value: float, samples: np.ndarray, confidence: float) -> Estimate:
    """Estimate from a point value and its bootstrap samples (n_resamples,), with the
    Monte Carlo error of its ends."""
    low, high = interval(samples, confidence)
    return Estimate(float(value), float(low), float(high), confidence,
                    end_mc_error(samples, [low, high]))


def end_mc_error(replicates: np.ndarray, ends: Sequence[float] | np.ndarray,
                 confidence: float = 0.95) -> float:
    """Monte Carlo error of an interval whose ends are quantiles of bootstrap (or simulated)
    `replicates` (n,): for each end, the level p it has among the replicates, and the
    distribution-free `confidence` interval of the p-quantile, between the order statistics
    whose ranks are the binomial(n, p) quantiles (the interval of
    `scipy.stats.quantile_test`, found here without its per-call overhead: 0.4 ms, not 3);
    the largest distance from an end to its interval's far side. Unlimited resamples would
    put each end within this of where it is, at that confidence. Percentile, widened
    percentile and BCa ends all are such quantiles (BCa's at adjusted levels). An end that
    several replicates equal (an atom: a variance truncated at 0, a breakpoint at the
    grid's edge) takes the level in the middle of theirs, so an end inside a large atom has
    no error. inf when an end lies so far out that no order statistic brackets it. NaN
    replicates are left out."""
    values = np.sort(np.asarray(replicates, dtype=float).ravel())
    values = values[~np.isnan(values)]
    n = values.size
    if n < 2:
        return math.inf
    at = np.asarray(ends, dtype=float)
    below, through = (np.searchsorted(values, at, side=side) for side in ("left", "right"))
    levels = np.clip((below + through) / (2 * n), 0.5 / n, 1 - 0.5 / n)
    tail = (1 - confidence) / 2
    lower = stats.binom.ppf(tail, n, levels).astype(int)  # ranks of the order statistics
    upper = stats.binom.ppf(1 - tail, n, levels).astype(int) + 1
    if np.any(lower < 1) or np.any(upper > n):
        return math.inf
    return float(np.max(np.maximum(at - values[lower - 1], values[upper - 1] - at)))


def resample_groups(
    groups: Sequence[np.ndarray], n_resamples: int, rng: np.random.Generator, paired: bool
) -> list[np.ndarray]:
    """Bootstrap resamples of each group: a list of (n_resamples, m_g) arrays.

    Each group is one cell of a design (one N, or one (N, eta)), holding its m_g replicate
    values. A resample is the group mean plus resampled deviations from it, scaled by
    sqrt(m/(m-1)) so the resampled variance is unbiased for small m (the "modified
    residuals" of Davison & Hinkley 1997, sec. 3.3). With `paired=True` all groups have the
    same length, ordered by seed, and share one index array: a resampled seed is resampled in
    every cell, which keeps the correlation that a shared seed induces between cells.
    """
    if paired:
        m = len(groups[0])
        shared = rng.integers(0, m, size=(n_resamples, m))
        indices = [shared] * len(groups)
    else:
        indices = [rng.integers(0, len(g), size=(n_resamples, len(g))) for g in groups]
    resamples = []
    for values, index in zip(groups, indices, strict=True):
        m = len(values)
        center = values.mean()
        scale = math.sqrt(m / (m - 1))
        resamples.append(center + scale * (values - center)[index])
    return resamples


def order_by_seed(
    data: pd.DataFrame, keys: list[str], seed_col: str | None
) -> tuple[bool, pd.DataFrame]:
    """(paired, data sorted by `keys` then seed) for `resample_groups`.

    paired: every group of `keys` holds the same distinct seeds, so seeds can be resampled
    jointly across groups.
    """
    if seed_col is None or seed_col not in data.columns:
        return False, data.sort_values(keys, kind="stable")
    seed_sets = data.groupby(keys)[seed_col].agg(  # type: ignore[type-var]  # tuples
        lambda s: tuple(sorted(s)))
    distinct = seed_sets.map(lambda seeds: len(set(seeds)) == len(seeds)).all()
    paired = bool(distinct and seed_sets.nunique() == 1)
    return paired, data.sort_values([*keys, seed_col], kind="stable")


def scipy_estimate(
    samples: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    n_resamples: int,
    seed: int,
    confidence: float,
    paired: bool = False,
) -> Estimate:
    """BCa bootstrap (scipy.stats.bootstrap, vectorised) of `statistic(*samples, axis=-1)`.

    Samples are resampled independently of each other, or with `paired=True` (samples of
    equal length, element j of each from the same unit, e.g. the same seed) by one shared
    index: a resampled unit brings all its values. When BCa is degenerate (e.g. every
    resample gives the same value) the percentile interval of the same resamples is used.
    """
    value = float(statistic(*samples, axis=-1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        with np.errstate(invalid="ignore", divide="ignore"):
            result = stats.bootstrap(
                samples,
                statistic,
                n_resamples=n_resamples,
                vectorized=True,
                paired=paired,
                confidence_level=confidence,
                method="BCa",
                rng=np.random.default_rng(seed),
            )
    low, high = (float(bound) for bound in result.confidence_interval)
    if not (np.isfinite(low) and np.isfinite(high)):
        low, high = outward_interval(result.bootstrap_distribution, confidence)
    return Estimate(value, float(low), float(high), confidence,
                    end_mc_error(result.bootstrap_distribution, [low, high]))


def outward_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap `samples` (n_resamples,) that may hold inf and NaN.

    With few replicates a resample can repeat one value, so a ratio of spreads is x/0 = inf
    or 0/0 = NaN. NaN resamples (undefined statistic) are left out; inf stays, and the
    order statistics just outside the tails are taken without interpolating, so an interval
    reaching inf reads [low, inf] instead of NaN.
    """
    defined = samples[~np.isnan(samples)]
    if defined.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = np.quantile(defined, tail, method="lower")
    high = np.quantile(defined, 1 - tail, method="higher")
    return float(low), float(high)


TWO_WAY_CHUNK = 100  # resamples per block of the two-way bootstrap (bounds its memory)


def resample_counts(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, n) float counts: how often each of n units appears in each of `size`
    bootstrap resamples of n units drawn with replacement (each row sums to n)."""
    index = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
    return np.bincount(index.ravel(), minlength=size * n).reshape(size, n).astype(float)


def two_way_counts(
    n_runs: int, n_items: int, n_resamples: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pigeonhole bootstrap of a runs x items table (Owen 2007, "The pigeonhole
    bootstrap", Ann. Appl. Stat. 1(2)): runs and items are resampled independently, and
    cell (r, i) enters a resample w_r * v_i times. Yields blocks (w (c, n_runs),
    v (c, n_items)) of at most TWO_WAY_CHUNK resamples, n_resamples rows in all. Owen and
    Eckles (2012) show the variance it gives a mean is mildly conservative."""
    for start in range(0, n_resamples, TWO_WAY_CHUNK):
        size = min(TWO_WAY_CHUNK, n_resamples - start)
        yield resample_counts(n_runs, size, rng), resample_counts(n_items, size, rng)


def two_way_sums(cells: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of K cell quantities over the two-way (pigeonhole) resamples of `two_way_counts`.

    cells: (K, n_runs, n_items), quantity k of cell (run r, item i). Returns
    (n_resamples, K): sum_r sum_i w_r v_i cells[k, r, i] for each resample. The sums over
    items run in float32 (relative error ~1e-6, far below any interval's width), on one
    BLAS thread: threaded, OpenBLAS cuts a product's long sums into other blocks, so the
    intervals would depend in their last bits on the machine's core count.
    """
    n_features, n_runs, n_items = cells.shape
    flat = cells.reshape(n_features * n_runs, n_items).astype(np.float32)  # 2x faster GEMM
    sums = np.empty((n_resamples, n_features))
    start = 0
    with one_blas_thread():
        for w, v in two_way_counts(n_runs, n_items, n_resamples, rng):
            by_run = (flat @ v.T.astype(np.float32)).reshape(n_features, n_runs, len(v))
            sums[start : start + len(v)] = np.einsum("krc,cr->ck", by_run.astype(float), w)
            start += len(v)
    return sums
