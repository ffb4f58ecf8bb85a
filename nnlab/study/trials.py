"""The trials table: one row per Optuna trial, as in results/<study>/trials.parquet; and
the fixed fields of the study's configurations, which `Study.trials()` adds as columns."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nnlab.study.attrs import CONFIG_ID, ERROR, KEY, OWNER, RESULT, SEED
from nnlab.study.grids import param_value
from nnlab.study.liveness import owner_is_gone
from nnlab.study.spec import StudySpec
from nnlab.study.storage import stale_trial_ids
from nnlab.train_config import SEED_FIELDS, TrainConfig

METRICS = ("val_acc", "test_acc", "train_loss", "val_loss")
STREAMS = ("init", "order", "noise", "dropout")
# per run, not per configuration: the replicate seed and each stream's seed have columns
# of their own (seed, seed_init .. seed_dropout)
PER_RUN_FIELDS = ("seed", *SEED_FIELDS)
# the column type of a fixed field by its TrainConfig annotation (others: object)
_DTYPES = {"int": "int64", "int | None": "Int64", "float": "float64",
           "float | None": "float64"}


def trials_frame(spec: StudySpec, study: optuna.Study) -> pd.DataFrame:
    """Columns: trial, state (COMPLETE/FAIL/RUNNING/WAITING/PRUNED), status (ok/diverged
    for complete trials, pruned for runs a pruner stopped), the varied fields (lists as
    JSON text), seed, value (the objective; of a pruned run, its value where it stopped),
    val_acc, test_acc, train_loss, val_loss (at the last step run), steps_run, seconds (the
    run's wall time), seed_init .. seed_dropout (the seed of each random stream), abandoned
    (RUNNING but its process is gone: no heartbeat for the grace period, or its pid on this
    machine no longer runs; the next `nnlab run` retries it), owner (pid@host of
    the process that ran it), config_id, key, data_digest (the content digest of the data the
    run trained on), note, error, started, completed. A PRUNED
    trial without a key is a sampler's repeat of a known configuration, never run."""
    return trials_table(spec, study.get_trials(deepcopy=False),
                        stale_trial_ids(study._storage, study._study_id))


def trials_table(spec: StudySpec, trials: list[FrozenTrial],
                 stale: Collection[int] = ()) -> pd.DataFrame:
    """`trials_frame` of the Optuna trials `trials`; `stale`: ids of the RUNNING trials
    without a heartbeat for the grace period."""
    varied = list(spec.grid or spec.space)
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        result = attrs.get(RESULT, {})
        row = {"trial": trial.number, "state": trial.state.name, "status": result.get("status")}
        row.update({name: trial.params.get(name) for name in varied})
        row.update(seed=attrs.get(SEED), value=trial.value if trial.values else None)
        row.update({name: result.get(name) for name in METRICS})
        row.update(steps_run=result.get("n_steps"), seconds=result.get("seconds"))
        row.update({f"seed_{s}": result.get("seeds", {}).get(s) for s in STREAMS})
        owner = attrs.get(OWNER)
        row["abandoned"] = trial.state == TrialState.RUNNING and (
            trial._trial_id in stale or owner_is_gone(owner, trial.datetime_start))
        # the owner of a WAITING trial is a claim cut short (its claimer died before RUNNING)
        claimed = owner is not None and trial.state != TrialState.WAITING
        row["owner"] = f"{owner['pid']}@{owner['host']}" if claimed and owner else None
        row.update(config_id=attrs.get(CONFIG_ID), key=attrs.get(KEY),
                   data_digest=result.get("data_digest"),
                   note=result.get("note"), error=attrs.get(ERROR),
                   started=trial.datetime_start, completed=trial.datetime_complete)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=_columns(varied))
    for name in ("seed", "steps_run", *[f"seed_{s}" for s in STREAMS]):
        frame[name] = frame[name].astype("Int64")
    for name in ("value", *METRICS, "seconds"):
        frame[name] = frame[name].astype("float64")
    for name in ("started", "completed"):
        frame[name] = pd.to_datetime(frame[name])
    return frame


def _columns(varied: list[str]) -> list[str]:
    return ["trial", "state", "status", *varied, "seed", "value", *METRICS, "steps_run",
            "seconds", *[f"seed_{s}" for s in STREAMS], "abandoned",
            "owner", "config_id", "key", "data_digest", "note", "error",
            "started", "completed"]


def fixed_fields(spec: StudySpec) -> dict[str, Any]:
    """Every TrainConfig field the spec does not vary, with its value in the base config
    (the preset with [base] overriding it), in TrainConfig's order: with the varied fields,
    what defines a configuration. Lists (sizes, target_range, eval_steps) as JSON text, as
    the varied fields keep them; the per-run seeds (PER_RUN_FIELDS) are left out."""
    varied = set(spec.grid) | set(spec.space)
    base = spec.base_config().to_dict()
    return {name: param_value(value) for name, value in base.items()
            if name not in varied and name not in PER_RUN_FIELDS}


def with_fixed_fields(spec: StudySpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The trials table `frame` with a column per fixed field of `spec` (`fixed_fields`)
    after its own columns, each holding the base value in every row. Types follow
    TrainConfig: integers int64, or Int64 where the field may be None (missing: n_steps of
    a study that sets epochs, batch_size of full-batch descent), numbers float64 (NaN for
    None), text and JSON text object."""
    types = {f.name: _DTYPES.get(str(f.type), "object") for f in fields(TrainConfig)}
    columns = {name: pd.Series([value] * len(frame), index=frame.index, dtype=types[name])
               for name, value in fixed_fields(spec).items() if name not in frame}
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
