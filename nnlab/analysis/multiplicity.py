"""Tests of one question, adjusted together: Holm and Benjamini-Hochberg.

When a question is asked with several tests (normality at each N, each noise arm against
no noise), the chance that one of them rejects by luck grows with their number. A
`Family` collects the named tests of one question and adjusts their p-values together:
Holm (1979, Scand. J. Stat. 6) keeps the chance of any false rejection below alpha;
Benjamini-Hochberg (1995, JRSS B 57) keeps the expected share of false rejections among
the rejections below alpha (scipy.stats.false_discovery_control). Reports show the
adjusted p-value beside the raw one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from nnlab.analysis.distribution import HypothesisTest
from nnlab.errors import ConfigError, is_number

METHODS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def holm(p_values: object) -> np.ndarray:
    """Holm's step-down adjusted p-values (m,) of p-values (m,): the k-th smallest p times
    (m - k + 1), made non-decreasing in that order and capped at 1."""
    p = _p_values(p_values, "holm")
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size - np.arange(p.size))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def benjamini_hochberg(p_values: object) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (m,) (scipy.stats.false_discovery_control)."""
    return stats.false_discovery_control(_p_values(p_values, "benjamini_hochberg"), method="bh")


def adjust(p_values: object, method: str = "holm") -> np.ndarray:
    """Adjusted p-values (m,) by `method`: "holm" or "bh" (Benjamini-Hochberg)."""
    if method not in METHODS:
        raise ConfigError("adjust.method", f"one of {list(METHODS)}", method)
    return holm(p_values) if method == "holm" else benjamini_hochberg(p_values)


@dataclass
class Family:
    """The tests of one question, adjusted together.

    question: what the family asks ("does noise change the spread?"); method: "holm" or
    "bh"; add tests with `add(name, test)` (a HypothesisTest or a p-value).
    """

    question: str
    method: str = "holm"
    alpha: float = 0.05
    tests: dict[str, HypothesisTest] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError("Family.method", f"one of {list(METHODS)}", self.method)
        if not is_number(self.alpha) or not 0 < self.alpha < 1:
            raise ConfigError("Family.alpha", "a level in (0, 1)", self.alpha)

    def add(self, name: str, test: HypothesisTest | float) -> Family:
        """Add one named test (a HypothesisTest, or a bare p-value); returns the family."""
        if name in self.tests:
            raise ConfigError("Family.add.name", "", name,
                              problem=f"the family already holds a test named {name!r}")
        if not isinstance(test, HypothesisTest):
            test = HypothesisTest("p", float("nan"), float(_p_values([test], "Family.add")[0]))
        self.tests[name] = test
        return self

    @property
    def adjusted(self) -> dict[str, float]:
        """{name: adjusted p-value}, in the order the tests were added."""
        if not self.tests:
            return {}
        p = adjust([t.p_value for t in self.tests.values()], self.method)
        return dict(zip(self.tests, map(float, p), strict=True))

    def p_text(self, name: str) -> str:
        """'0.032 (Holm 0.096)': the raw and the adjusted p-value of test `name`."""
        raw = HypothesisTest("", 0.0, self.tests[name].p_value).p_text.removeprefix("p=")
        adjusted = HypothesisTest("", 0.0, self.adjusted[name]).p_text.removeprefix("p=")
        return f"{raw} ({METHODS[self.method]} {adjusted})"

    def table(self) -> pd.DataFrame:
        """One row per test: name, test, statistic, p, p_adjusted, rejects (adjusted p <
        alpha)."""
        adjusted = self.adjusted
        return pd.DataFrame({
            "name": list(self.tests),
            "test": [t.name for t in self.tests.values()],
            "statistic": [t.statistic for t in self.tests.values()],
            "p": [t.p_value for t in self.tests.values()],
            "p_adjusted": list(adjusted.values()),
            "rejects": [p < self.alpha for p in adjusted.values()],
        })

    def summary(self) -> str:
        rows = "; ".join(f"{name}: {self.p_text(name)}" for name in self.tests)
        n_rejected = sum(p < self.alpha for p in self.adjusted.values())
        return (f"{self.question} ({len(self.tests)} tests, {METHODS[self.method]}-adjusted "
                f"at alpha={self.alpha:g}: {n_rejected} reject) {rows}")

    def to_dict(self) -> dict:
        return {"question": self.question, "method": self.method, "alpha": self.alpha,
                "tests": self.table().to_dict(orient="records")}


def _p_values(p_values: object, where: str) -> np.ndarray:
    try:
        p = np.asarray(p_values, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}.p_values", "numbers in [0, 1]",
                          shown=f"{p_values!r:.60}") from exc
    if p.size == 0 or np.any(~np.isfinite(p) | (p < 0) | (p > 1)):
        raise ConfigError(f"{where}.p_values", "one or more numbers in [0, 1]",
                          shown=f"{p_values!r:.60}")
    return p
