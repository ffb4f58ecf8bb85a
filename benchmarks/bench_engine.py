"""Study engine speed: overhead per trial, and throughput of 2 workers against 1.

    .venv/bin/python benchmarks/bench_engine.py [--overhead-trials 40] [--trials 12]

1. Overhead: a study of trivially short runs (a 784-4-10 net, 1 step, 100 images) on one
   warm worker; overhead per trial = (study wall time - time inside train()) / trials:
   claiming, sending the task, writing two parquet files, recording in the journal.
2. Throughput: the same real small-MLP study (seed-000's 784-36-16-10 network, batch 500,
   full MNIST) run with 1 worker and with 2 workers on fresh study folders, workers warmed
   first. Both are measured in this one run, side by side, next to the same runs in plain
   joblib processes without the engine: on a busy shared machine the cores themselves
   may not give 2 processes more than 1, and this column says so.

Targets: overhead <= 50 ms per trial; 2 workers >= 1.3x the trials per second of 1.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import optuna
from joblib import Parallel, delayed

from nnlab.study import Study, StudySpec
from nnlab.study.spec import DataSpec
from nnlab.study.task import limit_blas_threads, load_dataset
from nnlab.train import TrainConfig, train

TINY_DATA = {"train_size": 100, "val_size": 50, "test_size": 50}


def tiny_spec(name: str, n_trials: int) -> dict:
    """`n_trials` one-step runs of a 784-4-10 net."""
    return {"study": {"name": name, "replicates": n_trials},
            "base": {"sizes": [784, 4, 10], "batch_size": 10, "n_steps": 1, "n_evals": 2},
            "data": TINY_DATA}


def mlp_spec(name: str, n_trials: int, n_steps: int) -> dict:
    """seed-000's network on full MNIST: 3 learning rates x n_trials / 3 seeds."""
    return {"study": {"name": name, "replicates": n_trials // 3},
            "base": {"preset": "seed-000", "batch_size": 500, "n_steps": n_steps},
            "grid": {"eta": [0.5, 1.0, 2.0]}}


def timed_run(study: Study, n_jobs: int) -> float:
    start = time.perf_counter()
    summary = study.run(n_jobs=n_jobs, progress=False)
    wall = time.perf_counter() - start
    assert summary["complete"] == summary["planned"] and summary["failed"] == 0, summary
    return wall


def overhead(root: Path, n_trials: int) -> dict[str, float]:
    Study(tiny_spec("warm-overhead", 4), results=root).run(n_jobs=1, progress=False)
    study = Study(tiny_spec("overhead", n_trials), results=root)
    wall = timed_run(study, n_jobs=1)
    training = study.trials()["seconds"].sum()
    return {"wall_ms": 1000 * wall / n_trials, "train_ms": 1000 * training / n_trials,
            "overhead_ms": 1000 * (wall - training) / n_trials}


def _train_alone(config: dict) -> float:
    """One run outside the engine (one BLAS thread, data cached per process)."""
    limit_blas_threads(1)
    return train(TrainConfig.from_dict(config), load_dataset(DataSpec())).metrics["val_acc"]


def raw_throughput(n_trials: int, n_steps: int) -> dict[int, float]:
    """Trials per second of the same runs in plain joblib processes, no engine: what the
    machine itself gives 1 and 2 processes right now."""
    spec = StudySpec.from_dict(mlp_spec("raw", n_trials, n_steps))
    configs = [spec.config_for(point, seed).to_dict()
               for point in spec.grid_points() for seed in spec.seeds]
    rates = {}
    for n_jobs in (1, 2):
        with Parallel(n_jobs=n_jobs) as parallel:
            parallel(delayed(_train_alone)(c) for c in configs[:n_jobs])  # warm up
            start = time.perf_counter()
            parallel(delayed(_train_alone)(c) for c in configs)
            rates[n_jobs] = n_trials / (time.perf_counter() - start)
    return rates


def throughput(root: Path, n_trials: int, n_steps: int) -> dict[int, dict[str, float]]:
    rows = {}
    for n_jobs in (1, 2):
        Study(tiny_spec(f"warm-{n_jobs}", 2 * n_jobs), results=root).run(
            n_jobs=n_jobs, progress=False)
        study = Study(mlp_spec(f"mlp-{n_jobs}-workers", n_trials, n_steps), results=root)
        wall = timed_run(study, n_jobs)
        trials = study.trials()
        rows[n_jobs] = {"wall_s": wall, "trials_per_s": n_trials / wall,
                        "train_s": trials["seconds"].mean(), "val_acc": trials["val_acc"].mean()}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-trials", type=int, default=40)
    parser.add_argument("--trials", type=int, default=12, help="multiple of 3")
    parser.add_argument("--steps", type=int, default=200, help="steps per real run")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cost = overhead(Path(tmp), args.overhead_trials)
        speed = throughput(Path(tmp), args.trials, args.steps)
    raw = raw_throughput(args.trials, args.steps)
    print(f"engine overhead: {args.overhead_trials} trials of a 1-step 784-4-10 run, 1 worker, "
          "journal storage")
    print(f"  wall per trial      {cost['wall_ms']:7.1f} ms")
    print(f"  inside train()      {cost['train_ms']:7.1f} ms")
    print(f"  overhead per trial  {cost['overhead_ms']:7.1f} ms   (target <= 50 ms)")
    print(f"throughput: {args.trials} runs of seed-000's 784-36-16-10 net, batch 500, "
          f"{args.steps} steps, full MNIST")
    print("  workers   wall s   trials/s   s per run   mean val_acc   speedup   "
          "no engine: trials/s   speedup")
    for n_jobs, row in speed.items():
        ratio = row["trials_per_s"] / speed[1]["trials_per_s"]
        print(f"  {n_jobs:>7}   {row['wall_s']:6.1f}   {row['trials_per_s']:8.3f}   "
              f"{row['train_s']:9.2f}   {row['val_acc']:12.4f}   {ratio:6.2f}x   "
              f"{raw[n_jobs]:19.3f}   {raw[n_jobs] / raw[1]:6.2f}x"
              + ("   (target >= 1.3x)" if n_jobs == 2 else ""))
    print(f"load average (1 min) at start {load_start:.1f}, at end {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
