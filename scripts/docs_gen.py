"""Generated documentation: the findings table and the command-line reference.

    python scripts/docs_gen.py readme     rewrite the README's findings table (make readme)

The table's numbers are read from results/*/findings.json, never typed; each row says
whether its finding is exploratory or confirmatory and how many of its claims hold after
Holm's adjustment within the finding. As an MkDocs hook (mkdocs.yml,
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


def _survivors(found: dict) -> str:
    """'3 of 5': how many of a finding's claims hold at 5% after Holm."""
    claims = found["claims"]
    return f"{sum(c['survives'] for c in claims)} of {len(claims)}"


def _learning_rate(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "eta-vs-n" / "findings.json")
    summary = found["summary"]
    b, lengths = summary["b"], summary["b_lengths"]
    holds = "consistent with" if summary["b_holds_1"] else "not"
    answer = (f"Flat (stability-limited) up to a breakpoint at N = "
              f"{_ci(summary['breakpoint'], '.0f')}, then {holds} eta_best ~ N^-1 over "
              f"N = {_steps(min(lengths))}..{_steps(max(lengths))}; at batch 25 it falls "
              f"more slowly (b = {_ci(summary['b25'], '.2f')})")
    key = (f"b = {_ci(b, '.2f')} (batch 100, {len(lengths)} lengths, 10 seeds"
           + ("; exploratory: < 5 lengths" if summary["b_exploratory"] else "") + ")")
    hypothesis = found["batch_400"]["hypotheses"][0]
    status = (f"exploratory; batch 400 confirmatory: {hypothesis['verdict']}")
    return answer, key, status, _survivors(found)


def _restarts(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "restarts" / "findings.json")
    summary = found["summary"]
    short, long = summary["std_short"], summary["std_long"]
    between = summary["std_between"]
    answer = (f"It stays at std ~{sum(between + [long['value']]) / (len(between) + 1):.4f} "
              f"from N = 17783 to {_steps(long['n'])}; the distribution-wise variance (of the "
              f"runs' population accuracies) is {_ci(summary['distribution'], '.1e')} at N = "
              f"{_steps(short['n'])} and {_ci(summary['distribution_long'], '.1e')} at "
              f"{_steps(long['n'])} (two-way CIs)")
    key = (f"std {_ci(long, '.4f')} at N = {_steps(long['n'])} vs {_ci(short, '.4f')} at "
           f"{_steps(short['n'])} ({summary['n_runs']} runs)")
    return answer, key, "exploratory", _survivors(found)


def _noise(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "noise-grad" / "findings.json")
    arms = found["arms"]
    bounds = [a["std_equivalence"]["bound"] for a in arms.values()]
    changed = [a for a in arms.values() if a["comparison"]["std_ratio"]["low"] > 1
               or a["comparison"]["std_ratio"]["high"] < 1]
    grad = arms["grad 0.001 (N = 10000)"]
    cost = _negated(grad["comparison"]["mean_difference"])
    answer = (f"{'No' if not changed else 'Some'} noise setting changes the spread "
              f"detectably ({len(arms)} arms, paired by seed); std ratios beyond "
              f"{min(bounds):.2f}-{max(bounds):.2f}x are excluded at 95%; gradient noise "
              f"1e-3 costs {_ci(cost, '.2f', 100)} points")
    ratio = grad["comparison"]["std_ratio"]
    key = (f"std ratio {_ci(ratio, '.2f')} (gradient noise 1e-3, N = 10^4, {grad['n']} "
           f"pairs); power {grad['power_at_effect']:.0%} at a ratio of {grad['effect']}")
    return answer, key, "exploratory", _survivors(found)


def _errors(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "errors" / "findings.json")
    mlp = next(v for k, v in found.items() if k.startswith("restarts ("))["run x image"]
    answer = (f"Its second guess is right {_ci(mlp['second_guess_rate'], '.1f', 100, '%')} "
              f"of the time (chance {mlp['chance']:.1%}); "
              f"{_ci(mlp['confident_error_share'], '.1f', 100, '%')} of its errors come at "
              f">= {mlp['confident']:.0%} confidence; ECE {_ci(mlp['ece'], '.4f')}")
    key = (f"second guess {_ci(mlp['second_guess_rate'], '.1f', 100, '%')} "
           f"({mlp['n_trials']} runs x 10,000 images, two-way CI)")
    return answer, key, "exploratory", _survivors(found)


def _takeoff(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "eta-vs-n" / "findings.json")["takeoff"]
    answer = ("Not one of the net's own: a run takes off at eta x step ≈ "
              f"{found['prefactor']['value']:.0f}, the same eta x N invariance as finding 1")
    key = (f"take-off step ~ eta^-k, k = {_ci(found['exponent'], '.2f')} "
           f"({found['n_runs']} runs)")
    return answer, key, "exploratory", "see finding 1"


def _crossed(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "crossed-seeds" / "findings.json")
    summary, shares = found["summary"], found["summary"]["shares"]
    verdicts = [h["verdict"] for h in found["hypotheses"]]
    answer = (f"Mostly from how the two seeds combine: at N = {_steps(summary['n'])} the init x "
              f"order interaction is {_ci(shares['residual'], '.0f', 100, '%')} of the "
              f"variance, the init seed's main effect {_ci(shares['init_seed'], '.0f', 100, '%')}"
              f", the order seed's {_ci(shares['order_seed'], '.0f', 100, '%')}")
    key = (f"interaction share {_ci(shares['residual'], '.2f')} ({summary['n_runs']} runs, "
           "20 x 20 seeds, GCI)")
    status = (f"confirmatory: primary {summary['primary']}; "
              f"{verdicts.count('held')} of {len(verdicts)} predictions held")
    for follow_up in (f for f in found["follow_ups"] if f["run"]):
        plan, longest = follow_up["planned"], follow_up["design"]["lengths"][-1]
        share = next(c["share"] for c in follow_up["components"][str(longest)]["components"]
                     if c["name"] == "residual")
        held = [h["verdict"] for h in follow_up["hypotheses"]]
        primary = next(h["verdict"] for h in follow_up["hypotheses"] if h["primary"])
        answer += (f"; at eta = {plan['eta']:g}, N = {_steps(longest)} "
                   f"({follow_up['study']}) the interaction is "
                   f"{_ci(share, '.0f', 100, '%')}")
        key += f"; {follow_up['study']}: {_ci(share, '.2f')}"
        status += (f"; {follow_up['study']}: primary {primary}, {held.count('held')} of "
                   f"{len(held)} held")
    return answer, key, status, _survivors(found)


def _tstar(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "eta-vs-n-wd" / "findings.json")
    summary, verdicts = found["summary"], [h["verdict"] for h in found["hypotheses"]]
    forward = summary["forward_ratio"]
    answer = (f"Partly: val_acc peaks at eta x step = {_ci(summary['t_star_small'], '.2g')} "
              "for the etas that are best at N = 10^4..10^5, finding 1's eta_best x N; but "
              f"the peak time grows with eta (slope {_ci(summary['slope'], '.2f')} in log-log)"
              ", so a peak time read at large etas predicts an eta_best "
              f"{1 / forward['value']:.1f}x too large at longer N (held out)")
    key = (f"measured / predicted eta_best {_ci(forward, '.2f')} (N = 17783..10^5, 10 seeds)")
    status = (f"exploratory; weight decay confirmatory: primary {summary['primary']}; "
              f"{verdicts.count('held')} of {len(verdicts)} predictions held")
    cosine = found["cosine"]
    if cosine["run"]:
        ratio = cosine["longest"]
        held = [h["verdict"] for h in cosine["hypotheses"]]
        primary = next(h["verdict"] for h in cosine["hypotheses"] if h["primary"])
        answer += (f"; the intervention: under a cosine decay eta_best doubles, as a peak at "
                   f"one learning-rate time predicts ({_ci(ratio, '.2f')}x the constant "
                   "eta's at N = 56234..10^5), and b stays")
        key += f"; cosine / constant eta_best {_ci(ratio, '.2f')} (10 seeds, paired)"
        status += (f"; cosine confirmatory: primary {primary}; {held.count('held')} of "
                   f"{len(held)} held")
    return answer, key, status, _survivors(found)


def _generalise(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "digits-eta-vs-n" / "findings.json")
    summary, eta, restarts = found["summary"], found["eta"], found["restarts"]
    verdicts = {h["name"]: h for h in eta["hypotheses"] + restarts["hypotheses"]}
    ratio = verdicts["spread-flat"]["estimate"]
    overall = eta["overall"]
    b = verdicts["b-near-1"]["estimate"] or overall["exponent"]
    where = ("past the breakpoint" if verdicts["b-near-1"]["estimate"] else
             f"over N = {overall['from']}..{_steps(max(overall['x']))}, no breakpoint fitted")
    longest = restarts["variance"]["table"][-1]["n_steps"]
    answer = (f"On scikit-learn's 8x8 digits (same network and optimiser): finding 1's "
              f"b = 1 {verdicts['b-near-1']['verdict']} (b = {_ci(b, '.2f')} {where}: "
              "eta_best stays near the stability edge); finding 2's flat spread "
              f"{verdicts['spread-flat']['verdict']} (std ratio {_steps(longest)} / "
              f"{_steps(restarts['flat_from'])} = {_ci(ratio, '.2f')})")
    key = (f"b = {_ci(b, '.2f')} on digits ({eta['n_seeds']} seeds, {eta['n_runs']} runs); "
           f"spread ratio {_ci(ratio, '.2f')} ({restarts['n_runs']} runs)")
    primaries = ", ".join(f"{h['name']} {h['verdict']}" for h in verdicts.values()
                          if h["primary"])
    status = (f"confirmatory: primaries {primaries}; {summary['held']} of "
              f"{summary['n_hypotheses']} predictions held")
    # the wider network's predictions, judged where its studies have run (until both have,
    # the digits findings carry them)
    wide = next((o for o in found["others"] if o["workload"] == "wide"), None)
    judged = [] if wide is None else [h for h in wide["hypotheses"]
                                      if h["verdict"] != "not evaluated"]
    if judged:
        ran = ", ".join(name for name, done in wide["run"].items() if done)
        waiting = [name for name, done in wide["run"].items() if not done]
        primary = {h["statistic"]: h for h in judged if h["primary"]}
        said, quoted = [], []
        if "wide.b" in primary:  # the sweep has run and b was fitted
            b_wide = primary["wide.b"]
            said.append(f"finding 1's b = 1 {b_wide['verdict']} (b = "
                        f"{_ci(b_wide['estimate'], '.2f')} past the breakpoint)")
            quoted.append(f"b = {_ci(b_wide['estimate'], '.2f')} "
                          f"({b_wide['estimate']['n']} seeds)")
        if "wide.std_ratio" in primary:  # the restarts have run
            flat = primary["wide.std_ratio"]
            said.append(f"finding 2's flat spread {flat['verdict']} (std ratio "
                        f"{_ci(flat['estimate'], '.2f')})")
            quoted.append(f"spread ratio {_ci(flat['estimate'], '.2f')} "
                          f"({flat['estimate']['n']} seeds)")
        if said:
            answer += (f"; on a wider network (784-256-10 relu on MNIST, {ran}): "
                       + "; ".join(said))
            key += "; wide: " + ", ".join(quoted)
        status += (f"; {ran}: {sum(h['verdict'] == 'held' for h in judged)} of {len(judged)} "
                   "held" + (f", {', '.join(waiting)} not run yet" if waiting else ""))
    holding = _survivors(found)
    wide_found = results / "wide-eta-vs-n" / "findings.json"  # both wide studies have run
    if wide_found.is_file():
        holding = f"digits: {holding}; wide: {_survivors(_load(wide_found))}"
    return answer, key, status, holding


def _noise_scale(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "noise-scale" / "findings.json")
    primary = next(h for h in found["b1600_hypotheses"] if h["primary"])
    ratios = {p["batch"]: p for p in found["predictions"]}
    b1600 = ratios[1600]
    seen = b1600["observed"]
    post = [next(h for h in found["hypotheses"] if h["name"] == f"b{batch}-postdiction")
            for batch in (25, 400)]
    if all(h["verdict"] == "held" for h in post):
        postdicted = "gives the batch ratios 25/100 and 400/100 within a factor sqrt 2"
    else:
        margin = any("on the margin" in h["reason"] for h in post)
        postdicted = ("puts the batch ratios 25/100 and 400/100 near the observed ones (log2 "
                      "observed / predicted " + " and ".join(
                          _ci(h["estimate"], ".2f") for h in post) + "; "
                      + ", ".join(f"{h['name']} {h['verdict']}" for h in post)
                      + (", on the margin of the declared factor sqrt 2" if margin else "")
                      + ")")
    answer = (f"In part: the gradient noise scale B_noise = {_ci(found['b_noise'], '.3g')} "
              f"(B_simple at T* = 7000) {postdicted}; batch 1600's, predicted before its "
              "runs, "
              + ("has not run yet" if seen is None else
                 f"came out {_ci(seen, '.3g')} against {_ci(b1600, '.3g')}, "
                 f"primary {primary['verdict']}"))
    key = ("r(1600) predicted " + _ci(b1600, ".3g")
           + ("" if seen is None else f", observed {_ci(seen, '.3g')} ({seen['n_seeds']} "
              f"seeds; B_noise from {found['b_noise']['n_seeds']} seeds)"))
    status = (f"confirmatory (batch 1600): primary {primary['verdict']}; "
              + "; ".join(f"{sum(h['verdict'] == 'held' for h in group)} of {len(group)} "
                          f"{label} held" for label, group in (
                              ("predictions", found["b1600_hypotheses"]),
                              ("postdictions and checks", found["hypotheses"]))))
    return answer, key, status, "no tests (intervals only)"


def _schedules(results: Path) -> tuple[str, str, str, str]:
    found = _load(results / "schedules" / "findings.json")
    design, comparisons = found["design"], found["comparisons"]
    shortest, middle, longest = sorted(design["budgets"])
    rivals = ("cosine", "step", "inv_t")  # the standard schedules, each tuned on val_acc
    names = {"derived": "derived", "cosine": "cosine", "step": "step", "inv_t": "1/t"}

    def against_constant(family: str, n: int) -> dict:
        return comparisons[f"{family}-constant.N{n}"]

    def difference(family: str, n: int) -> str:
        return _ci(against_constant(family, n)["difference"], "+.4f")

    def listed(families: list[str]) -> str:
        words = [names[f] for f in families] or ["none"]
        return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)

    tied = listed([f for f in rivals if against_constant(f, longest)["tost"]["equivalent"]])
    ahead = listed([f for f in ("derived", *rivals)
                    if against_constant(f, middle)["difference"]["low"] > 0])
    primary = found["summary"]["primary"]
    verdicts = [h["verdict"] for h in found["hypotheses"]]
    answer = (f"Not at a long budget: at N = {_steps(longest)} the schedule derived from "
              "eta_best(N), eta(t) = min(3.1, 6500 / (t + 1)), ties the best constant eta "
              f"(test_acc {difference('derived', longest)}; standard schedules within "
              f"+-{design['margin']}: {tied}); at N = {_steps(middle)} {ahead} beat it "
              f"(derived {difference('derived', middle)}, cosine "
              f"{difference('cosine', middle)}); at N = {_steps(shortest)} cosine gains "
              f"{difference('cosine', shortest)} and a step decay loses "
              f"{difference('step', shortest)}")
    key = (f"derived - best constant eta, test_acc at N = {_steps(longest)}: "
           f"{_ci(primary['estimate'], '+.4f')} ({primary['estimate']['n']} seeds, paired; "
           "each family tuned on val_acc, leave-one-seed-out)")
    status = (f"confirmatory: primary {primary['verdict']}; {verdicts.count('held')} of "
              f"{len(verdicts)} predictions held")
    return answer, key, status, _survivors(found)


ROWS = [  # question, its numbers, where the details are, one figure
    ("Which constant learning rate is best for a training length of N steps?", _learning_rate,
     "[eta-vs-n](results/eta-vs-n/findings.md)", "results/eta-vs-n/findings/eta_best_all.png"),
    ("Restarts: does the spread of test accuracy over seeds go to zero as N grows?",
     _restarts, "[restarts](results/restarts/findings.md)",
     "results/restarts/findings/variance.png"),
    ("Does annealed gradient or weight noise change that spread?", _noise,
     "[noise-grad](results/noise-grad/findings.md)",
     "results/noise-grad/findings/compare_grad_1e-3.png"),
    ("When the MLP is wrong, is its second guess right?", _errors,
     "[errors](results/errors/findings.md)", "results/errors/findings/reliability.png"),
    ("Is there a critical learning rate below which accuracy stays at chance?", _takeoff,
     "[eta-vs-n](results/eta-vs-n/findings.md#the-take-off-finding-5-is-the-same-invariance)",
     "results/classic-seed000-eta/figures/takeoff.png"),
    ("Where does the spread of restarts come from: the initial weights, the data order, "
     "or both together?", _crossed, "[crossed-seeds](results/crossed-seeds/findings.md)",
     "results/crossed-seeds/findings/components.png"),
    ("Why does eta_best fall as 1/N: does validation accuracy peak at one learning-rate "
     "time eta x step?", _tstar, "[eta-vs-n-wd](results/eta-vs-n-wd/findings.md)",
     "results/eta-vs-n-wd/findings/peak_time.png"),
    ("Do findings 1 and 2 carry over to another data set (the 8x8 digits) and to a wider "
     "network?", _generalise,
     "[digits-eta-vs-n](results/digits-eta-vs-n/findings.md), "
     "[wide-eta-vs-n](results/wide-eta-vs-n/findings.md)",
     "results/digits-eta-vs-n/findings/generalise.png"),
    ("What sets the batch ratio of eta_best: does the gradient noise scale predict it?",
     _noise_scale, "[noise-scale](results/noise-scale/findings.md)",
     "results/noise-scale/findings/noise_scale.png"),
    ("Should eta change during training: does a schedule beat the best constant eta of a "
     "budget?", _schedules, "[schedules](results/schedules/findings.md)",
     "results/schedules/findings/differences.png"),
]


def findings_table(results: Path = RESULTS) -> str:
    """The findings as a markdown table, one row per research question, then one figure
    per finding."""
    lines = ["| # | question | answer | key number (95% CI, n) | status | claims holding "
             "after Holm | details |", "|---|---|---|---|---|---|---|"]
    figures = []
    for i, (question, numbers, details, figure) in enumerate(ROWS, start=1):
        answer, key, status, holding = numbers(results)
        lines.append(f"| {i} | {question} | {answer} | {key} | {status} | {holding} | "
                     f"{details} |")
        figures.append(f"[finding {i}]({figure})")
    return "\n".join(lines) + "\n\nOne figure per finding: " + ", ".join(figures) + ".\n"


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
