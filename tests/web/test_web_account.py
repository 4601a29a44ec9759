"""The account page in a real browser: changing the password needs the current one (a wrong
one gets its own banner and changes nothing), other sessions end, this one goes on, and from
then on the new password signs in while the old one is refused."""

from __future__ import annotations

from typing import Any

import pytest

from tests.web.conftest import PASSWORD, Served, expect, sign_in

pytestmark = pytest.mark.slow

NEW_PASSWORD = "a brand new passphrase 42"


def test_password_change_from_the_account_page(served: Served, watched: Any) -> None:
    email = "changer@example.com"
    served.verified_user(email)
    other = watched()  # a second signed-in browser: the change signs it out
    other.expected_statuses = {401}  # its refresh, refused after the change
    sign_in(other.page, served.base, email)

    w = watched()
    w.expected_statuses = {400, 401}  # the wrong current password, the old one at login
    page = w.page
    sign_in(page, served.base, email)
    page.click("#nav a[href='/account']")
    expect(page.locator("h1")).to_have_text("Your account")

    # a typo in the repeated new password is caught before anything is sent
    page.fill("#current-password", PASSWORD)
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password-again", NEW_PASSWORD + "!")
    page.click("#change-password")
    expect(page.locator("#banner-password-mismatch")).to_have_text("The two new passwords differ.")

    # the wrong current password: its own banner, never a raw error body, nothing changed
    page.fill("#current-password", "not my password")
    page.fill("#new-password-again", NEW_PASSWORD)
    page.click("#change-password")
    wrong = page.locator("#banner-password-wrong")
    expect(wrong).to_have_text("The current password is wrong: your password was not changed.")
    expect(wrong).to_have_attribute("role", "alert")
    expect(wrong).to_be_focused()
    expect(page.locator("#banner-password-changed")).to_have_count(0)
    assert "error_code" not in page.content()
    w.axe("account: wrong current password")

    # the right one: changed, and this session goes on (also across a reload)
    page.fill("#current-password", PASSWORD)
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password-again", NEW_PASSWORD)
    page.click("#change-password")
    expect(page.locator("#banner-password-changed")).to_be_visible()
    expect(page.locator("#current-password")).to_have_value("")  # the form is cleared
    page.reload()
    expect(page.locator("h1")).to_have_text("Your account")
    expect(page.locator("#nav")).to_contain_text(email)

    # the other browser's session ended: a reload asks it to sign in again
    other.page.reload()
    expect(other.page.locator("#login-email")).to_be_visible()

    # signed out, the old password is refused with the BAD_CREDENTIALS banner...
    page.click("#logout")
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#banner-bad-credentials")).to_have_text("E-mail or password is wrong.")
    # ...and the new one signs in
    page.fill("#login-password", NEW_PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#project-list")).to_be_visible()
    expect(page.locator("#nav")).to_contain_text(email)
    w.assert_clean()
    other.assert_clean()
