"""A small real grid study (eta x n_steps x seeds on an MNIST subset, ~1 s per run) for the
tests that drive the engine as processes: kill, resume, concurrent runs, PostgreSQL."""

from __future__ import annotations

import itertools
from pathlib import Path

SPEC = """
[study]
name = "{name}"
replicates = {replicates}
[base]
sizes = [784, 32, 10]
batch_size = 100
n_evals = 3
[grid]
eta = [0.5, 1.0]
n_steps = [150, 250]
[data]
train_size = 3000
val_size = 500
test_size = 500
"""


def planned(replicates: int) -> set[tuple[float, int, int]]:
    """Every (eta, n_steps, seed) the study plans."""
    return set(itertools.product([0.5, 1.0], [150, 250], range(replicates)))


def write_spec(tmp_path: Path, name: str, replicates: int) -> Path:
    """The spec of study `name` as tmp_path/<name>.toml."""
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, replicates=replicates))
    return path
