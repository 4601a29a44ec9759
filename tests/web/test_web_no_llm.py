"""Chat on a server with no LLM configured (LLM_PROVIDER=none), in a real browser: asking a
question shows the LLM_NOT_CONFIGURED banner, which says what an administrator sets, instead
of a blank answer or a generic error; the question stays in the box for later."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.conftest import ADMIN_EMAIL, Served, expect, sign_in

pytestmark = pytest.mark.slow


def test_chat_without_an_llm_says_what_to_set(served_without_llm: Served, watched: Any) -> None:
    served = served_without_llm
    w = watched()
    w.expected_statuses = {503}  # the chat API's answer without an LLM
    page = w.page
    sign_in(page, served.base, ADMIN_EMAIL)
    if "chat" not in page.evaluate("document.body.dataset.features").split():
        pytest.skip("this server has no chat API")
    page.click("#nav a[href='/chat']")
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/\d+$"))

    page.fill("#chat-input", "Is anyone there?")
    page.click("#chat-send")
    notice = page.locator("#banner-no-llm")
    expect(notice).to_be_visible()
    expect(notice).to_have_attribute("role", "alert")
    expect(notice).to_be_focused()
    expect(notice).to_contain_text(
        "Chat cannot answer: no language model is configured on this server."
    )
    # what to set, in the server's words
    for setting in ("LLM_BASE_URL", "LLM_API_KEY", "LLM_PROVIDER=local"):
        expect(notice).to_contain_text(setting)
    # no empty answer bubble, no raw error body; the question is kept and can be sent again
    expect(page.locator("li.msg")).to_have_count(0)
    expect(page.locator("#chat-input")).to_have_value("Is anyone there?")
    expect(page.locator("#chat-send")).to_be_enabled()
    assert "error_code" not in page.content()
    w.axe("chat: no LLM")
    w.assert_clean()
