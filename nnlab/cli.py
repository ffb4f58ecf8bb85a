"""The `nnlab` command line: one subcommand per job, bad input as one line on stderr.

Each command group is a `_add_<group>(subparsers)` function that registers its parsers and
sets `handler` to a function taking the parsed arguments and returning an exit code, and
`flags`: the library's parameter names that the command's flags set beside COMMON_FLAGS (an
error naming one is shown with the flag instead).

nnlab's log records (the `nnlab.*` loggers) go to stderr as "nnlab: <message>" lines, from
INFO on (`-v`: DEBUG, `-q`: WARNING).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

from nnlab.errors import ConfigError, NNLabError

# the library's parameters that flags of several commands set
COMMON_FLAGS = {"storage": "--storage", "study": "--study", "results": "--results",
                "heartbeat.interval": "--heartbeat", "heartbeat.grace": "--grace",
                "backend": "--backend", "scheduler": "--scheduler", "port": "--port",
                "predictions": "--predictions", "n_resamples": "--resamples",
                "source_dir": "--from"}
EXECUTION_FLAGS = {"n_jobs": "--jobs"}
TRAIN_FLAGS = {"preset": "--preset", "TrainConfig.*": "--set *"}  # TrainConfig.eta: --set eta
READ_STORAGE_HELP = ("the study's storage (default: the one its manifest.json names, if that "
                     "is a file in the study folder; a database or a file elsewhere is used "
                     "only when given here)")


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
                        help=READ_STORAGE_HELP)
    status.set_defaults(handler=_study_status)
    archive = sub.add_parser("archive", help="rebuild a study's archive (the committed "
                             "curves and predictions) from its per-trial files or a rerun")
    archive.add_argument("folder", metavar="results/<study>")
    archive.add_argument("--from", dest="source", metavar="OTHER/results/<study>",
                         help="build it from the per-trial files of a rerun of the same spec "
                         "there, once every complete trial's final metrics equal the rerun's "
                         "bit for bit (trials matched by key)")
    archive.add_argument("--predictions", choices=["best", "all"],
                         help="keep the test predictions of the best configuration's runs or "
                         "of all (default: as the archive there does, else best)")
    archive.add_argument("--storage", metavar="URL",
                         help=READ_STORAGE_HELP)
    archive.set_defaults(handler=_study_archive)
    repair = sub.add_parser("repair", help="keep what is intact in a damaged study (its "
                            "journal, manifest or result files), set the rest aside, and let "
                            "`nnlab run` run the trials that lost something again")
    repair.add_argument("folder", metavar="results/<study>")
    repair.add_argument("--storage", metavar="URL",
                        help="the study's storage, if not the one in its manifest.json")
    repair.set_defaults(handler=_study_repair)


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
                        help="record a heartbeat of each running trial this often (default "
                        "10)")
    parser.add_argument("--grace", type=int, default=60, metavar="SECONDS",
                        help="a running trial without a heartbeat for this long is failed and "
                        "its configuration run again, wherever it ran (default 60)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(flags=EXECUTION_FLAGS)


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
    pruned = f", {this_run['pruned']} pruned" if this_run["pruned"] else ""
    print(f"{who}: {this_run['completed']} trials completed ({this_run['diverged']} "
          f"diverged, {this_run['grouped']} in lockstep groups){pruned}, "
          f"{this_run['failed']} failed; results in {study.folder}")
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
    summary = study.status(frame)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_study(study, summary, args.folder, frame)
    return 0


def _study_archive(args: argparse.Namespace) -> int:
    import optuna

    from nnlab.study import Study
    from nnlab.study.rerun import CHECKED

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.load(args.folder, storage=args.storage)
    summary, checked = study.archive(args.source, predictions=args.predictions)
    if args.source is not None:
        print(f"checked {checked} complete trials against {args.source}: "
              f"{', '.join(CHECKED)} equal bit for bit")
    sizes = ", ".join(f"{study.store.archive_path(kind)} {size / 1e6:.2f} MB"
                      for kind, size in summary.sizes.items())
    print(f"archive: curves of {summary.runs} runs, predictions of {summary.predicted} "
          f"({summary.selection}); {sizes}")
    return 0


def _study_repair(args: argparse.Namespace) -> int:
    import optuna

    from nnlab.study.repair import repair

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for line in repair(args.folder, storage=args.storage).lines:
        print(line)
    return 0


def _print_study(study, summary: dict, where: str, frame=None) -> None:
    """Counts, the best configurations as a table, then the best one with mean +- std."""
    from nnlab.study.status import format_best, format_configurations, format_status

    print(format_status(summary, where))
    if summary["complete"]:
        frame = study.trials() if frame is None else frame
        print(format_configurations(study.spec, frame))
    print(format_best(summary))


TRAIN_CONVENTIONS = """\
conventions (the docs' Conventions page has the formulas):
  pixels        uint8 pixels / 255, in [0, 1]
  loss          per example, then the mean over the batch, with targets
                t = lo + (hi - lo) * onehot(y), target_range = [lo, hi]:
                cross_entropy with softmax: -sum_k t_k log p_k; with sigmoid
                outputs: the binary cross-entropy summed over the classes;
                mse: 0.5 * sum_k (p_k - t_k)^2
  eta           sgd's step is -eta * g, g the gradient of that batch-mean loss
                (no other 1/batch or 1/n); momentum, rmsprop and adam scale
                their own update by eta
  weight_decay  L2 in the gradient, before the optimiser (with adam: not AdamW's
                decoupled decay): g += weight_decay * W for weights and kernels,
                never biases
  l1            g += l1 * sign(W), weights and kernels only
  clip_norm     after L2/L1, every gradient times clip_norm / ||g|| when their
                global norm ||g|| exceeds clip_norm
  init          weights N(0, std^2) with the scheme's std; biases start at 0
"""


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="one training run of a preset on MNIST",
                           epilog=TRAIN_CONVENTIONS,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
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
    train.set_defaults(handler=_train, flags=TRAIN_FLAGS)
    presets = sub.add_parser("presets", help="list the training presets, one per line")
    presets.set_defaults(handler=_presets)


def _parse_override(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError("--set", "KEY=VALUE", text)
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
        raise ConfigError("--threads", f"1..{cores} (this machine's cores; more BLAS threads "
                          "only wait for each other)", shown=f"{args.threads}")
    with threadpool_limits(args.threads):
        run = train(config, load_mnist())
    summary = {"preset": args.preset, "status": run.status, **run.metrics,
               "best_eval": _best_eval(run.curve), "seed": config.seed,
               "threads": args.threads, "note": run.note, "config": config.to_dict()}
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


def _best_eval(curve) -> dict:
    """The evaluation of a run's curve with the highest val_acc (the earliest on a tie):
    step, epoch, val_acc and the test_acc there."""
    best = curve.loc[curve["val_acc"].idxmax()]
    return {"step": int(best["step"]), "epoch": float(best["epoch"]),
            "val_acc": float(best["val_acc"]), "test_acc": float(best["test_acc"])}


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
                        help=READ_STORAGE_HELP)
    report.add_argument("--no-train", dest="train", action="store_false",
                        help="skip figures that train a network once more (inverse query)")
    report.add_argument("--resamples", type=int, default=2000, metavar="N",
                        help="bootstrap resamples for every interval (default 2000)")
    report.add_argument("--out", metavar="DIR",
                        help="write report.html, report.json and figures/ to DIR instead "
                        "of the study folder (which is then only read)")
    report.set_defaults(handler=_report)
    dashboard = sub.add_parser("dashboard", help="open a study in optuna-dashboard")
    dashboard.add_argument("folder", metavar="results/<study>")
    dashboard.add_argument("--port", type=int, default=8080, metavar="P",
                           help="port on 127.0.0.1 (default 8080; 0: any free port)")
    dashboard.add_argument("--storage", metavar="URL",
                           help=READ_STORAGE_HELP)
    dashboard.set_defaults(handler=_dashboard)


def _report(args: argparse.Namespace) -> int:
    from nnlab.report import write_report

    path = write_report(args.folder, storage=args.storage, train=args.train,
                        n_resamples=args.resamples, out=args.out)
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
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", dest="log_level", action="store_const",
                           const=logging.DEBUG, help="also print debug messages")
    verbosity.add_argument("-q", "--quiet", dest="log_level", action="store_const",
                           const=logging.WARNING, help="print only warnings and errors")
    parser.set_defaults(log_level=logging.INFO, flags={})
    sub = parser.add_subparsers(dest="command", required=True)
    for add_group in COMMAND_GROUPS:
        add_group(sub)
    return parser


@contextmanager
def log_to_stderr(level: int) -> Iterator[None]:
    """Inside: nnlab's log records at `level` and above as "nnlab: <message>" lines on
    stderr (the stream of the moment: a test's capture too); restored afterwards."""
    logger = logging.getLogger("nnlab")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("nnlab: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # no second copy through handlers of the root logger
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def with_flags(err: NNLabError, flags: Mapping[str, str]) -> str:
    """The error's message, the parameter it names (its `field`) shown as the flag that sets
    it: `flags` maps a field to a flag ("preset": "--preset"), or with a trailing * any field
    that starts so, the rest of the name taking the flag's * ("TrainConfig.*": "--set *"
    shows TrainConfig.eta as "--set eta"). COMMON_FLAGS apply to every command."""
    field = err.field
    if field is None:
        return str(err)
    for pattern, flag in {**COMMON_FLAGS, **flags}.items():
        stem = pattern.removesuffix("*")
        if field == pattern or (stem != pattern and field.startswith(stem) and field != stem):
            return str(err.renamed(flag.replace("*", field.removeprefix(stem))))
    return str(err)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nnlab` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    # run/worker --quiet (no progress bar) quiets the log as well
    level = max(args.log_level, logging.WARNING if getattr(args, "quiet", False) else 0)
    try:
        with log_to_stderr(level):
            code = args.handler(args)
        sys.stdout.flush()  # a closed pipe fails here, not at interpreter exit
        return code
    except NNLabError as err:
        print(f"nnlab: error: {with_flags(err, args.flags)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it
    except KeyboardInterrupt:
        print("nnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
