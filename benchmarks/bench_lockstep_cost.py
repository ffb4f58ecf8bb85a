"""What a lockstep group costs against its runs alone, in one process at one BLAS thread.

    .venv/bin/python benchmarks/bench_lockstep_cost.py [--sizes 1 3 6 9 11 13]
        [--windows 20] [--steps 100] [--seed 0] [--whole N]

Seed-000's network (784-36-16-10 sigmoid) at batch 100 on full MNIST, in process CPU time
(`time.process_time`: other processes on the machine do not count):

1. A step's cost by group size: a run alone (eta 1, `nnlab.train.Stepper`, the fused SGD
   step of a study's run) and a group of each size in --sizes (the first learning rates of
   a geometric grid 0.125 .. 16, none of which diverges in 20,000 steps), each training
   --windows windows of --steps steps, alternating (alone, the sizes in order, then the
   other way round), so that the machine's drift reaches them all alike. Prints the median
   CPU time a step, per run, and each group's gain over the run alone; then the line fitted
   to the groups' step times from 3 runs on (a cost per group step and one per run), whose
   per-run slope bounds what any group size can gain.
2. With --whole N: one seed's eta sweep as bench_lockstep.py trains it (11 learning rates
   0.125 .. 128, 5,000 steps, evaluations at its 11 steps; 32, 64 and 128 diverge and
   leave), as one group (`train_group`) and as its 11 runs alone (`train`), N times each,
   alternating; each split into the training steps (`_Group._run`, `Stepper.run`) and the
   rest (evaluations, set-up, initial losses). The runs are checked equal bit for bit.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from bench_lockstep_step import eta_sweep, same_runs
from threadpoolctl import threadpool_limits

from nnlab import lockstep, train
from nnlab.data import load_mnist
from nnlab.datasets import Dataset


def step_costs(data: Dataset, sizes: list[int], windows: int, steps: int, seed: int) -> None:
    """Print a step's CPU time alone and in groups of `sizes` (see the module's 1.)."""
    n_steps = windows * steps + 1
    base = train.get_preset("seed-000").replace(batch_size=100, n_steps=n_steps, seed=seed,
                                                eval_steps=[0, n_steps])
    etas = np.geomspace(0.125, 16, max(sizes)).tolist()
    alone = train.own_stepper(train.start_run(base.replace(eta=1.0), data), data)
    steppers: dict[str, Callable[..., Any]] = {
        "alone": functools.partial(alone.run, grad_norm_of_last=False)}
    for k in sizes:
        group = lockstep._Group([base.replace(eta=eta) for eta in etas[:k]], data, [None] * k)
        steppers[f"group of {k}"] = functools.partial(group._run, grad_norm_of_last=False)
    seconds: dict[str, list[float]] = {name: [] for name in steppers}
    for w in range(windows):
        order = list(steppers) if w % 2 == 0 else list(steppers)[::-1]
        for name in order:
            start = time.process_time()
            steppers[name](w * steps, (w + 1) * steps)
            seconds[name].append((time.process_time() - start) / steps)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"a run alone: {1e3 * medians['alone']:.3f} ms a step (median of {windows} windows "
          f"of {steps} steps, CPU time)")
    for k in sizes:
        step = medians[f"group of {k}"]
        print(f"a group of {k:2d}: {1e3 * step:.3f} ms a step, {1e3 * step / k:.3f} per run; "
              f"its steps gain {k * medians['alone'] / step:.2f}x")
    fitted = [k for k in sizes if k >= 3]
    if len(fitted) >= 2:
        slope, intercept = np.polyfit(fitted, [medians[f"group of {k}"] for k in fitted], 1)
        print(f"fitted from {fitted[0]} runs on: {1e3 * intercept:.3f} ms a group step + "
              f"{1e3 * slope:.3f} ms per run; no group gains more than "
              f"{medians['alone'] / slope:.2f}x in its steps")


@contextmanager
def timing(owner: type, name: str, totals: dict[str, float]) -> Iterator[None]:
    """Add the CPU time of every call of owner.name to totals["steps"] while open."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            totals["steps"] += time.process_time() - start

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def whole_group(data: Dataset, repeats: int, seed: int) -> None:
    """Print one seed's eta sweep as a group against its runs alone (see the module's 2.)."""
    configs = eta_sweep(seed, 5000)
    variants = {"group": lambda: lockstep.train_group(configs, data),
                "alone": lambda: [train.train(config, data) for config in configs]}
    variants["group"]()  # each variant once untimed: the probes, the data's caches
    variants["alone"]()
    totals: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for repeat in range(repeats):
        runs = {}
        for name in ("group", "alone") if repeat % 2 == 0 else ("alone", "group"):
            spent = {"steps": 0.0}
            with timing(lockstep._Group, "_run", spent), timing(train.Stepper, "run", spent):
                start = time.process_time()
                runs[name] = variants[name]()
                total = time.process_time() - start
            totals[name].append((total, spent["steps"]))
            print(f"{name}: {total:.2f} s of CPU time, of which steps {spent['steps']:.2f} s, "
                  f"the rest {total - spent['steps']:.2f} s", flush=True)
        if not same_runs(runs["group"], runs["alone"]):
            raise SystemExit(f"repeat {repeat}: the group's runs differ from the runs alone")
    for part, pick in (("all", lambda t: t[0]), ("steps", lambda t: t[1]),
                       ("the rest", lambda t: t[0] - t[1])):
        alone = statistics.median(pick(t) for t in totals["alone"])
        group = statistics.median(pick(t) for t in totals["group"])
        pairs = ", ".join(f"{pick(a) / pick(g):.2f}" for a, g in zip(
            totals["alone"], totals["group"], strict=True))
        print(f"{part}: alone {alone:.2f} s, group {group:.2f} s, {alone / group:.2f}x "
              f"(pairs {pairs})")
    print("runs equal bit for bit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 6, 9, 11, 13],
                        help="group sizes (default 1 3 6 9 11 13)")
    parser.add_argument("--windows", type=int, default=20, help="windows each (20)")
    parser.add_argument("--steps", type=int, default=100, help="steps a window (100)")
    parser.add_argument("--seed", type=int, default=0, help="the runs' seed (0)")
    parser.add_argument("--whole", type=int, metavar="N",
                        help="then N whole eta-sweep groups against their runs alone")
    args = parser.parse_args()
    if min(args.sizes) < 1 or args.windows < 1 or args.steps < 1:
        parser.error("--sizes, --windows and --steps: expected positive integers")
    data = load_mnist()
    with threadpool_limits(limits=1), np.errstate(over="ignore", invalid="ignore",
                                                  divide="ignore"):
        step_costs(data, args.sizes, args.windows, args.steps, args.seed)
        if args.whole:
            whole_group(data, args.whole, args.seed)


if __name__ == "__main__":
    main()
