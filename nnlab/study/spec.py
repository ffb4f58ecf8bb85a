"""A study spec: what to train (a base TrainConfig), what varies, how often, on what data.

TOML form (the same mapping can be given in Python):

```toml
[study]
name = "eta-vs-steps"     # the results folder: results/<name>
objective = "val_acc"     # val_acc (maximised) | val_loss | train_loss (minimised)
sampler = "grid"          # grid | random | tpe
replicates = 3            # seeds per configuration: seed, seed + 1, ...
seed = 0                  # first replicate seed; also seeds the random/tpe sampler
# n_trials = 20           # configurations to sample (random/tpe only)
# save_probs = false      # also keep the full test probabilities of every run
[base]                    # a TrainConfig: preset = "<name>" plus fields that override it
preset = "seed-000"
[grid]                    # sampler = "grid": every combination of these lists
eta = [0.3, 1.0, 3.0]
# [space] for random/tpe: eta = { log_uniform = [1e-3, 10] }, also uniform, int_uniform,
#   int_log_uniform (two bounds) and choice (a list)
[data]
name = "mnist"            # or "digits"; or files, train/val/test, entry_point (docs/data.md)
# train_size / val_size / test_size: use the first n examples of each split
```

Everything is checked before any work; an error names the section and key
("grid.eta[1]: expected a positive number, got -1"), and unknown sections or keys are
errors, never ignored.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from nnlab.data_files import Source
from nnlab.datasets import SPLITS, Dataset, Split
from nnlab.entry_points import FORM_TEXT as ENTRY_POINT_FORM
from nnlab.entry_points import call_entry_point, is_entry_point
from nnlab.errors import NNLabError, as_path, checked_int, is_int, is_number
from nnlab.presets import get_preset
from nnlab.train_config import MODELS, TrainConfig, field_names

SECTIONS = ("study", "base", "grid", "space", "data")
STUDY_KEYS = ("name", "objective", "sampler", "replicates", "seed", "n_trials", "save_probs")
OBJECTIVES = {"val_acc": "maximize", "val_loss": "minimize", "train_loss": "minimize"}
SAMPLERS = ("grid", "random", "tpe")
RANGE_KINDS = ("uniform", "log_uniform", "int_uniform", "int_log_uniform", "choice")
DATASETS = ("mnist", "digits")
SIZE_KEYS = ("train_size", "val_size", "test_size")
FILE_KEYS = ("split", "split_seed", "stratify", "n_classes", "image_shape", "pixels")
DATA_KEYS = ("name", "files", *SPLITS, *FILE_KEYS, "entry_point", "dataset", *SIZE_KEYS)
MAX_SAMPLER_SEED = 2**32 - 1  # Optuna's samplers seed numpy's legacy RandomState
MAX_PLANNED = 10**6  # runs one study may plan (each is a trial in the storage)
GROWS_BY = ("replicates", "n_trials")  # raising these grows a study (`StudySpec.extends`)
REPLICATE_SEED = "seed"  # the TrainConfig field the replicates vary
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def stable_hash(value: Any) -> str:
    """A 16-hex-digit digest of a JSON-able value, the same in every process and run.

    Integral floats hash like ints (eta = 1 and eta = 1.0 are one configuration)."""

    def canonical(v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {str(k): canonical(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [canonical(x) for x in v]
        return v

    text = json.dumps(canonical(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_keys(section: str, table: object, allowed: tuple[str, ...] | None) -> dict:
    if not isinstance(table, dict):
        raise NNLabError(f"[{section}]: expected a table of keys, got {table!r}")
    for key, value in table.items():
        if allowed is not None and key not in allowed:
            raise NNLabError(f"{section}.{key}: unknown key; expected one of {', '.join(allowed)}")
        if value is None:
            raise NNLabError(f"{section}.{key}: expected a value, got None (leave the key out)")
    return table


def _retitled(err: NNLabError, field_name: str, where: str) -> NNLabError:
    """TrainConfig's "TrainConfig.<field>: ..." message, renamed to the spec's key."""
    message = str(err)
    prefix = f"TrainConfig.{field_name}: "
    if message.startswith(prefix):
        return NNLabError(f"{where}: {message[len(prefix):]}")
    return NNLabError(f"{where}: {message}")


def param_value(value: Any) -> Any:
    """A config value as Optuna stores it: lists (e.g. sizes) as JSON text."""
    return json.dumps(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Range:
    """One [space] entry: `kind` in RANGE_KINDS, `bounds` (low, high) or the choices."""

    kind: str
    bounds: list[Any]

    def distribution(self) -> BaseDistribution:
        if self.kind == "choice":
            return CategoricalDistribution([param_value(v) for v in self.bounds])
        low, high = self.bounds
        if self.kind.startswith("int"):
            return IntDistribution(low, high, log=self.kind == "int_log_uniform")
        return FloatDistribution(low, high, log=self.kind == "log_uniform")

    def to_dict(self) -> dict[str, list[Any]]:
        return {self.kind: list(self.bounds)}


@dataclass(frozen=True)
class DataSpec:
    """The data a study trains on: one source, how files are read and split, and optional
    sizes (the first n examples of each split). See docs/data.md.

    Sources, one of: `name` (built in: mnist, the default, or digits); `files` (a folder of
    given splits, or the files, or a folder of them, to cut by the `split` rule);
    `train`, `val` and `test` (given splits, one source each); `entry_point`
    ("package.module:function" returning a Dataset); `dataset` (the name of a Dataset
    object given to `Study(spec, data=...)`). A file source is a path, or an IDX pair
    (images, labels) written { images = PATH, labels = PATH }; paths are relative to the
    current folder. `given` holds the object of `dataset`, `digest` the content digest a
    study expects; neither is part of the spec (its TOML, digest or equality).
    """

    name: str | None = "mnist"
    files: Source | tuple[Source, ...] | None = None
    train: Source | None = None
    val: Source | None = None
    test: Source | None = None
    split: tuple[float, float, float] | None = None
    split_seed: int | None = None
    stratify: bool | None = None
    n_classes: int | None = None
    image_shape: tuple[int, int, int] | None = None
    pixels: bool | None = None
    entry_point: str | None = None
    dataset: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    given: Dataset | None = field(default=None, compare=False, repr=False)
    digest: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        values = {}
        for key in DATA_KEYS:
            value = getattr(self, key)
            if key == "files" and isinstance(value, tuple):
                values[key] = [_source_value(v) for v in value]
            elif key in SPLITS:
                if value is not None:
                    values[key] = _source_value(value)
            elif value is not None:
                values[key] = list(value) if isinstance(value, tuple) else value
        return values

    def with_dataset(self, data: object) -> DataSpec:
        """This spec with the Dataset object `data` as its source (`Study(spec, data=...)`):
        its `dataset` key names it; the spec may hold sizes, but no other source."""
        if not isinstance(data, Dataset):
            raise NNLabError(f"data: expected a nnlab.datasets.Dataset, got "
                             f"{type(data).__name__}")
        other = [key for key in ("files", *SPLITS, "entry_point") if getattr(self, key)]
        if self.name not in (None, "mnist") or other:
            raise NNLabError(f"data: given a Dataset object and a [data] source "
                             f"({(other or ['name'])[0]}); give one or the other")
        return replace(self, name=None, dataset=data.name, given=data)

    def with_digest(self, digest: str) -> DataSpec:
        """This spec, expecting data of content digest `digest` (see `check`)."""
        return replace(self, digest=digest)

    def check(self, data: Dataset) -> None:
        """NNLabError unless `data` has the digest this spec expects (when it expects one)."""
        if self.digest is not None and data.digest != self.digest:
            raise NNLabError(f"data: {self.source()} has digest {data.digest[:16]}, the study's "
                             f"data {self.digest[:16]}: refusing to train on other data")

    def source(self) -> str:
        """Where the data comes from, in words (files as absolute paths)."""
        if self.dataset is not None:
            return f"a Dataset object {self.dataset!r} given to Study(spec, data=...)"
        if self.entry_point is not None:
            return f"entry point {self.entry_point}"
        if self.train is not None:
            return "files: " + ", ".join(f"{split}={_source_text(getattr(self, split))}"
                                         for split in SPLITS)
        if self.files is not None:
            files = ([self.files] if isinstance(self.files, str) else list(self.files))
            text = "files: " + ", ".join(_source_text(f) for f in files)
            if self.split is None:
                return text + " (a folder of train, val and test files)"
            return (text + f" split {list(self.split)} with seed {self.split_seed}, "
                    + ("stratified" if self.stratify else "not stratified"))
        if self.name == "digits":
            return "digits (scikit-learn's 8x8 digits, stratified 60/20/20 split, seed 0)"
        return str(self.name)

    def stamp(self) -> tuple[tuple[str, int, int], ...] | None:
        """(path, size, modification time) of every file this spec reads (files in a folder
        included): what tells data loaded before from files changed since. None for the
        other sources."""
        if self.train is not None:
            sources: list[Source] = [getattr(self, split) for split in SPLITS]
        elif self.files is not None:
            sources = [self.files] if isinstance(self.files, str) else list(self.files)
        else:
            return None
        paths = [Path(p) for source in sources
                 for p in (source if isinstance(source, tuple) else (source,))]
        files = [f for p in paths for f in (sorted(p.iterdir()) if p.is_dir() else [p])]
        return tuple((str(f), s.st_size, s.st_mtime_ns) for f in files if f.is_file()
                     for s in [f.stat()])

    def load(self) -> Dataset:
        """The data set, cut to the requested sizes (an error if a split is too small)."""
        data = self._load_source()
        if all(getattr(self, f"{split}_size") is None for split in SPLITS):
            return data
        splits = {}
        for split_name in SPLITS:
            split: Split = getattr(data, split_name)
            size = getattr(self, f"{split_name}_size")
            if size is not None and size > len(split):
                raise NNLabError(f"data.{split_name}_size: expected an integer <= {len(split)} "
                                 f"(the {data.name} {split_name} split), got {size}")
            splits[split_name] = split if size is None else Split(split.x[:size], split.y[:size])
        return Dataset(data.name, n_classes=data.n_classes, image_shape=data.image_shape,
                       **splits)

    def _load_source(self) -> Dataset:
        from nnlab.data import load_digits, load_mnist
        from nnlab.data_files import (
            folder_files,
            folder_splits,
            load_given_splits,
            load_split_rule,
        )

        if self.dataset is not None:
            if self.given is None:
                raise NNLabError(
                    f"data.dataset: {self.dataset!r} is a Dataset object given from Python "
                    "(Study(spec, data=...)): give it again that way, or name the data with "
                    "data.name, files, train/val/test or entry_point")
            return self.given
        if self.entry_point is not None:
            data = call_entry_point(self.entry_point, "data.entry_point")
            if not isinstance(data, Dataset):
                raise NNLabError(f"data.entry_point: {self.entry_point} returned "
                                 f"{type(data).__name__}; expected a nnlab.datasets.Dataset")
            return data
        form = {"n_classes": self.n_classes, "image_shape": self.image_shape,
                "pixels": bool(self.pixels)}
        if self.train is not None:
            return load_given_splits({split: getattr(self, split) for split in SPLITS}, **form)
        if self.files is not None:
            folder = Path(self.files) if isinstance(self.files, str) else None
            if folder is not None and folder.is_dir():
                if self.split is None:
                    return load_given_splits(folder_splits(folder), **form)
                sources = folder_files(folder)
            elif folder is not None and not folder.exists():
                raise NNLabError(f"data.files: {folder}: no such file or folder")
            elif self.split is None:
                raise NNLabError(f"data.split: expected [train, val, test] fractions to cut "
                                 f"{self.files} into splits (or give a folder of train, val "
                                 "and test files, or data.train, val and test)")
            else:
                sources = [self.files] if folder is not None else list(self.files)
            return load_split_rule(sources, self.split, self.split_seed, self.stratify, **form)
        return load_digits() if self.name == "digits" else load_mnist()


@dataclass(frozen=True)
class StudySpec:
    """A validated study; build it with `StudySpec.from_dict` or `StudySpec.from_toml`."""

    name: str
    objective: str = "val_acc"
    sampler: str = "grid"
    replicates: int = 1
    seed: int = 0
    n_trials: int | None = None
    save_probs: bool = False
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, Range] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)

    # --- reading --------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path) -> StudySpec:
        path = as_path(path, "study spec")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise NNLabError(f"{path}: cannot read the study spec ({err.strerror})") from err
        except UnicodeDecodeError as err:
            raise NNLabError(f"{path}: not valid TOML (expected UTF-8 text; byte "
                             f"{err.start} is not)") from err
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise NNLabError(f"{path}: not valid TOML ({err})") from err
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudySpec:
        """Validate the TOML-shaped mapping `values` ({"study": {...}, "base": {...}, ...})."""
        _check_keys("spec", values, None)
        for section in values:
            if section not in SECTIONS:
                raise NNLabError(f"[{section}]: unknown section; expected one of "
                                 + ", ".join(f"[{s}]" for s in SECTIONS))
        study = _check_keys("study", values.get("study", {}), STUDY_KEYS)
        spec = cls(
            name=study_name(study.get("name")),
            objective=_study_objective(study.get("objective", "val_acc")),
            sampler=_one_of("study.sampler", study.get("sampler", "grid"), SAMPLERS),
            replicates=checked_int("study.replicates", study.get("replicates", 1), low=1),
            seed=checked_int("study.seed", study.get("seed", 0), low=0, high=MAX_SAMPLER_SEED,
                        why=" (the samplers' seed range)"),
            n_trials=study.get("n_trials"),
            save_probs=study.get("save_probs", False),
            base=dict(_check_keys("base", values.get("base", {}), None)),
            grid=dict(_check_keys("grid", values.get("grid", {}), None)),
            space=_ranges(_check_keys("space", values.get("space", {}), None)),
            data=_data_spec(_check_keys("data", values.get("data", {}), DATA_KEYS)),
        )
        spec._validate()
        return spec

    def _validate(self) -> None:
        if not isinstance(self.save_probs, bool):
            raise NNLabError(f"study.save_probs: expected true or false, got {self.save_probs!r}")
        if self.sampler == "grid":
            if self.n_trials is not None:
                raise NNLabError("study.n_trials: only for sampler = random or tpe (a grid "
                                 "runs every combination)")
            if self.space:
                raise NNLabError("[space]: only for sampler = random or tpe; use [grid] lists")
        else:
            if self.n_trials is None:
                raise NNLabError(f"study.n_trials: expected the number of configurations "
                                 f"to sample with sampler = {self.sampler}, got nothing")
            checked_int("study.n_trials", self.n_trials, low=1)
            if self.grid:
                raise NNLabError(f"[grid]: only for sampler = grid; use [space] with "
                                 f"sampler = {self.sampler}")
            if not self.space:
                raise NNLabError(f"[space]: expected at least one varied field with "
                                 f"sampler = {self.sampler}")
        base = self.base_config()
        varied = {**{k: ("grid", v) for k, v in self.grid.items()},
                  **{k: ("space", v) for k, v in self.space.items()}}
        for name, (section, values) in varied.items():
            where = f"{section}.{name}"
            if name not in field_names():
                raise NNLabError(f"{where}: unknown TrainConfig field; expected one of "
                                 + ", ".join(field_names()))
            if name == REPLICATE_SEED:
                raise NNLabError(f"{where}: the replicate seeds come from study.seed and "
                                 "study.replicates")
            if name in self.base:
                raise NNLabError(f"{where}: also set in [base]; a varied field is set in "
                                 "one place")
            if section == "grid":
                _check_grid_values(where, name, values, base)
            else:
                _check_range(where, name, values, base)
        if self.space and all(r.kind == "choice" or r.kind.startswith("int")
                              for r in self.space.values()):
            size = math.prod(len(r.bounds) if r.kind == "choice" else r.bounds[1] - r.bounds[0] + 1
                             for r in self.space.values())
            if size < self.n_trials:
                raise NNLabError(f"study.n_trials: expected at most {size} (the [space] has "
                                 f"{size} configurations), got {self.n_trials}")
        n_configs = (math.prod(len(v) for v in self.grid.values()) if self.sampler == "grid"
                     else self.n_trials)
        if n_configs * self.replicates > MAX_PLANNED:
            raise NNLabError(f"study: expected at most {MAX_PLANNED} planned runs, got "
                             f"{n_configs} configurations x {self.replicates} replicates")
        for point in self.grid_points():
            try:
                base.replace(**point)
            except NNLabError as err:
                raise NNLabError(f"grid point {point}: {err}") from err

    # --- what it plans --------------------------------------------------------------------

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def seeds(self) -> list[int]:
        """The replicate seeds, one training run per configuration and seed."""
        return list(range(self.seed, self.seed + self.replicates))

    @property
    def n_planned(self) -> int:
        n_configs = len(self.grid_points()) if self.sampler == "grid" else self.n_trials
        return n_configs * self.replicates

    @functools.cached_property
    def _base(self) -> TrainConfig:
        return self.base_config()

    def base_config(self) -> TrainConfig:
        """[base] as a TrainConfig: the preset (if any) with the other keys overriding it."""
        overrides = dict(self.base)
        preset = overrides.pop("preset", None)
        if REPLICATE_SEED in overrides:
            raise NNLabError("base.seed: the replicate seeds come from study.seed and "
                             "study.replicates")
        if preset is None:
            config = TrainConfig()
        else:
            if not isinstance(preset, str):
                raise NNLabError(f"base.preset: expected a preset name, got {preset!r}")
            try:
                config = get_preset(preset)
            except NNLabError as err:
                raise NNLabError(f"base.preset: {str(err).removeprefix('preset: ')}") from err
        for name, value in overrides.items():
            try:
                config = config.replace(**{name: value})
            except NNLabError as err:
                raise _retitled(err, name, f"base.{name}") from err
        return config

    def fitted(self, n_features: int, n_classes: int) -> StudySpec:
        """This spec for data of `n_features` features and `n_classes` classes. When no
        `sizes` is set in [base] or varied, the base network's (a preset's, or TrainConfig's
        default; made for MNIST's 784 features and 10 classes) first and last sizes become
        the data's; otherwise (and for a model builder, which reads no sizes) it is
        returned as is. A network that cannot take the data is an error naming it."""
        if any("sizes" in table for table in (self.base, self.grid, self.space)):
            return self
        config = self.base_config()
        sizes = [n_features, *config.sizes[1:-1], n_classes]
        if config.model not in MODELS or sizes == config.sizes:
            return self
        values = self.to_dict()
        values["base"]["sizes"] = sizes
        try:
            return StudySpec.from_dict(values)
        except NNLabError as err:
            raise NNLabError(f"[base] on data of {n_features} features and {n_classes} "
                             f"classes (sizes {sizes}): {err}") from err

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the [grid] lists, the last key varying fastest; one empty
        point (the base config alone) when there is no grid."""
        names = list(self.grid)
        return [dict(zip(names, values, strict=True))
                for values in itertools.product(*self.grid.values())]

    def probe_configs(self) -> list[tuple[str, TrainConfig]]:
        """(where, config) pairs that stand for every planned configuration when checking
        them against the data: each grid point; with random/tpe, the base alone and with
        each end of each range (or each choice)."""
        if self.sampler == "grid":
            return [(f"grid point {point}" if point else "[base]",
                     self.config_for(point, self.seed)) for point in self.grid_points()]
        return [("[base]", self.config_for({}, self.seed))] + [
            (f"space.{name} = {value!r}", self.config_for({name: value}, self.seed))
            for name, entry in self.space.items() for value in entry.bounds]

    def distributions(self) -> dict[str, BaseDistribution]:
        """The Optuna distribution of every varied field."""
        if self.sampler == "grid":
            return {name: CategoricalDistribution([param_value(v) for v in values])
                    for name, values in self.grid.items()}
        return {name: r.distribution() for name, r in self.space.items()}

    def config_for(self, params: dict[str, Any], seed: int) -> TrainConfig:
        """The TrainConfig of one trial: the base, the varied `params` (as Optuna stores
        them) and the replicate `seed`."""
        values = {name: self._config_value(name, value) for name, value in params.items()}
        return self._base.replace(**values, **{REPLICATE_SEED: seed})

    def _config_value(self, name: str, value: Any) -> Any:
        choices = self.grid.get(name) or (
            self.space[name].bounds if name in self.space and self.space[name].kind == "choice"
            else [])
        if isinstance(value, str) and any(isinstance(c, list) for c in choices):
            return json.loads(value)
        return value

    # --- writing and comparing ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The TOML-shaped mapping: `StudySpec.from_dict(spec.to_dict()) == spec`."""
        study = {"name": self.name, "objective": self.objective, "sampler": self.sampler,
                 "replicates": self.replicates, "seed": self.seed}
        if self.n_trials is not None:
            study["n_trials"] = self.n_trials
        if self.save_probs:
            study["save_probs"] = True
        values: dict[str, Any] = {"study": study, "base": dict(self.base)}
        if self.grid:
            values["grid"] = {k: list(v) for k, v in self.grid.items()}
        if self.space:
            values["space"] = {k: r.to_dict() for k, r in self.space.items()}
        values["data"] = self.data.to_dict()
        return values

    def to_toml(self) -> str:
        """The spec as TOML text (what results/<study>/spec.toml holds)."""
        lines = [f"# study {self.name!r}: the spec this results folder was created with"]
        for section, table in self.to_dict().items():
            lines += ["", f"[{section}]"]
            lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        """A hash of everything that decides the trials: the spec and the resolved base
        config (so a preset whose values changed counts as a changed spec)."""
        return stable_hash({"spec": self.to_dict(), "base_config": self.base_config().to_dict()})

    def extends(self, earlier: StudySpec, earlier_digest: str | None = None) -> bool:
        """Whether this spec is `earlier` (whose recorded digest is `earlier_digest`, default
        its own) with as many or more replicates (seeds) and trials (GROWS_BY) and nothing
        else changed: every run `earlier` planned is planned here the same way, so a study
        created with `earlier` can grow into this one and keep its results."""
        cut = replace(self, **{key: getattr(earlier, key) for key in GROWS_BY})
        return (all((getattr(self, key) or 0) >= (getattr(earlier, key) or 0)
                    for key in GROWS_BY)
                and cut.digest() == (earlier_digest or earlier.digest()))

    def differences(self, other: StudySpec) -> list[str]:
        """`section.key: this != other` for every key that differs (for error messages)."""
        mine, theirs = _flatten(self.to_dict()), _flatten(other.to_dict())
        return [f"{key}: {mine.get(key, '(unset)')!r} != {theirs.get(key, '(unset)')!r}"
                for key in sorted(set(mine) | set(theirs)) if mine.get(key) != theirs.get(key)]


# --- field checks --------------------------------------------------------------------------


def study_name(value: object, field: str = "study.name") -> str:
    """`value` if it can name a results folder, else NNLabError naming `field`."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise NNLabError(f"{field}: expected a name of letters, digits, '.', '_' or '-' "
                         f"(it names the results folder), got {value!r}")
    return value


def _study_objective(value: object) -> str:
    if isinstance(value, str) and value.startswith("test"):
        raise NNLabError(f"study.objective: the test set never chooses anything; expected one "
                         f"of {', '.join(OBJECTIVES)}, got {value!r}")
    return _one_of("study.objective", value, tuple(OBJECTIVES))


def _one_of(where: str, value: object, options: tuple[str, ...]) -> str:
    if value not in options:
        raise NNLabError(f"{where}: expected one of {', '.join(options)}, got {value!r}")
    return value


def _data_spec(table: dict[str, Any]) -> DataSpec:
    kinds = [key for key in ("name", "files", "entry_point", "dataset") if key in table]
    kinds += ["train/val/test"] if any(split in table for split in SPLITS) else []
    if len(kinds) > 1:
        raise NNLabError(f"data: expected one source of data, got {' and '.join(kinds)}")
    kind = kinds[0] if kinds else "name"
    values: dict[str, Any] = {} if kind == "name" else {"name": None}
    if kind == "name":
        values["name"] = _one_of("data.name", table.get("name", "mnist"), DATASETS)
    elif kind == "files":
        files = table["files"]
        if isinstance(files, list) and files:
            values["files"] = tuple(_source(f"data.files[{i}]", f) for i, f in enumerate(files))
        elif isinstance(files, dict):
            values["files"] = (_source("data.files", files),)
        else:
            values["files"] = _path("data.files", files)
    elif kind == "train/val/test":
        for split in SPLITS:
            if split not in table:
                raise NNLabError(f"data.{split}: expected a file for each of train, val and "
                                 f"test (given splits), got none for {split}")
            values[split] = _source(f"data.{split}", table[split])
    elif kind == "entry_point":
        if not is_entry_point(table["entry_point"]):
            raise NNLabError(f"data.entry_point: expected {ENTRY_POINT_FORM} returning a "
                             f"nnlab.datasets.Dataset, got {table['entry_point']!r}")
        values["entry_point"] = table["entry_point"]
    else:
        values["dataset"] = _text("data.dataset", table["dataset"])
    for key in FILE_KEYS:
        if key in table and kind not in ("files", "train/val/test"):
            raise NNLabError(f"data.{key}: only for data from files (data.files or "
                             "data.train, val and test)")
    values.update(_split_rule(table, kind))
    if "n_classes" in table:
        values["n_classes"] = checked_int("data.n_classes", table["n_classes"], low=2)
    if "image_shape" in table:
        shape = table["image_shape"]
        if not (isinstance(shape, list) and len(shape) == 3
                and all(is_int(n) and n >= 1 for n in shape)):
            raise NNLabError(f"data.image_shape: expected [channels, height, width], three "
                             f"positive integers, got {shape!r}")
        values["image_shape"] = tuple(shape)
    if "pixels" in table:
        values["pixels"] = _flag("data.pixels", table["pixels"])
    sizes = {key: checked_int(f"data.{key}", table[key], low=1)
             for key in SIZE_KEYS if key in table}
    return DataSpec(**values, **sizes)


def _split_rule(table: dict[str, Any], kind: str) -> dict[str, Any]:
    """split, split_seed (default 0) and stratify (default true), given with data.files."""
    if "split" not in table:
        for key in ("split_seed", "stratify"):
            if key in table:
                raise NNLabError(f"data.{key}: only with data.split")
        if kind == "files" and isinstance(table["files"], list | dict):
            raise NNLabError("data.split: expected [train, val, test] fractions to cut the "
                             "files into splits, got none")
        return {}
    if kind != "files":
        raise NNLabError("data.split: only with data.files (given splits are not cut)")
    split = table["split"]
    if not (isinstance(split, list) and len(split) == 3 and all(
            is_number(f) and f > 0 for f in split) and math.isclose(sum(split), 1.0)):
        raise NNLabError(f"data.split: expected [train, val, test] fractions, three positive "
                         f"numbers summing to 1, got {split!r}")
    return {"split": tuple(float(f) for f in split),
            "split_seed": checked_int("data.split_seed", table.get("split_seed", 0), low=0),
            "stratify": _flag("data.stratify", table.get("stratify", True))}


def _source(where: str, value: object) -> Source:
    """A file source: a path, or an IDX pair { images = PATH, labels = PATH }."""
    if isinstance(value, dict):
        if set(value) != {"images", "labels"}:
            raise NNLabError(f"{where}: expected a path or {{ images = PATH, labels = PATH }} "
                             f"(an IDX pair), got {value!r}")
        return (_path(f"{where}.images", value["images"]),
                _path(f"{where}.labels", value["labels"]))
    return _path(where, value)


def _path(where: str, value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise NNLabError(f"{where}: expected a path, got {value!r}")
    return value


def _text(where: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise NNLabError(f"{where}: expected a name, got {value!r}")
    return value


def _flag(where: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise NNLabError(f"{where}: expected true or false, got {value!r}")
    return value


def _source_value(source: Source) -> str | dict[str, str]:
    """A file source as the TOML spec writes it."""
    return {"images": source[0], "labels": source[1]} if isinstance(source, tuple) else source


def _source_text(source: Source) -> str:
    """A file source as an absolute path (an IDX pair: both)."""
    if isinstance(source, tuple):
        return " + ".join(str(Path(p).resolve()) for p in source)
    return str(Path(source).resolve())


def _ranges(table: dict[str, Any]) -> dict[str, Range]:
    ranges = {}
    for name, entry in table.items():
        where = f"space.{name}"
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in RANGE_KINDS:
            raise NNLabError(f"{where}: expected one of {{ log_uniform = [low, high] }}, "
                             f"uniform, int_uniform, int_log_uniform or {{ choice = [...] }}, "
                             f"got {entry!r}")
        kind, bounds = next(iter(entry.items()))
        ranges[name] = Range(kind, bounds)
    return ranges


def _check_grid_values(where: str, name: str, values: object, base: TrainConfig) -> None:
    if not isinstance(values, list) or not values:
        raise NNLabError(f"{where}: expected a non-empty list of values, got {values!r}")
    seen = []
    for i, value in enumerate(values):
        if value in seen:
            raise NNLabError(f"{where}[{i}]: {value!r} is listed twice")
        seen.append(value)
        try:
            base.replace(**{name: value})
        except NNLabError as err:
            raise _retitled(err, name, f"{where}[{i}]") from err


def _check_range(where: str, name: str, r: Range, base: TrainConfig) -> None:
    if r.kind == "choice":
        _check_grid_values(f"{where}.choice", name, r.bounds, base)
        return
    numbers = isinstance(r.bounds, list) and len(r.bounds) == 2 and all(
        (is_int if r.kind.startswith("int") else is_number)(b) for b in r.bounds)
    if not numbers or not r.bounds[0] < r.bounds[1]:
        kind = "integers" if r.kind.startswith("int") else "numbers"
        raise NNLabError(f"{where}.{r.kind}: expected two {kind} [low, high] with low < high, "
                         f"got {r.bounds!r}")
    if r.kind.endswith("log_uniform") and r.bounds[0] <= 0:
        raise NNLabError(f"{where}.{r.kind}: expected a positive low bound, got {r.bounds[0]!r}")
    for bound in r.bounds:
        try:
            base.replace(**{name: bound})
        except NNLabError as err:
            raise _retitled(err, name, f"{where}.{r.kind}") from err


# --- TOML writing (the small subset specs use) ---------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise NNLabError(f"spec: cannot write {value!r} to TOML")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
