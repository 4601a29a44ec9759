"""An API process SIGKILLed mid-answer: the next start-up marks the answer INTERRUPTED.

Three real `codeatlas serve` processes on one database and Redis, the LLM being the OpenAI
test server streaming slowly:

* A starts streaming an answer, saves part of it, and is SIGKILLed: its message stays
  `streaming` (nobody is left to end it).
* B streams another answer all along, renewing its lease.
* C starts once A's lease has expired: its start-up sweep marks A's answer `error` /
  `INTERRUPTED` with the partial text, and neither that sweep nor C's periodic ones touch
  B's live answer, which ends normally when stopped. Regenerate then works in A's chat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from codeatlas.db.session import Database
from codeatlas.models import ChatMessage
from codeatlas.settings import Settings
from tests.factories import auth_headers, create_user
from tests.llm.openai_server import OpenAITestServer, stream
from tests.llm.serving import call, chat_env, serving

pytestmark = pytest.mark.slow

LEASE = 8.0  # C's CHAT_STALE_ANSWER_SECONDS; A and B renew every 0.5 s


def env(settings: Settings, data_dir: Path, llm: OpenAITestServer, stale: float) -> dict[str, str]:
    data_dir.mkdir()
    return chat_env(
        settings,
        data_dir,
        llm,
        LLM_READ_TIMEOUT="120",
        CHAT_SAVE_INTERVAL="0.2",
        CHAT_ANSWER_HEARTBEAT_SECONDS="0.5",
        CHAT_STALE_ANSWER_SECONDS=str(stale),
    )


async def stored(db: Database, message_id: int) -> ChatMessage:
    async with db.session() as s:
        msg = await s.scalar(select(ChatMessage).where(ChatMessage.id == message_id))
        assert msg is not None
        return msg


async def until(
    db: Database, message_id: int, check: Any, what: str, timeout: float = 120
) -> ChatMessage:
    deadline = time.monotonic() + timeout
    while True:
        msg = await stored(db, message_id)
        if check(msg):
            return msg
        assert time.monotonic() < deadline, f"message {message_id}: {what} (it is {msg.status})"
        await asyncio.sleep(0.1)


def ask(port: int, headers: dict[str, str]) -> tuple[int, int]:
    status, chat = call(port, "POST", "/api/v1/chats", headers, {})
    assert status == 201, chat
    status, accepted = call(
        port, "POST", f"/api/v1/chats/{chat['id']}/messages", headers, {"content": "tell me"}
    )
    assert status == 202, accepted
    return int(chat["id"]), int(accepted["assistant_message_id"])


async def test_a_sigkilled_answer_is_marked_at_start_up_and_a_live_one_is_left_alone(
    settings: Settings, db: Database, tmp_path: Path, llm_server: OpenAITestServer
) -> None:
    user = await create_user(db)
    headers = auth_headers(user, settings)
    # Every answer streams for far longer than this test; B's is stopped at the end.
    llm_server.default = stream([f"w{i} " for i in range(20_000)], delay=0.1)
    long_lease = 600.0  # A and B sweep nothing during the test (only C's sweeps are tested)

    with serving(env(settings, tmp_path / "b", llm_server, long_lease), tmp_path / "b.log") as (
        port_b,
        _,
    ):
        chat_b, mid_b = ask(port_b, headers)
        with serving(env(settings, tmp_path / "a", llm_server, long_lease), tmp_path / "a.log") as (
            port_a,
            proc_a,
        ):
            chat_a, mid_a = ask(port_a, headers)
            await until(db, mid_a, lambda m: m.content.count(" ") >= 5, "A saved nothing")
            os.kill(proc_a.pid, signal.SIGKILL)
            await asyncio.to_thread(proc_a.wait, 60)
            killed_at = time.monotonic()
        partial = await stored(db, mid_a)
        assert partial.status == "streaming" and partial.content.startswith("w0 w1 w2 ")
        await until(db, mid_b, lambda m: m.content.count(" ") >= 5, "B saved nothing")

        # C starts only once A's lease has expired by C's setting.
        await asyncio.sleep(max(0.0, killed_at + LEASE + 1 - time.monotonic()))
        log_c = tmp_path / "c.log"
        with serving(env(settings, tmp_path / "c", llm_server, LEASE), log_c) as (port_c, _):
            # The start-up sweep ran before C became ready.
            swept = await stored(db, mid_a)
            assert (swept.status, swept.error_code) == ("error", "INTERRUPTED")
            assert swept.content == partial.content  # the partial text is kept
            assert f"chat answer {mid_a} (chat {chat_a}) had no live process" in log_c.read_text()

            # B's answer lives on through C's start-up and two of its periodic sweeps.
            live = await stored(db, mid_b)
            assert live.status == "streaming" and live.error_code is None
            await asyncio.sleep(LEASE + 1)
            later = await stored(db, mid_b)
            assert later.status == "streaming" and len(later.content) > len(live.content)

            # Stopped from C (another process): it ends as a normal stopped answer.
            status, body = call(
                port_c, "POST", f"/api/v1/chats/{chat_b}/messages/{mid_b}/stop", headers
            )
            assert status == 202, body
            ended = await until(db, mid_b, lambda m: m.status != "streaming", "B never ended")
            assert (ended.status, ended.error_code) == ("stopped", None)
            assert ended.content.startswith(later.content)

            # A's chat is no longer busy: Regenerate answers it again, on C.
            llm_server.push(stream(["A", " second", " try."]))
            status, body = call(port_c, "POST", f"/api/v1/chats/{chat_a}/regenerate", headers)
            assert status == 202, body
            new_id = int(body["assistant_message_id"])
            again = await until(db, new_id, lambda m: m.status == "complete", "no new answer")
            assert again.content == "A second try."
