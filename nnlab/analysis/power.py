"""How large an effect can the reports' tests see at a given n? Simulated power and the
minimum detectable effect (MDE).

A test that does not reject says little unless it could have: these functions simulate
each test the reports use at the caller's sample size. Every simulation is seeded and
vectorised over simulated data sets, and one set of random draws serves every effect size
(common random numbers), so power rises smoothly with the effect and the MDE search is
stable. Tests (TESTS), each with the effect it is powered against:
- "brown-forsythe", "fligner-killeen": std ratio of two independent normal samples;
- "std-ratio-bootstrap": std ratio, the BCa bootstrap interval (scipy.stats.bootstrap)
  excluding 1; pairs resampled together when `correlation` is given (paired samples);
- "pitman-morgan": std ratio of pairs with correlation `correlation`;
- "shapiro-skewness": skewness of a gamma distribution (a skewed alternative);
- "shapiro-tails": tail weight 1/df of a Student t distribution (heavy tails: 0 is the
  normal, 0.2 is t(5), 1 the Cauchy);
- "paired-t": standardised mean of the pair differences, mean / sd (Cohen's d_z);
- "welch": standardised mean difference of two independent samples (Cohen's d).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from nnlab.analysis._bootstrap import std_ratio
from nnlab.errors import ConfigError, is_integer, is_number

_WHERE = "power"
MAX_BISECTIONS = 16


@dataclass(frozen=True)
class PowerTest:
    """One test's simulation: `rejects(draws, effect, alpha)` -> (n_sim,) bool, from the
    draws of `draw(rng, n_sim, n_a, n_b, correlation)`; `null` is the effect of no
    difference, `upper` the largest effect searched, `effect` what the effect measures."""

    effect: str
    null: float
    upper: float
    draw: Callable
    rejects: Callable
    two_samples: bool = True


def _normal_pair(rng: np.random.Generator, n_sim: int, n_a: int, n_b: int,
                 correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """(z_a (n_sim, n_a), z_b (n_sim, n_b)) standard normals, z_b[:, j] correlated with
    z_a[:, j] by `correlation` (pairs: n_a = n_b)."""
    z_a = rng.standard_normal((n_sim, n_a))
    z_b = rng.standard_normal((n_sim, n_b))
    if correlation:
        z_b = correlation * z_a + np.sqrt(1 - correlation**2) * z_b
    return z_a, z_b


def _uniforms(rng: np.random.Generator, n_sim: int, n_a: int, n_b: int,
              correlation: float) -> np.ndarray:
    return rng.uniform(size=(n_sim, n_a))


def _scale_test(test: Callable) -> Callable:
    """rejects() of a two-sample spread test `test(a, b) -> p (n_sim,)`: a scaled by the
    effect (the std ratio)."""
    return lambda draws, effect, alpha: test(effect * draws[0], draws[1]) < alpha


def _bootstrap_ratio(a: np.ndarray, b: np.ndarray, paired: bool, alpha: float) -> np.ndarray:
    """Whether the BCa interval of std(a)/std(b) excludes 1, per row of a and b."""
    result = stats.bootstrap((a, b), std_ratio, n_resamples=999, paired=paired,
                             vectorized=True, axis=-1, batch=50, confidence_level=1 - alpha,
                             rng=np.random.default_rng(0))
    return np.asarray((result.confidence_interval.low > 1)
                      | (result.confidence_interval.high < 1))


def _skewed(u: np.ndarray, skewness: float) -> np.ndarray:
    """Gamma draws of shape 4 / skewness^2 (skewness 2 / sqrt(shape)) from uniforms u;
    normal draws at skewness 0."""
    return stats.norm.ppf(u) if skewness == 0 else stats.gamma.ppf(u, 4 / skewness**2)


def _heavy(u: np.ndarray, tail: float) -> np.ndarray:
    """Student t draws with 1 / `tail` degrees of freedom from uniforms u; normal draws at
    tail 0."""
    return stats.norm.ppf(u) if tail == 0 else stats.t.ppf(u, 1 / tail)


TESTS: dict[str, PowerTest] = {
    "brown-forsythe": PowerTest(
        "std ratio", 1.0, 8.0, _normal_pair,
        _scale_test(lambda a, b: stats.levene(a, b, center="median", axis=1).pvalue)),
    "fligner-killeen": PowerTest(
        "std ratio", 1.0, 8.0, _normal_pair,
        _scale_test(lambda a, b: stats.fligner(a, b, center="median", axis=1).pvalue)),
    "std-ratio-bootstrap": PowerTest(
        "std ratio", 1.0, 8.0, _normal_pair,
        lambda draws, effect, alpha: _bootstrap_ratio(effect * draws[0], draws[1],
                                                      draws[2], alpha)),
    "pitman-morgan": PowerTest(
        "std ratio", 1.0, 8.0, _normal_pair,
        _scale_test(lambda a, b: stats.pearsonr(a + b, a - b, axis=1).pvalue)),
    "shapiro-skewness": PowerTest(
        "skewness", 0.0, 4.0, _uniforms,
        lambda u, effect, alpha: stats.shapiro(_skewed(u, effect), axis=1).pvalue < alpha,
        two_samples=False),
    "shapiro-tails": PowerTest(
        "tail weight 1/df", 0.0, 1.0, _uniforms,
        lambda u, effect, alpha: stats.shapiro(_heavy(u, effect), axis=1).pvalue < alpha,
        two_samples=False),
    "paired-t": PowerTest(
        "mean / sd of the pair differences", 0.0, 4.0, _normal_pair,
        lambda draws, effect, alpha: stats.ttest_1samp(draws[0] + effect, 0.0,
                                                       axis=1).pvalue < alpha,
        two_samples=False),
    "welch": PowerTest(
        "standardised mean difference", 0.0, 4.0, _normal_pair,
        lambda draws, effect, alpha: stats.ttest_ind(draws[0] + effect, draws[1],
                                                     equal_var=False, axis=1).pvalue < alpha),
}


def power(
    test: str,
    n: int | tuple[int, int],
    effect: float,
    *,
    alpha: float = 0.05,
    correlation: float | None = None,
    n_sim: int = 1000,
    seed: int = 0,
) -> float:
    """Share of `n_sim` simulated data sets of size `n` in which `test` (a key of TESTS)
    rejects at level `alpha` when the effect is `effect` (in TESTS' units).

    n: runs per sample (an int, or (n_a, n_b) for two independent samples).
    correlation: for "pitman-morgan" and a paired "std-ratio-bootstrap", the correlation
        of the two runs of a pair (required there; a bootstrap given one resamples pairs).
    """
    spec, draws = _setup(test, n, alpha, correlation, n_sim, seed)
    _check_effect(spec, effect)
    return float(np.mean(spec.rejects(draws, float(effect), alpha)))


def minimum_detectable_effect(
    test: str,
    n: int | tuple[int, int],
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    correlation: float | None = None,
    n_sim: int = 1000,
    seed: int = 0,
) -> float:
    """The smallest effect (in TESTS' units, beyond its null value) that `test` detects
    with power >= `target` at sample size `n`, by bisection over the effect with one set of
    simulated draws (so power is found on the same data at every effect); inf when even
    TESTS' largest effect is not detected that often. Arguments as in `power`."""
    if not is_number(target) or not 0 < target < 1:
        raise ConfigError(f"{_WHERE}.target", "a power in (0, 1)", target)
    spec, draws = _setup(test, n, alpha, correlation, n_sim, seed)

    def detected(effect: float) -> bool:
        return bool(np.mean(spec.rejects(draws, effect, alpha)) >= target)

    low, high = spec.null, spec.upper
    if not detected(high):
        return float("inf")
    for _ in range(MAX_BISECTIONS):
        middle = np.sqrt(low * high) if spec.null == 1 else (low + high) / 2
        low, high = (low, middle) if detected(middle) else (middle, high)
    return float(high)


def _setup(test: str, n: object, alpha: object, correlation: object, n_sim: object,
           seed: int) -> tuple[PowerTest, object]:
    """Validate the arguments; (the test, its draws)."""
    if test not in TESTS:
        raise ConfigError(f"{_WHERE}.test", f"one of {list(TESTS)}", test)
    spec = TESTS[test]
    sizes = n if isinstance(n, tuple | list) else (n, n)
    if len(sizes) != 2 or not all(is_integer(s) and s >= 3 for s in sizes):
        raise ConfigError(f"{_WHERE}.n", "an integer >= 3 or a pair of them", n)
    if not spec.two_samples and sizes[0] != sizes[1]:
        raise ConfigError(f"{_WHERE}.n", f"one sample size for {test!r}", n)
    if not is_number(alpha) or not 0 < alpha < 0.5:
        raise ConfigError(f"{_WHERE}.alpha", "a level in (0, 0.5)", alpha)
    if not is_integer(n_sim) or n_sim < 20:
        raise ConfigError(f"{_WHERE}.n_sim", "an integer >= 20", n_sim)
    needs_pairs = test == "pitman-morgan"
    takes_pairs = needs_pairs or test == "std-ratio-bootstrap"
    if needs_pairs and correlation is None:
        raise ConfigError(f"{_WHERE}.correlation", "the correlation of a pair's two runs "
                          "(0 <= correlation < 1)", problem=f"{test!r} compares pairs")
    if correlation is not None and (not takes_pairs or not is_number(correlation)
                                    or not -1 < correlation < 1):
        raise ConfigError(f"{_WHERE}.correlation", "None, or for pitman-morgan and "
                          "std-ratio-bootstrap a number in (-1, 1)", correlation)
    if correlation is not None and sizes[0] != sizes[1]:
        raise ConfigError(f"{_WHERE}.n", "one sample size for pairs", n)
    draws = spec.draw(np.random.default_rng(seed), n_sim, int(sizes[0]), int(sizes[1]),
                      correlation or 0.0)
    if test == "std-ratio-bootstrap":
        draws = (*draws, correlation is not None)
    return spec, draws


def _check_effect(spec: PowerTest, effect: object) -> None:
    if not is_number(effect) or not spec.null <= effect <= spec.upper:
        raise ConfigError(f"{_WHERE}.effect", f"a {spec.effect} in [{spec.null:g}, "
                          f"{spec.upper:g}]", effect)
