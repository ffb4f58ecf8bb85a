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
# pruner = "none"         # none | median | successive_halving | hyperband (random/tpe only)
# pruner_options = { n_warmup_steps = 100 }   # the Optuna pruner's own options
# pruner_unit = "run"     # run | configuration: what the pruner judges (nnlab.study.pruning)
# lockstep = true         # train runs that share a data order together (nnlab.lockstep)
[base]                    # a TrainConfig: preset = "<name>" plus fields that override it
preset = "seed-000"
[grid]                    # sampler = "grid": every combination of these lists
eta = [0.3, 1.0, 3.0]
# [space] for random/tpe: eta = { log_uniform = [1e-3, 10] }, also uniform, int_uniform,
#   int_log_uniform (two bounds) and choice (a list)
[data]
name = "mnist"            # or "digits"; or files, train/val/test, entry_point (docs/data.md)
# train_size / val_size / test_size: use the first n examples of each split
# [[hypothesis]] tables: predictions declared before the runs (nnlab.study.hypotheses)
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
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from nnlab.errors import ConfigError, NNLabError, as_path, is_int, is_number
from nnlab.presets import get_preset
from nnlab.study.data_spec import DATA_KEYS, DataSpec, data_spec
from nnlab.study.grids import grid_distribution, param_value
from nnlab.study.hypotheses import Hypothesis, hypotheses_from
from nnlab.study.pruning import PRUNER_UNITS, PRUNERS, check_pruner
from nnlab.train_config import MODELS, TrainConfig, field_names
from nnlab.validation import (
    POSITIVE_INT,
    Boolean,
    Constraint,
    Integers,
    OneOf,
    checked,
    checked_fields,
)

SECTIONS = ("study", "base", "grid", "space", "data", "hypothesis")
STUDY_KEYS = ("name", "objective", "sampler", "replicates", "seed", "n_trials", "save_probs",
              "pruner", "pruner_options", "pruner_unit", "lockstep")
Direction = Literal["minimize", "maximize"]
OBJECTIVES: dict[str, Direction] = {"val_acc": "maximize", "val_loss": "minimize",
                                    "train_loss": "minimize"}
SAMPLERS = ("grid", "random", "tpe")
RANGE_KINDS = ("uniform", "log_uniform", "int_uniform", "int_log_uniform", "choice")
MAX_SAMPLER_SEED = 2**32 - 1  # Optuna's samplers seed numpy's legacy RandomState
MAX_PLANNED = 10**6  # runs one study may plan (each is a trial in the storage)
GROWS_BY = ("replicates", "n_trials")  # raising these grows a study (`StudySpec.extends`)
STUDY_CONSTRAINTS: dict[str, Constraint] = {
    "sampler": OneOf(SAMPLERS),
    "replicates": POSITIVE_INT,
    "seed": Integers(0, MAX_SAMPLER_SEED, note=" (the samplers' seed range)"),
    "n_trials": POSITIVE_INT,
    "save_probs": Boolean(),
    "pruner": OneOf(PRUNERS),
    "pruner_unit": OneOf(PRUNER_UNITS),
    "lockstep": Boolean(),
}
"""The own constraint of each [study] key but name and objective (`study_name`,
`_study_objective`: their messages say more); what relates keys is checked after
(`StudySpec._validate`)."""
_OBJECTIVE = OneOf(tuple(OBJECTIVES))
REPLICATE_SEED = "seed"  # the TrainConfig field the replicates vary
MAX_NAME = 100  # characters in a study name (it names a folder and an Optuna study)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # matched whole (fullmatch)


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
        raise ConfigError(f"[{section}]", "a table of keys", table)
    for key, value in table.items():
        if allowed is not None and key not in allowed:
            raise ConfigError(f"{section}.{key}", f"one of {', '.join(allowed)}",
                              problem="unknown key")
        if value is None:
            raise ConfigError(f"{section}.{key}", "a value", shown="None (leave the key out)")
    return table


def _as_spec_key(err: NNLabError, field_name: str, where: str) -> NNLabError:
    """TrainConfig's error about its field `field_name`, naming the spec's key `where`
    instead; an error about another field keeps its own, preceded by `where`."""
    if err.field == f"TrainConfig.{field_name}":
        return err.renamed(where)
    return err.within(where)


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
class StudySpec:
    """A validated study; build it with `StudySpec.from_dict` or `StudySpec.from_toml`."""

    name: str
    objective: str = "val_acc"
    sampler: str = "grid"
    replicates: int = 1
    seed: int = 0
    n_trials: int | None = None
    save_probs: bool = False
    pruner: str = "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    pruner_unit: str = "run"
    lockstep: bool = True
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, Range] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)
    hypotheses: tuple[Hypothesis, ...] = ()  # [[hypothesis]] tables (nnlab.study.hypotheses)

    # --- reading --------------------------------------------------------------------------

    @classmethod
    def from_toml(cls, path: str | Path) -> StudySpec:
        path = as_path(path, "study spec")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(str(path), "a readable TOML file",
                              problem=f"cannot read the study spec ({err.strerror})") from err
        except UnicodeDecodeError as err:
            raise ConfigError(str(path), "UTF-8 text", problem=f"not valid TOML (byte "
                              f"{err.start} is not UTF-8)") from err
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(str(path), "a TOML study spec",
                              problem=f"not valid TOML ({err})") from err
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudySpec:
        """Validate the TOML-shaped mapping `values` ({"study": {...}, "base": {...}, ...})."""
        _check_keys("spec", values, None)
        for section in values:
            if section not in SECTIONS:
                raise ConfigError(f"[{section}]", "one of " + ", ".join(f"[{s}]" for s in SECTIONS),
                                  problem="unknown section")
        study = _check_keys("study", values.get("study", {}), STUDY_KEYS)
        spec = cls(
            name=study_name(study.get("name")),
            objective=_study_objective(study.get("objective", "val_acc")),
            **checked_fields("study", STUDY_CONSTRAINTS, study),
            pruner_options=dict(_check_keys("study.pruner_options",
                                            study.get("pruner_options", {}), None)),
            base=dict(_check_keys("base", values.get("base", {}), None)),
            grid=dict(_check_keys("grid", values.get("grid", {}), None)),
            space=_ranges(_check_keys("space", values.get("space", {}), None)),
            data=data_spec(_check_keys("data", values.get("data", {}), DATA_KEYS)),
            hypotheses=hypotheses_from(values.get("hypothesis", [])),
        )
        spec._validate()
        return spec

    def _validate(self) -> None:
        """What relates the keys and sections: the sampler's, the varied fields', the
        size of the plan."""
        if self.sampler == "grid":
            if self.n_trials is not None:
                raise ConfigError("study.n_trials", "", problem="only for sampler = random or "
                                  "tpe (a grid runs every combination)")
            if self.space:
                raise ConfigError("[space]", "", problem="only for sampler = random or tpe; use "
                                  "[grid] lists")
            if self.pruner != "none":
                raise ConfigError("study.pruner", "\"none\" with sampler = grid (a grid runs "
                                  "every configuration and seed: pruning would break the seed "
                                  "balance its analyses need)", self.pruner)
        else:
            if self.n_trials is None:
                raise ConfigError("study.n_trials", "the number of configurations to sample "
                                  f"with sampler = {self.sampler}", shown="nothing")
            if self.grid:
                raise ConfigError("[grid]", "", problem=f"only for sampler = grid; use [space] "
                                  f"with sampler = {self.sampler}")
            if not self.space:
                raise ConfigError("[space]", "at least one varied field with sampler = "
                                  f"{self.sampler}")
        check_pruner(self.pruner, self.pruner_options, self.pruner_unit)
        base = self.base_config()
        varied = {**{k: ("grid", v) for k, v in self.grid.items()},
                  **{k: ("space", v) for k, v in self.space.items()}}
        for name, (section, values) in varied.items():
            where = f"{section}.{name}"
            if name not in field_names():
                raise ConfigError(where, "one of " + ", ".join(field_names()),
                                  problem="unknown TrainConfig field")
            if name == REPLICATE_SEED:
                raise ConfigError(where, "", problem="the replicate seeds come from study.seed "
                                  "and study.replicates")
            if name in self.base:
                raise ConfigError(where, "", problem="also set in [base]; a varied field is set "
                                  "in one place")
            if section == "grid":
                _check_grid_values(where, name, values, base)
            else:
                _check_range(where, name, cast(Range, values), base)
        if self.space and all(r.kind == "choice" or r.kind.startswith("int")
                              for r in self.space.values()):
            size = math.prod(len(r.bounds) if r.kind == "choice" else r.bounds[1] - r.bounds[0] + 1
                             for r in self.space.values())
            if size < self.n_sampled:
                raise ConfigError("study.n_trials", f"at most {size} (the [space] has {size} "
                                  "configurations)", shown=f"{self.n_trials}")
        n_configs = (math.prod(len(v) for v in self.grid.values()) if self.sampler == "grid"
                     else self.n_sampled)
        if n_configs * self.replicates > MAX_PLANNED:
            raise ConfigError("study", f"at most {MAX_PLANNED} planned runs",
                              shown=f"{n_configs} configurations x {self.replicates} replicates")
        for point in self.grid_points():
            try:
                base.replace(**point)
            except NNLabError as err:
                raise err.within(f"grid point {point}") from err

    # --- what it plans --------------------------------------------------------------------

    @property
    def direction(self) -> Direction:
        return OBJECTIVES[self.objective]

    @property
    def seeds(self) -> list[int]:
        """The replicate seeds, one training run per configuration and seed."""
        return list(range(self.seed, self.seed + self.replicates))

    @property
    def n_planned(self) -> int:
        n_configs = len(self.grid_points()) if self.sampler == "grid" else self.n_sampled
        return n_configs * self.replicates

    @property
    def n_sampled(self) -> int:
        """The configurations a random or tpe sampler draws (study.n_trials); 0 for a
        grid."""
        return self.n_trials or 0

    @functools.cached_property
    def _base(self) -> TrainConfig:
        return self.base_config()

    def base_config(self) -> TrainConfig:
        """[base] as a TrainConfig: the preset (if any) with the other keys overriding it."""
        overrides = dict(self.base)
        preset = overrides.pop("preset", None)
        if REPLICATE_SEED in overrides:
            raise ConfigError("base.seed", "", problem="the replicate seeds come from study.seed "
                              "and study.replicates")
        if preset is None:
            config = TrainConfig()
        else:
            if not isinstance(preset, str):
                raise ConfigError("base.preset", "a preset name", preset)
            try:
                config = get_preset(preset)
            except NNLabError as err:
                raise err.renamed("base.preset") from err
        for name, value in overrides.items():
            try:
                config = config.replace(**{name: value})
            except NNLabError as err:
                raise _as_spec_key(err, name, f"base.{name}") from err
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
            raise err.within(f"[base] on data of {n_features} features and {n_classes} "
                             f"classes (sizes {sizes})") from err

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
            return {name: grid_distribution(values) for name, values in self.grid.items()}
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
        if self.pruner != "none":
            study["pruner"] = self.pruner
        if self.pruner_options:
            study["pruner_options"] = dict(self.pruner_options)
        if self.pruner_unit != "run":
            study["pruner_unit"] = self.pruner_unit
        if not self.lockstep:
            study["lockstep"] = False
        values: dict[str, Any] = {"study": study, "base": dict(self.base)}
        if self.grid:
            values["grid"] = {k: list(v) for k, v in self.grid.items()}
        if self.space:
            values["space"] = {k: r.to_dict() for k, r in self.space.items()}
        values["data"] = self.data.to_dict()
        if self.hypotheses:
            values["hypothesis"] = [h.to_dict() for h in self.hypotheses]
        return values

    def to_toml(self) -> str:
        """The spec as TOML text (what results/<study>/spec.toml holds)."""
        lines = [f"# study {self.name!r}: the spec this results folder was created with"]
        for section, tables in self.to_dict().items():
            for table in tables if isinstance(tables, list) else [tables]:
                lines += ["", f"[[{section}]]" if isinstance(tables, list) else f"[{section}]"]
                lines += [f"{key} = {_toml_value(value)}" for key, value in table.items()]
        return "\n".join(lines) + "\n"

    def digest(self) -> str:
        """A hash of everything that decides the trials: the spec and the resolved base
        config (so a preset whose values changed counts as a changed spec); not
        study.lockstep, which changes how runs are computed, never what they give."""
        spec = self.to_dict()
        spec["study"].pop("lockstep", None)
        return stable_hash({"spec": spec, "base_config": self.base_config().to_dict()})

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
    """`value` if it can name a results folder: 1 to MAX_NAME ASCII letters, digits, '.',
    '_' or '-', the first a letter or digit (no control character, space or '/'); else
    NNLabError naming `field`."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _NAME.fullmatch(value):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 60 else (
            f"{value[:40]!r}... ({len(value)} characters)")
        raise ConfigError(field, "a name of letters, digits, '.', '_' or '-', at most "
                          f"{MAX_NAME} characters and starting with a letter or digit (it names "
                          "the results folder)", shown=f"{shown}")
    return value


def _study_objective(value: object) -> str:
    if isinstance(value, str) and value.startswith("test"):
        raise ConfigError("study.objective", _OBJECTIVE.description, value,
                          problem="the test set never chooses anything")
    return checked("study.objective", value, _OBJECTIVE)


def _ranges(table: dict[str, Any]) -> dict[str, Range]:
    ranges = {}
    for name, entry in table.items():
        where = f"space.{name}"
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in RANGE_KINDS:
            raise ConfigError(where, "one of { log_uniform = [low, high] }, uniform, "
                              "int_uniform, int_log_uniform or { choice = [...] }, got "
                              f"{entry!r}")
        kind, bounds = next(iter(entry.items()))
        ranges[name] = Range(kind, bounds)
    return ranges


def _check_grid_values(where: str, name: str, values: object, base: TrainConfig) -> None:
    if not isinstance(values, list) or not values:
        raise ConfigError(where, "a non-empty list of values", values)
    seen = []
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{where}[{i}]", "", value, problem=f"{value!r} is listed twice")
        seen.append(value)
        try:
            base.replace(**{name: value})
        except NNLabError as err:
            raise _as_spec_key(err, name, f"{where}[{i}]") from err


def _check_range(where: str, name: str, r: Range, base: TrainConfig) -> None:
    if r.kind == "choice":
        _check_grid_values(f"{where}.choice", name, r.bounds, base)
        return
    numbers = isinstance(r.bounds, list) and len(r.bounds) == 2 and all(
        (is_int if r.kind.startswith("int") else is_number)(b) for b in r.bounds)
    if not numbers or not r.bounds[0] < r.bounds[1]:
        kind = "integers" if r.kind.startswith("int") else "numbers"
        raise ConfigError(f"{where}.{r.kind}", f"two {kind} [low, high] with low < high", r.bounds)
    if r.kind.endswith("log_uniform") and r.bounds[0] <= 0:
        raise ConfigError(f"{where}.{r.kind}", "a positive low bound", r.bounds[0])
    for bound in r.bounds:
        try:
            base.replace(**{name: bound})
        except NNLabError as err:
            raise _as_spec_key(err, name, f"{where}.{r.kind}") from err


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
    raise ConfigError("spec", "values TOML can hold", value,
                      problem=f"cannot write {value!r} to TOML")


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, table in enumerate(value):  # [[hypothesis]] tables
                flat.update(_flatten(table, f"{prefix}{key}[{i}]."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
