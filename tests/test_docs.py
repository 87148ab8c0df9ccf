"""The documentation site (``make docs``, mkdocs.yml).

Fast checks of the build hooks (TeX to MathML) run everywhere. The checks of the built site
need one: ``.ci/run`` builds it with ``make docs`` and sets ``DEEPLIMIT_DOCS_SITE=site``; set it
yourself after ``make docs`` to run them (without it they skip, unless
``DEEPLIMIT_REQUIRE_BROWSER`` is set, which CI sets, where they fail). They check, statically,
that every link, image, stylesheet and script of every page resolves inside the site (anchors
included) and that nothing is loaded from the network; then, in headless Chromium, that every
page loads over HTTP with every image decoded, every equation laid out and no request
answered 404.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import os
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from browser import dump_dom

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hooks():
    pytest.importorskip("latex2mathml")
    pytest.importorskip("mkdocs")
    return _load("docs_hooks", ROOT / "scripts" / "docs" / "hooks.py")


def test_tex_becomes_mathml(hooks):
    mathml = hooks.tex_to_mathml(r"Y_\ell = Y_{\ell-1} + \frac{1}{\sqrt{L}} W_\ell", display=True)
    assert mathml.startswith("<math ") and 'display="block"' in mathml
    assert "<mfrac>" in mathml and "<msqrt>" in mathml and "<msub>" in mathml
    assert 'alttext="Y_\\ell = Y_{\\ell-1}' in mathml
    # arithmatex leaves &lt; escaped; \sim becomes the operator U+223C, not a tilde identifier
    inline = hooks.tex_to_mathml(r"X \sim \mathcal{N}(0, 1), a &lt; b", display=False)
    assert "&#x0223C;" in inline and "&#x0007E;" not in inline and "&#x0003C;" in inline


def test_page_maths_is_replaced_and_bad_tex_fails_the_build(hooks):
    page = (
        '<p><span class="arithmatex">\\(x^2\\)</span> and</p>'
        '<div class="arithmatex">\\[\\int_0^1 f\\]</div>'
    )
    out = hooks._replace(hooks._BLOCK, page, display=True, page="p.md")
    out = hooks._replace(hooks._INLINE, out, display=False, page="p.md")
    assert out.count("<math ") == 2 and "\\(" not in out and "\\[" not in out
    with pytest.raises(Exception, match=r"p\.md: cannot convert"):
        hooks._replace(
            hooks._INLINE,
            '<span class="arithmatex">\\(\\frac{\\)</span>',
            display=False,
            page="p.md",
        )


def test_reference_covers_every_public_module():
    pytest.importorskip("mkdocs_gen_files")
    gen = _load("docs_gen_pages", ROOT / "scripts" / "docs" / "gen_pages.py")
    modules = {".".join(parts) for parts in gen.public_modules()}
    files = {
        ".".join(p.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "src" / "deeplimit").rglob("*.py")
    }
    public = {m for m in files if not any(part.startswith("_") for part in m.split("."))}
    assert modules == public and "deeplimit.training.limit" in modules


# ------------------------------------------------------------------ the built site


@pytest.fixture(scope="module")
def site() -> Path:
    path = os.environ.get("DEEPLIMIT_DOCS_SITE")
    if not path:
        if os.environ.get("DEEPLIMIT_REQUIRE_BROWSER"):
            pytest.fail("DEEPLIMIT_REQUIRE_BROWSER is set but DEEPLIMIT_DOCS_SITE is not")
        pytest.skip("no built site: run `make docs`, then set DEEPLIMIT_DOCS_SITE=site")
    site = Path(path)
    if not site.is_absolute():
        site = ROOT / site
    assert (site / "index.html").exists(), f"DEEPLIMIT_DOCS_SITE={path} holds no built site"
    return site


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and tag in {"a", "img", "link", "script", "source", "iframe"}:
                self.links.append((tag, attrs[key]))


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _pages(site: Path) -> list[Path]:
    # 404.html is served from the site root by a web server and links absolutely
    return sorted(p for p in site.rglob("*.html") if p.name != "404.html")


def test_every_link_and_image_resolves_inside_the_site(site):
    pages = _pages(site)
    assert len(pages) > 40
    broken, remote = [], []
    for page in pages:
        for tag, url in _parse(page).links:
            parts = urlsplit(url)
            if parts.scheme in {"http", "https"}:
                if tag != "a":
                    remote.append(f"{page.relative_to(site)}: <{tag}> {url}")
                continue
            if parts.scheme or url.startswith("//"):
                continue  # mailto:, data:
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site)}: <{tag}> {url}"
            if not target.is_file():
                broken.append(where)
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in _parse(target).ids
            ):
                broken.append(where + " (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken[:40])
    assert not remote, "loaded from the network:\n" + "\n".join(remote[:40])


def test_site_has_every_page_figure_and_reference(site):
    for page in ("getting-started", "limits", "examples", "hayou", "chizat", "sweeps"):
        assert (site / f"{page}.html").is_file(), page
    for howto in ("activation", "block", "data", "claims-report"):
        assert (site / "howto" / f"{howto}.html").is_file(), howto
    limits = (site / "limits.html").read_text()
    assert limits.count("<math ") >= 10 and "\\(" not in limits and "$$" not in limits
    for suite in ("hayou", "chizat"):
        gallery = _parse(site / "figures" / f"{suite}.html")
        images = [u for tag, u in gallery.links if tag == "img" and u.endswith(".png")]
        assert len(images) >= 5, suite
        for url in images:
            assert (site / "figures" / url).stat().st_size > 10_000, url
    # every public module's page shows its docstring's first line
    for path in (ROOT / "src" / "deeplimit").rglob("*.py"):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
            page = site / "reference" / Path(*parts) / "index.html"
        else:
            page = site / "reference" / Path(*parts).with_suffix(".html")
        if any(part.startswith("_") for part in parts):
            continue
        assert page.is_file(), page
        assert f'id="{".".join(parts)}"' in page.read_text(), page


_HARNESS = """<!doctype html><html><head><meta charset="utf-8">
<link rel="icon" href="data:,"></head><body>
<pre id="docs-check">running</pre>
<script>
var pages = %s, results = [], i = 0;
function next() {
  if (i >= pages.length) {
    document.getElementById('docs-check').textContent = JSON.stringify(results);
    return;
  }
  var url = pages[i++], frame = document.createElement('iframe');
  // the page's own scripts do not run (Material's search worker would index the whole site
  // once per page): what is checked is the HTML, the stylesheets, the images and the maths
  frame.setAttribute('sandbox', 'allow-same-origin');
  frame.style.width = '1200px'; frame.style.height = '900px';
  frame.onload = function () {
    var doc = frame.contentDocument, images = Array.prototype.slice.call(doc.images);
    var maths = Array.prototype.slice.call(doc.querySelectorAll('math'));
    results.push({
      url: url, title: doc.title, images: images.length,
      broken: images.filter(function (m) { return !(m.complete && m.naturalWidth > 0); })
                    .map(function (m) { return m.getAttribute('src'); }),
      maths: maths.length,
      flat: maths.filter(function (m) {
        var r = m.getBoundingClientRect(); return !(r.width > 0 && r.height > 0);
      }).length,
      header: !!doc.querySelector('.md-header')
    });
    frame.remove();
    next();
  };
  frame.src = url;
  document.body.appendChild(frame);
}
next();
</script></body></html>
"""


@pytest.mark.browser
def test_every_page_loads_in_chromium(site, tmp_path):
    pages = [p.relative_to(site).as_posix() for p in _pages(site)]
    harness = (_HARNESS % json.dumps(pages)).encode()
    missing: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/__docs_check__.html":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(harness)))
                self.end_headers()
                self.wfile.write(harness)
                return
            super().do_GET()

        def send_error(self, code, *args, **kwargs):
            missing.append(f"{code} {self.path}")
            super().send_error(code, *args, **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/__docs_check__.html"
        dom = dump_dom(
            url, tmp_path / "profile", extra=("--virtual-time-budget=600000",), timeout=300
        )
    finally:
        server.shutdown()
        server.server_close()
    match = re.search(r'<pre id="docs-check">(.*?)</pre>', dom, re.DOTALL)
    assert match and match.group(1).startswith("["), "the check page did not finish"
    import html

    results = json.loads(html.unescape(match.group(1)))
    assert [r["url"] for r in results] == pages
    assert not missing, "requests answered with an error: " + ", ".join(missing[:20])
    bad = [r for r in results if r["broken"] or r["flat"] or not r["header"]]
    assert not bad, f"pages with undecoded images, flat equations or no layout: {bad[:10]}"
    assert sum(r["images"] for r in results) >= 30
    assert sum(r["maths"] for r in results) >= 20
