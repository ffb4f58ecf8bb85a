"""Is a difference small enough to call two arms equivalent? Two one-sided tests (TOST).

A test that does not reject "no difference" does not show that there is none. TOST
(Schuirmann 1987, J. Pharmacokinet. Biopharm. 15(6)) tests the two claims "the effect is
below the lower margin" and "above the upper margin" one-sided at level alpha; rejecting
both shows the effect lies inside the margins. That happens exactly when the (1 - 2 alpha)
interval (90% for alpha = 0.05) lies inside them, so each result also gives its
equivalence bound: the smallest symmetric margin that would be declared equivalent, i.e.
the effects excluded at 95% one-sided (for alpha = 0.05). Margins are the caller's: how
large an effect matters is a question about the science, not the data; without margins
(margins=None) the result gives the interval and its bound only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import stats

from nnlab.analysis._bootstrap import Estimate, outward_interval, std_ratio
from nnlab.analysis._checks import check_resampling, finite_values
from nnlab.analysis.intervals import std_ratio_interval, std_ratio_parts
from nnlab.analysis.paired import as_pairs
from nnlab.errors import ConfigError, is_number

MIN_RUNS = 3
Side = Literal["less", "greater"]  # the alternative of a one-sided test
RATIO_METHODS = ("bootstrap", "pitman-morgan", "bonett")


@dataclass(frozen=True)
class Equivalence:
    """TOST of `quantity` (a mean difference or a std ratio) against `margins`.

    interval: the (1 - 2 alpha) interval of the effect (Estimate.confidence says which);
    margins: (low, high), or None when none were given (then p_value is NaN);
    p_value: the larger of the two one-sided p-values (reject both: equivalent);
    bound: the equivalence bound, the smallest symmetric margin declared equivalent at
        this alpha: a difference within +-bound, a ratio within [1/bound, bound];
    method: how interval and p-values were found; unit: what the interval resamples or
        counts ("run": independent runs; "seed": pairs).
    """

    quantity: str
    names: tuple[str, str]
    interval: Estimate
    margins: tuple[float, float] | None
    p_value: float
    alpha: float
    bound: float
    method: str
    unit: str
    n: tuple[int, int] = field(default=(0, 0))

    @property
    def value(self) -> float:
        return self.interval.value

    @property
    def equivalent(self) -> bool:
        """Both one-sided tests reject: the effect lies within the margins (False without
        margins)."""
        return bool(self.p_value < self.alpha)

    @property
    def excluded_text(self) -> str:
        """The effects ruled out, in words."""
        level = f"{100 * (1 - self.alpha):g}%"
        if self.quantity == "std ratio":
            return f"ratios outside [{1 / self.bound:.3g}, {self.bound:.3g}] excluded at {level}"
        return f"differences beyond +-{self.bound:.3g} excluded at {level}"

    def summary(self) -> str:
        name_a, name_b = self.names
        test = ""
        if self.margins is not None:
            verdict = "equivalent" if self.equivalent else "not shown equivalent"
            test = (f"TOST against [{self.margins[0]:.3g}, {self.margins[1]:.3g}] "
                    f"p={self.p_value:.2g}: {verdict} at alpha={self.alpha:g}; ")
        return (f"{self.quantity} {name_a} vs {name_b} ({self.method}, unit {self.unit}, "
                f"n={self.n[0]}/{self.n[1]}): {self.interval.format('.3g')}; {test}"
                f"{self.excluded_text}")

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "names": list(self.names),
                "interval": self.interval.to_dict(),
                "margins": None if self.margins is None else list(self.margins),
                "p_value": None if math.isnan(self.p_value) else self.p_value,
                "alpha": self.alpha, "equivalent": self.equivalent,
                "bound": self.bound, "method": self.method, "unit": self.unit,
                "n": list(self.n)}


def tost_mean_difference(
    a: object,
    b: object,
    margins: float | tuple[float, float] | None,
    *,
    paired: bool = False,
    alpha: float = 0.05,
    names: tuple[str, str] = ("a", "b"),
) -> Equivalence:
    """TOST of mean(a) - mean(b) against `margins` (a number m: (-m, m); or (low, high);
    None: the interval and equivalence bound only).

    paired=False: independent runs, Welch's t for each one-sided test and the interval;
    paired=True: a and b paired as `nnlab.analysis.paired.paired_difference` pairs them
    (Series aligned on their index, or sequences by position), one-sample t on the
    differences (the paired t).
    """
    where = "tost_mean_difference"
    bounds = _margins(margins, ratio=False, where=where)
    alpha = _alpha(alpha, where)
    if paired:
        x, y, _ = as_pairs(a, b, where)
        d = x - y
        ci = stats.ttest_1samp(d, 0.0).confidence_interval(1 - 2 * alpha)

        def one_sided(value: float, side: Side) -> float:
            return float(stats.ttest_1samp(d, value, alternative=side).pvalue)

        method, unit = "paired t", "seed"
    else:
        x = finite_values(a, "a", MIN_RUNS, where)
        y = finite_values(b, "b", MIN_RUNS, where)
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(1 - 2 * alpha)

        def one_sided(value: float, side: Side) -> float:
            return float(stats.ttest_ind(x - value, y, equal_var=False,
                                         alternative=side).pvalue)

        method, unit = "Welch t", "run"
    interval = Estimate(float(x.mean() - y.mean()), float(ci.low), float(ci.high), 1 - 2 * alpha)
    return Equivalence("mean difference", (str(names[0]), str(names[1])), interval, bounds,
                       _tost_p(bounds, one_sided), alpha,
                       float(max(abs(interval.low), abs(interval.high))), method, unit,
                       (int(x.size), int(y.size)))


def tost_std_ratio(
    a: object,
    b: object,
    margins: float | tuple[float, float] | None,
    *,
    paired: bool = False,
    method: str = "bootstrap",
    alpha: float = 0.05,
    names: tuple[str, str] = ("a", "b"),
    n_resamples: int = 2000,
    seed: int = 0,
) -> Equivalence:
    """TOST of std(a) / std(b) against `margins` (a number m > 1: (1/m, m); or (low, high);
    None: the interval and equivalence bound only).

    method "bootstrap": percentile interval and one-sided p-values (the share of resampled
        ratios beyond each margin) of a bootstrap of the ratio, pairs resampled together
        when paired (scipy.stats.bootstrap); with few runs a resample can repeat one value,
        and its undefined ratio 0/0 is left out (x/0 = inf stays: the interval is open);
    method "pitman-morgan" (paired only, exact for bivariate normal pairs): the
        Pitman-Morgan t statistic for variance ratio lambda, t = (F - lambda) sqrt(n - 2) /
        (2 sqrt(lambda F (1 - r^2))) with F = var(a)/var(b) and r = corr(a, b) (Pitman 1939;
        Morgan 1939), tested at each margin (n - 2 df) and inverted for the interval;
    method "bonett" (independent samples only): Bonett's (2006) normal approximation of
        log(c F) with the pooled kurtosis (`intervals.std_ratio_parts`), tested at each
        margin and inverted for the interval; it holds its level with heavy-tailed or skewed
        runs, where the bootstrap's does not (docs/analysis.md).
    """
    where = "tost_std_ratio"
    bounds = _margins(margins, ratio=True, where=where)
    alpha = _alpha(alpha, where)
    check_resampling(n_resamples, 1 - 2 * alpha, where)
    if method not in RATIO_METHODS:
        raise ConfigError(f"{where}.method", f"one of {list(RATIO_METHODS)}", method)
    if paired:
        x, y, _ = as_pairs(a, b, where)
    else:
        if method == "pitman-morgan":
            raise ConfigError(f"{where}.method", "paired=True or method='bootstrap'",
                              problem="'pitman-morgan' compares paired samples")
        x = finite_values(a, "a", MIN_RUNS, where)
        y = finite_values(b, "b", MIN_RUNS, where)
    if method == "bonett" and paired:
        raise ConfigError(f"{where}.method", "paired=False or method='bootstrap' or "
                          "'pitman-morgan'", problem="'bonett' compares independent samples")
    if method == "pitman-morgan":
        ci = pitman_morgan_interval(x, y, 1 - 2 * alpha)
        one_sided = _pitman_morgan_test(x, y)
    elif method == "bonett":
        bonett = std_ratio_interval(x, y, 1 - 2 * alpha)
        ci = (bonett.low, bonett.high)
        one_sided = _bonett_test(x, y, alpha)
    else:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # few runs: std 0
            boot = stats.bootstrap(
                (x, y), std_ratio, n_resamples=n_resamples, paired=paired, vectorized=True,
                method="percentile", confidence_level=1 - 2 * alpha,
                rng=np.random.default_rng(seed)).bootstrap_distribution
        boot = boot[~np.isnan(boot)]
        ci = outward_interval(boot, 1 - 2 * alpha)

        def one_sided(value: float, side: Side) -> float:
            """The share of resampled ratios on the null's side of `value`."""
            return float(np.mean(boot <= value if side == "greater" else boot >= value))

    interval = Estimate(float(std_ratio(x, y)), ci[0], ci[1], 1 - 2 * alpha)
    with np.errstate(divide="ignore"):  # an interval reaching 0 or inf: no bound
        bound = float(np.exp(max(abs(np.log(ci[0])), abs(np.log(ci[1])))))
    return Equivalence("std ratio", (str(names[0]), str(names[1])), interval, bounds,
                       _tost_p(bounds, one_sided), alpha, bound,
                       "bootstrap percentile" if method == "bootstrap" else method,
                       "seed" if paired else "run", (int(x.size), int(y.size)))


def pitman_morgan_interval(a: np.ndarray, b: np.ndarray, confidence: float) -> tuple[float, float]:
    """Interval of std(a)/std(b) for bivariate normal pairs from the Pitman-Morgan test:
    the ratios lambda^(1/2) the two-sided test does not reject, lambda = F ((1 + 2c) -+
    sqrt((1 + 2c)^2 - 1)), c = t^2 (1 - r^2) / (n - 2), t the (1 + confidence)/2 quantile
    of Student's t with n - 2 df."""
    n = a.size
    f = float(np.var(a, ddof=1) / np.var(b, ddof=1))
    r = float(np.corrcoef(a, b)[0, 1])
    c = stats.t.ppf((1 + confidence) / 2, n - 2) ** 2 * (1 - r**2) / (n - 2)
    spread = math.sqrt((1 + 2 * c) ** 2 - 1)
    return math.sqrt(f * (1 + 2 * c - spread)), math.sqrt(f * (1 + 2 * c + spread))


def _pitman_morgan_test(x: np.ndarray, y: np.ndarray) -> Callable[[float, Side], float]:
    """The one-sided Pitman-Morgan p-value of std ratio `value` against `side` ("greater":
    H0 ratio <= value; "less": H0 ratio >= value), n - 2 df."""
    n = x.size
    f = float(np.var(x, ddof=1) / np.var(y, ddof=1))
    r = float(np.corrcoef(x, y)[0, 1])

    def one_sided(value: float, side: Side) -> float:
        lam = value**2
        t = (f - lam) * math.sqrt(n - 2) / (2 * math.sqrt(lam * f * (1 - r**2)))
        return float(stats.t.sf(t, n - 2) if side == "greater" else stats.t.cdf(t, n - 2))

    return one_sided


def _bonett_test(x: np.ndarray, y: np.ndarray, alpha: float
                 ) -> Callable[[float, Side], float]:
    """The one-sided p-value of std ratio `value` against `side` ("greater": H0 ratio <=
    value; "less": H0 ratio >= value) from Bonett's normal approximation of the log variance
    ratio, with the small-sample factor c of the (1 - 2 alpha) interval, so that the test
    and that interval agree."""
    centre, se = std_ratio_parts(x, y, float(stats.norm.ppf(1 - alpha)))

    def one_sided(value: float, side: Side) -> float:
        z = (centre - 2 * math.log(value)) / se
        return float(stats.norm.sf(z) if side == "greater" else stats.norm.cdf(z))

    return one_sided


def _tost_p(bounds: tuple[float, float] | None,
            one_sided: Callable[[float, Side], float]) -> float:
    """The TOST p-value: the larger one-sided p of effect <= low and of effect >= high
    (NaN without margins)."""
    if bounds is None:
        return math.nan
    return float(max(one_sided(bounds[0], "greater"), one_sided(bounds[1], "less")))


def _margins(margins: object, ratio: bool, where: str) -> tuple[float, float] | None:
    """(low, high) from a number m ((-m, m), or (1/m, m) for a ratio) or a pair around the
    null value (0, or 1 for a ratio); None stays None (no test)."""
    null = 1.0 if ratio else 0.0
    if margins is None:
        return None
    if is_number(margins):
        m = float(margins)
        pair = (1 / m, m) if ratio and m > 1 else (-m, m) if not ratio and m > 0 else None
    elif isinstance(margins, tuple | list) and len(margins) == 2 and all(map(is_number,
                                                                            margins)):
        pair = (float(margins[0]), float(margins[1]))
        pair = pair if pair[0] < null < pair[1] and (not ratio or pair[0] > 0) else None
    else:
        pair = None
    if pair is None:
        expected = ("a ratio m > 1 or a pair (low, high) with 0 < low < 1 < high" if ratio
                    else "a number m > 0 or a pair (low, high) with low < 0 < high")
        raise ConfigError(f"{where}.margins", f"{expected}", margins)
    return pair


def _alpha(alpha: object, where: str) -> float:
    if not is_number(alpha) or not 0 < alpha < 0.25:
        raise ConfigError(f"{where}.alpha", "a level in (0, 0.25)", alpha)
    return float(alpha)
