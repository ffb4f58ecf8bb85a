"""Run: what one training run leaves behind (curve, final metrics, test predictions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnlab.nn.model import Sequential
from nnlab.train_config import TrainConfig

CURVE_COLUMNS = ("step", "epoch", "samples_seen", "lr", "train_loss", "val_loss", "val_acc",
                 "test_acc", "grad_norm", "seconds")
NOISE_SCALE_COLUMNS = ("grad_sq", "noise_trace")
"""The curve's columns after CURVE_COLUMNS when a run measures the gradient noise scale
(TrainConfig.noise_scale_examples): |G|^2 and tr(Sigma), whose ratio is B_simple."""


def curve_columns(config: TrainConfig) -> tuple[str, ...]:
    """The columns of a run's curve: CURVE_COLUMNS, then NOISE_SCALE_COLUMNS if measured."""
    return CURVE_COLUMNS + (NOISE_SCALE_COLUMNS if config.noise_scale_examples else ())


@dataclass
class Run:
    """The result of `train(config, data)`.

    status: "ok", or "diverged" when the loss became NaN/inf or exploded (`note` says
        where); a diverged run still has a curve up to that step and final metrics of the
        model as it was then (non-finite predictions count as wrong); "stopped" when
        train's `on_eval` callback stopped it at an evaluation (its curve ends there).
    curve: DataFrame with CURVE_COLUMNS, one row per evaluation step (evaluated before that
        step runs). train_loss is the mean minibatch loss since the previous evaluation (at
        step 0: the initial loss on the first 2048 training examples, the reference of the
        explosion rule); grad_norm is the global norm of the raw gradient of the step just
        before (NaN at step 0); lr the learning rate of the next step. A run that measures
        the gradient noise scale (`curve_columns`) adds grad_sq and noise_trace of the
        parameters at that step.
    metrics: val_acc, test_acc, train_loss, val_loss (at the last step), n_steps (steps
        actually run), seconds (wall time of the whole run, evaluations included; of its
        group for a run trained in lockstep, nnlab.lockstep, as are the curve's seconds).
    test_proba: (n_test, n_classes) float32 class probabilities on the test split (a
        sigmoid output's per-class values normalised to sum to 1).
    test_labels: (n_test,) int true test labels.
    seeds: the seed behind each stream: seed, init, order, noise, dropout (stream i of
        SeedSequence(value), i = 0, 1, 2, 3 in that order).
    note: why a run diverged or stopped ("" when ok).
    model: the trained network as it was at the end (e.g. `run.model.predict_proba(x)`,
        `run.model.params`); not part of what a study stores.
    """

    config: TrainConfig
    status: str
    curve: pd.DataFrame
    metrics: dict[str, float]
    test_proba: np.ndarray
    test_labels: np.ndarray
    seeds: dict[str, int]
    note: str = ""
    model: Sequential | None = None

    def compact_predictions(self, k: int = 3) -> pd.DataFrame:
        """The k most probable classes per test example, most probable first.

        Columns: index (int32), y_true (int16), top1..topk (int16), p1..pk (float32).
        """
        proba = np.nan_to_num(self.test_proba, nan=-1.0)
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        top_p = np.take_along_axis(self.test_proba, order, axis=1).astype(np.float32)
        columns: dict[str, np.ndarray] = {
            "index": np.arange(len(self.test_labels), dtype=np.int32),
            "y_true": self.test_labels.astype(np.int16),
        }
        for i in range(k):
            columns[f"top{i + 1}"] = order[:, i].astype(np.int16)
        for i in range(k):
            columns[f"p{i + 1}"] = top_p[:, i]
        return pd.DataFrame(columns)
