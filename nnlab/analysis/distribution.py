"""Is a set of restarts normally distributed? Tests, moments, and the tests' power at this n."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from nnlab.analysis._checks import finite_values
from nnlab.errors import ConfigError, InsufficientData

_WHERE = "normality"
MIN_N_DAGOSTINO = 8
ALTERNATIVES = {
    "skewed": "skewness 1 (chi-square, 8 df)",
    "heavy-tailed": "heavy tails (Student t, 5 df)",
}


@dataclass(frozen=True)
class HypothesisTest:
    """One hypothesis test: its statistic and p-value."""

    name: str
    statistic: float
    p_value: float

    @property
    def p_text(self) -> str:
        """'p=0.032'; 'p<1e-300' below that (subnormal or zero: no digits to trust).
        Anderson-Darling's p-value is interpolated within [0.01, 0.15] only, so it reads
        'p>=0.15' or 'p<=0.01' there."""
        if self.name == "Anderson-Darling" and self.p_value >= 0.15:
            return "p>=0.15"
        if self.name == "Anderson-Darling" and self.p_value <= 0.01:
            return "p<=0.01"
        return "p<1e-300" if self.p_value < 1e-300 else f"p={self.p_value:.2g}"

    def to_dict(self) -> dict:
        return {"name": self.name, "statistic": self.statistic, "p_value": self.p_value}


@dataclass(frozen=True)
class NormalityResult:
    """Normality tests of n values; Shapiro-Wilk decides, the others are reported beside it.

    power: the Shapiro-Wilk test's simulated power at this n and alpha against each of
    ALTERNATIVES (probability of rejecting when the data come from that distribution).
    """

    name: str
    values: np.ndarray = field(repr=False)
    alpha: float
    shapiro: HypothesisTest
    dagostino: HypothesisTest | None
    anderson: HypothesisTest
    skewness: float
    excess_kurtosis: float
    power: dict[str, float]

    @property
    def n(self) -> int:
        return int(self.values.size)

    @property
    def rejects(self) -> bool:
        """Whether Shapiro-Wilk rejects normality at level alpha."""
        return self.shapiro.p_value < self.alpha

    @property
    def verdict(self) -> str:
        """Plain-language conclusion that states n and what the test could detect."""
        power = ", ".join(
            f"{ALTERNATIVES[k]} {100 * p:.0f}% of the time" for k, p in self.power.items()
        )
        if self.rejects:
            return (
                f"Not normal: with n={self.n}, Shapiro-Wilk rejects normality "
                f"({self.shapiro.p_text} < {self.alpha:g}); skewness "
                f"{self.skewness:.2f}, excess kurtosis {self.excess_kurtosis:.2f}."
            )
        weakest = min(self.power.values())
        strength = "little" if weakest < 0.5 else "moderate" if weakest < 0.8 else "good"
        return (
            f"No evidence against normality (n={self.n}, Shapiro-Wilk "
            f"{self.shapiro.p_text}). At n={self.n} the test has {strength} power: at "
            f"alpha={self.alpha:g} it detects {power}. "
            + (
                "Departures of these kinds would likely have been seen."
                if strength == "good"
                else "Not rejecting is weak evidence of normality at this sample size."
            )
        )

    def summary(self) -> str:
        tests = [self.shapiro, self.dagostino, self.anderson]
        shown = "; ".join(f"{t.name} {t.statistic:.3g} ({t.p_text})" for t in tests if t)
        missing = "" if self.dagostino else f"; D'Agostino-Pearson needs n >= {MIN_N_DAGOSTINO}"
        return (
            f"normality of {self.name} (n={self.n}): {shown}{missing}; skewness "
            f"{self.skewness:.3f}, excess kurtosis {self.excess_kurtosis:.3f}.\n{self.verdict}"
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n": self.n,
            "alpha": self.alpha,
            "rejects": self.rejects,
            "verdict": self.verdict,
            "shapiro": self.shapiro.to_dict(),
            "dagostino": self.dagostino.to_dict() if self.dagostino else None,
            "anderson": self.anderson.to_dict(),
            "skewness": self.skewness,
            "excess_kurtosis": self.excess_kurtosis,
            "power": dict(self.power),
            "mean": float(self.values.mean()),
            "std": float(self.values.std(ddof=1)),
        }


def normality(
    values: object,
    *,
    name: str = "values",
    alpha: float = 0.05,
    n_power_sim: int = 400,
    seed: int = 0,
) -> NormalityResult:
    """Test whether `values` (n,) (e.g. final test_acc of n restarts) look normal.

    Shapiro-Wilk (n >= 3) decides; D'Agostino-Pearson (n >= 8) and Anderson-Darling (p-value
    interpolated from its tables, so clipped to [0.01, 0.15]) are reported beside it with the
    bias-corrected skewness and excess kurtosis. The power of Shapiro-Wilk at this n against
    ALTERNATIVES is estimated from `n_power_sim` simulated samples each (seeded).
    """
    x = finite_values(values, name, 3, _WHERE)
    if not 0 < alpha < 0.5:
        raise ConfigError(f"{_WHERE}.alpha", "a level in (0, 0.5)", alpha)
    if n_power_sim < 50:
        raise ConfigError(f"{_WHERE}.n_power_sim", ">= 50", n_power_sim)
    if np.ptp(x) == 0:
        raise InsufficientData(f"{_WHERE}.{name}: all {x.size} values are equal; nothing to test")
    shapiro = stats.shapiro(x)
    dagostino = None
    with warnings.catch_warnings():
        # kurtosistest warns that its approximation is rough for n < 20
        warnings.simplefilter("ignore", UserWarning)
        if x.size >= MIN_N_DAGOSTINO:
            test = stats.normaltest(x)
            dagostino = HypothesisTest(
                "D'Agostino-Pearson", float(test.statistic), float(test.pvalue)
            )
        # method= is newer than scipy-stubs' signature of anderson
        anderson = stats.anderson(x, dist="norm", method="interpolate")  # type: ignore[call-overload]
    return NormalityResult(
        name=name,
        values=x,
        alpha=alpha,
        shapiro=HypothesisTest("Shapiro-Wilk", float(shapiro.statistic), float(shapiro.pvalue)),
        dagostino=dagostino,
        anderson=HypothesisTest(
            "Anderson-Darling", float(anderson.statistic), float(anderson.pvalue)
        ),
        skewness=float(stats.skew(x, bias=False)),
        excess_kurtosis=float(stats.kurtosis(x, fisher=True, bias=False)),
        power=shapiro_power(x.size, alpha, n_power_sim, seed),
    )


def shapiro_power(n: int, alpha: float, n_sim: int = 400, seed: int = 0) -> dict[str, float]:
    """Simulated power of Shapiro-Wilk at sample size n against each of ALTERNATIVES:
    the share of n_sim seeded samples of size n that it rejects at level alpha."""
    return dict(_shapiro_power(n, alpha, n_sim, seed))


@functools.lru_cache(maxsize=256)
def _shapiro_power(n: int, alpha: float, n_sim: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    samples = {
        "skewed": rng.chisquare(8, size=(n_sim, n)),
        "heavy-tailed": rng.standard_t(5, size=(n_sim, n)),
    }
    return {
        kind: float(np.mean(stats.shapiro(x, axis=1).pvalue < alpha)) for kind, x in samples.items()
    }
