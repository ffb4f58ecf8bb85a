"""Study specs: validation names the field, nothing unknown is ignored, hashes are stable."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from nnlab.cli import main
from nnlab.errors import ConfigError, NNLabError
from nnlab.study.spec import StudySpec, stable_hash

GOOD = """
[study]
name = "eta-vs-steps"
objective = "val_acc"
sampler = "grid"
replicates = 3
seed = 10
[base]
preset = "seed-000"
batch_size = 100
[grid]
eta = [0.3, 1.0, 3.0]
n_steps = [100, 300]
sizes = [[784, 36, 16, 10], [784, 100, 10]]
[data]
train_size = 1000
"""


def spec_with(**sections: dict) -> dict:
    values = tomllib.loads(GOOD)
    for section, table in sections.items():
        if table is None:
            values.pop(section, None)
        else:
            values[section] = table
    return values


def test_a_valid_spec_plans_the_grid_times_the_replicate_seeds():
    spec = StudySpec.from_dict(tomllib.loads(GOOD))
    assert spec.seeds == [10, 11, 12]
    assert spec.n_planned == 3 * 2 * 2 * 3
    points = spec.grid_points()
    assert points[0] == {"eta": 0.3, "n_steps": 100, "sizes": [784, 36, 16, 10]}
    assert points[1]["sizes"] == [784, 100, 10]  # the last key varies fastest
    config = spec.config_for({"eta": 3.0, "n_steps": 300, "sizes": "[784, 100, 10]"}, seed=11)
    assert (config.eta, config.n_steps, config.sizes, config.seed) == (
        3.0, 300, [784, 100, 10], 11)
    assert (config.batch_size, config.activation, config.epochs) == (100, "sigmoid", None)


def test_to_toml_round_trips_and_keeps_the_digest():
    spec = StudySpec.from_dict(tomllib.loads(GOOD))
    again = StudySpec.from_dict(tomllib.loads(spec.to_toml()))
    assert again == spec
    assert again.digest() == spec.digest()


def test_random_space_round_trips():
    space = {"eta": {"log_uniform": [1e-3, 10.0]},
             "batch_size": {"int_log_uniform": [16, 512]},
             "noise": {"choice": ["none", "grad"]}}
    values = spec_with(grid=None, base={"preset": "seed-000"}, space=space)
    values["study"].update(sampler="tpe", n_trials=20)
    spec = StudySpec.from_dict(values)
    assert spec.n_planned == 60
    assert StudySpec.from_dict(tomllib.loads(spec.to_toml())) == spec
    dist = spec.distributions()
    assert dist["eta"].log and dist["eta"].low == 1e-3
    assert dist["batch_size"].log and (dist["batch_size"].low, dist["batch_size"].high) == (16, 512)


def test_stable_hash_is_pinned_and_treats_integral_floats_as_ints():
    # resuming a study depends on these digests never changing between runs or versions
    assert stable_hash({"eta": 1.0, "sizes": [784, 10]}) == "8491035f41481045"
    assert stable_hash({"b": 1, "a": [1.5, "x"]}) == stable_hash({"a": [1.5, "x"], "b": 1.0})
    assert stable_hash({"eta": 1.0}) != stable_hash({"eta": 1.5})
    code = "from nnlab.study.spec import stable_hash; print(stable_hash({'eta': 0.1, 's': [1]}))"
    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                   text=True, check=True).stdout.strip()
    assert other_process == stable_hash({"s": [1], "eta": 0.1})


def test_a_changed_grid_or_base_changes_the_digest_and_is_listed():
    spec = StudySpec.from_dict(tomllib.loads(GOOD))
    changed = StudySpec.from_dict(spec_with(grid={"eta": [0.3, 1.0], "n_steps": [100, 300]}))
    assert changed.digest() != spec.digest()
    differences = spec.differences(changed)
    assert any(d.startswith("grid.eta:") for d in differences)
    assert any(d.startswith("grid.sizes:") for d in differences)
    rebased = StudySpec.from_dict(spec_with(base={"preset": "seed-000", "batch_size": 200}))
    assert rebased.digest() != spec.digest()


@pytest.mark.parametrize("values, message", [
    ({"gird": {"eta": [1.0]}}, "[gird]: unknown section"),
    ({"study": {"name": "x", "replicate": 3}}, "study.replicate: unknown key"),
    ({"study": {"name": "x", "objective": "test_acc"}}, "study.objective: the test set"),
    ({"study": {"name": "x", "sampler": "bayes"}}, "study.sampler: expected one of grid"),
    ({"study": {"name": "x", "replicates": 0}}, "study.replicates: expected an integer >= 1"),
    ({"study": {"name": "../x"}}, "study.name: expected a name"),
    ({"study": {"name": "x"}, "grid": {"eta": [0.3, -1]}},
     "grid.eta[1]: expected a positive number, got -1"),
    ({"study": {"name": "x"}, "grid": {"eta": 0.3}}, "grid.eta: expected a non-empty list"),
    ({"study": {"name": "x"}, "grid": {"eta": [0.3, 0.3]}}, "grid.eta[1]: 0.3 is listed twice"),
    ({"study": {"name": "x"}, "grid": {"etta": [0.3]}}, "grid.etta: unknown TrainConfig field"),
    ({"study": {"name": "x"}, "grid": {"seed": [1, 2]}}, "grid.seed: the replicate seeds"),
    ({"study": {"name": "x"}, "base": {"eta": 1.0}, "grid": {"eta": [0.3]}},
     "grid.eta: also set in [base]"),
    ({"study": {"name": "x"}, "base": {"etaa": 1.0}}, "base.etaa: unknown field"),
    ({"study": {"name": "x"}, "base": {"preset": "seed-999"}}, "base.preset: expected one of"),
    ({"study": {"name": "x"}, "base": {"batch_size": 0}}, "base.batch_size: expected an integer"),
    ({"study": {"name": "x"}, "data": {"name": "cifar"}}, "data.name: expected one of mnist"),
    ({"study": {"name": "x"}, "data": {"train_sise": 10}}, "data.train_sise: unknown key"),
    ({"study": {"name": "x", "sampler": "tpe"}, "space": {"eta": {"log_uniform": [0.1, 1]}}},
     "study.n_trials: expected the number of configurations"),
    ({"study": {"name": "x", "sampler": "random", "n_trials": 5},
      "space": {"eta": {"log_uniform": [0, 1]}}}, "space.eta.log_uniform: expected a positive"),
    ({"study": {"name": "x", "sampler": "random", "n_trials": 5},
      "space": {"eta": {"normal": [0, 1]}}}, "space.eta: expected one of"),
    ({"study": {"name": "x", "sampler": "random", "n_trials": 5},
      "space": {"batch_size": {"int_uniform": [0, 8]}}}, "space.batch_size.int_uniform: expected"),
    ({"study": {"name": "x", "n_trials": 5}, "grid": {"eta": [0.1]}}, "study.n_trials: only for"),
    ({"study": {"name": "x", "sampler": "tpe", "n_trials": 7},
      "space": {"noise": {"choice": ["none", "grad"]}, "batch_size": {"int_uniform": [1, 3]}}},
     "study.n_trials: expected at most 6 (the [space] has 6 configurations), got 7"),
    ({"study": {"name": "x", "seed": 2**32}},
     "study.seed: expected an integer in 0..4294967295 (the samplers' seed range), got"),
    ({"study": {"name": "x", "replicates": 10**7}},
     "study: expected at most 1000000 planned runs, got 1 configurations x 10000000"),
    ({"study": {"name": "x", "sampler": "random", "n_trials": 10**9},
      "space": {"eta": {"log_uniform": [0.1, 1]}}}, "study: expected at most 1000000 planned"),
])
def test_bad_specs_name_the_field(values, message):
    with pytest.raises(NNLabError) as err:
        StudySpec.from_dict(values)
    assert str(err.value).startswith(message), str(err.value)


def test_a_data_size_larger_than_the_split_is_an_error():
    spec = StudySpec.from_dict({"study": {"name": "x"}, "data": {"val_size": 10_001}})
    with pytest.raises(NNLabError, match=r"data.val_size: expected an integer <= 10000"):
        spec.data.load()


def test_nnlab_run_with_a_bad_spec_prints_one_line_and_trains_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.toml"
    spec.write_text(GOOD.replace("[grid]", "[gird]"))
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nnlab: error: [gird]: unknown section")
    spec.write_text(GOOD.replace("eta = [0.3, 1.0, 3.0]", "eta = [0.3, -1.0]"))
    assert main(["run", str(spec), "--results", str(results)]) == 2
    assert capsys.readouterr().err == (
        "nnlab: error: grid.eta[1]: expected a positive number, got -1.0\n")
    assert not results.exists()


def test_a_missing_or_broken_spec_file_is_named(tmp_path):
    with pytest.raises(NNLabError, match=r"nope.toml: cannot read the study spec"):
        StudySpec.from_toml(tmp_path / "nope.toml")
    broken = Path(tmp_path / "broken.toml")
    broken.write_text("[study\nname = 1")
    with pytest.raises(NNLabError, match=r"broken.toml: not valid TOML"):
        StudySpec.from_toml(broken)
    broken.write_bytes(b"[study]\nname = '\xff'\n")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML \(byte 16 is not "
                       r"UTF-8\); expected UTF-8 text$"):
        StudySpec.from_toml(broken)
