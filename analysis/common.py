"""What the question scripts share: a study's runs per training length, and file writing.

A run with a constant learning rate evaluated at step N is, up to step N, the same
computation as a run of length N (the schedule, the data order, the noise and the
divergence rule only look at past steps; evaluations never touch the weights), so
`runs_by_length` turns each long run's curve into one row per evaluated length.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from nnlab.study import Study

RESULTS = Path(__file__).resolve().parent.parent / "results"


def load(name: str) -> Study:
    """The study whose results are in results/<name>."""
    return Study.load(RESULTS / name)


def runs_by_length(study: Study, lengths: list[int] | None = None) -> pd.DataFrame:
    """One row per (finished trial, evaluated length N > 0): trial, n_steps (= N), the
    varied params, seed, status, val_acc, test_acc, val_loss.

    A run that diverged at step k counts as diverged for every N >= k, with the metrics of
    its last record (the state it diverged in); for N < k it is an ordinary run of length N.
    `lengths` (default: the spec's eval_steps) must be evaluation steps of the runs.
    """
    trials = study.trials()
    trials = trials[trials["state"] == "COMPLETE"]
    varied = list(study.spec.grid)
    curves = study.curves(trials["trial"].tolist())
    last = curves.groupby("trial")["step"].transform("max")
    diverged_trials = set(trials.loc[trials["status"] == "diverged", "trial"])
    if lengths is None:
        base = study.spec.base_config()
        lengths = base.eval_steps or [base.n_steps]
    planned = sorted(set(lengths) - {0})
    rows = []
    metrics = ["val_acc", "test_acc", "val_loss"]
    for trial, curve in curves.assign(last=last).groupby("trial"):
        curve = curve.set_index("step")
        end = int(curve.index.max())
        for n in planned:
            if trial in diverged_trials and n >= end:
                values, status = curve.loc[end, metrics], "diverged"
            elif n in curve.index:
                values, status = curve.loc[n, metrics], "ok"
            else:
                raise ValueError(f"trial {trial}: step {n} was not evaluated")
            rows.append({"trial": trial, "n_steps": n, "status": status, **values.to_dict()})
    table = pd.DataFrame(rows)
    keep = ["trial", "seed", *[v for v in varied if v != "n_steps"]]
    return table.merge(trials[keep], on="trial", validate="many_to_one")


def write_findings(name: str, text: str, numbers: dict) -> Path:
    """results/<name>/findings.md and findings.json (the numbers behind the text)."""
    folder = RESULTS / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "findings.json").write_text(json.dumps(numbers, indent=1, default=_plain) + "\n")
    path = folder / "findings.md"
    path.write_text(text.strip() + "\n")
    return path


def figure_path(name: str, figure: str) -> Path:
    """results/<name>/findings/<figure>: beside, not in, figures/ (which `nnlab report`
    keeps to its own files)."""
    folder = RESULTS / name / "findings"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / figure


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap `samples` (n,)."""
    tail = 50 * (1 - confidence)
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


SCALE_UP = (
    "Scale up: more seeds (study.replicates; CIs shrink about as 1/sqrt(seeds)) and longer "
    "runs (n_steps and eval_steps; the cost grows with the longest N only). Past one "
    "machine: put the study in PostgreSQL (`nnlab run <spec> --storage "
    "postgresql://user@host/db --jobs 2`) and start the same command on every host: the "
    "trials are enqueued once and each runs exactly once, whichever worker pulls it."
)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
