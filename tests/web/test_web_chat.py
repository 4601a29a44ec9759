"""Chat in a real browser against the test LLM server (OpenAI wire protocol): an answer
streams in token by token and is rendered as Markdown, Stop ends it, Regenerate writes a new
one, citations open the cited lines. Runs where the server has the chat API."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, Served

pytestmark = pytest.mark.slow


def test_streamed_answer_stop_and_regenerate(served: Served, watched: Any) -> None:
    if served.llm is None:
        pytest.skip("no test LLM server (tests/llm/openai_server.py) in this tree")
    from tests.llm.openai_server import stream

    email = "chatter@example.com"
    served.register(email)
    link = re.search(r"(http://\S+/verify-email\?token=\S+)", served.wait_for_mail(email)[0])
    assert link
    w = watched()
    page = w.page
    page.goto(link.group(1))
    page.locator("#banner-verified").wait_for()
    page.goto(f"{served.base}/login")
    page.fill("#login-email", email)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.locator("#project-list").wait_for()
    if "chat" not in page.evaluate("document.body.dataset.features").split():
        pytest.skip("this server has no chat API yet")

    page.click("#nav a[href='/chat']")
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/\d+$"))

    # 1. a slow answer: it shows up piece by piece, then Stop ends it
    slow = ["**Streaming**"] + [f" word{i}" for i in range(60)]
    served.llm.push(stream(slow, delay=0.25))
    page.fill("#chat-input", "Tell me a long story")
    page.click("#chat-send")
    answer = page.locator("li.msg.assistant").last
    answer.locator("strong", has_text="Streaming").wait_for(timeout=60_000)  # Markdown
    page.wait_for_function(
        "() => { const m = [...document.querySelectorAll('li.msg.assistant')].pop();"
        " return m && /word[3-9]/.test(m.textContent); }",
        timeout=60_000,
    )
    partial = answer.inner_text()
    assert "word59" not in partial  # not finished: it is streaming
    page.locator("#chat-stop").wait_for(state="visible")
    page.click("#chat-stop")
    page.locator("li.msg.assistant[data-status=stopped]").last.wait_for(timeout=60_000)
    assert "word59" not in answer.inner_text()
    w.axe("chat")
    w.shoot("chat")

    # 2. regenerate: a fresh, complete answer
    served.llm.push(stream(["The ", "answer ", "is ", "`42`", "."]))
    page.click("#chat-regenerate")
    page.locator("li.msg.assistant[data-status=complete] code", has_text="42").wait_for(
        timeout=60_000
    )

    # 3. citations, when the answer has any, open the cited lines
    cited = page.locator("a.citation-link")
    if cited.count():
        href = cited.first.get_attribute("href") or ""
        cited.first.click()
        m = re.search(r"#L(\d+)", href)
        if m:
            page.locator(f"#L{m.group(1)}.hl").wait_for()
    w.assert_clean()
