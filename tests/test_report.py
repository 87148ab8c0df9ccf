"""Claims reports: Markdown/HTML content. The Hayou report rendered in headless Chromium is
tested in tests/test_experiments_hayou.py, on the suite that module runs at smoke scale."""

import re
from types import SimpleNamespace

from deeplimit.experiments.base import Claim
from deeplimit.provenance import provenance
from deeplimit.report import PAPER_CLAIMS, claim_rows, write_report


def _claim(claim_id, passed=True):
    return Claim(
        id=claim_id,
        statement=f"statement {claim_id}",
        statistic="p",
        measured=0.5,
        expected=">= 0.001",
        tolerance="KS",
        n=100,
        passed=passed,
    )


def test_claim_rows_mark_missing_claims():
    rows = claim_rows("hayou", [_claim("C1"), _claim("C3", False), _claim("C3"), _claim("fig1-x")])
    ids = [row["id"] for row in rows]
    assert ids[:4] == ["C1", "C2", "C3", "C3"] and "fig1-x" not in ids
    verdicts = {row["id"]: row["verdict"] for row in rows if row["id"] != "C3"}
    assert verdicts["C1"] == "PASS" and verdicts["C2"] == "MISSING"
    assert [r["verdict"] for r in rows if r["id"] == "C3"] == ["FAIL", "PASS"]
    assert len({row["id"] for row in rows}) == len(PAPER_CLAIMS["hayou"])


def test_write_report_embeds_figures_and_lists_claims(tmp_path):
    figure = tmp_path / "fig.png"
    figure.write_bytes(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
        )
    )

    section = SimpleNamespace(
        name="demo",
        title="Demo figure",
        caption="Width 3, depth 10 <b>",
        figure_png=figure,
        statistics=[{"depth": 10, "ks": 0.01}],
        table={"depth": "L", "ks": "KS D"},
        claims=[_claim("C2"), _claim("demo-extra", passed=False)],
        provenance=provenance({"x": 1}, seed=4),
    )
    files = write_report("hayou", [section], tmp_path / "report", record=provenance({}, seed=4))
    page = files.html.read_text()
    assert "data:image/png;base64," in page
    assert "Width 3, depth 10 &lt;b&gt;" in page  # escaped
    assert page.count('class="claim ') == len(PAPER_CLAIMS["hayou"])
    markdown = files.markdown.read_text()
    assert "| C2 | statement C2 |" in markdown and "MISSING" in markdown
    assert "**FAIL** demo-extra" in markdown
    assert "1 of 16 claim checks pass" in markdown


def test_report_has_contents_linked_sources_and_each_caption_once(tmp_path):
    figure = tmp_path / "fig.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    sections = [
        SimpleNamespace(
            name=name,
            title=f"Title of {name}",
            caption=f"Caption of {name}: width 3, depth 10",
            figure_png=figure,
            statistics=[],
            table={},
            claims=[_claim(claim_id)],
            provenance=provenance({"x": 1}, seed=0),
        )
        for name, claim_id in (("exp-one", "C1"), ("exp-two", "C2"))
    ]
    files = write_report("hayou", sections, tmp_path / "report", record=provenance({}, seed=0))
    page = files.html.read_text()
    markdown = files.markdown.read_text()
    toc = re.search(r'<nav id="toc">(.*?)</nav>', page, re.DOTALL).group(1)
    assert re.findall(r'href="#([^"]+)"', toc) == ["claims", "exp-one", "exp-two"]
    for section in sections:
        # the anchor exists, the claim row's source links to it
        assert f'<section class="figure-section" id="{section.name}">' in page
        assert f'<a class="source" href="#{section.name}">{section.name}</a>' in page
        assert f"[{section.name}](#{section.name})" in markdown
        assert f'<a id="{section.name}"></a>' in markdown
        assert f"- [{section.title}](#{section.name})" in markdown
        # the title: one heading (and its contents entry); the caption: once
        assert page.count(f"<h2>{section.title}</h2>") == 1
        assert page.count(section.title) == 2 and markdown.count(section.title) == 2
        assert page.count(section.caption) == 1 and markdown.count(section.caption) == 1
    # a claim no experiment checked has no source to link
    assert 'href="#"' not in page and "](#)" not in markdown
