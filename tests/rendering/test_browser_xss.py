"""Issue 11, finding 3: rendered Markdown runs no script in a real browser.

Debian's chromium, driven by Playwright (no browser download). Each rendered document is
loaded on its own page *without* any CSP, so the sanitiser alone is under test; a trap
(`window.__xss`, alert/confirm/prompt replaced, a dialog handler) records any script that
runs, including event handlers fired on load and focus.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from codeatlas.rendering.core import render_markdown
from tests.rendering.xss_corpus import XSS_PAYLOADS

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TRAP = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...a) => { window.__xss.push(name + ":" + a.join(",")); };
}
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None and not os.path.exists(CHROMIUM),
        reason="chromium not installed (.ci/run installs it)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _document(html: str) -> str:
    # the trap is the test page's own first script, before the rendered HTML
    return (
        f"<!doctype html><html><head><meta charset=utf-8><script>{TRAP}</script></head>"
        f"<body>{html}</body></html>"
    )


def test_the_trap_catches_a_script(browser: Any) -> None:
    """The check can fail: unsanitised HTML does set the trap."""
    page = browser.new_page()
    page.set_content(_document("<img src=x onerror=alert(1)>"), wait_until="load")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__xss") == ["alert:1"]
    page.close()


def test_rendered_xss_corpus_runs_no_script(browser: Any) -> None:
    fired: dict[str, Any] = {}
    for name, markdown in XSS_PAYLOADS:
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d, dialogs=dialogs: (dialogs.append(d.message), d.dismiss()))
        html = render_markdown(markdown).html
        page.set_content(_document(html), wait_until="load")
        # focus and hover everything: autofocus / onfocus / onmouseover payloads
        page.evaluate(
            "for (const el of document.querySelectorAll('*')) {"
            " try { el.focus(); el.dispatchEvent(new MouseEvent('mouseover')); } catch (e) {} }"
        )
        page.wait_for_timeout(50)
        trapped = page.evaluate("window.__xss")
        if trapped or dialogs or page.url != "about:blank":
            fired[name] = (trapped, dialogs, page.url)
        page.close()
    assert fired == {}
    assert len(XSS_PAYLOADS) >= 20
