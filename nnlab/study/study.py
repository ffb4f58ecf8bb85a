"""Study: a spec, its Optuna storage and its results folder, from Python or `nnlab run`.

```python
study = Study.from_toml("studies/demo.toml")    # or Study({"study": {...}, "grid": {...}})
study.run(n_jobs=2)                              # resumable; safe to run twice at once
study.trials(); study.curves(with_params=True); study.predictions()
Study.load("results/demo").status()
Study(spec, data=dataset).run()                  # a Dataset object instead of [data]
Study.load("results/demo").archive()             # rebuild results/demo/archive/
```

A study folder without its Optuna storage (a committed study in a fresh clone) reads as
well: its trials from trials.parquet, its curves and predictions from its archive; reading
never writes to the folder.

Past one machine (a PostgreSQL storage, a results root every host reaches):

```python
Study.from_toml("studies/demo.toml", results="/shared/results", storage=URL).plan()
Study.join("demo", storage=URL, results="/shared/results").work(n_jobs=2)  # on each host
```
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from nnlab.datasets import Dataset
from nnlab.errors import ConfigError, DataError, NNLabError, StorageError, as_path, is_integer
from nnlab.study import archive, manifest
from nnlab.study.archive import ArchiveSummary
from nnlab.study.atomic import remove_dead_temporaries, write_text_atomic
from nnlab.study.groups import grouping
from nnlab.study.liveness import StudyHold
from nnlab.study.rerun import match_rerun
from nnlab.study.runner import BLAS_THREADS, Runner
from nnlab.study.spec import GROWS_BY, StudySpec, study_name
from nnlab.study.status import summarize
from nnlab.study.storage import (
    DEFAULT_HEARTBEAT,
    DEFAULT_JOURNAL,
    Heartbeat,
    check_storage,
    folder_storage,
    open_storage,
    redact,
    resolve_storage,
    storage_exists,
    study_lock,
)
from nnlab.study.store import KINDS, MANIFEST_FIELDS, ResultsStore
from nnlab.study.task import load_dataset
from nnlab.study.trials import fixed_fields, trials_frame, with_fixed_fields
from nnlab.train import fit_to_data

_log = logging.getLogger(__name__)

SPEC_ATTR, BASE_ATTR, DIGEST_ATTR = "spec", "base_config", "spec_digest"
JOBS_PER_CORE = 4  # more local worker processes than this only share the cores


class Study:
    """One study: `spec` (a StudySpec or its TOML-shaped dict), results under
    `<results>/<name>/`, Optuna storage `storage` (None: a journal file in that folder;
    a path to a journal file; or a `sqlite:///`/`postgresql://` URL). A database storage
    records a heartbeat of every running trial with the settings `heartbeat`. `data`: a
    Dataset object to train on instead of a [data] source (the spec may still cut it with
    [data] sizes); like any data, known by its content digest."""

    def __init__(self, spec: StudySpec | dict[str, Any], results: str | Path = "results",
                 storage: str | None = None, heartbeat: Heartbeat = DEFAULT_HEARTBEAT,
                 data: Dataset | None = None) -> None:
        self.spec = spec if isinstance(spec, StudySpec) else StudySpec.from_dict(spec)
        if data is not None:
            self.spec = replace(self.spec, data=self.spec.data.with_dataset(data))
        self._data_identity: dict[str, Any] | None = None  # set when the data are loaded
        self.store = ResultsStore(as_path(results, "results") / self.spec.name)
        check_storage(storage, self.folder)  # refuses what is no usable storage, now
        if not isinstance(heartbeat, Heartbeat):
            raise ConfigError("heartbeat", "a Heartbeat(interval, grace)", heartbeat)
        self.storage = storage
        self.heartbeat = heartbeat

    @classmethod
    def from_toml(cls, path: str | Path, results: str | Path = "results",
                  storage: str | None = None, heartbeat: Heartbeat = DEFAULT_HEARTBEAT) -> Study:
        return cls(StudySpec.from_toml(path), results, storage, heartbeat)

    @classmethod
    def join(cls, name: str, storage: str | None, results: str | Path = "results",
             heartbeat: Heartbeat = DEFAULT_HEARTBEAT) -> Study:
        """The study `name` as its storage holds it (`run` or `plan` stored its spec there),
        results under `<results>/<name>/`: what `nnlab worker` works on."""
        study_name(name, "study")
        folder = as_path(results, "results") / name
        missing = StorageError(f"no such study in {redact(check_storage(storage, folder))}; "
                               "create it first with `nnlab run SPEC.toml --storage URL` "
                               "(--plan-only to run nothing there)", field="study",
                               value=repr(name))
        if not storage_exists(storage, folder):  # nothing to join: make no file
            raise missing
        try:
            stored = optuna.load_study(study_name=name,
                                       storage=open_storage(storage, folder, heartbeat))
        except KeyError as err:
            raise missing from err
        if SPEC_ATTR not in stored.user_attrs:
            raise StorageError("not an nnlab study (its storage keeps no spec)", field="study",
                               value=repr(name))
        return cls(StudySpec.from_dict(stored.user_attrs[SPEC_ATTR]), results, storage,
                   heartbeat)

    @classmethod
    def load(cls, folder: str | Path, storage: str | None = None) -> Study:
        """The study whose results are in `folder` (its spec.toml says which spec). Its
        storage: `storage` if given, else the one manifest.json records if that is the
        folder's own journal or SQLite file; any other (a file elsewhere, a database
        server) must be given as `storage`: a folder never chooses what is opened outside
        it or which server is sent credentials."""
        store = ResultsStore(folder)
        if not store.spec_path.is_file() or not store.manifest_path.is_file():
            raise StorageError(f"{folder}: not a study results folder (expected spec.toml and "
                               "manifest.json in it)")
        if storage is None:  # the folder's own storage only (`storage.folder_storage`)
            storage = folder_storage(store.read_manifest()["storage"], store.folder,
                                     store.manifest_path)
        study = cls(StudySpec.from_toml(store.spec_path), Path(folder).parent, storage)
        study.store = store
        return study

    @property
    def folder(self) -> Path:
        return self.store.folder

    # --- running --------------------------------------------------------------------------

    def run(self, n_jobs: int = 1, new: bool = False, progress: bool = True,
            executor: Executor | None = None) -> dict[str, Any]:
        """Run every planned trial not yet complete in `n_jobs` worker processes, resuming
        what is there (`new=True` deletes the study's results and starts over). `executor`:
        where trials run (default loky's processes; e.g. a Dask client's
        `get_executor()`). With a database storage, also waits for trials other processes
        run, and runs again those whose process dies.

        Returns the status summary (see `status`) with this run's counts under "this_run".
        `new` is refused while another process works on the study.
        """
        _check_jobs(n_jobs, executor)
        with self._holding() as hold:
            runner, entry = self._plan(new, n_jobs, executor, hold)
            return self._execute(runner, entry, n_jobs, progress, executor)

    def plan(self, new: bool = False) -> dict[str, Any]:
        """Create the study in its storage (or resume it) and enqueue every planned trial not
        yet complete, running none: `work` (`nnlab worker`), here or on other hosts, runs
        them. Returns the status summary."""
        with self._holding() as hold:
            runner, entry = self._plan(new, 0, None, hold)
            return self.status(self._end_invocation(entry, runner.study))

    def work(self, n_jobs: int = 1, progress: bool = True,
             executor: Executor | None = None) -> dict[str, Any]:
        """Run trials of a study that `run` or `plan` created (maybe on another host) in
        `n_jobs` worker processes until none is waiting or running, never planning any.
        The results folder must be the one the study was created with (a path every host
        reaches). Returns the status summary with this worker's counts under "this_run"."""
        _check_jobs(n_jobs, executor)
        self._bind_data()
        if not self.store.manifest_path.is_file():
            raise StorageError(f"{self.folder} has no manifest.json; give the results root the "
                               "study was created with, shared by every host", field="results")
        self.store.check_files()
        with self._holding() as hold:
            hold.share()
            with self._lock():
                remove_dead_temporaries(self.folder)
                self._refuse_other_spec_or_storage()
                study = self.optuna_study()
                if study.user_attrs.get(DIGEST_ATTR) != self.spec.digest():
                    differences = self._base_differences(study.user_attrs.get(BASE_ATTR, {}))
                    raise StorageError(
                        f"study {self.spec.name!r}: this nnlab resolves its base config "
                        f"differently from the nnlab that created it ({_first(differences)}); "
                        "use the same nnlab version on every host")
                entry = self._start_invocation(n_jobs, executor)
            return self._execute(self._runner(study), entry, n_jobs, progress, executor)

    @contextlib.contextmanager
    def _holding(self) -> Iterator[StudyHold]:
        """The study's hold (`liveness.StudyHold`), released on exit."""
        hold = StudyHold(self.folder)
        try:
            yield hold
        finally:
            hold.release()

    def _plan(self, new: bool, n_jobs: int, executor: Executor | None,
              hold: StudyHold) -> tuple[Runner, int]:
        """Create or load the study, record this invocation and plan (under the lock),
        holding the study with the other processes that work on it (`new`: alone until
        planned, and refused while another process works on it). The hold is always taken
        before the lock, so that neither waits for the other."""
        data = self._bind_data()  # there, and every configuration fits it
        for where, config in self.spec.probe_configs():
            try:
                fit_to_data(config, data)
            except NNLabError as err:
                raise err.within(where) from err
        self.store.check_files()
        if not new:
            self._refuse_other_spec_or_storage(grow=True)
        if new:  # after every check, so that a refusal writes nothing
            hold.alone("run it with --new")
        else:
            hold.share()
        with self._lock():
            remove_dead_temporaries(self.folder)
            if new:
                self._refuse_running_elsewhere()
                self._delete_results()
            self._refuse_other_spec_or_storage(grow=True)
            runner = self._runner(self._create_or_load())
            entry = self._start_invocation(n_jobs, executor)
            runner.plan()
        if new:
            hold.share()  # others may join now
        return runner, entry

    def _bind_data(self) -> Dataset:
        """Load the study's data, fit the spec to their shape (`StudySpec.fitted`) and have
        every trial check their digest; returns them."""
        data = load_dataset(self.spec.data)
        self.spec = replace(self.spec.fitted(data.n_features, data.n_classes),
                            data=self.spec.data.with_digest(data.digest))
        self._data_identity = data.identity(self.spec.data.source())
        return data

    def _execute(self, runner: Runner, entry: int, n_jobs: int, progress: bool,
                 executor: Executor | None) -> dict[str, Any]:
        """Run the trials; then close the invocation and, if it ran to its end, refresh
        the archive."""
        try:
            counts = runner.execute(n_jobs, progress, executor)
        except BaseException:
            self._end_invocation(entry, runner.study)
            raise
        frame = self._end_invocation(entry, runner.study, refresh_archive=True,
                                     grouped=counts.grouped)
        return {**self.status(frame), "this_run": vars(counts)}

    def _runner(self, study: optuna.Study) -> Runner:
        return Runner(self.spec, study, self.store, self._lock, self.heartbeat)

    @functools.cached_property
    def _lock(self) -> Callable[[], contextlib.AbstractContextManager]:
        """The study's lock: the storage's (PostgreSQL, any host), else the results
        folder's file lock (one machine)."""
        return study_lock(self.storage, self.folder, self.spec.name) or self.store.lock

    def _stored_spec(self) -> StudySpec | None:
        if not self.store.spec_path.is_file():
            return None
        return StudySpec.from_toml(self.store.spec_path)

    def _refuse_other_spec_or_storage(self, grow: bool = False) -> None:
        """Refuse a spec other than the stored one (`grow`: unless it only adds seeds or
        trials, see `StudySpec.extends`) and a storage other than the recorded one; first,
        while the spec names the same data, data other than the recorded (by digest)."""
        stored = self._stored_spec()
        if stored is None or stored.data == self.spec.data:
            self._refuse_other_data()
        if stored is not None and stored.digest() != self.spec.digest() and not (
                grow and self.spec.extends(stored)):
            raise self._changed_spec_error(stored)
        if self.store.manifest_path.is_file():
            stored_storage = self.store.read_manifest(fields=tuple(MANIFEST_FIELDS))["storage"]
            recorded = redact(resolve_storage(stored_storage, self.folder))
            given = redact(resolve_storage(self.storage, self.folder))
            if recorded != given:
                raise StorageError(f"{self.folder} keeps its trials in {recorded}, got {given}; "
                                   "use the same storage, or --new to start over",
                                   field="storage")

    def _refuse_other_data(self) -> None:
        """Refuse data whose digest differs from the one manifest.json records (studies
        older than that record have none: theirs is recorded now)."""
        if self._data_identity is None or not self.store.manifest_path.is_file():
            return
        recorded = self.store.read_manifest().get("data")
        now = self._data_identity
        if isinstance(recorded, dict) and recorded.get("digest") != now["digest"]:
            source = "" if recorded.get("source") == now["source"] else f" ({now['source']})"
            raise DataError(
                f"study {self.spec.name!r}: its data changed: {self.folder} holds runs on "
                f"{recorded.get('source')} of digest {str(recorded.get('digest'))[:16]}, the "
                f"data now{source} have digest {now['digest'][:16]}; restore the data it ran "
                "on, run with --new to delete its results and start over, or give the study "
                "another name")

    def _changed_spec_error(self, stored: StudySpec,
                            stored_base: dict[str, Any] | None = None) -> NNLabError:
        """The refusal, naming what differs: spec keys, else the resolved base config's
        fields (a preset or TrainConfig that changed since the study started)."""
        differences = stored.differences(self.spec)
        if not differences and stored_base is not None:
            differences = self._base_differences(stored_base)
        differences = differences or ["the resolved base config"]
        return StorageError(
            f"study {self.spec.name!r}: {self.folder} holds results of a different spec "
            f"({_first(differences)}); only raising study.replicates or study.n_trials "
            "grows a study; run with --new to delete them and start over, or give the study "
            "another name")

    def _base_differences(self, stored_base: dict[str, Any]) -> list[str]:
        """`base config <field>: stored != this nnlab's` for each field that differs."""
        base = self.spec.base_config().to_dict()
        return [f"base config {name}: {stored_base.get(name, '(absent)')!r} != "
                f"{base.get(name, '(absent)')!r}"
                for name in sorted(set(stored_base) | set(base))
                if stored_base.get(name) != base.get(name)]

    def _create_or_load(self) -> optuna.Study:
        study = optuna.create_study(
            study_name=self.spec.name, storage=self._open_storage(),
            direction=self.spec.direction, sampler=self._sampler(), load_if_exists=True)
        digest = study.user_attrs.get(DIGEST_ATTR)
        if digest is None:
            if self.store.trials_path.is_file():  # e.g. results committed without storage
                _log.warning("%s holds results of a run whose storage (%s) has no such study: "
                             "starting it afresh there; its trials.parquet, archive and report "
                             "will be replaced", self.folder,
                             redact(resolve_storage(self.storage, self.folder)))
            study.set_user_attr(SPEC_ATTR, self.spec.to_dict())
            study.set_user_attr(BASE_ATTR, self.spec.base_config().to_dict())
            study.set_user_attr(DIGEST_ATTR, self.spec.digest())
            study.set_user_attr("objective", self.spec.objective)
            study.set_user_attr("planned", self.spec.n_planned)
            with warnings.catch_warnings():  # stable since Optuna 3.2, still flagged
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([self.spec.objective])  # the dashboard's axis label
        elif digest != self.spec.digest():
            stored = StudySpec.from_dict(study.user_attrs[SPEC_ATTR])
            if not self.spec.extends(stored, digest):
                raise self._changed_spec_error(stored, study.user_attrs.get(BASE_ATTR))
            self._grow(study, stored)
        on_disk = self._stored_spec()
        if on_disk is None or on_disk.digest() != self.spec.digest():
            # a new or grown study (maybe grown by a run that could not write spec.toml),
            # or its results folder lost its spec.toml
            write_text_atomic(self.spec.to_toml(), self.store.spec_path)
        return study

    def _grow(self, study: optuna.Study, stored: StudySpec) -> None:
        """Make `study`, created with `stored`, the study of this spec, which only adds
        seeds or trials (`StudySpec.extends`): its complete runs are kept, the new ones
        planned next."""
        grown = ", ".join(f"{key} {getattr(stored, key)} -> {getattr(self.spec, key)}"
                          for key in GROWS_BY if getattr(stored, key) != getattr(self.spec, key))
        _log.info("study %r grows (%s); its complete runs are kept", self.spec.name, grown)
        study.set_user_attr(SPEC_ATTR, self.spec.to_dict())
        study.set_user_attr(DIGEST_ATTR, self.spec.digest())
        study.set_user_attr("planned", self.spec.n_planned)

    def _refuse_running_elsewhere(self) -> None:
        """NNLabError if a trial of the study runs in a live process (on another host: one
        whose heartbeat is not older than the grace period). A storage that cannot be read
        (a damaged journal) holds none: --new starts over."""
        try:
            frame = self.trials() if self.has_storage() else None
        except NNLabError:
            return
        if frame is None:
            return
        live = frame[(frame["state"] == "RUNNING") & ~frame["abandoned"].astype(bool)]
        if not live.empty:
            row = live.iloc[0]
            raise StorageError(f"{self.folder}: trial {row['trial']} runs in process "
                               f"{row['owner'] or '(claiming)'}; run it with --new once it has "
                               f"stopped (a process that is gone is known after "
                               f"{self.heartbeat.grace} s without a heartbeat)")

    def _delete_results(self) -> None:
        """Delete the study from its storage and its files from the results folder."""
        if resolve_storage(self.storage, self.folder) == DEFAULT_JOURNAL:
            for path in self.folder.glob(f"{DEFAULT_JOURNAL}*"):
                path.unlink()
        else:
            storage = self._open_storage()
            if self.spec.name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
                optuna.delete_study(study_name=self.spec.name, storage=storage)
        for kind in (*KINDS, archive.FOLDER):
            shutil.rmtree(self.folder / kind, ignore_errors=True)
        for path in (self.store.spec_path, self.store.manifest_path, self.store.trials_path):
            path.unlink(missing_ok=True)

    def _open_storage(self) -> optuna.storages.BaseStorage:
        return open_storage(self.storage, self.folder, self.heartbeat)

    def _start_invocation(self, n_jobs: int, executor: Executor | None) -> int:
        """Add this run to manifest.json (call under the lock); returns its index."""
        if self.store.manifest_path.is_file():
            record = self.store.read_manifest(fields=tuple(MANIFEST_FIELDS))
        else:
            record = {"study": self.spec.name, "created": manifest.now(),
                      "storage": redact(resolve_storage(self.storage, self.folder)),
                      "spec_digest": self.spec.digest(), "data": self._data_identity,
                      "invocations": []}
        record.setdefault("data", self._data_identity)  # a study older than this record
        entry = manifest.invocation(n_jobs, BLAS_THREADS, executor, grouping(self.spec))
        assert self._data_identity is not None  # the data are loaded before a run starts
        entry["data_digest"] = self._data_identity["digest"]
        if record["spec_digest"] != self.spec.digest():  # the study grew (`_grow`)
            entry["grew_from_spec_digest"] = record["spec_digest"]
            record["spec_digest"] = self.spec.digest()
        record["invocations"].append(entry)
        self.store.write_manifest(record)
        return len(record["invocations"]) - 1

    def _end_invocation(self, index: int, study: optuna.Study, refresh_archive: bool = False,
                        grouped: int | None = None) -> pd.DataFrame:
        """Close this run's manifest entry (with `grouped`: how many trials it trained in
        lockstep groups), rewrite trials.parquet and (`refresh_archive`) the archive;
        returns the trials."""
        with self._lock():
            record = self.store.read_manifest()
            record["invocations"][index]["end"] = manifest.now()
            if grouped is not None:
                record["invocations"][index]["grouped_trials"] = grouped
            self.store.write_manifest(record)
            frame = trials_frame(self.spec, study)
            self.store.write_trials(frame)
            if refresh_archive:
                archive.build(self.store, self.spec, frame)
        return frame

    def archive(self, source: str | Path | None = None,
                predictions: str | None = None) -> tuple[ArchiveSummary, int]:
        """Rebuild the study's archive (`nnlab.study.archive`) from its per-trial files (a
        trial without one: from the archive as it is), or from the per-trial files of
        `source`, another results folder holding a rerun of the same spec: its trials are
        matched to this study's by key, and each complete trial's final metrics must equal
        the rerun's bit for bit (`nnlab.study.rerun.match_rerun`). `predictions`: whose
        predictions it keeps (`archive.SELECTIONS`; default: as the archive there does).
        trials.parquet and the manifest are left as they are. Returns what was written and
        the number of trials checked against the rerun (0 without `source`)."""
        with self._lock():
            frame = self.trials()
            if source is None:
                return archive.build(self.store, self.spec, frame, chosen=predictions), 0
            rerun = Study.load(source)
            numbers = match_rerun(self.spec.name, frame, rerun.trials(), rerun.folder)
            summary = archive.build(self.store, self.spec, frame, source=rerun.store,
                                    numbers=numbers, chosen=predictions)
        return summary, len(numbers)

    # --- reading --------------------------------------------------------------------------

    def _sampler(self) -> optuna.samplers.BaseSampler:
        """The spec's sampler (a grid's trials are all enqueued: it never samples)."""
        if self.spec.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=self.spec.seed, constant_liar=True)
        return optuna.samplers.RandomSampler(seed=self.spec.seed)

    def has_storage(self) -> bool:
        """Whether the study's Optuna storage is there (checked without creating it); a
        committed study reopened from a clone has none."""
        return storage_exists(self.storage, self.folder)

    def optuna_study(self, read_only: bool = False) -> optuna.Study:
        """The Optuna study (for optuna-dashboard, plots, or anything Optuna offers), with
        the spec's sampler; NNLabError if the study has no storage (none is created).
        `read_only`: see `storage.open_storage`."""
        if not self.has_storage():
            raise StorageError(f"study {self.spec.name!r}: no Optuna storage "
                               f"{redact(resolve_storage(self.storage, self.folder))} in "
                               f"{self.folder}; has it been run? (its trials.parquet and "
                               "archive read without one)")
        storage = open_storage(self.storage, self.folder, self.heartbeat, read_only)
        try:
            return optuna.load_study(study_name=self.spec.name, storage=storage,
                                     sampler=self._sampler())
        except KeyError as err:
            raise StorageError(f"study {self.spec.name!r}: not in its storage "
                               f"{redact(resolve_storage(self.storage, self.folder))}; "
                               "has it been run?") from err

    def trials(self, fixed: bool = True) -> pd.DataFrame:
        """One row per trial (see `nnlab.study.trials.trials_frame`), fresh from storage;
        from trials.parquet where the study has no storage. `fixed`: then a column per
        TrainConfig field the spec does not vary (n_steps, batch_size, eta, sizes, ...),
        its base value in every row (`nnlab.study.trials.with_fixed_fields`), so that a
        configuration's every field is a column whether or not the study varies it
        (`eta_best(study.trials())` with n_steps fixed in [base]); False: the table as
        trials.parquet keeps it."""
        if not self.has_storage():
            frame = self.store.read_trials()
        else:
            frame = trials_frame(self.spec, self.optuna_study(read_only=True))
        return with_fixed_fields(self._stored_spec() or self.spec, frame) if fixed else frame

    def status(self, trials: pd.DataFrame | None = None) -> dict[str, Any]:
        """planned, complete, diverged, running, waiting, failed, the best configuration
        (mean +- std over seeds), the best trial and an ETA (see `status.summarize`), from
        the trials table `trials` (default: `trials()`); `missing_files`, kind -> complete
        trials whose rows of that kind are neither in a file nor in the archive
        (predictions: of the trials the archive keeps them for, when it keeps some only);
        `unreadable_files`, kind -> complete trials whose file of that kind is no parquet
        file; and `stray_files`: the files in the per-trial folders that are no trial's
        (ignored), relative to the study folder."""
        if trials is not None and not isinstance(trials, pd.DataFrame):
            raise ConfigError("trials", "the trials table (a DataFrame from Study.trials())",
                              trials)
        frame = self.trials() if trials is None else trials
        summary = summarize(self.spec, frame)
        complete = _complete_numbers(frame)
        kinds = ("curves", "predictions", *(("probabilities",) if self.spec.save_probs else ()))
        expected = {kind: self._expected(kind, frame, complete) for kind in kinds}
        summary["missing_files"] = {kind: lost for kind in kinds if (
            lost := self.store.missing(kind, expected[kind]))}
        summary["unreadable_files"] = {kind: bad for kind in kinds if (
            bad := self.store.unreadable(kind, expected[kind]))}
        summary["stray_files"] = [str(path.relative_to(self.folder)) for kind in KINDS
                                  for path in self.store.stray_files(kind)]
        return summary

    def _expected(self, kind: str, frame: pd.DataFrame, complete: list[int]) -> list[int]:
        """The complete trials whose `kind` rows are kept: all, but for predictions, where
        the archive keeps some only, those and the ones with a file."""
        chosen = archive.selection(self.folder) if kind == "predictions" else None
        if chosen is None:
            return complete
        kept = set(archive.predicted_trials(chosen, self.spec, frame))
        return sorted(kept | (set(complete) & self.store.trial_numbers(kind)))

    def _complete(self, trials: Iterable[int] | None, kind: str = "curves",
                  frame: pd.DataFrame | None = None) -> list[int]:
        """The complete trials of the trials table `frame` (default: `trials()`): all whose
        `kind` rows are kept (`_expected`), or those numbered in `trials` (numbers of this
        study's trials, else NNLabError)."""
        frame = self.trials(fixed=False) if frame is None else frame
        complete = _complete_numbers(frame)
        if trials is None:
            return self._expected(kind, frame, complete)
        wanted = _trial_numbers(trials)
        unknown = sorted(wanted - set(frame["trial"]))
        if unknown:
            raise ConfigError("trials", "", unknown[0], problem=f"study {self.spec.name!r} has "
                              f"no trial {unknown[0]} (it has {len(frame)}, numbered from 0)")
        return sorted(set(complete) & wanted)

    def curves(self, trials: Iterable[int] | None = None,
               columns: list[str] | None = None, with_params: bool = False) -> pd.DataFrame:
        """The curves of complete trials (all, or those numbered in `trials`) as one
        DataFrame: trial, step, epoch, samples_seen, lr, train_loss, val_loss, val_acc,
        test_acc, grad_norm, seconds (or `columns` of these). `with_params`: each row
        joined with its trial's parameters, the varied fields, seed and the fixed fields
        (the columns `trials()` adds), ready for a groupby or a seaborn `hue`."""
        table = self.trials(fixed=with_params)
        curves = self.store.read("curves", self._complete(trials, frame=table), columns)
        if not with_params:
            return curves
        spec = self._stored_spec() or self.spec
        params = [*(spec.grid or spec.space), "seed", *fixed_fields(spec)]
        return curves.merge(table[["trial", *params]], on="trial", how="left",
                            validate="many_to_one")

    def predictions(self, trials: Iterable[int] | None = None,
                    columns: list[str] | None = None) -> pd.DataFrame:
        """Compact test predictions of complete trials (all whose predictions are kept, or
        those numbered in `trials`): trial, index, y_true, top1..top3, p1..p3 (one row per
        trial and test example); from the archive: trial, index, y_true, top1, top2, p1,
        p2, with p2 NaN where top1 is right (`nnlab.study.archive`)."""
        return self.store.read("predictions", self._complete(trials, "predictions"), columns)

    def probabilities(self, trials: Iterable[int] | None = None) -> pd.DataFrame:
        """Full test probabilities (studies with save_probs = true): trial, index,
        p_0 .. p_<n_classes - 1>."""
        return self.store.read("probabilities", self._complete(trials))


def _check_jobs(n_jobs: object, executor: Executor | None) -> None:
    """n_jobs >= 1; here (no executor) at most JOBS_PER_CORE processes per core."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ConfigError("n_jobs", "an integer >= 1", n_jobs)
    cores = os.cpu_count() or 1
    if executor is None and n_jobs > JOBS_PER_CORE * cores:
        raise ConfigError("n_jobs", f"at most {JOBS_PER_CORE * cores} worker processes on this "
                          f"machine's {cores} cores (each loads the data)", shown=f"{n_jobs}")


def _complete_numbers(frame: pd.DataFrame) -> list[int]:
    """The numbers of the COMPLETE trials in a trials table, in its order."""
    return frame.loc[frame["state"] == "COMPLETE", "trial"].tolist()


def _trial_numbers(trials: object) -> set[int]:
    """`trials`, an iterable of integers, as a set; else NNLabError."""
    if isinstance(trials, str | bytes) or not isinstance(trials, Iterable):
        raise ConfigError("trials", "an iterable of trial numbers", trials)
    values = list(trials)
    bad = [n for n in values if not is_integer(n)]
    if bad:
        raise ConfigError("trials", "trial numbers (integers)", bad[0])
    return {int(n) for n in values}


def _first(differences: list[str], n: int = 3) -> str:
    return "; ".join(differences[:n]) + ("; ..." if len(differences) > n else "")
