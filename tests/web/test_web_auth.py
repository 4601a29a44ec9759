"""Checklist 1-C in a real browser: each login failure code gets its own banner with its own
text (never a raw JSON body), the inactive one offers a resend, the rate-limited one counts
down; sessions survive a reload through the HttpOnly refresh cookie; log out ends them."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.web.conftest import PASSWORD, Served

pytestmark = pytest.mark.slow

BANNERS = ["#banner-bad-credentials", "#banner-inactive", "#banner-rate-limited"]


def _only_visible(page: Any, selector: str) -> None:
    page.locator(selector).wait_for(state="visible")
    for other in BANNERS:
        if other != selector:
            assert not page.locator(other).is_visible(), other


def test_login_banners_each_code_its_own(served: Served, watched: Any) -> None:
    email = "banners@example.com"
    served.register(email)
    w = watched()
    w.expected_statuses = {401, 403, 429}  # provoked on purpose below
    page = w.page
    page.goto(f"{served.base}/login")
    w.axe("login")
    w.shoot("login")

    page.fill("#login-email", email)
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    _only_visible(page, "#banner-bad-credentials")
    assert page.locator("#banner-bad-credentials").inner_text() == "E-mail or password is wrong."

    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    _only_visible(page, "#banner-inactive")
    assert "Please verify your e-mail" in page.locator("#banner-inactive").inner_text()
    w.axe("login: inactive banner")
    page.click("#resend-verification")
    page.locator("#resend-note", has_text="on its way").wait_for()
    served.wait_for_mail(email, count=2)  # the registration's and the resent one

    for _ in range(10):  # 3 failures per account are allowed; the next is refused
        page.fill("#login-password", "still wrong")
        page.click("#login-submit")
        # the answer has arrived when the button is back, or the rate-limit banner is up
        page.wait_for_function(
            "() => !document.querySelector('#login-submit').disabled"
            " || !document.querySelector('#banner-rate-limited').hidden"
        )
        if page.locator("#banner-rate-limited").is_visible():
            break
    _only_visible(page, "#banner-rate-limited")
    text = page.locator("#banner-rate-limited").inner_text()
    first = int(re.search(r"in (\d+) seconds?", text).group(1))  # type: ignore[union-attr]
    assert first > 1
    assert page.locator("#login-submit").is_disabled()
    # the countdown runs: a smaller number shows up later
    page.wait_for_function(
        f"() => parseInt(document.querySelector('#rate-limit-seconds').textContent) < {first}",
        timeout=15_000,
    )
    w.axe("login: rate-limited banner")
    w.shoot("login-rate-limited")
    # never a raw JSON body on the page
    assert "error_code" not in page.content()
    w.assert_clean()


def test_session_survives_reload_and_logout_ends_it(served: Served, watched: Any) -> None:
    from tests.web.conftest import ADMIN_EMAIL

    w = watched()
    page = w.page
    page.goto(f"{served.base}/login")
    page.fill("#login-email", ADMIN_EMAIL)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.locator("#project-list").wait_for()
    cookies = {c["name"]: c for c in page.context.cookies()}
    refresh = cookies["ca_refresh"]
    assert refresh["httpOnly"] and refresh["sameSite"] == "Strict"
    assert refresh["path"] == "/api/v1/auth/session"
    # the access token is nowhere a script could find it later
    assert page.evaluate("document.cookie").count("ca_refresh") == 0
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"

    page.reload()
    page.locator("#nav", has_text=ADMIN_EMAIL).wait_for()
    page.locator("#project-list").wait_for()

    # a refresh without the double-submit header is refused (CSRF)
    r = httpx.post(
        f"{served.base}/api/v1/auth/session/refresh",
        cookies={"ca_refresh": "x", "ca_csrf": "y"},
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["error_code"] == "CSRF_TOKEN_INVALID"
    r = httpx.post(
        f"{served.base}/api/v1/auth/session",
        json={"email": ADMIN_EMAIL, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        timeout=10,
    )
    assert r.status_code == 403 and r.json()["error_code"] == "CSRF_ORIGIN_MISMATCH"

    page.goto(f"{served.base}/account")
    w.axe("account")
    w.shoot("account")
    page.click("#logout")
    page.locator("#login-email").wait_for()
    page.goto(f"{served.base}/")
    page.locator("#login-email").wait_for()  # signed out: the app asks to sign in again
    assert "ca_refresh" not in {c["name"] for c in page.context.cookies()}
    w.assert_clean()
