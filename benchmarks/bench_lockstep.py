"""Lockstep groups against separate runs: real studies, each run grouped and separate.

    .venv/bin/python benchmarks/bench_lockstep.py [--quick] [--repeats 1] [--jobs 2]

1. An eta sweep: seed-000's network (784-36-16-10 sigmoid) at batch 100 on full MNIST,
   11 learning rates (0.125 .. 128, factor 2) x 4 seeds, 5000 steps evaluated at 11
   log-spaced lengths (eta-vs-n's schedule): groups of 11, the learning rates of a seed
   (etas from 32 on diverge early and drop out of their groups).
2. Noise studies of the same network at eta 1, 3 arms x 10 seeds, 5000 steps, groups of 3
   (the arms of a seed): the three kinds, no noise, annealed gradient noise and weight noise
   (noise_eta 1e-4); and annealed gradient noise of three strengths (noise_eta 1e-5, 1e-4,
   1e-3: noise-grad.toml's two and a weaker one), whose arms share their noise draws (a
   run alone draws 28,642 normal numbers a step, about a third of its time).

Each study runs with `lockstep = true` and with `lockstep = false` on fresh folders through
the engine (`Study.run`, --jobs worker processes of one BLAS thread each, started and given
the data by a small study first), the two variants alternating (grouped, separate, separate,
grouped, ... over --repeats), so that both see the same load. The table gives wall times
(median), runs per hour and their ratio, grouped / separate, the ratio of each alternating
pair of measurements (on a machine whose load drifts, pairs measured back to back compare
best), and the CPU time of the run and its worker processes. Every run's curve and
predictions are checked equal between the two variants. The machine, the library versions
and its load (1-minute load average) are printed first, the load again after each
measurement, and the table so far after each study (a run stopped early keeps its rows).
--quick: 1000 steps (evaluated at the lengths up to 1000), 2 seeds of the eta sweep and 4 of
the noise studies; --studies: only the studies whose names start with the words given.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

from nnlab.run import CURVE_COLUMNS
from nnlab.study import Study, manifest

EVAL_STEPS = [0, 32, 56, 100, 178, 316, 562, 1000, 1778, 3162, 5000]
ETAS = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]


def specs(quick: bool) -> dict[str, dict]:
    """The two studies' specs (lockstep set per variant)."""
    n_steps = 1000 if quick else 5000
    base = {"preset": "seed-000", "batch_size": 100, "n_steps": n_steps,
            "eval_steps": [s for s in EVAL_STEPS if s < n_steps] + [n_steps]}
    return {
        "eta sweep": {"study": {"name": "bench-eta", "replicates": 2 if quick else 4},
                      "base": base, "grid": {"eta": ETAS}},
        "noise study, none/grad/weight": {
            "study": {"name": "bench-noise-kinds", "replicates": 4 if quick else 10},
            "base": {**base, "eta": 1.0, "noise_eta": 1e-4},
            "grid": {"noise": ["none", "grad", "weight"]}},
        "noise study, grad x 3 strengths": {
            "study": {"name": "bench-noise-grad", "replicates": 4 if quick else 10},
            "base": {**base, "eta": 1.0, "noise": "grad"},
            "grid": {"noise_eta": [1e-5, 1e-4, 1e-3]}},
    }


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process `pid` (default: this one) and all its living
    descendants, from /proc: the worker processes persist from study to study."""
    pid = os.getpid() if pid is None else pid
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                    for child in (task / "children").read_text().split()]
    except OSError:  # it ended meanwhile
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children)


def timed(values: dict, lockstep: bool, root: Path, n_jobs: int
          ) -> tuple[float, float, Study]:
    """Wall time and CPU time (this process and its workers) of the study run through the
    engine on a fresh folder."""
    values = {**values, "study": {**values["study"], "lockstep": lockstep}}
    study = Study(values, results=root / ("grouped" if lockstep else "separate"))
    start, cpu = time.perf_counter(), cpu_seconds()
    summary = study.run(n_jobs=n_jobs, new=True, progress=False)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    assert summary["complete"] == summary["planned"] and summary["failed"] == 0, summary
    assert summary["this_run"]["grouped"] == (summary["planned"] if lockstep else 0), summary
    return wall, cpu, study


def same_results(grouped: Study, separate: Study) -> bool:
    """Every trial's curve (but wall times) and predictions equal in the two studies."""
    columns = [c for c in CURVE_COLUMNS if c != "seconds"]
    return (grouped.curves(columns=columns).equals(separate.curves(columns=columns))
            and grouped.predictions().equals(separate.predictions()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1000 steps, fewer seeds")
    parser.add_argument("--repeats", type=int, default=1,
                        help="measurements of each variant, alternating (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--studies", nargs="+", metavar="NAME", help="only the studies whose "
                        "names start with these (e.g. eta noise), default all")
    args = parser.parse_args()
    chosen = {name: values for name, values in specs(args.quick).items()
              if not args.studies or name.startswith(tuple(args.studies))}
    if not chosen:
        parser.error(f"--studies: expected the start of one of {', '.join(specs(False))}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        warm = {"study": {"name": "warm", "replicates": args.jobs},
                "base": {"preset": "seed-000", "batch_size": 100, "n_steps": 10}}
        Study(warm, results=root).run(n_jobs=args.jobs, progress=False)
        env = manifest.environment()
        blas = ", ".join(f"{pool['internal_api']} {pool['version']} ({pool['architecture']})"
                         for pool in env["blas"])
        print(f"{env['cpu']}, {env['cores']} cores; Python {env['python']}, numpy "
              f"{env['packages']['numpy']}, {blas}; load {os.getloadavg()[0]:.2f}", flush=True)
        for name, values in chosen.items():
            walls: dict[bool, list[float]] = {True: [], False: []}
            cpus: dict[bool, list[float]] = {True: [], False: []}
            studies = {}
            for repeat in range(args.repeats):
                for lockstep in (True, False) if repeat % 2 == 0 else (False, True):
                    wall, cpu, studies[lockstep] = timed(values, lockstep, root, args.jobs)
                    walls[lockstep].append(wall)
                    cpus[lockstep].append(cpu)
                    print(f"{name}, {'grouped' if lockstep else 'separate'}: {wall:.1f} s, "
                          f"{cpu:.1f} CPU s; load {os.getloadavg()[0]:.2f}", flush=True)
            n_runs = len(studies[True].trials())
            grouped, separate = np.median(walls[True]), np.median(walls[False])
            grouped_cpu, separate_cpu = np.median(cpus[True]), np.median(cpus[False])
            rows.append({"study": f"{name} ({n_runs} runs)",
                         "separate s": round(separate, 1), "grouped s": round(grouped, 1),
                         "separate runs/h": round(3600 * n_runs / separate),
                         "grouped runs/h": round(3600 * n_runs / grouped),
                         "ratio": f"{separate / grouped:.2f}x",
                         "each pair": ", ".join(f"{s / g:.2f}" for s, g in zip(
                             walls[False], walls[True], strict=True)),
                         "separate CPU s": round(separate_cpu), "grouped CPU s":
                         round(grouped_cpu), "CPU ratio": f"{separate_cpu / grouped_cpu:.2f}x",
                         "identical": same_results(studies[True], studies[False])})
            print(f"\n{markdown(rows)}\n", flush=True)


def markdown(rows: list[dict]) -> str:
    """rows as a markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(map(str, row.values())) + " |" for row in rows])


if __name__ == "__main__":
    main()
