"""Pruning: how much training Hyperband and successive halving need to find what an
unpruned random search finds, judging runs or whole configurations.

    .venv/bin/python benchmarks/bench_pruning.py [--space narrow] [--trials 16] [--jobs 2]
        [--seed 0]

The search: seed-000's network (784-H-16-10 sigmoid, softmax + cross-entropy, plain SGD at a
constant eta) at batch 100 on MNIST (the full training and validation splits; the first
2000 test images, as the test set only reports), a random search over eta (log-uniform),
n_steps (log-uniform integers) and the first hidden layer H, 3 seeds per configuration, 10
evaluations per run (log-spaced), in one of two spaces (`--space`):

- narrow (the default): eta 0.05..20, n_steps 200..2000, H in {16, 36, 64}. It sits
  around what this network's studies had already found (the best constant eta of 2-4 at
  N up to about 2000), so a random search lands near the answer early;
- wide (`--space wide`): what a researcher who has not seen this network would search,
  chosen before any run of it: eta 1e-3..100, five decades, from rates that barely move
  the weights to rates at which plain SGD can be expected to diverge; n_steps
  200..20000, from under half an epoch to 40 epochs of the 50,000 training images; H in
  {16, 36, 64, 128}, the three widths and the next power of two up.

16 configurations in either space. The wide space's expected run is (20000 - 200) /
ln(100) = 4300 steps, 5.5 times the narrow one's (1800 / ln(10) = 780): its unpruned search
trains about 16 x 3 x 4300 = 206,000 steps, and its five searches 3.2-4.1 times that if
the pruned ones cost what they do in the narrow space (0.24-1.07x of the unpruned steps
each), so about 0.7-0.85 million steps: 4-10 minutes of CPU at 0.3 ms (H = 36) to 0.6 ms
(H = 128) per step, plus about 0.4 s of evaluations per run, within 20 minutes per sampler
seed.

The same random sampler seed proposes the same configurations in the same order to every
search:

- unpruned: `--trials` configurations;
- successive halving and Hyperband: twice as many configurations, pruned with
  reduction factor 3 and min_resource a hundredth of the space's longest run (Optuna's own
  "auto" rule; 20 steps in the narrow space, 200 in the wide), Hyperband's max_resource
  that run + 1 (2001 or 20001 steps; 5 brackets in either space: the wide pruners are the
  narrow ones scaled to the longest run), each in two ways: judging runs (`pruner_unit =
  "run"`, every run against the runs before it) and judging configurations (`pruner_unit =
  "configuration"`: a configuration's first run against the first runs before it; its
  other seeds run in full once it completes, and are never run once it is pruned).

Compute is the number of training steps the runs trained (a pruned run stops where it is
pruned; a run never run costs nothing; evaluations are not counted). Walking each search's
configurations in the order they were sampled, each with all its runs (for a search that
judges runs, the trials in number order), the table gives the steps trained until the
search's best reaches the unpruned search's best, and its best within a third of the
unpruned search's steps, two ways:

- per run: the best val_acc of a complete run (a pruned run's partial value never counts);
- per configuration: the best seed mean of val_acc over the configurations whose 3 runs
  all completed (a configuration with a pruned run is no complete result); a pruned search
  reaches the unpruned best exactly when it completes that configuration's 3 runs (the same
  runs, bit for bit).

Target: the unpruned best within 0.002 at <= 1/3 of its compute.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import scipy

from nnlab.study import Study

# name: eta bounds, n_steps bounds, first hidden layer sizes
SPACES = {"narrow": ((0.05, 20.0), (200, 2000), (16, 36, 64)),
          "wide": ((1e-3, 100.0), (200, 20000), (16, 36, 64, 128))}
REDUCTION_FACTOR = 3
# label: (pruner, configurations per unpruned one, pruner unit)
SEARCHES = {"unpruned": ("none", 1, "run"),
            "successive halving, runs": ("successive_halving", 2, "run"),
            "Hyperband, runs": ("hyperband", 2, "run"),
            "successive halving, configurations": ("successive_halving", 2, "configuration"),
            "Hyperband, configurations": ("hyperband", 2, "configuration")}


def pruning(space: str) -> dict:
    """The pruners' options for `space`: min_resource a hundredth of its longest run
    (Hyperband's max_resource is resolved from that run: its steps + 1)."""
    longest = SPACES[space][1][1]
    return {"min_resource": longest // 100, "reduction_factor": REDUCTION_FACTOR}


def spec(name: str, space: str, n_trials: int, pruner: str, seed: int,
         unit: str = "run") -> dict:
    study = {"name": name, "sampler": "random", "n_trials": n_trials, "replicates": 3,
             "seed": seed}
    if pruner != "none":
        study.update(pruner=pruner, pruner_options=pruning(space), pruner_unit=unit)
    etas, n_steps, hidden = SPACES[space]
    return {"study": study,
            "base": {"preset": "seed-000", "batch_size": 100, "n_evals": 10},
            "space": {"eta": {"log_uniform": list(etas)},
                      "n_steps": {"int_log_uniform": list(n_steps)},
                      "sizes": {"choice": [[784, h, 16, 10] for h in hidden]}},
            "data": {"test_size": 2000}}


def trace(trials: pd.DataFrame) -> pd.DataFrame:
    """Per run, configuration by configuration in the order they were sampled (the number
    of their first trial), each configuration's runs by seed: steps trained so far, the
    best val_acc of a complete run so far (`run`) and the best seed mean over
    configurations whose runs are all complete so far (`config`). For a search that plans
    every seed with its configuration this is trial number order."""
    runs = trials[trials["state"].isin(["COMPLETE", "PRUNED"]) & trials["key"].notna()]
    sampled = runs.groupby("config_id")["trial"].transform("min")
    runs = runs.assign(sampled=sampled).sort_values(["sampled", "seed"])
    best_run = best_config = -np.inf
    ended: dict[str, list[pd.Series]] = {}
    rows, spent = [], 0.0
    for _, run in runs.iterrows():
        spent += float(run["steps_run"])
        complete = run["state"] == "COMPLETE"
        if complete:
            best_run = max(best_run, float(run["val_acc"]))
        group = ended.setdefault(run["config_id"], [])
        group.append(run)
        if len(group) == 3 and all(r["state"] == "COMPLETE" for r in group):
            best_config = max(best_config, float(np.mean([r["val_acc"] for r in group])))
        rows.append({"steps": spent, "run": best_run, "config": best_config})
    return pd.DataFrame(rows)


def complete_configs(trials: pd.DataFrame) -> int:
    """The configurations whose 3 runs all completed."""
    complete = trials[trials["state"] == "COMPLETE"].groupby("config_id").size()
    return int((complete == 3).sum())


def reach(path: pd.DataFrame, measure: str, target: float, total: float) -> str:
    """Steps until the best `measure` reaches `target`, and as a share of `total`."""
    reached = path[path[measure] >= target]
    if reached.empty:
        return "not reached"
    steps = float(reached["steps"].iloc[0])
    return f"{steps:.0f} ({steps / total:.2f}x)"


def within(path: pd.DataFrame, measure: str, target: float, budget: float) -> str:
    """The best `measure` within `budget` steps, and its distance to `target`."""
    best = path.loc[path["steps"] <= budget, measure].max()
    if not np.isfinite(best):
        return "none"
    return f"{best:.4f} ({best - target:+.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=list(SPACES), default="narrow",
                        help="the search space (see above)")
    parser.add_argument("--trials", type=int, default=16,
                        help="configurations of the unpruned search (pruned: twice as many)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="the random sampler's seed")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"Python {platform.python_version()}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}, optuna {optuna.__version__}; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f} at the start; --jobs {args.jobs}, sampler seed "
          f"{args.seed}, space {args.space}, pruners {pruning(args.space)}")
    paths, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="nnlab-bench-pruning-") as root:
        for label, (pruner, factor, unit) in SEARCHES.items():
            # the name seeds Hyperband's brackets: a search judging runs keeps its old one
            name = f"search-{pruner}" + ("" if unit == "run" else f"-{unit}")
            study = Study(spec(name, args.space, factor * args.trials, pruner, args.seed, unit),
                          results=Path(root))
            start = time.perf_counter()
            summary = study.run(n_jobs=args.jobs, progress=False)
            wall = time.perf_counter() - start
            trials = study.trials()
            paths[label] = trace(trials)
            rows.append({"search": label, "configurations": factor * args.trials,
                         "runs complete / pruned": f"{summary['complete']} / "
                                                   f"{summary['pruned']}",
                         "configurations with 3 complete runs": complete_configs(trials),
                         "steps trained": int(paths[label]["steps"].iloc[-1]),
                         "wall s": wall})
            print(f"{label}: {wall:.0f} s, load {os.getloadavg()[0]:.1f} at its end",
                  flush=True)
    unpruned = paths["unpruned"]
    total = unpruned["steps"].iloc[-1]
    for row in rows:
        path = paths[row.pop("search")]
        for measure in ("run", "config"):
            target = unpruned[measure].iloc[-1]
            best = path[measure].iloc[-1]
            row[f"best {measure}"] = f"{best:.4f}" if np.isfinite(best) else "none"
            row[f"steps to the unpruned best {measure}"] = reach(path, measure, target, total)
            row[f"best {measure} within 1/3 of its steps"] = within(path, measure, target,
                                                                   total / 3)
        row["wall s"] = f"{row['wall s']:.0f}"
    table = pd.DataFrame(rows, index=list(SEARCHES)).T
    print("| | " + " | ".join(table.columns) + " |")
    print("|---|" + "---|" * len(table.columns))
    for field, values in table.iterrows():
        print(f"| {field} | " + " | ".join(str(v) for v in values) + " |")


if __name__ == "__main__":
    main()
