"""The generated parts of the documentation: the README's findings table is what
results/ gives, its numbers are read from the files, the CLI reference covers every
command, and the Nielsen specs say what the book's recipes say."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from nnlab.cli import build_parser
from nnlab.study import StudySpec

ROOT = Path(__file__).resolve().parents[1]


def _docs_gen():
    spec = importlib.util.spec_from_file_location("docs_gen", ROOT / "scripts" / "docs_gen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs_gen = _docs_gen()


def test_readme_findings_table_is_what_the_results_give():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert docs_gen.with_table(readme, docs_gen.findings_table()) == readme, (
        "README.md's findings table is out of date: run `make readme`")


def test_findings_table_numbers_are_read_from_the_results(tmp_path):
    sources = ["eta-vs-n/findings.json", "restarts/findings.json", "noise-grad/findings.json",
               "errors/findings.json", "crossed-seeds/findings.json",
               "eta-vs-n-wd/findings.json", "digits-eta-vs-n/findings.json",
               "noise-scale/findings.json", "schedules/findings.json"]
    for source in sources:
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "results" / source, tmp_path / source)
    assert "b = 1.04 [0.97, 1.11]" in docs_gen.findings_table(tmp_path)
    path = tmp_path / "eta-vs-n" / "findings.json"
    found = json.loads(path.read_text())
    found["summary"]["b"] = {"value": 0.5, "low": 0.25, "high": 0.75}
    path.write_text(json.dumps(found))
    table = docs_gen.findings_table(tmp_path)
    row_1 = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert "b = 0.50 [0.25, 0.75]" in row_1 and "1.04" not in row_1
    assert len(table.splitlines()) == 2 + len(docs_gen.ROWS) + 2  # a blank line, the figures


def test_row_8_gives_the_wide_network_where_its_studies_have_run(tmp_path):
    """Row 8 quotes the wider network's primary verdicts (b after its sweep, the spread
    ratio after its restarts) from the digits findings' record of the other workloads, and
    says nothing of it while none of its predictions is judged."""
    source = tmp_path / "digits-eta-vs-n" / "findings.json"
    source.parent.mkdir()
    found = json.loads((ROOT / "results" / "digits-eta-vs-n" / "findings.json").read_text())
    wide = next(o for o in found["others"] if o["workload"] == "wide")
    hypotheses = {h["name"]: h for h in wide["hypotheses"]}
    for h in wide["hypotheses"]:
        h.update(estimate=None, verdict="not evaluated")
    hypotheses["b-near-1"].update(
        estimate={"value": 0.9, "low": 0.85, "high": 0.95, "unit": "seed", "n": 5},
        verdict="held")
    wide["run"] = {"wide-eta-vs-n": True, "wide-restarts": False}
    source.write_text(json.dumps(found))
    answer, key, status, _ = docs_gen._generalise(tmp_path)
    assert answer.endswith("; on a wider network (784-256-10 relu on MNIST, wide-eta-vs-n): "
                           "finding 1's b = 1 held (b = 0.90 [0.85, 0.95] past the breakpoint)")
    assert key.endswith("; wide: b = 0.90 [0.85, 0.95] (5 seeds)")
    assert status.endswith("; wide-eta-vs-n: 1 of 1 held, wide-restarts not run yet")
    hypotheses["spread-flat"].update(
        estimate={"value": 0.7, "low": 0.6, "high": 0.75, "unit": "seed", "n": 70},
        verdict="failed")
    wide["run"]["wide-restarts"] = True
    source.write_text(json.dumps(found))
    answer, key, status, holding = docs_gen._generalise(tmp_path)
    assert answer.endswith("wide-eta-vs-n, wide-restarts): finding 1's b = 1 held (b = 0.90 "
                           "[0.85, 0.95] past the breakpoint); finding 2's flat spread failed "
                           "(std ratio 0.70 [0.60, 0.75])")
    assert key.endswith("; wide: b = 0.90 [0.85, 0.95] (5 seeds), spread ratio 0.70 "
                        "[0.60, 0.75] (70 seeds)")
    assert status.endswith("; wide-eta-vs-n, wide-restarts: 1 of 2 held")
    digits = f"{sum(c['survives'] for c in found['claims'])} of {len(found['claims'])}"
    assert holding == digits  # no wide findings written here
    (tmp_path / "wide-eta-vs-n").mkdir()
    (tmp_path / "wide-eta-vs-n" / "findings.json").write_text(json.dumps(
        {"claims": [{"survives": True}, {"survives": False}, {"survives": False}]}))
    assert docs_gen._generalise(tmp_path)[3] == f"digits: {digits}; wide: 1 of 3"
    for h in wide["hypotheses"]:
        h.update(estimate=None, verdict="not evaluated")
    wide["run"] = dict.fromkeys(wide["run"], False)
    source.write_text(json.dumps(found))
    answer, key, status, _ = docs_gen._generalise(tmp_path)
    assert "wide" not in answer + key + status


def test_readme_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="findings-table:begin"):
        docs_gen.with_table("# a README\n", "| table |\n")


def test_cli_reference_has_every_command_and_the_conventions():
    reference = docs_gen.cli_reference()
    names = [parser.prog for parser in docs_gen._parsers(build_parser())]
    for command in ["nnlab", "nnlab data fetch", "nnlab run", "nnlab worker", "nnlab status",
                    "nnlab train", "nnlab presets", "nnlab report", "nnlab dashboard"]:
        assert command in names and f"### {command}\n" in reference
    assert "usage: nnlab train [-h] --preset PRESET" in reference
    # the conventions epilog keeps its line breaks
    assert "\n  weight_decay  L2 in the gradient, before the optimiser" in reference


@pytest.mark.parametrize("chapter", ["ch1", "ch3"])
def test_nielsen_specs_say_what_the_book_says(chapter):
    spec = StudySpec.from_toml(ROOT / "docs" / f"nielsen-{chapter}.toml")
    base = spec.base_config()
    assert spec.name == f"nielsen-{chapter}"
    assert spec.grid == {"sizes": [[784, 30, 10], [784, 100, 10]]}
    assert (base.activation, base.output, base.optimizer) == ("sigmoid", "sigmoid", "sgd")
    assert (base.init, base.init_std, base.target_range) == ("normal", 1.0, [0.0, 1.0])
    assert (base.batch_size, base.epochs) == (10, 30)
    assert base.eval_steps == [5000 * epoch for epoch in range(31)]  # after every epoch
    if chapter == "ch1":  # quadratic cost, eta 3.0
        assert (base.loss, base.eta, base.weight_decay) == ("mse", 3.0, 0.0)
    else:  # cross-entropy, eta 0.5, L2 lambda 5.0 over n = 50,000
        assert (base.loss, base.eta) == ("cross_entropy", 0.5)
        assert base.weight_decay == pytest.approx(5.0 / 50_000)


def test_row_9_says_the_postdictions_held_only_where_their_verdicts_say_so(tmp_path):
    """Row 9 reads the batch-25 and batch-400 postdictions' verdicts: on the margin (as
    committed) it gives their intervals and verdicts, held it says 'within a factor
    sqrt 2'."""
    source = tmp_path / "noise-scale" / "findings.json"
    source.parent.mkdir()
    found = json.loads((ROOT / "results" / "noise-scale" / "findings.json").read_text())
    source.write_text(json.dumps(found))
    answer = docs_gen._noise_scale(tmp_path)[0]
    assert "within a factor sqrt 2" not in answer
    assert ("b25-postdiction inconclusive, b400-postdiction inconclusive, on the margin of "
            "the declared factor sqrt 2") in answer
    for h in found["hypotheses"]:
        h.update(verdict="held", reason="")
    source.write_text(json.dumps(found))
    answer = docs_gen._noise_scale(tmp_path)[0]
    assert "gives the batch ratios 25/100 and 400/100 within a factor sqrt 2;" in answer
    assert "postdiction" not in answer
