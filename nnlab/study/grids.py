"""The Optuna distribution of a grid's list of values, so the dashboard's axes sort.

A list of numbers is a numeric distribution over its range: integers an IntDistribution,
any float a FloatDistribution, on a log scale when the values are log-spaced (eta = [0.3,
1, 3, 10], n_steps = [100, 300, 1000]). Anything else (strings, booleans, lists such as
sizes) stays categorical. The grid still lists exactly its values: the distribution only
tells Optuna (and optuna-dashboard) what kind of axis the values live on.
"""

from __future__ import annotations

import json
import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from nnlab.errors import is_int, is_number


def param_value(value: Any) -> Any:
    """A config value as Optuna stores it: lists (e.g. sizes) as JSON text."""
    return json.dumps(value) if isinstance(value, list) else value


def grid_distribution(values: list[Any]) -> BaseDistribution:
    """The distribution of one grid list (see the module docstring)."""
    if not all(is_number(v) for v in values):
        return CategoricalDistribution([param_value(v) for v in values])
    low, high = min(values), max(values)
    log = is_log_spaced(values)
    if all(is_int(v) for v in values):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def is_log_spaced(values: list[float]) -> bool:
    """Whether positive `values` sit more evenly on a log axis than on a linear one: the
    ratio of the largest to the smallest gap between neighbours is smaller between their
    logarithms than between the values. Two values count as log-spaced from a factor of 10
    apart."""
    points = sorted(set(values))
    if len(points) < 2 or points[0] <= 0:
        return False
    if len(points) == 2:
        return points[1] / points[0] >= 10
    linear = [b - a for a, b in zip(points, points[1:], strict=False)]
    logs = [math.log(b / a) for a, b in zip(points, points[1:], strict=False)]
    return max(logs) / min(logs) < max(linear) / min(linear)
