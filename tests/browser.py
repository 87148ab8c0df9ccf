"""Headless Chromium for the tests that render HTML (the claims report, the docs site).

``chromium()`` finds the browser or skips the test; with ``DEEPLIMIT_REQUIRE_BROWSER=1`` (set
by ``.ci/run``) a missing browser fails it instead. ``dump_dom(url)`` loads a page, lets its
scripts run, and returns the DOM they leave.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("DEEPLIMIT_REQUIRE_BROWSER"):
            pytest.fail("DEEPLIMIT_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    return found


def dump_dom(url: str, profile: Path, *, extra: tuple[str, ...] = (), timeout: float = 180) -> str:
    command = [chromium(), *CHROMIUM_FLAGS, *extra, f"--user-data-dir={profile}", "--dump-dom", url]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=True
    ).stdout


def render_check(html_path: Path, profile: Path) -> dict[str, str]:
    """The ``data-*`` attributes of the page's ``#render-check`` element after its scripts ran
    (the claims report's self-check)."""
    dom = dump_dom(html_path.resolve().as_uri(), profile)
    match = re.search(r'<div id="render-check"([^>]*)>', dom)
    assert match, "the page did not render the check element"
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', match.group(1)))
