"""Chat in a real browser against the test LLM server (OpenAI wire protocol): an answer
streams in token by token and is rendered as Markdown, Stop ends it, Regenerate writes a new
one, a citation opens the cited lines of the file, scrolled to. Runs where the server has the
chat API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import PASSWORD, Served, expect, sign_in

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

    w.assert_clean()


def _ledger_source() -> tuple[str, int, int]:
    """A long Python file whose one function about ledgers sits far down (its first and
    last line returned), below the first screen of the file view."""
    lines: list[str] = []
    for i in range(40):
        if i == 33:
            first = len(lines) + 1
            lines += [
                "def reconcile_quarterly_ledger(entries):",
                '    """Reconcile the quarterly ledger balances: debits must equal credits."""',
                "    debit = sum(e.debit for e in entries)",
                "    credit = sum(e.credit for e in entries)",
                "    return debit == credit",
            ]
            last = len(lines)
        else:
            lines += [f"def helper_{i}(x):", f'    """Add {i} to x."""', f"    return x + {i}"]
        lines.append("")
        lines.append("")
    return "\n".join(lines), first, last


def test_a_citation_opens_the_cited_lines(served: Served, watched: Any, tmp_path: Path) -> None:
    if served.llm is None:
        pytest.skip("no test LLM server (tests/llm/openai_server.py) in this tree")
    from tests.llm.openai_server import stream

    email = "citer@example.com"
    served.verified_user(email)
    w = watched()
    page = w.page
    sign_in(page, served.base, email)
    if "chat" not in page.evaluate("document.body.dataset.features").split():
        pytest.skip("this server has no chat API yet")
    page.fill("#project-name", "Ledger")
    page.click("#create-project")
    page.wait_for_url(re.compile(r"/projects/\d+$"))
    project_id = int(page.url.rsplit("/", 1)[1])
    source, first, last = _ledger_source()
    ledger = tmp_path / "ledger.py"
    ledger.write_text(source)
    page.set_input_files("#upload-files", str(ledger))
    expect(page.locator("#index-summary")).to_contain_text(
        "Indexing complete: 1 of 1", timeout=240_000
    )

    page.click("#nav a[href='/chat']")
    page.click("#new-chat")
    page.wait_for_url(re.compile(r"/chat/\d+$"))
    served.llm.push(stream(["Debits equal credits, see ", "`reconcile_quarterly_ledger` [1]."]))
    page.fill("#chat-input", "How are the quarterly ledger balances reconciled?")
    page.click("#chat-send")
    answer = page.locator("li.msg.assistant[data-status=complete]")
    expect(answer).to_have_count(1, timeout=120_000)
    expect(answer.locator("code")).to_have_text("reconcile_quarterly_ledger")

    # the answer's sources name the file and lines; the one with the function opens them
    links = answer.locator("a.citation-link")
    expect(links.first).to_be_visible()
    cited = None
    for i in range(links.count()):
        m = re.fullmatch(r"ledger\.py:(\d+)-(\d+)", links.nth(i).inner_text().strip())
        if m and int(m.group(1)) <= first and int(m.group(2)) >= last:
            cited = (links.nth(i), int(m.group(1)), int(m.group(2)))
            break
    assert cited, [links.nth(i).inner_text() for i in range(links.count())]
    cite, start, end = cited
    w.axe("chat: answer with sources")
    cite.click()
    page.wait_for_url(re.compile(rf"/projects/{project_id}/files/\d+#L{start}-L{end}$"))
    expect(page.locator("h1")).to_have_text("ledger.py")
    expect(page.locator(f"#L{start}")).to_have_class(re.compile(r"\bhl\b"))
    expect(page.locator(f"#L{end}")).to_have_class(re.compile(r"\bhl\b"))
    expect(page.locator(".line.hl")).to_have_count(end - start + 1)
    expect(page.locator(f"#L{first}")).to_contain_text("def reconcile_quarterly_ledger")
    # scrolled to: the cited lines are on screen, the top of the file is not
    expect(page.locator(f"#L{start}")).to_be_in_viewport()
    expect(page.locator("#L1")).not_to_be_in_viewport()
    w.assert_clean()
