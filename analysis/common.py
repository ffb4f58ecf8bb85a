"""What the question scripts share: a study's runs per training length, and file writing.

Each study evaluates one long run per (configuration, seed) at several steps N; with a
learning rate that depends on the current step only, its record at step N is the result of
a run of length N (see `nnlab.study.lengths`), so `runs_by_length` gives one row per
evaluated length.

The scripts read results/ (or $NNLAB_RESULTS): each study's trials.parquet and, where its
per-trial files are absent (a fresh clone), its archive. A study whose folder is absent
has not run and is left out where a script says so; anything else missing is an error,
one line on stderr naming the study or file (exit code 2), never a silent gap.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nnlab.errors import NNLabError
from nnlab.report.figures import save_figure
from nnlab.study import Study, lengths

RESULTS = Path(os.environ.get("NNLAB_RESULTS")
               or Path(__file__).resolve().parent.parent / "results")
N_TEST = 10_000  # MNIST test images
# The restarts' variance floor is fitted from this N on: from N = 100 to 178 the variance
# falls ~10-fold as the runs that took off late catch up, faster than the power law of the
# fit can follow (restarts.py's findings list the floor by the N the fit starts at).
FLOOR_FIT_FROM = 316


def load(name: str) -> Study:
    """The study whose results are in results/<name>."""
    return Study.load(RESULTS / name)


def load_if_run(name: str) -> Study | None:
    """The study in results/<name>, None if it has no folder there (not run yet)."""
    return load(name) if (RESULTS / name).exists() else None


def run(main: Callable[[], None]) -> None:
    """Run a script's `main`; bad or missing results are one line on stderr, exit code 2."""
    try:
        main()
    except NNLabError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        sys.exit(2)


def runs_by_length(study: str | Study, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs of `study` (a Study, or the name of results/<name>), one row per (finished
    trial, evaluated length N > 0) (`nnlab.study.lengths.runs_by_length`): trial, n_steps
    (= N), the varied params, seed, status, val_acc, test_acc, val_loss, ...; `trials`: its
    trials table if already read."""
    study = load(study) if isinstance(study, str) else study
    trials = study.trials() if trials is None else trials
    return lengths.runs_by_length(study.spec, trials, study.curves())


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


def paired_difference(a: pd.Series, b: pd.Series, seed: int = 0) -> dict:
    """Mean over seeds of a - b (both indexed by seed: the same seed's runs), with a
    bootstrap CI over seeds; wins = seeds where a > b."""
    difference = (a - b).dropna().to_numpy()
    rng = np.random.default_rng(seed)
    boot = rng.choice(difference, (2000, difference.size)).mean(axis=1)
    low, high = percentile_interval(boot)
    return {"value": float(difference.mean()), "low": low, "high": high,
            "n_pairs": int(difference.size), "wins": int((difference > 0).sum())}


SCALE_UP = (
    "Scale up: more seeds (raise study.replicates: the study grows and keeps the runs it "
    "has; CIs shrink about as 1/sqrt(seeds)) and longer runs (a new spec with a larger "
    "n_steps and eval_steps, as the *-long studies are; with a constant eta their values at "
    "the old lengths are the old runs', bit for bit; the cost grows with the longest N "
    "only). Past one "
    "machine: put the study in PostgreSQL (`nnlab run <spec> --storage "
    "postgresql://user@host/db --jobs 2`) and start the same command on every host: the "
    "trials are enqueued once and each runs exactly once, whichever worker pulls it."
)


def scale_up(for_this_question: str) -> str:
    """The findings' scale-up paragraph: what helps this question most, then SCALE_UP."""
    return (f"Scale up for this question: {for_this_question} In general: "
            + SCALE_UP.removeprefix("Scale up: "))


def std_vs_n_figure(tables: dict[str, pd.DataFrame], title: str, path,
                    binomial: pd.DataFrame | None = None) -> None:
    """Std of test_acc over seeds vs N (log-log) with bootstrap CIs, one line per label;
    tables: `variance_vs_n(...).table`s (n_steps, std, std_low, std_high, n_runs, mean).
    With `binomial` (such a table), the std sqrt(p(1-p)/n_test) a finite test set gives at
    most."""
    figure = Figure(figsize=(9, 5), layout="constrained")
    ax = figure.subplots()
    for label, table in tables.items():
        ax.errorbar(table["n_steps"], table["std"], fmt="o-", capsize=3,
                    yerr=[table["std"] - table["std_low"], table["std_high"] - table["std"]],
                    label=f"{label} ({int(table['n_runs'].min())} runs)")
    if binomial is not None:
        std = np.sqrt(binomial["mean"] * (1 - binomial["mean"]) / N_TEST)
        ax.plot(binomial["n_steps"], std, "k--", label="binomial test-set std (upper bound)")
    ax.set(xscale="log", yscale="log", xlabel="N (steps)", ylabel="std of test_acc over seeds",
           title=f"{title} (95% CIs)")
    ax.legend(fontsize="small")
    save_figure(figure, path)


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
