"""Study: a spec, its Optuna storage and its results folder, from Python or `nnlab run`.

```python
study = Study.from_toml("studies/demo.toml")    # or Study({"study": {...}, "grid": {...}})
study.run(n_jobs=2)                              # resumable; safe to run twice at once
study.trials(); study.curves(); study.predictions()
Study.load("results/demo").status()
```
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from nnlab.errors import NNLabError
from nnlab.study import manifest
from nnlab.study.runner import BLAS_THREADS, Runner
from nnlab.study.spec import StudySpec
from nnlab.study.status import summarize
from nnlab.study.storage import DEFAULT_JOURNAL, open_storage, redact, resolve_storage
from nnlab.study.store import KINDS, ResultsStore, write_text_atomic
from nnlab.study.task import load_dataset
from nnlab.study.trials import trials_frame

SPEC_ATTR, BASE_ATTR, DIGEST_ATTR = "spec", "base_config", "spec_digest"


class Study:
    """One study: `spec` (a StudySpec or its TOML-shaped dict), results under
    `<results>/<name>/`, Optuna storage `storage` (None: a journal file in that folder;
    a path to a journal file; or a `sqlite:///`/`postgresql://` URL)."""

    def __init__(self, spec: StudySpec | dict[str, Any], results: str | Path = "results",
                 storage: str | None = None) -> None:
        self.spec = spec if isinstance(spec, StudySpec) else StudySpec.from_dict(spec)
        self.store = ResultsStore(Path(results) / self.spec.name)
        self.storage = storage

    @classmethod
    def from_toml(cls, path: str | Path, results: str | Path = "results",
                  storage: str | None = None) -> Study:
        return cls(StudySpec.from_toml(path), results, storage)

    @classmethod
    def load(cls, folder: str | Path, storage: str | None = None) -> Study:
        """The study whose results are in `folder` (its spec.toml and manifest.json say
        which spec and storage)."""
        store = ResultsStore(folder)
        if not store.spec_path.is_file() or not store.manifest_path.is_file():
            raise NNLabError(f"{folder}: not a study results folder (expected spec.toml and "
                             "manifest.json in it)")
        study = cls(StudySpec.from_toml(store.spec_path), Path(folder).parent,
                    storage or store.read_manifest()["storage"])
        study.store = store
        if "***" in study.storage:
            raise NNLabError(f"{folder}: its storage needs a password; give --storage URL")
        return study

    @property
    def folder(self) -> Path:
        return self.store.folder

    # --- running --------------------------------------------------------------------------

    def run(self, n_jobs: int = 1, new: bool = False, progress: bool = True) -> dict[str, Any]:
        """Run every planned trial not yet complete in `n_jobs` worker processes, resuming
        what is there (`new=True` deletes the study's results and starts over).

        Returns the status summary (see `status`) with this run's counts under "this_run".
        """
        if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
            raise NNLabError(f"--jobs: expected an integer >= 1, got {n_jobs!r}")
        load_dataset(self.spec.data)  # the data is there and big enough before trials start
        if not new:
            self._refuse_other_spec_or_storage()
        with self.store.lock():
            if new:
                self._delete_results()
            self._refuse_other_spec_or_storage()
            study = self._create_or_load()
            entry = self._start_invocation(n_jobs)
            runner = Runner(self.spec, study, self.store, self.store.lock)
            runner.plan()
        try:
            counts = runner.execute(n_jobs, progress)
        finally:
            with self.store.lock():
                self._end_invocation(entry)
                frame = trials_frame(self.spec, study)
                self.store.write_trials(frame)
        return {**self.status(frame), "this_run": vars(counts)}

    def _stored_spec(self) -> StudySpec | None:
        if not self.store.spec_path.is_file():
            return None
        return StudySpec.from_toml(self.store.spec_path)

    def _refuse_other_spec_or_storage(self) -> None:
        stored = self._stored_spec()
        if stored is not None and stored.digest() != self.spec.digest():
            raise self._changed_spec_error(stored)
        if self.store.manifest_path.is_file():
            recorded = self.store.read_manifest()["storage"]
            given = redact(resolve_storage(self.storage, self.folder))
            if recorded != given:
                raise NNLabError(f"--storage: {self.folder} keeps its trials in {recorded}, "
                                 f"got {given}; use the same storage, or --new to start over")

    def _changed_spec_error(self, stored: StudySpec,
                            stored_base: dict[str, Any] | None = None) -> NNLabError:
        """The refusal, naming what differs: spec keys, else the resolved base config's
        fields (a preset or TrainConfig that changed since the study started)."""
        differences = stored.differences(self.spec)
        if not differences and stored_base is not None:
            base = self.spec.base_config().to_dict()
            differences = [f"base config {name}: {stored_base.get(name, '(absent)')!r} != "
                           f"{base.get(name, '(absent)')!r}"
                           for name in sorted(set(stored_base) | set(base))
                           if stored_base.get(name) != base.get(name)]
        differences = differences or ["the resolved base config"]
        return NNLabError(
            f"study {self.spec.name!r}: {self.folder} holds results of a different spec "
            f"({'; '.join(differences[:3])}{'; ...' if len(differences) > 3 else ''}); "
            "run with --new to delete them and start over, or give the study another name")

    def _create_or_load(self) -> optuna.Study:
        sampler = (optuna.samplers.TPESampler(seed=self.spec.seed, constant_liar=True)
                   if self.spec.sampler == "tpe" else
                   optuna.samplers.RandomSampler(seed=self.spec.seed))
        study = optuna.create_study(
            study_name=self.spec.name, storage=open_storage(self.storage, self.folder),
            direction=self.spec.direction, sampler=sampler, load_if_exists=True)
        digest = study.user_attrs.get(DIGEST_ATTR)
        if digest is None:
            study.set_user_attr(SPEC_ATTR, self.spec.to_dict())
            study.set_user_attr(BASE_ATTR, self.spec.base_config().to_dict())
            study.set_user_attr(DIGEST_ATTR, self.spec.digest())
            study.set_user_attr("objective", self.spec.objective)
            study.set_user_attr("planned", self.spec.n_planned)
        elif digest != self.spec.digest():
            raise self._changed_spec_error(StudySpec.from_dict(study.user_attrs[SPEC_ATTR]),
                                           study.user_attrs.get(BASE_ATTR))
        if not self.store.spec_path.is_file():
            write_text_atomic(self.spec.to_toml(), self.store.spec_path)
        return study

    def _delete_results(self) -> None:
        """Delete the study from its storage and its files from the results folder."""
        if resolve_storage(self.storage, self.folder) == DEFAULT_JOURNAL:
            for path in self.folder.glob(f"{DEFAULT_JOURNAL}*"):
                path.unlink()
        else:
            storage = open_storage(self.storage, self.folder)
            if self.spec.name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
                optuna.delete_study(study_name=self.spec.name, storage=storage)
        for kind in KINDS:
            shutil.rmtree(self.folder / kind, ignore_errors=True)
        for path in (self.store.spec_path, self.store.manifest_path, self.store.trials_path):
            path.unlink(missing_ok=True)

    def _start_invocation(self, n_jobs: int) -> int:
        """Add this run to manifest.json (call under the lock); returns its index."""
        if self.store.manifest_path.is_file():
            record = self.store.read_manifest()
        else:
            record = {"study": self.spec.name, "created": manifest.now(),
                      "storage": redact(resolve_storage(self.storage, self.folder)),
                      "spec_digest": self.spec.digest(), "invocations": []}
        record["invocations"].append(manifest.invocation(n_jobs, BLAS_THREADS))
        self.store.write_manifest(record)
        return len(record["invocations"]) - 1

    def _end_invocation(self, index: int) -> None:
        record = self.store.read_manifest()
        record["invocations"][index]["end"] = manifest.now()
        self.store.write_manifest(record)

    # --- reading --------------------------------------------------------------------------

    def optuna_study(self) -> optuna.Study:
        """The Optuna study (for optuna-dashboard, plots, or anything Optuna offers)."""
        storage = open_storage(self.storage, self.folder)
        try:
            return optuna.load_study(study_name=self.spec.name, storage=storage)
        except KeyError as err:
            raise NNLabError(f"study {self.spec.name!r}: not in its storage "
                             f"{redact(resolve_storage(self.storage, self.folder))}; "
                             "has it been run?") from err

    def trials(self) -> pd.DataFrame:
        """One row per trial (see `nnlab.study.trials.trials_frame`), fresh from storage."""
        return trials_frame(self.spec, self.optuna_study())

    def status(self, trials: pd.DataFrame | None = None) -> dict[str, Any]:
        """planned, complete, diverged, running, waiting, failed, the best configuration
        (mean +- std over seeds), the best trial and an ETA (see `status.summarize`), from
        the trials table `trials` (default: fresh from the storage)."""
        return summarize(self.spec, self.trials() if trials is None else trials)

    def _complete(self, trials: Iterable[int] | None) -> list[int]:
        frame = self.trials()
        complete = frame.loc[frame["state"] == "COMPLETE", "trial"].tolist()
        return complete if trials is None else sorted(set(complete) & set(trials))

    def curves(self, trials: Iterable[int] | None = None,
               columns: list[str] | None = None) -> pd.DataFrame:
        """The curves of complete trials (all, or those numbered in `trials`) as one
        DataFrame: trial, step, epoch, samples_seen, lr, train_loss, val_loss, val_acc,
        test_acc, grad_norm, seconds."""
        return self.store.read("curves", self._complete(trials), columns)

    def predictions(self, trials: Iterable[int] | None = None,
                    columns: list[str] | None = None) -> pd.DataFrame:
        """Compact test predictions of complete trials: trial, index, y_true, top1..top3,
        p1..p3 (one row per trial and test example)."""
        return self.store.read("predictions", self._complete(trials), columns)

    def probabilities(self, trials: Iterable[int] | None = None) -> pd.DataFrame:
        """Full test probabilities (studies with save_probs = true): trial, index,
        p_0 .. p_<n_classes - 1>."""
        return self.store.read("probabilities", self._complete(trials))
