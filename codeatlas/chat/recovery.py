"""Answers whose process died: swept to ``error`` / ``INTERRUPTED`` so they can be regenerated.

A turn (:mod:`.turns`) holds a lease on its assistant message: the message's ``updated_at``,
renewed every CHAT_ANSWER_HEARTBEAT_SECONDS (and by every content save) while the message is
``pending`` or ``streaming``. A process that is SIGKILLed (or OOM-killed, or loses its host)
stops renewing; once ``updated_at`` is older than CHAT_STALE_ANSWER_SECONDS the sweep marks
the message ``error`` / ``INTERRUPTED``, keeps the partial text saved so far, and sends
``chat.error`` to the owner's sockets. The chat is then no longer busy: Regenerate works.

The sweep runs at every API process's start-up, and then every half of
CHAT_STALE_ANSWER_SECONDS in one process at a time (a Redis ``SET NX`` per period; without
Redis every process sweeps, which is harmless). It is one conditional ``UPDATE … RETURNING``:
a message whose lease was renewed in the meantime does not match, and the answers this
process itself is generating are excluded outright. No schema change was needed: the lease is
the existing ``updated_at`` column.

A live answer could only be swept if its process renewed nothing for CHAT_STALE_ANSWER_SECONDS
(e.g. the database was unreachable that long) or the hosts' clocks disagree by about that
much; such a turn notices at its next renewal (its conditional update matches no row) and
ends quietly, leaving the message as the sweep marked it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from codeatlas.core.context import bind_request_id
from codeatlas.core.redis_client import key as redis_key
from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models import ChatMessage
from codeatlas.models.chat import ACTIVE_STATUSES
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

ERROR_CODE = "INTERRUPTED"
ERROR_MESSAGE = "The answer was interrupted (its server process stopped); regenerate it"
# Errors a sweep outlives (the database or Redis away): logged, tried again next period.
SWEEP_ERRORS = (SQLAlchemyError, RedisError, OSError)


@dataclass(frozen=True, slots=True)
class Swept:
    message_id: int
    chat_id: int
    user_id: int
    request_id: str | None


async def sweep_stale_answers(
    db: Database, settings: Settings, exclude: Collection[int] = ()
) -> list[Swept]:
    """Mark answers whose lease expired ``error`` / ``INTERRUPTED``; the ones marked."""
    cutoff = utcnow() - timedelta(seconds=settings.chat_stale_answer_seconds)
    conditions = [
        ChatMessage.role == "assistant",
        ChatMessage.status.in_(ACTIVE_STATUSES),
        ChatMessage.updated_at < cutoff,
    ]
    if exclude:
        conditions.append(ChatMessage.id.not_in(list(exclude)))
    async with db.session() as session, atomic(session):
        rows = (
            await session.execute(
                update(ChatMessage)
                .where(*conditions)
                .values(status="error", error_code=ERROR_CODE, updated_at=utcnow())
                .returning(
                    ChatMessage.id, ChatMessage.chat_id, ChatMessage.user_id, ChatMessage.request_id
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
    swept = [Swept(*row) for row in rows]
    for s in swept:
        logger.warning(
            "chat answer %s (chat %s) had no live process for %.0f s; marked %s",
            s.message_id,
            s.chat_id,
            settings.chat_stale_answer_seconds,
            ERROR_CODE,
        )
    return swept


async def announce(app: FastAPI, swept: list[Swept]) -> None:
    """``chat.error`` to each owner's sockets, under the answer's own request id."""
    from codeatlas.chat.turns import publish

    for s in swept:
        data = {
            "chat_id": s.chat_id,
            "message_id": s.message_id,
            "error_code": ERROR_CODE,
            "message": ERROR_MESSAGE,
        }
        with bind_request_id(s.request_id):
            try:
                await publish(app, s.user_id, "chat.error", data)
            except SWEEP_ERRORS as exc:  # the stored message says it all the same
                logger.warning("could not announce interrupted answer %s: %s", s.message_id, exc)


def sweep_key(settings: Settings) -> str:
    return redis_key(settings, "chat", "sweep")


class StaleAnswerSweeper:
    """The start-up sweep, then a periodic one (one process per period) until closed."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.settings: Settings = app.state.settings
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        return self.settings.chat_stale_answer_seconds / 2

    def _exclude(self) -> list[int]:
        turns = getattr(self.app.state, "chat_turns", None)
        return turns.active() if turns is not None else []

    async def sweep(self) -> list[Swept]:
        db: Database = self.app.state.db
        swept = await sweep_stale_answers(db, self.settings, self._exclude())
        await announce(self.app, swept)
        return swept

    async def _claim_period(self) -> bool:
        """Whether this process sweeps this period (Redis `SET NX EX`; no Redis: yes)."""
        redis: aioredis.Redis | None = getattr(self.app.state, "redis", None)
        if redis is None:
            return True
        ttl = max(1, int(self.interval * 1000) - 50)  # ms; expires before the next period
        return bool(await redis.set(sweep_key(self.settings), b"1", nx=True, px=ttl))

    async def startup_sweep(self) -> None:
        try:
            swept = await self.sweep()
        except SWEEP_ERRORS as exc:
            logger.warning("start-up sweep of interrupted chat answers failed: %s", exc)
            return
        if swept:
            logger.warning("start-up: %d interrupted chat answer(s) marked", len(swept))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if await self._claim_period():
                    await self.sweep()
            except SWEEP_ERRORS as exc:
                logger.warning("sweep of interrupted chat answers failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="chat-stale-answer-sweeper")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
