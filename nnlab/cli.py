"""The `nnlab` command line: one subcommand per job, bad input as one line on stderr.

Each command group is a `_add_<group>(subparsers)` function that registers its parsers and
sets `handler` to a function taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from nnlab.errors import NNLabError


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="fetch, verify and inspect data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="fetch and verify a data set into the cache")
    fetch.add_argument("name", choices=["mnist"])
    fetch.add_argument(
        "--from", dest="source_dir", metavar="DIR",
        help="use the files in DIR (IDX files, .gz or not, or mnist.pkl.gz); no fallback",
    )
    fetch.set_defaults(handler=_data_fetch)
    info = data_sub.add_parser("info", help="split sizes, label counts and cache path")
    info.add_argument("name", choices=["mnist"])
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=_data_info)


def _data_fetch(args: argparse.Namespace) -> int:
    from nnlab.data import fetch_mnist

    path = fetch_mnist(source_dir=args.source_dir)
    print(f"mnist: verified and cached at {path}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    from nnlab.data import mnist_info

    info = mnist_info()
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def _add_study(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a study: every planned trial not yet complete")
    run.add_argument("spec", metavar="SPEC.toml", help="the study spec (see studies/)")
    run.add_argument("--storage", metavar="URL",
                     help="Optuna storage: a journal file path, sqlite:///x.db or "
                     "postgresql://... (default: optuna.journal in the study folder)")
    run.add_argument("--new", action="store_true",
                     help="delete the study's existing results and start over")
    run.add_argument("--plan-only", action="store_true",
                     help="create the study and enqueue its trials, run none (nnlab worker "
                     "processes run them)")
    _add_execution_options(run)
    run.set_defaults(handler=_study_run)
    worker = sub.add_parser("worker", help="run trials of a study that nnlab run created, "
                            "on this host, until none is waiting or running")
    worker.add_argument("--storage", required=True, metavar="URL",
                        help="the study's storage, e.g. postgresql://user@dbhost/nnlab")
    worker.add_argument("--study", required=True, metavar="NAME", help="the study's name")
    _add_execution_options(worker)
    worker.set_defaults(handler=_study_worker)
    status = sub.add_parser("status", help="planned/complete/failed counts, best so far, ETA")
    status.add_argument("folder", metavar="results/<study>")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument("--storage", metavar="URL",
                        help="the study's storage, if not the one in its manifest.json")
    status.set_defaults(handler=_study_status)


def _add_execution_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that run trials (run, worker)."""
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="trials at once: worker processes, each with one BLAS thread "
                        "(default 1; with --backend dask, the cluster's worker threads)")
    parser.add_argument("--results", default="results", metavar="ROOT",
                        help="results root; the study's folder is ROOT/<name> (default "
                        "results); past one machine, a path every host reaches")
    parser.add_argument("--backend", default="loky", choices=["loky", "dask"],
                        help="where trials run: loky processes here (default) or the Dask "
                        "cluster of --scheduler")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="the Dask scheduler, e.g. tcp://10.0.0.1:8786 (--backend dask)")
    parser.add_argument("--heartbeat", type=int, default=10, metavar="SECONDS",
                        help="database storages: record a heartbeat of each running trial "
                        "this often (default 10)")
    parser.add_argument("--grace", type=int, default=60, metavar="SECONDS",
                        help="database storages: a running trial without a heartbeat for "
                        "this long is failed and its configuration run again (default 60)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _study_run(args: argparse.Namespace) -> int:
    import optuna

    from nnlab.study import Study
    from nnlab.study.backends import trial_executor
    from nnlab.study.storage import Heartbeat

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.from_toml(args.spec, results=args.results, storage=args.storage,
                            heartbeat=Heartbeat(args.heartbeat, args.grace))
    if args.plan_only:
        summary = study.plan(new=args.new)
        print(f"planned: {summary['waiting']} trials waiting; results in {study.folder}")
        _print_study(study, summary, str(study.folder))
        return 0
    with trial_executor(args.backend, args.scheduler) as (executor, default_jobs):
        n_jobs = default_jobs if args.jobs is None else args.jobs
        summary = study.run(n_jobs=n_jobs, new=args.new, progress=not args.quiet,
                            executor=executor)
    return _report_run(study, summary, "this run")


def _study_worker(args: argparse.Namespace) -> int:
    import optuna

    from nnlab.study import Study
    from nnlab.study.backends import trial_executor
    from nnlab.study.storage import Heartbeat

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.join(args.study, storage=args.storage, results=args.results,
                       heartbeat=Heartbeat(args.heartbeat, args.grace))
    with trial_executor(args.backend, args.scheduler) as (executor, default_jobs):
        n_jobs = default_jobs if args.jobs is None else args.jobs
        summary = study.work(n_jobs=n_jobs, progress=not args.quiet, executor=executor)
    return _report_run(study, summary, "this worker")


def _report_run(study, summary: dict, who: str) -> int:
    """What this process did, then the study's status; exit 1 if planned trials failed."""
    this_run = summary["this_run"]
    print(f"{who}: {this_run['completed']} trials completed ({this_run['diverged']} "
          f"diverged, {this_run['grouped']} in lockstep groups), {this_run['failed']} "
          f"failed; results in {study.folder}")
    _print_study(study, summary, str(study.folder))
    if summary["failed"]:
        print(f"nnlab: {summary['failed']} planned trials failed (the error column of "
              f"{study.store.trials_path}); run again to retry them", file=sys.stderr)
        return 1
    return 0


def _study_status(args: argparse.Namespace) -> int:
    import optuna

    from nnlab.study import Study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.load(args.folder, storage=args.storage)
    frame = study.trials()
    study.store.write_trials(frame)
    summary = study.status(frame)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_study(study, summary, args.folder, frame)
    return 0


def _print_study(study, summary: dict, where: str, frame=None) -> None:
    """Counts, the best configurations as a table, then the best one with mean +- std."""
    from nnlab.study.status import format_best, format_configurations, format_status

    print(format_status(summary, where))
    if summary["complete"]:
        frame = study.trials() if frame is None else frame
        print(format_configurations(study.spec, frame))
    print(format_best(summary))


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="one training run of a preset on MNIST")
    train.add_argument("--preset", required=True, help="a name from `nnlab presets`")
    train.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a TrainConfig field (repeatable); VALUE is JSON, else a string, "
        "e.g. --set eta=0.5 --set sizes=[784,100,10] --set init=he",
    )
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.add_argument("--threads", type=int, default=1, metavar="N",
                       help="BLAS threads (default 1: one run is mostly small GEMMs, and two "
                       "OpenBLAS threads on a busy 2-core machine are 10x slower; try 2 on an "
                       "idle machine)")
    train.set_defaults(handler=_train)
    presets = sub.add_parser("presets", help="list the training presets, one per line")
    presets.set_defaults(handler=_presets)


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise NNLabError(f"--set: expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _train(args: argparse.Namespace) -> int:
    from math import isfinite

    from threadpoolctl import threadpool_limits

    from nnlab.data import load_mnist
    from nnlab.train import get_preset, train

    overrides = dict(_parse_override(text) for text in args.overrides)
    config = get_preset(args.preset).replace(**overrides)
    cores = os.cpu_count() or 1
    if not 1 <= args.threads <= cores:
        raise NNLabError(f"--threads: expected 1..{cores} (this machine's cores; more BLAS "
                         f"threads only wait for each other), got {args.threads}")
    with threadpool_limits(args.threads):
        run = train(config, load_mnist())
    summary = {"preset": args.preset, "status": run.status, **run.metrics,
               "seed": config.seed, "threads": args.threads, "note": run.note,
               "config": config.to_dict()}
    summary = {k: None if isinstance(v, float) and not isfinite(v) else v
               for k, v in summary.items()}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.preset}: test_acc {run.metrics['test_acc']:.4f}  "
              f"val_acc {run.metrics['val_acc']:.4f}  {run.metrics['n_steps']} steps  "
              f"{run.metrics['seconds']:.1f} s  status {run.status}  seed {config.seed}"
              + (f"  ({run.note})" if run.note else ""))
    return 0


def _presets(args: argparse.Namespace) -> int:
    from nnlab.presets import PRESETS

    width = max(len(name) for name in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.description}")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="a study's figures and its one-page HTML report")
    report.add_argument("folder", metavar="results/<study>")
    report.add_argument("--storage", metavar="URL",
                        help="the study's storage, if not the one in its manifest.json")
    report.add_argument("--no-train", dest="train", action="store_false",
                        help="skip figures that train a network once more (inverse query)")
    report.add_argument("--resamples", type=int, default=2000, metavar="N",
                        help="bootstrap resamples for every interval (default 2000)")
    report.set_defaults(handler=_report)
    dashboard = sub.add_parser("dashboard", help="open a study in optuna-dashboard")
    dashboard.add_argument("folder", metavar="results/<study>")
    dashboard.add_argument("--port", type=int, default=8080, metavar="P",
                           help="port on 127.0.0.1 (default 8080; 0: any free port)")
    dashboard.add_argument("--storage", metavar="URL",
                           help="the study's storage, if not the one in its manifest.json")
    dashboard.set_defaults(handler=_dashboard)


def _report(args: argparse.Namespace) -> int:
    from nnlab.report import write_report

    path = write_report(args.folder, storage=args.storage, train=args.train,
                        n_resamples=args.resamples)
    print(f"report: {path} (figures in {path.parent / 'figures'})")
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from nnlab.report.dashboard import serve

    serve(args.folder, port=args.port, storage=args.storage)
    print("dashboard stopped")
    return 0


COMMAND_GROUPS = [_add_data, _add_study, _add_train, _add_report]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr, as nnlab's own are
    (argparse prints the whole usage first); the line says where the usage is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add_group in COMMAND_GROUPS:
        add_group(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nnlab` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = args.handler(args)
        sys.stdout.flush()  # a closed pipe fails here, not at interpreter exit
        return code
    except NNLabError as err:
        print(f"nnlab: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it
    except KeyboardInterrupt:
        print("nnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
