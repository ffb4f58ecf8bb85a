"""A study's results per configuration: seed means with t intervals, and curve bands.

A configuration is one point of the study's varied fields; its seeds are the replicates.
Every summary keeps `n` (the runs behind it) next to the interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnlab.analysis import Estimate, metric_bounds
from nnlab.analysis.intervals import mean_interval as mean_ci
from nnlab.study.spec import StudySpec
from nnlab.study.status import configurations, format_params

CURVE_METRICS = ("val_acc", "test_acc", "train_loss", "val_loss")


def metric_ci(values: np.ndarray, metric: str, confidence: float = 0.95) -> Estimate:
    """`mean_ci` of a metric: accuracies (*_acc) within [0, 1], losses (*_loss) >= 0."""
    return mean_ci(values, confidence, metric_bounds(metric))


@dataclass(frozen=True)
class StudyResults:
    """What a report reads from a study folder.

    trials: the trials table (nnlab.study.trials.trials_frame), all states.
    complete: its COMPLETE rows with a `config` label column ("eta=0.1 n_steps=300").
    curves: the curves of complete trials with `config` and the varied fields joined.
    best_predictions: the compact test predictions of the best configuration's complete
        trials (empty when none are stored).
    varied: the varied TrainConfig fields, in spec order.
    base_config: the base TrainConfig (as a dict) the study started with, as its storage
        keeps it (None for studies older than that record): a preset may change later.
    """

    spec: StudySpec
    manifest: dict
    trials: pd.DataFrame
    complete: pd.DataFrame
    curves: pd.DataFrame
    best_predictions: pd.DataFrame
    varied: list[str]
    base_config: dict | None = None

    @property
    def objective(self) -> str:
        return self.spec.objective


def label_configs(spec: StudySpec, trials: pd.DataFrame) -> pd.DataFrame:
    """`trials` with a `config` column: the varied fields as "name=value ..." text ("base
    config" when nothing varies)."""
    varied = list(spec.grid or spec.space)
    labels = [format_params({name: row[name] for name in varied})
              for row in trials[varied].to_dict("records")] if varied else "base config"
    return trials.assign(config=labels)


def configuration_table(results: StudyResults, confidence: float = 0.95) -> pd.DataFrame:
    """One row per configuration, best first (ranked on the objective, as `nnlab status`
    ranks them): config, the varied fields, n_seeds, diverged, pruned (with a pruner),
    then for the objective and test_acc: <metric>, <metric>_low, <metric>_high (seed mean
    and its t interval), <metric>_std; and seconds (mean run time)."""
    spec = results.spec
    ranked = configurations(spec, results.trials)
    if ranked.empty:
        return ranked
    ranked = label_configs(spec, ranked)
    metrics = list(dict.fromkeys([spec.objective, "test_acc"]))
    rows = []
    for config, group in results.complete.groupby("config", sort=False):
        row = {"config": config, "seconds": group["seconds"].mean()}
        for metric in metrics:
            values = group[metric].dropna().to_numpy(dtype=float)
            estimate = metric_ci(values, metric, confidence) if values.size else None
            row.update({metric: estimate.value if estimate else math.nan,
                        f"{metric}_low": estimate.low if estimate else math.nan,
                        f"{metric}_high": estimate.high if estimate else math.nan,
                        f"{metric}_std": values.std(ddof=1) if values.size > 1 else math.nan})
        rows.append(row)
    stats_table = pd.DataFrame(rows)
    pruned = ["pruned"] if spec.pruner != "none" else []
    keep = ["config", *results.varied, "n_seeds", "diverged", *pruned]
    return ranked[keep].merge(stats_table, on="config", how="left", validate="one_to_one")


def ranked_configs(results: StudyResults) -> list[str]:
    """Labels of the configurations with complete trials, best first (as `nnlab status`
    ranks them: on the objective)."""
    ranked = configurations(results.spec, results.trials)
    return [] if ranked.empty else list(label_configs(results.spec, ranked)["config"])


def best_config(results: StudyResults) -> str | None:
    """Label of the best configuration, if any trial is complete."""
    return next(iter(ranked_configs(results)), None)


def curve_bands(curves: pd.DataFrame, metrics: tuple[str, ...] = CURVE_METRICS,
                by: tuple[str, ...] = ("config",)) -> pd.DataFrame:
    """Seed mean and spread of each metric at each evaluation step, per group `by`.

    curves: the study's curves with the `by` columns. Returns long format: the `by`
    columns, step, epoch, metric, mean, std (ddof=1; NaN for one run), n (runs that reached
    that step: diverged runs stop early)."""
    long = curves.melt(id_vars=[*by, "trial", "step", "epoch"], value_vars=list(metrics),
                       var_name="metric", value_name="value")
    long = long[np.isfinite(long["value"].to_numpy(dtype=float))]
    bands = long.groupby([*by, "metric", "step"], sort=True).agg(
        epoch=("epoch", "first"), mean=("value", "mean"), std=("value", "std"),
        n=("value", "size"))
    return bands.reset_index()
