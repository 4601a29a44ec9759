"""Answers left `pending`/`streaming` by a dead process: the lease, the sweep, Regenerate.

In-process, against the real database and Redis (the multi-process crash, with a SIGKILL, is
in ``test_chat_crash.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from sqlalchemy import select, update

from codeatlas.chat.recovery import announce, sweep_stale_answers
from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models import Chat, ChatMessage
from codeatlas.settings import Settings
from codeatlas.ws.events import user_stream
from tests.llm.chathelpers import ChatKit, llm_overrides, start_chat_kit
from tests.llm.openai_server import OpenAITestServer, stream


async def add_answer(
    db: Database, user_id: int, status: str, age: float, content: str = "partial"
) -> tuple[int, int]:
    """A chat with one question and one assistant message last written `age` seconds ago."""
    at = utcnow() - timedelta(seconds=age)
    async with db.session() as s, atomic(s):
        chat = Chat(user_id=user_id, title="t")
        s.add(chat)
        await s.flush()
        s.add(ChatMessage(chat_id=chat.id, user_id=user_id, role="user", content="q?"))
        answer = ChatMessage(
            chat_id=chat.id,
            user_id=user_id,
            role="assistant",
            content=content,
            status=status,
            citations=[],
            request_id="req-crashed-answer-01",
            created_at=at,
            updated_at=at,
        )
        s.add(answer)
        await s.flush()
        return chat.id, answer.id


async def stored(db: Database, message_id: int) -> ChatMessage:
    async with db.session() as s:
        msg = await s.scalar(select(ChatMessage).where(ChatMessage.id == message_id))
        assert msg is not None
        return msg


async def backdate(db: Database, message_id: int, seconds: float) -> None:
    async with db.session() as s, atomic(s):
        await s.execute(
            update(ChatMessage)
            .where(ChatMessage.id == message_id)
            .values(updated_at=utcnow() - timedelta(seconds=seconds))
            .execution_options(synchronize_session=False)
        )


def test_the_heartbeat_must_fit_twice_in_the_lease() -> None:
    with pytest.raises(ValidationError, match="CHAT_ANSWER_HEARTBEAT_SECONDS"):
        Settings(env="test", chat_answer_heartbeat_seconds=10, chat_stale_answer_seconds=15)
    Settings(env="test", chat_answer_heartbeat_seconds=5, chat_stale_answer_seconds=10)


async def test_one_statement_saves_changed_answers_renews_due_leases_and_reports_lost_ones(
    db: Database, settings: Settings
) -> None:
    from codeatlas.chat.saving import AnswerWriter
    from tests.code.helpers import make_user

    user = await make_user(db)
    own = settings.model_copy(update={"chat_answer_heartbeat_seconds": 0.5})
    _, grows = await add_answer(db, user.id, "streaming", age=120, content="")
    _, silent = await add_answer(db, user.id, "streaming", age=120, content="")
    _, swept = await add_answer(db, user.id, "streaming", age=120, content="")
    pieces: dict[int, list[str]] = {grows: ["a"], silent: [], swept: ["b"]}
    lost: list[int] = []
    writer = AnswerWriter(db, own)
    for mid in pieces:
        writer.add(
            mid,
            lambda m=mid: "".join(pieces[m]),
            lambda m=mid: len(pieces[m]),
            lambda m=mid: lost.append(m),
        )
    try:
        before = (utcnow() - timedelta(seconds=60)).replace(tzinfo=None)  # SQLite: naive
        await writer.tick()  # two answers have content, the silent one's lease is not due
        assert (await stored(db, grows)).content == "a"
        assert (await stored(db, silent)).updated_at.replace(tzinfo=None) < before
        # Another process sweeps one answer; one grows; the silent one's lease falls due.
        async with db.session() as s, atomic(s):
            await s.execute(
                update(ChatMessage).where(ChatMessage.id == swept).values(status="error")
            )
        pieces[grows].append("c")
        pieces[swept].append("d")
        await asyncio.sleep(0.6)
        await writer.tick()
        assert (await stored(db, grows)).content == "ac"
        renewed = (await stored(db, silent)).updated_at.replace(tzinfo=None)
        assert renewed > before  # renewed without content
        assert (await stored(db, swept)).content == "b"  # not written after the sweep
        assert lost == [swept]  # its turn is told, once
        await writer.tick()
        assert lost == [swept]
    finally:
        await writer.aclose()


async def test_sweep_marks_only_expired_leases(db: Database, settings: Settings) -> None:
    from tests.code.helpers import make_user

    user = await make_user(db)
    stale = settings.model_copy(update={"chat_stale_answer_seconds": 30})
    _, old_streaming = await add_answer(db, user.id, "streaming", age=120, content="half an ")
    _, old_pending = await add_answer(db, user.id, "pending", age=120, content="")
    _, excluded = await add_answer(db, user.id, "streaming", age=120)
    _, fresh = await add_answer(db, user.id, "streaming", age=1)
    _, finished = await add_answer(db, user.id, "complete", age=120, content="done")

    swept = await sweep_stale_answers(db, stale, exclude=[excluded])
    assert sorted(s.message_id for s in swept) == sorted([old_streaming, old_pending])
    assert {s.request_id for s in swept} == {"req-crashed-answer-01"}
    msg = await stored(db, old_streaming)
    assert (msg.status, msg.error_code, msg.content) == ("error", "INTERRUPTED", "half an ")
    assert (await stored(db, old_pending)).error_code == "INTERRUPTED"
    for untouched, status in [
        (excluded, "streaming"),
        (fresh, "streaming"),
        (finished, "complete"),
    ]:
        msg = await stored(db, untouched)
        assert (msg.status, msg.error_code) == (status, None)
    assert await sweep_stale_answers(db, stale, exclude=[excluded]) == []  # nothing twice


@pytest.fixture
async def kit(app_factory: Any, llm_server: OpenAITestServer) -> AsyncIterator[ChatKit]:
    overrides = llm_overrides(
        llm_server.base_url,
        chat_save_interval=0.1,
        chat_answer_heartbeat_seconds=0.2,
        chat_stale_answer_seconds=30,
        llm_read_timeout=60,  # the LLM may be silent for long in these tests
    )
    async for k in start_chat_kit(app_factory(**overrides)):
        yield k


async def events_of(settings: Settings, user_id: int) -> list[dict[str, Any]]:
    assert settings.redis_url
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        entries = await client.xrange(user_stream(settings, user_id))
    finally:
        await client.aclose()
    return [json.loads(fields[b"e"]) for _, fields in entries]


async def test_start_up_marks_a_dead_processes_answer_and_regenerate_works(
    db: Database, app_factory: Any, llm_server: OpenAITestServer
) -> None:
    """A message a SIGKILLed process left `streaming` (simulated: its lease expired) is
    marked by the next app start-up, announced on the owner's event stream, and the chat
    accepts Regenerate again."""
    app = app_factory(**llm_overrides(llm_server.base_url, chat_stale_answer_seconds=30))
    async for kit in start_chat_kit(app):
        # The kit's start-up already ran: this answer "crashed" before the next one.
        chat, mid = await add_answer(db, kit.user.id, "streaming", age=300, content="The ans")
        r = await kit.client.post(f"/api/v1/chats/{chat}/regenerate", headers=kit.headers())
        assert r.status_code == 409 and r.json()["error_code"] == "CHAT_BUSY"
        await kit.app.state.chat_sweeper.startup_sweep()  # what the next start-up runs
        msg = await kit.message(chat, mid)
        assert (msg["status"], msg["error_code"], msg["content"]) == (
            "error",
            "INTERRUPTED",
            "The ans",
        )
        [event] = [
            e for e in await events_of(kit.settings, kit.user.id) if e["type"] == "chat.error"
        ]
        assert event["data"]["message_id"] == mid and event["data"]["error_code"] == "INTERRUPTED"
        assert event["request_id"] == "req-crashed-answer-01"

        llm_server.push(stream(["A", " fresh", " answer."]))
        r = await kit.client.post(f"/api/v1/chats/{chat}/regenerate", headers=kit.headers())
        assert r.status_code == 202, r.text
        new = await kit.wait(chat, r.json()["assistant_message_id"])
        assert (new["status"], new["content"]) == ("complete", "A fresh answer.")


async def test_the_start_up_sweep_runs_in_the_lifespan(
    db: Database, app_factory: Any, llm_server: OpenAITestServer
) -> None:
    from tests.code.helpers import make_user

    user = await make_user(db)
    _, mid = await add_answer(db, user.id, "pending", age=300, content="")
    app = app_factory(**llm_overrides(llm_server.base_url, chat_stale_answer_seconds=30))
    async with app.router.lifespan_context(app):
        msg = await stored(db, mid)
        assert (msg.status, msg.error_code) == ("error", "INTERRUPTED")


async def test_a_live_answer_renews_its_lease_and_is_never_swept(
    kit: ChatKit, llm_server: OpenAITestServer, db: Database
) -> None:
    """While the LLM is silent (no content to save) the heartbeat still renews the lease;
    a sweep with a lease shorter than the silence marks nothing."""
    llm_server.default = stream(["one ", "two ", "three"], first_delay=10)
    chat = await kit.new_chat()
    mid = (await kit.ask(chat, "slow to start"))["assistant_message_id"]
    await kit.wait(chat, mid, {"streaming"})
    lease = kit.settings.model_copy(update={"chat_stale_answer_seconds": 3})
    renewals = [(await stored(db, mid)).updated_at]
    for _ in range(4):  # ~4 s of the LLM's silence: only heartbeats write the message
        await asyncio.sleep(1)
        msg = await stored(db, mid)
        if msg.status != "streaming" or msg.content:
            break
        renewals.append(msg.updated_at)
        assert await sweep_stale_answers(db, lease) == []
    assert len(renewals) >= 3 and renewals == sorted(set(renewals)), renewals
    msg = await kit.wait(chat, mid, timeout=60)
    assert (msg["status"], msg["content"]) == ("complete", "one two three")


async def test_a_turn_that_lost_its_message_ends_quietly(
    kit: ChatKit, llm_server: OpenAITestServer, db: Database
) -> None:
    """Swept by another process (e.g. after an outage longer than the lease): the turn
    notices at its next renewal, stops generating and leaves the message as marked."""
    llm_server.default = stream([f"t{i} " for i in range(400)], delay=0.05)
    chat = await kit.new_chat()
    mid = (await kit.ask(chat, "long"))["assistant_message_id"]
    await kit.wait(chat, mid, {"streaming"})
    while not (await stored(db, mid)).content:
        await asyncio.sleep(0.05)
    await backdate(db, mid, 600)
    swept = await sweep_stale_answers(db, kit.settings)  # "another process": no exclusion
    assert [s.message_id for s in swept] == [mid]
    await announce(kit.app, swept)
    content = (await stored(db, mid)).content
    deadline = time.monotonic() + 30
    while kit.app.state.chat_turns.active():  # the turn stops itself
        assert time.monotonic() < deadline, "the turn went on after losing its message"
        await asyncio.sleep(0.05)
    msg = await stored(db, mid)
    assert (msg.status, msg.error_code, msg.content) == ("error", "INTERRUPTED", content)
    finals = [
        e
        for e in await events_of(kit.settings, kit.user.id)
        if e["type"] in {"chat.done", "chat.error"} and e["data"]["message_id"] == mid
    ]
    assert [e["type"] for e in finals] == ["chat.error"]  # the sweep's; nothing from the turn
    assert len(llm_server.requests) == 1


async def test_the_periodic_sweep_marks_an_answer_after_start_up(
    db: Database, app_factory: Any, llm_server: OpenAITestServer
) -> None:
    overrides = llm_overrides(
        llm_server.base_url, chat_answer_heartbeat_seconds=0.2, chat_stale_answer_seconds=1.0
    )
    async for kit in start_chat_kit(app_factory(**overrides)):
        chat, mid = await add_answer(db, kit.user.id, "streaming", age=0)
        deadline = time.monotonic() + 60
        while (msg := await kit.message(chat, mid))["status"] != "error":
            assert time.monotonic() < deadline, "never swept"
            await asyncio.sleep(0.1)
        assert msg["error_code"] == "INTERRUPTED" and msg["content"] == "partial"
