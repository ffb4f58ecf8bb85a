"""Hypotheses declared in a study spec before it runs, and their verdicts on estimates.

```toml
[[hypothesis]]
name = "mlp-reaches-97"
statistic = "best.test_acc"      # a statistic the report computes, or one an analysis gives
greater_than = 0.97              # or less_than = x, or equals = x with margin = m > 0
primary = true                   # default false
note = "the 784-100-10 net of the seed reproduction reached 0.975"
```

A verdict compares the 95% interval of the statistic's estimate with the predicted region
([x - m, x + m] for equals, (x, inf) for greater_than, (-inf, x) for less_than): "held"
when the interval lies inside the region, "failed" when it lies entirely outside, and
"inconclusive" otherwise (docs/hypotheses.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nnlab.errors import ConfigError, is_number

HYPOTHESIS_KEYS = ("name", "statistic", "equals", "margin", "greater_than", "less_than",
                   "primary", "note")
PREDICTIONS = ("equals", "greater_than", "less_than")
VERDICTS = ("held", "failed", "inconclusive", "not evaluated")


@dataclass(frozen=True)
class Hypothesis:
    """One declared prediction: `statistic` equals `value` within `margin`, or is greater
    or less than `value` (`kind` in PREDICTIONS)."""

    name: str
    statistic: str
    kind: str
    value: float
    margin: float | None = None
    primary: bool = False
    note: str = ""

    @property
    def region(self) -> tuple[float, float]:
        """The predicted region (low, high); open at an infinite end or a threshold."""
        if self.kind == "equals":
            assert self.margin is not None  # parse_hypotheses requires one with equals
            return self.value - self.margin, self.value + self.margin
        if self.kind == "greater_than":
            return self.value, math.inf
        return -math.inf, self.value

    @property
    def prediction(self) -> str:
        """'best.test_acc in [0.95, 0.97]', 'best.test_acc > 0.97'."""
        if self.kind == "equals":
            low, high = self.region
            return f"{self.statistic} = {self.value:g} ± {self.margin:g} (in [{low:g}, {high:g}])"
        sign = ">" if self.kind == "greater_than" else "<"
        return f"{self.statistic} {sign} {self.value:g}"

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped table: `hypothesis_from(h.to_dict(), i) == h`."""
        table: dict[str, Any] = {"name": self.name, "statistic": self.statistic,
                                 self.kind: self.value}
        if self.margin is not None:
            table["margin"] = self.margin
        table["primary"] = self.primary
        if self.note:
            table["note"] = self.note
        return table


@dataclass(frozen=True)
class Estimate:
    """A statistic's value with its 95% interval [low, high]; `n` units of replication
    named by `unit` ("seed") stand behind it. mc_error: how far the interval's ends may lie
    from where unlimited resamples would put them, for an interval read off bootstrap or
    simulated replicates (`nnlab.analysis.end_mc_error`); 0 for one computed exactly."""

    value: float
    low: float
    high: float
    unit: str
    n: int
    mc_error: float = 0.0

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}] ({self.unit}, n={self.n})"


@dataclass(frozen=True)
class Verdict:
    """A hypothesis, the estimate it was judged on (None when not evaluated), the verdict
    (one of VERDICTS) and, when not evaluated or on the margin (`evaluate`), why."""

    hypothesis: Hypothesis
    estimate: Estimate | None
    verdict: str
    reason: str = ""


def hypotheses_from(tables: object) -> tuple[Hypothesis, ...]:
    """The [[hypothesis]] tables of a spec (a list of mappings), validated; names unique."""
    if not isinstance(tables, list):
        raise ConfigError("hypothesis", "an array of [[hypothesis]] tables", tables)
    hypotheses = tuple(hypothesis_from(table, i) for i, table in enumerate(tables))
    names = [h.name for h in hypotheses]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"hypothesis[{i}].name", "a name no other hypothesis has", name)
    return hypotheses


def hypothesis_from(table: object, index: int) -> Hypothesis:
    """One [[hypothesis]] table, validated; errors name `hypothesis[<index>].<key>`."""
    where = f"hypothesis[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(where, "a table of keys", table)
    for key in table:
        if key not in HYPOTHESIS_KEYS:
            raise ConfigError(f"{where}.{key}", "one of " + ", ".join(HYPOTHESIS_KEYS),
                              problem="unknown key")
    for key in ("name", "statistic"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ConfigError(f"{where}.{key}", "a non-empty string", table.get(key))
    given = [key for key in PREDICTIONS if key in table]
    if len(given) != 1:
        raise ConfigError(where, "exactly one of equals, greater_than, less_than",
                          problem=f"{len(given)} given ({', '.join(given) or 'none'})")
    kind = given[0]
    if not is_number(table[kind]):
        raise ConfigError(f"{where}.{kind}", "a finite number", table[kind])
    margin = table.get("margin")
    if kind == "equals":
        if not is_number(margin) or margin <= 0:
            raise ConfigError(f"{where}.margin", "a number > 0", margin)
    elif margin is not None:
        raise ConfigError(f"{where}.margin", f"no margin with {kind} (only with equals)",
                          margin)
    primary = table.get("primary", False)
    if not isinstance(primary, bool):
        raise ConfigError(f"{where}.primary", "true or false", primary)
    note = table.get("note", "")
    if not isinstance(note, str):
        raise ConfigError(f"{where}.note", "a string", note)
    return Hypothesis(table["name"], table["statistic"], kind, table[kind], margin,
                      primary, note)


def evaluate(hypothesis: Hypothesis, estimate: Estimate) -> Verdict:
    """The verdict on `hypothesis` from the 95% interval of `estimate`: held (the interval
    inside the predicted region), failed (entirely outside it) or inconclusive; not
    evaluated when the interval is undefined (fewer than 2 units). The interval is first
    widened by its Monte Carlo error on each side, so that no verdict rests on where the
    bootstrap's draws happened to put an end; a verdict that the widening turned
    inconclusive says so in its reason ("on the margin")."""
    low, high = estimate.low, estimate.high
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        return Verdict(hypothesis, estimate, "not evaluated",
                       f"no interval ([{low}, {high}] from n={estimate.n} {estimate.unit}s)")
    verdict = _judged(hypothesis, low - estimate.mc_error, high + estimate.mc_error)
    bare = _judged(hypothesis, low, high)
    if verdict != bare:
        return Verdict(hypothesis, estimate, verdict, (
            f"on the margin: the interval [{low:.4g}, {high:.4g}] would be "
            f"{bare}, but an end lies within its Monte Carlo error "
            f"({estimate.mc_error:.2g}) of the predicted region's bound; more resamples may "
            "settle it"))
    return Verdict(hypothesis, estimate, verdict)


def _judged(hypothesis: Hypothesis, low: float, high: float) -> str:
    """held, failed or inconclusive: the interval [low, high] against the region."""
    region_low, region_high = hypothesis.region
    if hypothesis.kind == "equals":  # a closed region
        inside = region_low <= low and high <= region_high
        outside = high < region_low or low > region_high
    elif hypothesis.kind == "greater_than":  # (x, inf)
        inside, outside = low > region_low, high <= region_low
    else:  # (-inf, x)
        inside, outside = high < region_high, low >= region_high
    return "held" if inside else "failed" if outside else "inconclusive"


def evaluate_all(hypotheses: Sequence[Hypothesis], statistics: Mapping[str, Estimate | str]
                 ) -> list[Verdict]:
    """A verdict per hypothesis, primary ones first (then in spec order). `statistics`
    maps a statistic's name to its Estimate, or to the reason it could not be computed; a
    statistic not given makes its hypothesis "not evaluated" with that reason."""
    verdicts = []
    for hypothesis in sorted(hypotheses, key=lambda h: not h.primary):
        estimate = statistics.get(hypothesis.statistic)
        if isinstance(estimate, Estimate):
            verdicts.append(evaluate(hypothesis, estimate))
        else:
            reason = estimate or (f"the statistic {hypothesis.statistic!r} was not provided "
                                  "(an analysis script can provide it)")
            verdicts.append(Verdict(hypothesis, None, "not evaluated", reason))
    return verdicts
