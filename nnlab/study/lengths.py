"""A study's runs read at every evaluated training length: one long run per (configuration,
seed) stands for the runs of each length N in its `eval_steps`.

Up to step N, a run evaluated at step N is the same computation as a run of length N when
nothing in it looks at the total length: the learning rate depends on the current step only
(constant, step decay every `decay_every` steps, inverse time, capped or not; not cosine,
which spreads its decay over the whole run), the data order and the noise are drawn step
by step from their own streams, the divergence rule looks only at past losses, and
evaluations never touch the weights. Its record at step N then holds, bit for bit, the
final metrics of a run of length N on the same number of BLAS threads
(tests/test_study_lengths.py trains both and compares them). Only the test predictions,
kept at the end of each run, are for its full length.

```python
lengths = prefix_lengths(spec)                   # [32, 56, ..., 10000], or NNLabError: why not
runs = runs_by_length(spec, study.trials(), study.curves())   # one row per (run, N)
```
"""

from __future__ import annotations

import pandas as pd

from nnlab.errors import DataError
from nnlab.study.spec import StudySpec
from nnlab.study.trials import METRICS

# eta(step) without the run's total length
STEP_SCHEDULES = ("constant", "step", "inv_t", "capped_inv_t")
LENGTH_FIELDS = ("n_steps", "epochs", "eval_steps")
MIN_LENGTHS = 2


def prefix_refusal(spec: StudySpec) -> str | None:
    """Why the study's runs cannot be read at their evaluation steps as runs of those
    lengths (a sentence naming the field), or None when they can: the length and
    `eval_steps` are not varied, >= 2 positive `eval_steps` are set (the default log-spaced
    evaluations draw learning curves, they are not lengths to compare), and every learning-
    rate schedule of the study depends on the current step only."""
    varied = spec.grid or spec.space
    for name in LENGTH_FIELDS:
        if name in varied:
            return f"{name} is varied: each run is read at its end"
    if len(_positive_eval_steps(spec)) < MIN_LENGTHS:
        given = spec.base_config().eval_steps
        return (f"base.eval_steps: expected >= {MIN_LENGTHS} positive steps, the lengths to "
                "read each run at, got " + (str(given) if given is not None else
                                            "none (the default log-spaced evaluations draw "
                                            "learning curves)"))
    spanning = [name for name in schedules(spec) if name not in STEP_SCHEDULES]
    if spanning:
        return (f"schedule: {', '.join(spanning)} sets the learning rate from the run's total "
                "length, so a run's state at step N is not that of a run of length N; "
                f"expected one of {', '.join(STEP_SCHEDULES)}")
    return None


def schedules(spec: StudySpec) -> list[str]:
    """The learning-rate schedules the study's runs use: the varied values, else the base's."""
    if "schedule" in spec.grid:
        return list(spec.grid["schedule"])
    if "schedule" in spec.space:
        return list(spec.space["schedule"].bounds)
    return [spec.base_config().schedule]


def prefix_lengths(spec: StudySpec) -> list[int]:
    """The training lengths N (the positive `eval_steps`, ascending) at which the study's
    runs are read as runs of length N; NNLabError with `prefix_refusal`'s reason when they
    cannot be."""
    refusal = prefix_refusal(spec)
    if refusal is not None:
        raise DataError(f"study {spec.name}: cannot read its runs at their eval_steps: "
                        f"{refusal}")
    return _positive_eval_steps(spec)


def _positive_eval_steps(spec: StudySpec) -> list[int]:
    return sorted({step for step in spec.base_config().eval_steps or [] if step > 0})


def runs_by_length(spec: StudySpec, trials: pd.DataFrame, curves: pd.DataFrame
                   ) -> pd.DataFrame:
    """One row per (complete trial, N in `prefix_lengths(spec)`): the trial's row with
    n_steps = N and, read from its curve at step N, status, val_acc, test_acc, train_loss,
    val_loss, value (the objective), steps_run (the steps a run of length N runs) and
    seconds (wall time until that evaluation).

    A run that diverged at step k (its curve's last step) counts as diverged for every
    N >= k, with the metrics of its last record (the state it diverged in); for N < k it is
    an ordinary run of length N.
    trials: the trials table (`nnlab.study.trials.trials_frame`; other columns are kept).
    curves: the curves of its complete trials (at least trial, step, the metrics, seconds).
    """
    lengths = prefix_lengths(spec)
    complete = trials[trials["state"] == "COMPLETE"]
    diverged = set(complete.loc[complete["status"] == "diverged", "trial"])
    read = [*METRICS, "seconds"]
    curves = curves.loc[curves["trial"].isin(complete["trial"]), ["trial", "step", *read]]
    rows = []
    for trial, curve in curves.groupby("trial"):
        curve = curve.set_index("step")
        end = int(curve.index.max())
        for n in lengths:
            if trial in diverged and n >= end:
                at, status = end, "diverged"
            elif n in curve.index:
                at, status = n, "ok"
            else:
                raise DataError(f"study {spec.name}, trial {trial}: step {n} of eval_steps "
                                "was not evaluated (its curve has steps "
                                f"{curve.index.tolist()})")
            rows.append({"trial": trial, "n_steps": n, "status": status, "steps_run": at,
                         **curve.loc[at, read].to_dict()})
    table = pd.DataFrame(rows, columns=["trial", "n_steps", "status", "steps_run", *read])
    table["value"] = table[spec.objective]
    kept = complete.drop(columns=[c for c in table if c != "trial" and c in complete])
    return table.merge(kept, on="trial", validate="many_to_one")
