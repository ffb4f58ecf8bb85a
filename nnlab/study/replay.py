"""A study without its Optuna storage (a committed study in a fresh clone) as an Optuna
study in memory: what `nnlab dashboard` serves then, thrown away when it stops.

Each row of the trials table becomes a trial with its state, value, start and end, its
params under numeric distributions where the grid's values are numbers (log-scaled where
they are log-spaced, so the dashboard's plots put them on a log axis), the row's other
fields as user attributes, and its curve's objective per step as intermediate values.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from nnlab.errors import is_int, is_number
from nnlab.study.spec import StudySpec, param_value

if TYPE_CHECKING:
    from nnlab.study.study import Study

_NOT_ATTRS = ("trial", "state", "value", "started", "completed")


def replay(study: Study) -> InMemoryStorage:
    """An in-memory storage holding `study` as its trials table and curves record it."""
    spec = study.spec
    storage = InMemoryStorage()
    replayed = optuna.create_study(study_name=spec.name, storage=storage,
                                   direction=spec.direction)
    replayed.set_user_attr("spec", spec.to_dict())
    replayed.set_user_attr("objective", spec.objective)
    replayed.set_user_attr("planned", spec.n_planned)
    with warnings.catch_warnings():  # stable since Optuna 3.2, still flagged
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        replayed.set_metric_names([spec.objective])
    trials = study.trials(fixed=False)
    curves = study.curves(columns=["step", spec.objective])
    steps = {trial: dict(zip(curve["step"].tolist(), curve[spec.objective].tolist(),
                             strict=True))
             for trial, curve in curves.groupby("trial")}
    distributions = dashboard_distributions(spec)
    for row in trials.to_dict("records"):
        replayed.add_trial(_trial(row, distributions, steps.get(row["trial"], {})))
    return storage


def dashboard_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Each varied field's distribution: a grid of numbers as a numeric range (integers
    as IntDistribution), log-scaled where `log_spaced`; other grids categorical; a
    random/tpe space as the spec declares it."""
    if spec.sampler != "grid":
        return spec.distributions()
    found: dict[str, BaseDistribution] = {}
    for name, values in spec.grid.items():
        if not all(is_number(v) for v in values):
            found[name] = CategoricalDistribution([param_value(v) for v in values])
        elif all(is_int(v) for v in values):
            found[name] = IntDistribution(min(values), max(values), log=log_spaced(values))
        else:
            found[name] = FloatDistribution(min(values), max(values), log=log_spaced(values))
    return found


def log_spaced(values: list[float]) -> bool:
    """Positive values whose consecutive ratios vary less than their differences (the
    coefficient of variation of the gaps, in log and in linear scale); two values when
    they span a factor of 10 or more."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if ordered.size < 2 or ordered[0] <= 0:
        return False
    if ordered.size == 2:
        return bool(ordered[1] >= 10 * ordered[0])
    return bool(_unevenness(np.log(ordered)) <= _unevenness(ordered))


def _unevenness(ordered: np.ndarray) -> float:
    gaps = np.diff(ordered)
    return float(gaps.std() / gaps.mean())


def _trial(row: Mapping[Hashable, Any], distributions: dict[str, BaseDistribution],
           intermediate: dict[int, float]) -> FrozenTrial:
    """One trials-table row as a FrozenTrial (numbered as in the study)."""
    state = TrialState[row["state"]]
    params = {name: _param(row[name], distribution)
              for name, distribution in distributions.items() if not _missing(row[name])}
    started, completed = (None if _missing(row[key]) else row[key].to_pydatetime()
                          for key in ("started", "completed"))
    if state.is_finished():
        completed = completed or started or dt.datetime.now()
    attrs = {str(key): _plain(value) for key, value in row.items()
             if key not in _NOT_ATTRS and key not in distributions and not _missing(value)}
    return FrozenTrial(
        number=int(row["trial"]), state=state,
        value=None if _missing(row["value"]) else float(row["value"]),
        datetime_start=None if state == TrialState.WAITING else started,
        datetime_complete=completed if state.is_finished() else None,
        params=params, distributions={name: distributions[name] for name in params},
        user_attrs=attrs, system_attrs={}, intermediate_values=intermediate, trial_id=0)


def _param(value: Any, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, IntDistribution):
        return int(value)
    if isinstance(distribution, FloatDistribution):
        return float(value)
    return _plain(value)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | list | dict) and pd.isna(value))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
