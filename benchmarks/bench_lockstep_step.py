"""CPU time of a lockstep group's training steps: this checkout's code against a revision's.

    .venv/bin/python benchmarks/bench_lockstep_step.py [--against HEAD] [--steps 1]
        [--windows 2000] [--seed 0] [--profile | --groups N]

The group of bench_lockstep.py's eta sweep for one seed (seed-000's network, 784-36-16-10
sigmoid, batch 100 on full MNIST, the 11 learning rates 0.125 .. 128) is trained twice in
one process: by this checkout's `nnlab.lockstep` and `nnlab.nn.stacked`, and by those two
modules as they were at revision --against (the rest of the library is this checkout's, so
REV must lay out its products as this checkout's Dense layers do: a revision from the change
of that layout on, 2026-12-07; the losses' check fails for an earlier one).
The two groups advance in windows of --steps training steps (no evaluations), alternating
(old, new, new, old, ...) so that both see the same load; each window is timed in this
process's CPU time (`time.process_time`: other processes on a busy machine do not count,
wall time would). Both groups train the same runs from the same start, so window w covers
the same steps in both, and their losses are checked equal bit for bit. A run leaves both
groups after the step where it leaves the study's group: a first training of the group with
bench_lockstep.py's evaluation steps finds when (the learning rates that diverge end at the
evaluation that sees it). On a busy machine, windows of one step alternate best: the CPU
time of a step varies by 2x there from one moment to the next.

Prints per variant the median CPU time per step over the windows with its range, the ratio
of the medians old / new and the median and range of the ratios of each window's pair.
--profile: instead, cProfile of this checkout's group over the same steps, by own time.

--groups N: instead, the whole group as a study worker trains it, N times per variant,
alternating: `train_group` of the runs (set-up, every training step, the evaluations on
val and test at bench_lockstep.py's evaluation steps, the runs leaving as they diverge) for
--windows x --steps steps, each in CPU time; the Runs are checked equal bit for bit (curves
but wall times, metrics, test outputs, parameters). Each variant trains the group once
before, untimed: it probes its wide products then (once per process and shape), as a study
worker does in its first group.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
from bench_lockstep import ETAS, EVAL_STEPS
from threadpoolctl import threadpool_limits

from nnlab import lockstep
from nnlab.data import load_mnist
from nnlab.train import TrainConfig, get_preset

ROOT = Path(__file__).resolve().parent.parent


def module_at(revision: str, path: str, name: str) -> types.ModuleType:
    """The module of file `path` as it was at git `revision`, imported as `name`."""
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(name)
    module.__file__ = f"{revision}:{path}"
    sys.modules[name] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def lockstep_at(revision: str) -> types.ModuleType:
    """nnlab.lockstep as it was at `revision`, with that revision's nnlab.nn.stacked."""
    stacked = module_at(revision, "nnlab/nn/stacked.py", "old_nnlab_stacked")
    current = sys.modules["nnlab.nn.stacked"]
    sys.modules["nnlab.nn.stacked"] = stacked  # what its `from nnlab.nn.stacked import` finds
    try:
        return module_at(revision, "nnlab/lockstep.py", "old_nnlab_lockstep")
    finally:
        sys.modules["nnlab.nn.stacked"] = current


def eta_sweep(seed: int, n_steps: int) -> list[TrainConfig]:
    """One seed's runs of the eta sweep (bench_lockstep.py's), n_steps long."""
    base = get_preset("seed-000").replace(
        batch_size=100, n_steps=n_steps, seed=seed,
        eval_steps=[s for s in EVAL_STEPS if s < n_steps] + [n_steps])
    return [base.replace(eta=eta) for eta in ETAS]


def window(group: Any, first: int, stop: int) -> tuple[float, dict[int, list[float]]]:
    """CPU seconds of steps first..stop-1 of `group` (a lockstep _Group), and their losses."""
    start = time.process_time()
    stepped = group._run(first, stop, False)
    seconds = time.process_time() - start
    return seconds, {i: losses for i, (losses, _) in stepped.items()}


def leave(group: Any, lengths: list[int], stop: int) -> None:
    """Take the runs out of `group` that have trained their `lengths` by step `stop`."""
    group._drop([i for i in group.active if lengths[i] <= stop])


def profile(group: Any, lengths: list[int], steps: int, windows: int) -> None:
    """Print cProfile's table (CPU time, by own time) of `group`'s windows of steps."""
    profiler = cProfile.Profile(time.process_time)
    for w in range(windows):
        profiler.runcall(group._run, w * steps, (w + 1) * steps, False)
        leave(group, lengths, (w + 1) * steps)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def same_runs(old: list, new: list) -> bool:
    """Whether two lists of Runs are equal bit for bit but wall times."""
    def bits(run: Any) -> tuple:
        curve = run.curve.drop(columns="seconds")
        metrics = {k: v for k, v in run.metrics.items() if k != "seconds"}
        params = [array.tobytes() for layer in run.model.params for array in layer.values()]
        return (run.status, run.note, curve.to_numpy().tobytes(), str(metrics),
                run.test_proba.tobytes(), params)
    return [bits(run) for run in old] == [bits(run) for run in new]


def whole_groups(variants: dict[str, types.ModuleType], configs: list[TrainConfig],
                 data: Any, repeats: int) -> None:
    """Print the CPU time of `repeats` whole trainings of the group by each variant,
    alternating, and their ratios (see --groups)."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for module in variants.values():  # each variant probes its shapes once, untimed
        module._Group(configs, data, [None] * len(configs)).train()
    for repeat in range(repeats):
        runs = {}
        for name in ("old", "new") if repeat % 2 == 0 else ("new", "old"):
            start = time.process_time()
            runs[name] = variants[name]._Group(configs, data, [None] * len(configs)).train()
            seconds[name].append(time.process_time() - start)
        if not same_runs(runs["old"], runs["new"]):
            raise SystemExit(f"repeat {repeat}: the runs differ between old and new")
        print(f"group {repeat}: old {seconds['old'][-1]:.3f} s, new {seconds['new'][-1]:.3f} "
              f"s of CPU time", flush=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    pairs = [old / new for old, new in zip(seconds["old"], seconds["new"], strict=True)]
    print(f"ratio old / new of the medians ({medians['old']:.3f} / {medians['new']:.3f} s): "
          f"{medians['old'] / medians['new']:.3f}; of each pair: median "
          f"{statistics.median(pairs):.3f}, range {min(pairs):.3f} .. {max(pairs):.3f}; "
          f"runs equal bit for bit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD", help="git revision (default HEAD)")
    parser.add_argument("--steps", type=int, default=1, help="steps a window (1)")
    parser.add_argument("--windows", type=int, default=2000,
                        help="windows a variant (2000)")
    parser.add_argument("--seed", type=int, default=0, help="the runs' seed (0)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile this checkout's group instead")
    parser.add_argument("--groups", type=int, metavar="N",
                        help="instead, N whole trainings of the group per variant")
    args = parser.parse_args()
    data = load_mnist()
    configs = eta_sweep(args.seed, args.steps * args.windows)
    with threadpool_limits(limits=1), np.errstate(over="ignore", invalid="ignore",
                                                  divide="ignore"):
        if args.groups:
            whole_groups({"old": lockstep_at(args.against), "new": lockstep}, configs, data,
                         args.groups)
            return
        lengths = [run.metrics["n_steps"] for run in lockstep.train_group(configs, data)]
        if args.profile:
            profile(lockstep._Group(configs, data, [None] * len(configs)), lengths,
                    args.steps, args.windows)
            return
        variants = {"old": lockstep_at(args.against), "new": lockstep}
        groups = {name: module._Group(configs, data, [None] * len(configs))
                  for name, module in variants.items()}
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for w in range(args.windows):
            first, stop = w * args.steps, (w + 1) * args.steps
            losses = {}
            for name in ("old", "new") if w % 2 == 0 else ("new", "old"):
                cpu, losses[name] = window(groups[name], first, stop)
                seconds[name].append(cpu / args.steps)
                leave(groups[name], lengths, stop)
            if losses["old"] != losses["new"]:
                raise SystemExit(f"window {w}: the losses differ between old and new")
            done = w + 1
            if done % max(1, args.windows // 10) == 0:  # about ten lines
                shown = slice(done - max(1, args.windows // 10), done)
                print(f"steps ..{stop - 1} ({len(losses['new'])} runs): medians of the last "
                      f"windows: old {1e3 * statistics.median(seconds['old'][shown]):.3f} ms, "
                      f"new {1e3 * statistics.median(seconds['new'][shown]):.3f} ms a step",
                      flush=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    pairs = [old / new for old, new in zip(seconds["old"], seconds["new"], strict=True)]
    for name, values in seconds.items():
        print(f"{name} ({args.against if name == 'old' else 'this checkout'}): median "
              f"{1e3 * medians[name]:.3f} ms a step of CPU time, range {1e3 * min(values):.3f}"
              f" .. {1e3 * max(values):.3f} ({args.windows} windows of {args.steps} steps)")
    print(f"ratio old / new of the medians: {medians['old'] / medians['new']:.3f}; of each "
          f"pair: median {statistics.median(pairs):.3f}, range {min(pairs):.3f} .. "
          f"{max(pairs):.3f}; losses equal bit for bit")


if __name__ == "__main__":
    main()
