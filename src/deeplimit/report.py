"""Claims reports: Markdown and a self-contained HTML page (figures embedded as data URIs).

A report lists every checkable claim of a paper (``PAPER_CLAIMS``), each with the statistic
measured, the expected value, the tolerance, the sample size and a PASS / FAIL verdict; a claim
that no experiment checked is listed as MISSING. Then one section per figure: the figure, its
caption (parameters), its statistics and its own claims. Provenance of the run closes it.
A table of contents after the summary links the claims table and every figure section, and
each claim row's source links to the section of the experiment that checked it (anchor
``#<experiment>``). Each section's title and caption are written once, as text.

The HTML page carries a ``#render-check`` element that a script fills once the page has
loaded (images loaded, claim rows present, every in-page link resolving to an element),
which a headless browser test reads back.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .experiments.base import Claim
from .formatting import compact_float
from .provenance import provenance_line
from .results import atomic_write_text

__all__ = ["PAPER_CLAIMS", "ReportFiles", "claim_rows", "write_report"]

PAPER_CLAIMS: dict[str, list[str]] = {
    "hayou": [f"C{i}" for i in range(1, 17)],
    "chizat": [f"C{i}" for i in range(1, 18)],
}

PAPER_TITLES = {
    "hayou": "Hayou, On the infinite-depth limit of finite-width neural networks (TMLR 2023)",
    "chizat": "Chizat, The Hidden Width of Deep ResNets (arXiv 2509.10167)",
    "beyond": "Beyond the papers: attention heads, coordinate checks, hyperparameter transfer",
}


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    json: Path


def claim_rows(suite: str, claims: Sequence[Claim]) -> list[dict[str, Any]]:
    """One row per paper claim (several when an id is checked in several ways), MISSING rows
    for ids that no experiment checked, in the paper's order."""
    if suite not in PAPER_CLAIMS:  # a suite without a paper: its claims in the order made
        return [{**c.as_dict(), "source": c.details.get("experiment", "")} for c in claims]
    by_id: dict[str, list[Claim]] = {}
    for claim in claims:
        by_id.setdefault(claim.id, []).append(claim)
    rows = []
    for claim_id in PAPER_CLAIMS.get(suite, []):
        found = by_id.get(claim_id, [])
        if not found:
            rows.append(
                {
                    "id": claim_id,
                    "statement": "not checked by any experiment",
                    "statistic": "",
                    "measured": None,
                    "expected": "",
                    "tolerance": "",
                    "n": None,
                    "verdict": "MISSING",
                    "source": "",
                }
            )
        for claim in found:
            rows.append({**claim.as_dict(), "source": claim.details.get("experiment", "")})
    return rows


# the columns of the claims table, in order (the first is headed "claim")
_CLAIM_COLUMNS = (
    "id",
    "statement",
    "statistic",
    "measured",
    "expected",
    "tolerance",
    "n",
    "verdict",
    "source",
)


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return compact_float(value, ".4g")
    return str(value)


def _markdown_cell(value: Any) -> str:
    return _number(value).replace("|", "\\|").replace("\n", " ")


def _statistics_markdown(rows: list[dict[str, Any]], table: dict[str, str]) -> list[str]:
    if not rows:
        return []
    columns = table or {key: key for key in rows[0]}
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_cell(row.get(k)) for k in columns) + " |")
    return lines


class _Content(NamedTuple):
    """What both renderings (Markdown and HTML) show."""

    title: str
    suite: str
    rows: list[dict[str, Any]]
    sections: Sequence[Any]
    record: dict[str, Any]

    @property
    def passed(self) -> int:
        return sum(r["verdict"] == "PASS" for r in self.rows)


def _markdown(content: _Content, folder: Path) -> str:
    title, suite, rows, sections, record = content
    passed = content.passed
    lines = [
        f"# {title}",
        "",
        f"Paper: {PAPER_TITLES.get(suite, suite)}",
        "",
        f"**{passed} of {len(rows)} claim checks pass.**",
        "",
        f"Provenance: {provenance_line(record)}",
        "",
        "## Contents",
        "",
        "- [Claims](#claims)",
        *(f"- [{section.title}](#{section.name})" for section in sections),
        "",
        '<a id="claims"></a>',
        "",
        "## Claims",
        "",
        "| claim | statement | statistic | measured | expected | tolerance | n | verdict "
        "| source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    anchors = {section.name for section in sections}
    for row in rows:
        source = row.get("source") or ""
        linked = {"source": f"[{source}](#{source})"} if source in anchors else {}
        lines.append(
            "| "
            + " | ".join(linked.get(k) or _markdown_cell(row.get(k)) for k in _CLAIM_COLUMNS)
            + " |"
        )
    for section in sections:
        image = _relative(section.figure_png, folder)
        lines += [
            "",
            f'<a id="{section.name}"></a>',
            "",
            f"## {section.title}",
            "",
            f"![{section.name}]({image})",
            "",
            f"*{section.caption}*",
            "",
        ]
        if getattr(section, "diverged", None):
            lines += [f"**Diverged** (drawn with what stayed finite): {section.diverged}", ""]
        lines += _statistics_markdown(section.statistics, section.table)
        for claim in section.claims:
            lines.append(
                f"- **{claim.verdict}** {claim.id}: {claim.statement} — {claim.statistic} "
                f"= {_number(claim.measured)} (expected {claim.expected}; "
                f"{claim.tolerance}; n = {claim.n})"
            )
        lines += ["", f"<sub>{provenance_line(section.provenance)}</sub>"]
    return "\n".join(lines) + "\n"


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        import os

        return os.path.relpath(Path(path).resolve(), folder.resolve())


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}
th{background:#f2f2f2}
tr.pass td.verdict{color:#176b1b;font-weight:bold}
tr.fail td.verdict,tr.missing td.verdict{color:#b00020;font-weight:bold}
img.figure{max-width:100%;border:1px solid #ddd}
p.caption{font-style:italic;font-size:.9em}
nav#toc ol{columns:2 26em;column-gap:3.5em;font-size:.9em}
nav#toc li{break-inside:avoid}
.provenance{color:#666;font-size:.8em}
p.diverged{color:#b00020}
"""

_CHECK_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var rows = document.querySelectorAll('#claims tr.claim');
  var ids = [];
  rows.forEach(function (r) { if (ids.indexOf(r.dataset.claim) < 0) ids.push(r.dataset.claim); });
  var links = Array.prototype.slice.call(document.querySelectorAll('a[href^="#"]'));
  var resolved = links.filter(function (a) {
    return document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));
  });
  var sources = document.querySelectorAll('#claims a.source');
  var check = document.getElementById('render-check');
  check.setAttribute('data-links', String(links.length));
  check.setAttribute('data-resolved', String(resolved.length));
  check.setAttribute('data-sources', String(sources.length));
  check.setAttribute('data-images', String(images.length));
  check.setAttribute('data-loaded', String(loaded.length));
  check.setAttribute('data-rows', String(rows.length));
  check.setAttribute('data-ids', ids.join(','));
  check.setAttribute('data-done', 'yes');
});
"""


def _html(content: _Content) -> str:
    title, suite, rows, sections, record = content
    e = html.escape
    passed = content.passed
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Paper: {e(PAPER_TITLES.get(suite, suite))}</p>",
        f'<p class="summary"><strong>{passed} of {len(rows)} claim checks pass.</strong></p>',
        f'<p class="provenance">{e(provenance_line(record))}</p>',
        '<nav id="toc"><h2>Contents</h2><ol><li><a href="#claims">Claims</a></li>',
        *(f'<li><a href="#{e(section.name)}">{e(section.title)}</a></li>' for section in sections),
        "</ol></nav>",
        '<h2>Claims</h2><table id="claims"><thead><tr>',
    ]
    headers = ("claim", *_CLAIM_COLUMNS[1:])
    out += [f"<th>{h}</th>" for h in headers] + ["</tr></thead><tbody>"]
    anchors = {section.name for section in sections}
    for row in rows:
        css = row["verdict"].lower()
        out.append(f'<tr class="claim {css}" data-claim="{e(row["id"])}">')
        for key in _CLAIM_COLUMNS:
            cls = ' class="verdict"' if key == "verdict" else ""
            text = e(_number(row.get(key)))
            if key == "source" and row.get(key) in anchors:
                text = f'<a class="source" href="#{text}">{text}</a>'
            out.append(f"<td{cls}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    for section in sections:
        data = base64.b64encode(Path(section.figure_png).read_bytes()).decode("ascii")
        out += [
            f'<section class="figure-section" id="{e(section.name)}">',
            f"<h2>{e(section.title)}</h2>",
            f'<img class="figure" alt="{e(section.name)}" src="data:image/png;base64,{data}">',
            f'<p class="caption">{e(section.caption)}</p>',
        ]
        if getattr(section, "diverged", None):
            out.append(
                '<p class="diverged"><strong>Diverged</strong> (drawn with what stayed finite): '
                f"{e(section.diverged)}</p>"
            )
        if section.statistics:
            columns = section.table or {k: k for k in section.statistics[0]}
            out.append(
                "<table><thead><tr>"
                + "".join(f"<th>{e(c)}</th>" for c in columns.values())
                + "</tr></thead><tbody>"
            )
            for row in section.statistics:
                out.append(
                    "<tr>"
                    + "".join(f"<td>{e(_number(row.get(k)))}</td>" for k in columns)
                    + "</tr>"
                )
            out.append("</tbody></table>")
        if section.claims:
            out.append("<ul>")
            for claim in section.claims:
                out.append(
                    f"<li><strong>{claim.verdict}</strong> {e(claim.id)}: {e(claim.statement)}"
                    f" — {e(claim.statistic)} = {e(_number(claim.measured))} (expected "
                    f"{e(claim.expected)}; {e(claim.tolerance)}; n = {claim.n})</li>"
                )
            out.append("</ul>")
        out.append(f'<p class="provenance">{e(provenance_line(section.provenance))}</p></section>')
    out += [
        '<h2>Provenance</h2><pre class="provenance">'
        + e(json.dumps(record, indent=2, sort_keys=True))
        + "</pre>",
        '<div id="render-check" data-done="no"></div>',
        f"<script>{_CHECK_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(out) + "\n"


def write_report(
    suite: str,
    sections: Sequence[Any],
    folder: Path | str,
    *,
    record: dict[str, Any],
    title: str | None = None,
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and ``report.json`` for ``sections`` (objects with
    ``name``, ``title``, ``caption``, ``figure_png``, ``statistics``, ``table``, ``claims`` and
    ``provenance``; ``deeplimit.reproduce.Reproduction`` qualifies) into ``folder``."""
    folder = Path(folder)
    title = title or f"deeplimit claims report: {suite}"
    claims = []
    for section in sections:
        for claim in section.claims:
            details = {**claim.details, "experiment": section.name}
            claims.append(Claim(**{**claim.__dict__, "details": details}))
    rows = claim_rows(suite, claims)
    markdown = folder / "report.md"
    page = folder / "report.html"
    summary = folder / "report.json"
    content = _Content(title, suite, rows, sections, record)
    atomic_write_text(markdown, _markdown(content, folder))
    atomic_write_text(page, _html(content))
    atomic_write_text(
        summary,
        json.dumps({"suite": suite, "claims": rows, "provenance": record}, indent=2, default=str)
        + "\n",
    )
    return ReportFiles(markdown, page, summary)
