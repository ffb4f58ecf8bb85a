"""The specs in studies/ and the results committed beside them belong together: every spec
parses under the name of its file, and every committed results/<name>/ was created by
studies/<name>.toml as it stands (the same spec digest, presets resolved), so the README's
`nnlab run studies/<name>.toml` resumes that study instead of refusing a changed spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnlab.study.spec import StudySpec

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "studies").glob("*.toml"))
MANIFESTS = sorted((ROOT / "results").glob("*/manifest.json"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_spec_parses_under_its_file_name(path: Path) -> None:
    assert StudySpec.from_toml(path).name == path.stem


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.parent.name)
def test_committed_results_were_made_by_their_spec(manifest: Path) -> None:
    name = manifest.parent.name
    spec = ROOT / "studies" / f"{name}.toml"
    assert spec.exists(), f"results/{name} has no studies/{name}.toml"
    recorded = json.loads(manifest.read_text())["spec_digest"]
    assert StudySpec.from_toml(spec).digest() == recorded
