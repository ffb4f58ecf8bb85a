"""`write_report(folder)`: a study's figures and its one-page HTML report.

```python
from nnlab.report import write_report
write_report("results/classic-lr-sweep")   # -> results/classic-lr-sweep/report.html
```

Writes `<folder>/figures/*.png` (and .gif), `<folder>/report.html` (self-contained: the
figures embedded) and `<folder>/report.json` (every analysis result as numbers), or the
same into another folder, `out` (`nnlab report --out DIR`: a read-only study). Figure
files a previous report wrote and this one does not are removed, so the folder always
matches the page.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from threadpoolctl import threadpool_limits

from nnlab.errors import StorageError, as_path
from nnlab.report.classic import CLASSIC_SECTIONS
from nnlab.report.html import MEDIA_TYPES, render_page
from nnlab.report.hypotheses import with_hypotheses
from nnlab.report.sections import (
    GENERIC_SECTIONS,
    Options,
    Section,
    overview_section,
    run_sections,
)
from nnlab.report.summaries import StudyResults, best_config, label_configs
from nnlab.study import Study
from nnlab.study.atomic import write_text_atomic
from nnlab.study.data_spec import SIZE_KEYS
from nnlab.study.runner import BLAS_THREADS
from nnlab.study.study import BASE_ATTR

SECTION_ORDER = ("overview", "curves", "eta_best", "takeoff", "overfit", "lr_epochs",
                 "normality", "variance", "noise", "errors", "gallery", "inverse_query")


def load_results(study: Study) -> StudyResults:
    """Read what the report needs from the study's storage (if it has one) and results
    folder."""
    trials = label_configs(study.spec, study.trials())
    varied = list(study.spec.grid or study.spec.space)
    complete = trials[trials["state"] == "COMPLETE"]
    curves = study.curves()
    if not curves.empty:
        curves = curves.merge(complete[["trial", "config", *varied]], on="trial",
                              validate="many_to_one")
    stored = study.optuna_study(read_only=True).user_attrs if study.has_storage() else {}
    results = StudyResults(spec=study.spec, manifest=study.store.read_manifest(),
                           trials=trials, complete=complete, curves=curves,
                           best_predictions=pd.DataFrame(), varied=varied,
                           base_config=stored.get(BASE_ATTR))
    best = best_config(results)
    if best is None:
        return results
    numbers = complete.loc[complete["config"] == best, "trial"].tolist()
    return StudyResults(**{**results.__dict__, "best_predictions": study.predictions(numbers)})


def build_sections(results: StudyResults, options: Options
                   ) -> tuple[list[Section], list[tuple[str, str]]]:
    """The overview and every analysis that applies, in page order; plus the skipped
    analyses with their reasons. Computed at a study worker's BLAS threads (one), whatever
    the machine's cores: threaded, OpenBLAS cuts long sums into other blocks, which moved
    the error analysis's intervals and the inverse query's outputs in their last digits;
    and the inverse query's net retrains as a study's worker trained it."""
    overview = overview_section(results, options)
    if results.complete.empty:
        return [overview], [("analyses", "no trial is complete yet")]
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        sections, skipped = run_sections((*GENERIC_SECTIONS, *CLASSIC_SECTIONS), results,
                                         options)
    sections.sort(key=lambda s: SECTION_ORDER.index(s.key))
    return [overview, *sections], skipped


def write_figures(sections: list[Section], folder: Path) -> dict[str, Path]:
    """Write every section's figures to `folder` ({name: path}); remove other figure files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for section in sections:
        for item in section.figures:
            path = folder / f"{item.name}{item.suffix}"
            try:
                item.write(path)
            except OSError as err:  # a full disk: no half-written figure is left
                path.unlink(missing_ok=True)
                raise StorageError(f"{path}: cannot write it ({err.strerror or err})") from err
            files[item.name] = path
    for path in folder.iterdir():
        if path.suffix in MEDIA_TYPES and path not in files.values():
            path.unlink()
    return files


def _check_writable(folder: Path) -> None:
    """Make `folder` if need be; StorageError if it cannot be written (a read-only study
    folder: the report goes elsewhere, `out`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        problem = (None if os.access(folder, os.W_OK) else "read-only file system"
                   if os.statvfs(folder).f_flag & os.ST_RDONLY else "no write permission")
    except OSError as err:
        problem = err.strerror or str(err)
    if problem is not None:
        raise StorageError(f"{folder}: cannot write the report there ({problem}); give "
                           "another folder for it (--out DIR)")


def write_report(folder: str | Path, *, storage: str | None = None, train: bool = True,
                 n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95,
                 out: str | Path | None = None) -> Path:
    """Write the figures, report.html and report.json of the study in `folder` (or in the
    folder `out`: a study folder that is read-only is only read); returns the path of
    report.html.

    storage: the study's Optuna storage if not the one its manifest names. train: allow
    figures that train a network once more (the inverse query). n_resamples, seed,
    confidence: for every bootstrap and interval in the report.
    """
    options = Options(n_resamples=n_resamples, seed=seed, confidence=confidence, train=train)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = Study.load(folder, storage=storage)
    target = study.folder if out is None else as_path(out, "out")
    _check_writable(target)
    results = load_results(study)
    sections, skipped = build_sections(results, options)
    sections = with_hypotheses(sections, results, options)
    files = write_figures(sections, target / "figures")
    spec = results.spec
    commit = (results.manifest.get("invocations") or [{}])[-1].get("git_commit")
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    facts = {
        "name": spec.name, "objective": f"{spec.objective} ({spec.direction}d; chosen on "
                                         "validation, never on test)",
        "sampler": spec.sampler, "replicates": f"{spec.replicates} seeds per configuration "
                                               f"(seeds {spec.seeds[0]}..{spec.seeds[-1]})",
        "varied": ", ".join(f"{name} ({_values(spec, name)})" for name in results.varied)
                  or "nothing (one configuration)",
        "base": _base_text(spec), "data": _data_text(spec, results.manifest),
        "planned runs": spec.n_planned, "report generated": generated,
        "bootstrap": f"{n_resamples} resamples, seed {seed}, {100 * confidence:g}% intervals",
    }
    html = render_page(
        title=f"nnlab report: {spec.name}",
        subtitle=f"{len(results.complete)} complete runs of {spec.n_planned} planned; "
                 f"code at {commit or 'unknown commit'}",
        facts=facts, spec_toml=spec.to_toml(), sections=sections, skipped=skipped,
        files=files, folder=target, manifest=results.manifest)
    report = target / "report.html"
    write_text_atomic(html, report)
    data = {"study": spec.name, "generated": generated, "options": dataclasses.asdict(options),
            "sections": {s.key: s.data for s in sections}, "skipped": dict(skipped),
            "figures": {name: path.relative_to(target).as_posix()
                        for name, path in files.items()}}
    write_text_atomic(json.dumps(_plain(data), indent=1, allow_nan=False) + "\n",
                      target / "report.json")
    return report


def _values(spec, name: str) -> str:
    if spec.sampler == "grid":
        return ", ".join(map(str, spec.grid[name]))
    return json.dumps(spec.space[name].to_dict())


def _base_text(spec) -> str:
    base = dict(spec.base)
    preset = base.pop("preset", None)
    overrides = ", ".join(f"{k}={v}" for k, v in base.items())
    if preset:
        return f"preset {preset}" + (f" with {overrides}" if overrides else "")
    return overrides or "TrainConfig defaults"


def _data_text(spec, manifest: dict) -> str:
    """Where the data came from, the sizes used and the content digest recorded."""
    sizes = ", ".join(f"{k}={getattr(spec.data, k)}" for k in SIZE_KEYS
                      if getattr(spec.data, k) is not None)
    recorded = manifest.get("data")
    digest = (f"; digest {recorded['digest'][:16]}" if isinstance(recorded, dict)
              and isinstance(recorded.get("digest"), str) else "")
    return spec.data.source() + (f" ({sizes})" if sizes else " (full splits)") + digest


def _plain(value: object) -> object:
    """`value` with numpy/pandas values as plain JSON ones; NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.isoformat()
    return str(value)
