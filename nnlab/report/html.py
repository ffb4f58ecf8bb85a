"""The report page: one self-contained HTML file (figures embedded as data URIs, inline CSS,
no scripts, nothing fetched), readable offline and printable."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import TypeVar

import pandas as pd

from nnlab.report.sections import Section, Table

T = TypeVar("T")

MEDIA_TYPES = {".png": "image/png", ".gif": "image/gif"}

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 64px; }
header { border-bottom: 2px solid var(--line); margin-bottom: 18px; padding-bottom: 12px; }
h1 { font-size: 28px; margin: 0 0 6px; }
h2 { font-size: 21px; margin: 40px 0 8px; padding-top: 10px; border-top: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
.subtitle { color: var(--muted); margin: 0; }
nav { background: var(--soft); border: 1px solid var(--line); border-radius: 8px;
      padding: 10px 16px; margin: 16px 0; }
nav ol { margin: 4px 0; padding-left: 22px; columns: 2; column-gap: 40px; }
nav a { color: var(--accent); text-decoration: none; }
.intro { color: var(--muted); max-width: 900px; }
.finding { white-space: pre-wrap; background: #f0f6ff; border-left: 4px solid var(--accent);
           border-radius: 4px; padding: 10px 14px; margin: 10px 0; font-size: 14px;
           font-variant-numeric: tabular-nums; }
.note { color: #7d4e00; background: #fff8c5; border-radius: 4px; padding: 6px 12px;
        margin: 8px 0; font-size: 14px; }
.table-wrap { overflow-x: auto; margin: 10px 0 18px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; color: var(--muted); padding: 4px 0;
          font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: left;
         vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fbfcfd; }
td { white-space: nowrap; }
figure { margin: 16px 0 26px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
figcaption a { color: var(--muted); }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
      padding: 10px 14px; overflow-x: auto; font-size: 13px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); }
ul.skipped li { color: var(--muted); }
@media print { nav { display: none; } h2 { break-before: auto; } figure { break-inside: avoid; } }
"""


def data_uri(path: Path) -> str:
    """The file as a base64 data URI (PNG or GIF)."""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{MEDIA_TYPES[path.suffix]};base64,{encoded}"


def table_html(table: Table) -> str:
    frame = table.frame
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return (f'<div class="table-wrap"><table><caption>{escape(table.caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def facts_html(facts: dict[str, object]) -> str:
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(_cell(v))}</dd>" for k, v in facts.items())
    return f'<dl class="facts">{rows}</dl>'


def section_html(section: Section, files: dict[str, Path], folder: Path) -> str:
    """One section: title, what it computes, findings, notes, tables and figures."""
    parts = [f'<section id="{section.key}"><h2>{escape(section.title)}</h2>',
             f'<p class="intro">{escape(section.intro)}</p>']
    parts += [f'<div class="finding">{escape(text)}</div>' for text in section.findings]
    parts += [f'<p class="note">{escape(text)}</p>' for text in section.notes]
    parts += [table_html(table) for table in section.tables]
    for item in section.figures:
        path = files[item.name]
        relative = path.relative_to(folder).as_posix()
        parts.append(
            f'<figure><img src="{data_uri(path)}" alt="{escape(item.caption)}" '
            f'data-file="{escape(relative)}"><figcaption>{escape(item.caption)} '
            f'<a href="{escape(relative)}">{escape(relative)}</a></figcaption></figure>')
    parts.append("</section>")
    return "\n".join(parts)


def _of_type(value: object, kind: type[T]) -> T:
    """value if it is a `kind`, else an empty `kind` (a hand-edited manifest may hold
    anything; its provenance is shown, not trusted)."""
    return value if isinstance(value, kind) else kind()


def provenance_html(manifest: dict) -> str:
    """The manifest: storage, every invocation, and the environment of the latest one."""
    invocations = manifest.get("invocations", [])
    rows = pd.DataFrame([{
        "start": run.get("start"), "end": run.get("end") or "(running or killed)",
        "host": run.get("host"), "workers": run.get("n_jobs"),
        "BLAS threads per worker": run.get("blas_threads_per_worker"),
        "git commit": run.get("git_commit"),
        "command": " ".join(map(str, _of_type(run.get("command"), list))),
    } for run in invocations])
    parts = [facts_html({"study": manifest.get("study"), "created": manifest.get("created"),
                         "storage": manifest.get("storage"),
                         "spec digest": manifest.get("spec_digest"),
                         "invocations": len(invocations)})]
    if invocations:
        parts.append(table_html(Table("invocations (each run of the study adds one)", rows)))
        latest = invocations[-1]
        blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} "
                         f"({b.get('num_threads')} threads, {b.get('architecture')})"
                         for b in _of_type(latest.get("blas"), list) if isinstance(b, dict))
        parts.append("<h3>Environment of the latest invocation</h3>")
        parts.append(facts_html({"python": latest.get("python"),
                                 "platform": latest.get("platform"), "cpu": latest.get("cpu"),
                                 "cores": latest.get("cores"), "BLAS": blas, **{
                                     name: version for name, version
                                     in _of_type(latest.get("packages"), dict).items()}}))
    parts.append("<details><summary>manifest.json</summary><pre>"
                 + escape(json.dumps(manifest, indent=2)) + "</pre></details>")
    return "\n".join(parts)


def render_page(*, title: str, subtitle: str, facts: dict[str, object], spec_toml: str,
                sections: list[Section], skipped: list[tuple[str, str]],
                files: dict[str, Path], folder: Path, manifest: dict) -> str:
    """The whole page. `files` maps each figure name to its file under `folder`."""
    toc = [("study", "Study"), *[(s.key, s.title) for s in sections],
           *([("not-shown", "Not shown")] if skipped else []), ("provenance", "Provenance")]
    nav = "".join(f'<li><a href="#{key}">{escape(name)}</a></li>' for key, name in toc)
    study = ('<section id="study"><h2>Study</h2>' + facts_html(facts)
             + "<details><summary>spec.toml (the frozen spec)</summary><pre>"
             + escape(spec_toml) + "</pre></details></section>")
    body = "\n".join(section_html(s, files, folder) for s in sections)
    not_shown = ""
    if skipped:
        items = "".join(f"<li><b>{escape(name)}</b>: {escape(reason)}</li>"
                        for name, reason in skipped)
        not_shown = (f'<section id="not-shown"><h2>Not shown</h2><p class="intro">Analyses '
                     f'that do not apply to this study, and why.</p><ul class="skipped">'
                     f"{items}</ul></section>")
    provenance = ('<section id="provenance"><h2>Provenance</h2>'
                  + provenance_html(manifest) + "</section>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f'<header><h1>{escape(title)}</h1><p class="subtitle">{escape(subtitle)}</p>'
            f"</header><nav><b>Contents</b><ol>{nav}</ol></nav>"
            f"{study}\n{body}\n{not_shown}\n{provenance}</main></body></html>\n")
