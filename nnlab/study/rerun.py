"""A rerun of a study matched to the study: the same runs, checked bit for bit.

A rerun of the same spec may number its trials differently (a study grown by raising its
replicates enqueued its new seeds after the first ones; a rerun from scratch enqueues them
in grid order), so trials are matched by `key`, the hash of a run's full configuration,
seed and data (`Runner._identity`): the same key is the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnlab.errors import DataError

CHECKED = ("val_acc", "test_acc", "val_loss", "train_loss", "steps_run", "status")


def match_rerun(name: str, trials: pd.DataFrame, rerun: pd.DataFrame,
                where: Path) -> dict[int, int]:
    """{trial: the rerun's trial} for every complete trial of the trials table `trials` of
    study `name`, matched by key in the rerun's trials table `rerun` (from the folder
    `where`), after checking that each one's CHECKED fields equal the rerun's bit for bit.
    NNLabError naming the study, trial and field at the first difference, or the trial the
    rerun has no complete run of."""
    complete = trials[trials["state"] == "COMPLETE"]
    theirs = rerun[rerun["state"] == "COMPLETE"].drop_duplicates("key").set_index("key")
    numbers = {}
    for ours in complete.to_dict("records"):
        if ours["key"] not in theirs.index:
            raise DataError(f"study {name!r}, trial {ours['trial']}: {where} has no complete "
                            f"run of its configuration and seed (key {ours['key']})")
        match = theirs.loc[ours["key"]]
        for field in CHECKED:
            if not _identical(ours[field], match[field]):
                raise DataError(
                    f"study {name!r}, trial {ours['trial']}: {field} {ours[field]!r} differs "
                    f"from {match[field]!r} in the rerun's trial {match['trial']} in {where}; "
                    "not archived")
        numbers[int(ours["trial"])] = int(match["trial"])
    return numbers


def _identical(a: Any, b: Any) -> bool:
    """Equal bit for bit: floats by their float64 bits, both missing counts as equal."""
    if pd.isna(a) or pd.isna(b):
        return pd.isna(a) and pd.isna(b)
    if isinstance(a, float | np.floating) or isinstance(b, float | np.floating):
        return np.float64(a).tobytes() == np.float64(b).tobytes()
    return a == b
