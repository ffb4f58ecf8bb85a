"""Generated documentation: the findings table and the command-line reference.

    python scripts/docs_gen.py readme     rewrite the README's findings table (make readme)

The table's numbers are read from results/*/findings.json (and the take-off fit from
results/classic-seed000-eta/report.json), never typed. As an MkDocs hook (mkdocs.yml,
`hooks:`), this file puts the same table where a page says <!-- findings-table -->, every
command's `--help` where a page says <!-- cli-help -->, and publishes results/*/findings.md
and their figures with the site, so that the table's links work there as in the README.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- findings-table:begin -->", "<!-- findings-table:end -->"
TABLE_MARKER = "<!-- findings-table -->"
CLI_MARKER = "<!-- cli-help -->"
HELP_WIDTH = 80  # the width of a code block on the site


# --- the findings table -------------------------------------------------------------------

def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _ci(interval: dict, fmt: str, scale: float = 1.0, unit: str = "") -> str:
    """'value [low, high]' of an interval ({value or mean, low, high}), e.g. with
    fmt '.1f', scale 100 and unit '%': '67.5% [67.0, 68.0%]'."""
    value = interval["value"] if "value" in interval else interval["mean"]
    low, high = interval["low"] * scale, interval["high"] * scale
    return f"{value * scale:{fmt}}{unit} [{low:{fmt}}, {high:{fmt}}{unit}]"


def _negated(interval: dict) -> dict:
    """-x of an interval: a cost where the file holds a difference."""
    return {"value": -interval["value"], "low": -interval["high"], "high": -interval["low"]}


def _steps(n: float) -> str:
    """A training length as the findings write it: 10^5 for 100000, else the integer."""
    exponent = math.log10(n)
    return f"10^{exponent:.0f}" if n >= 1000 and exponent.is_integer() else f"{n:.0f}"


def _holds(interval: dict, value: float) -> bool:
    return interval["low"] <= value <= interval["high"]


def _learning_rate(results: Path) -> str:
    studies = _load(results / "eta-vs-n" / "findings.json")
    short, tail = studies["eta-vs-n"], studies["eta-vs-n-long"]["tail"]
    start = min(tail["x"])
    plateau = [row["eta_best"] for row in short["eta_best"] if row["n_steps"] < start]
    first = short["eta_best"][0]["n_steps"]
    plateau_end = max(row["n_steps"] for row in short["eta_best"] if row["n_steps"] < start)
    return (f"Not one power law (R² = {short['fit']['r_squared']:.2f} over N = "
            f"{_steps(first)}..{_steps(max(short['fit']['x']))}): eta_best stays at "
            f"{min(plateau):.1f}-{max(plateau):.1f} up to N = {_steps(plateau_end)}, then falls "
            f"as N^-b with b = {_ci(tail['exponent'], '.2f')} (R² = {tail['r_squared']:.2f}, "
            f"N = {_steps(start)}..{_steps(max(tail['x']))})")


def _restarts(results: Path) -> str:
    found = _load(results / "restarts" / "findings.json")
    variance = found["variance"]["restarts-long"]
    fit, split = variance["fit"], found["test_set"]["restarts-long"]
    floor_std = {k: math.sqrt(v) for k, v in fit["floor"].items() if k != "confidence"}
    rest = "excludes 0: runs settle in different solutions" if split["distribution"][
        "low"] > 0 else "holds 0"
    verdict = "To a floor" if fit["floor_excludes_zero"] else "Not to a detectable floor"
    return (f"{verdict}: the std over {variance['table'][0]['n_runs']} seeds levels off at "
            f"{_ci(floor_std, '.4f')} (fit over N >= {fit['n_from']:.0f}); the finite test set "
            f"is {_ci(split['share_test_set'], '.0f', 100, '%')} of it, and the rest {rest}")


def _noise(results: Path) -> str:
    found = _load(results / "noise-grad" / "findings.json")
    last = max(int(key.rsplit("N=", 1)[1]) for key in found["comparisons"])
    at_last = [c for key, c in found["comparisons"].items() if key.endswith(f" N={last}")]
    ratios = [c["std_ratio"]["value"] for c in at_last]
    all_hold = all(_holds(c["std_ratio"], 1.0) for c in at_last)
    floors = [f["difference_from_none"] for f in found["floors"].values()
              if f["difference_from_none"] is not None]
    floors_hold = all(_holds(f, 0.0) for f in floors)
    cost = _negated(found["paired_mean_difference"][f"grad 0.001 N={last}"])
    return (f"{'No' if all_hold and floors_hold else 'Some'} setting changes it detectably: "
            f"std ratios at N = {_steps(last)} of {min(ratios):.2f}-{max(ratios):.2f}, "
            f"{'each CI holding 1' if all_hold else 'not every CI holding 1'}; "
            f"{'no' if floors_hold else 'some'} floor differs from the noise-free one; "
            f"gradient noise 1e-3 costs {_ci(cost, '.2f', 100)} points")


def _errors(results: Path) -> str:
    found = _load(results / "errors" / "findings.json")
    mlp = next(v for k, v in found.items() if k.startswith("restarts ("))
    cnn = next(v for k, v in found.items() if k.startswith("cnn ("))
    return (f"{_ci(mlp['second_guess_per_run'], '.1f', 100, '%')} of the time (chance "
            f"{mlp['chance']:.1%}); {_ci(mlp['confident_error_share'], '.1f', 100, '%')} of its "
            f"errors come at >= {mlp['confident']:.0%} confidence; ECE "
            f"{_ci(mlp['ece'], '.4f')}. The CNN's second guess: "
            f"{_ci(cnn['second_guess_per_run'], '.1f', 100, '%')}")


def _takeoff(results: Path) -> str:
    scaling = _load(results / "classic-seed000-eta" / "report.json")["sections"]["takeoff"][
        "scaling"]
    return (f"Not one of the net's own: the step at which val_acc takes off falls as eta^-k, "
            f"k = {_ci(scaling['exponent'], '.2f')} (step ≈ {scaling['prefactor']['value']:.0f}"
            f" / eta, R² = {scaling['r_squared']:.3f}): a run stays at chance when its budget "
            f"is shorter than that")


ROWS = [  # question, answer, where the details are
    ("Which constant learning rate is best for a training length of N steps?", _learning_rate,
     "[eta-vs-n](results/eta-vs-n/findings.md)"),
    ("Restarts: does the spread of test accuracy over seeds go to zero as N grows?",
     _restarts, "[restarts](results/restarts/findings.md)"),
    ("Does annealed gradient or weight noise change that spread?", _noise,
     "[noise-grad](results/noise-grad/findings.md)"),
    ("When the MLP is wrong, is its second guess right?", _errors,
     "[errors](results/errors/findings.md)"),
    ("Is there a critical learning rate below which accuracy stays at chance?", _takeoff,
     "[classic-seed000-eta](results/classic-seed000-eta/figures/takeoff.png)"),
]


def findings_table(results: Path = RESULTS) -> str:
    """The findings as a markdown table: one row per research question."""
    lines = ["| question | answer (95% CIs) | details |", "|---|---|---|"]
    lines += [f"| {question} | {answer(results)} | {details} |"
              for question, answer, details in ROWS]
    return "\n".join(lines) + "\n"


def with_table(text: str, table: str) -> str:
    """`text` with the part between BEGIN and END replaced by `table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"expected {BEGIN} ... {END} in the README")
    return text[:start + len(BEGIN)] + "\n" + table + text[end:]


# --- the command-line reference -------------------------------------------------------------

def _parsers(parser: argparse.ArgumentParser):
    """parser, then each of its subcommands' parsers, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def cli_reference() -> str:
    """`nnlab --help` and every subcommand's --help, each under its own heading."""
    from nnlab.cli import build_parser

    parts = []
    for parser in _parsers(build_parser()):
        parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_WIDTH)
        parts.append(f"### {parser.prog}\n\n```text\n{parser.format_help()}```\n")
    return "\n".join(parts)


# --- the MkDocs hook ------------------------------------------------------------------------

def on_files(files, config):
    """Publish results/*/findings.md and results/*/findings/*.png beside the pages."""
    from mkdocs.structure.files import File

    published = sorted(RESULTS.glob("*/findings.md")) + sorted(RESULTS.glob("*/findings/*.png"))
    published.append(RESULTS / "classic-seed000-eta" / "figures" / "takeoff.png")
    for path in published:
        files.append(File(path.relative_to(ROOT).as_posix(), src_dir=str(ROOT),
                          dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """Fill the markers of the findings table and the CLI reference."""
    if TABLE_MARKER in markdown:
        markdown = markdown.replace(TABLE_MARKER, findings_table())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown


# --- the script -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["readme"])
    parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    updated = with_table(text, findings_table())
    README.write_text(updated, encoding="utf-8")
    print(f"README.md: findings table {'unchanged' if updated == text else 'rewritten'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
