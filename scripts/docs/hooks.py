"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``).

Maths: ``pymdownx.arithmatex`` (generic mode) leaves ``$...$`` as
``<span class="arithmatex">\\(...\\)</span>`` and ``$$...$$`` as
``<div class="arithmatex">\\[...\\]</div>``; this hook converts the TeX inside to MathML with
``latex2mathml`` while the site is built. Browsers render MathML natively (MathML Core), so
the site needs no JavaScript maths library and no network to show equations. A formula
``latex2mathml`` cannot convert fails the build with the page and the formula.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert
from mkdocs.exceptions import PluginError

_INLINE = re.compile(r'<span class="arithmatex">\\\((.+?)\\\)</span>', re.DOTALL)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.+?)\\\]</div>', re.DOTALL)
# latex2mathml writes \sim as a tilde identifier; MathML wants the operator U+223C
_FIXES = (("<mi>&#x0007E;</mi>", "<mo>&#x0223C;</mo>"),)


def tex_to_mathml(tex: str, *, display: bool) -> str:
    """MathML for ``tex`` (HTML-escaped as arithmatex leaves it), inline or display."""
    source = html.unescape(tex).strip()
    mathml = convert(source, display="block" if display else "inline")
    for old, new in _FIXES:
        mathml = mathml.replace(old, new)
    # keep the TeX for copy-paste and for readers without MathML
    return mathml.replace("<math ", f'<math alttext="{html.escape(source)}" ', 1)


def _replace(pattern: re.Pattern[str], text: str, *, display: bool, page: str) -> str:
    def one(match: re.Match[str]) -> str:
        try:
            mathml = tex_to_mathml(match.group(1), display=display)
        except Exception as error:  # latex2mathml raises many types
            raise PluginError(
                f"{page}: cannot convert {match.group(1)!r} to MathML: {error}"
            ) from error
        tag = "div" if display else "span"
        return f'<{tag} class="arithmatex">{mathml}</{tag}>'

    return pattern.sub(one, text)


def on_page_content(html_text: str, page, config, files) -> str:
    name = page.file.src_uri
    html_text = _replace(_BLOCK, html_text, display=True, page=name)
    return _replace(_INLINE, html_text, display=False, page=name)
