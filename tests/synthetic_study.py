"""Study results built by hand, with known answers, for testing report sections."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nnlab.report.summaries import StudyResults, label_configs
from nnlab.study import StudySpec


def synthetic(grid: dict, curves: dict, replicates: int = 2, n_classes: int = 10
              ) -> StudyResults:
    """StudyResults of a grid study whose runs have the given curves; a run's final metrics
    are its curve's last row; its manifest records data of `n_classes` classes.

    curves: {(params tuple, seed): DataFrame with step, epoch, val_acc, test_acc, train_loss,
    val_loss}."""
    spec = StudySpec.from_dict({"study": {"name": "synthetic", "replicates": replicates},
                                "base": {"sizes": [784, 8, 10], "epochs": 10},
                                "grid": grid, "data": {"test_size": 100}})
    names = list(grid)
    trials, rows = [], []
    for number, ((params, seed), curve) in enumerate(curves.items()):
        last = curve.iloc[-1]
        trials.append({"trial": number, "state": "COMPLETE", "status": "ok",
                       **dict(zip(names, params, strict=True)), "seed": seed,
                       "value": last["val_acc"], "val_acc": last["val_acc"],
                       "test_acc": last["test_acc"], "seconds": 1.0,
                       "config_id": str(params), "abandoned": False, "key": f"{params}{seed}"})
        rows.append(curve.assign(trial=number))
    trials = label_configs(spec, pd.DataFrame(trials))
    curves = pd.concat(rows).merge(trials[["trial", "config", *names]], on="trial")
    data = {"name": "synthetic", "n_classes": n_classes, "image_shape": [1, 28, 28]}
    return StudyResults(spec=spec, manifest={"data": data}, trials=trials, complete=trials,
                        curves=curves, best_predictions=pd.DataFrame(), varied=names)


def ramp(steps: np.ndarray, start: float | None, top: float = 0.9) -> pd.DataFrame:
    """val_acc at chance (0.1) until `start` (None: never), then at `top`."""
    reached = steps >= start if start is not None else np.zeros(steps.shape, bool)
    val_acc = np.where(reached, top, 0.1)
    return pd.DataFrame({"step": steps, "epoch": steps / 100, "val_acc": val_acc,
                         "test_acc": val_acc, "train_loss": 1.0, "val_loss": 1.0})
