"""The partial answers of one process, written together: content saves and lease renewals.

Every answer being generated needs two periodic writes: its content so far (every
CHAT_SAVE_INTERVAL, so a crash loses little) and its lease (``updated_at`` at least every
CHAT_ANSWER_HEARTBEAT_SECONDS, so no sweep takes it for a crashed one, see
:mod:`.recovery`). Done per answer, that was a transaction per answer per second: with 100
answers on a process, a fifth of its CPU (measured with py-spy at 200 streams over two
processes). :class:`AnswerWriter` makes it one statement per tick for all of them:

    WITH given(id, content) AS (VALUES (:id, :content), …)
    UPDATE chat_messages SET content = coalesce(given.content, content), updated_at = :now
    FROM given WHERE chat_messages.id = given.id AND status IN ('pending', 'streaming')
    RETURNING chat_messages.id

A row is in a tick when its content changed since its last write, or its lease is due. An
answer whose id does not come back has lost its message (swept after an outage longer than
the lease, or its chat deleted): its turn is told, and stops (``LeaseLost``). A failed
write (the database away for a moment) is tried again next tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, Text, column, func, update, values
from sqlalchemy.exc import SQLAlchemyError

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models import ChatMessage
from codeatlas.models.chat import ACTIVE_STATUSES
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

WRITE_ERRORS = (SQLAlchemyError, OSError)


@dataclass(slots=True)
class _Answer:
    content: Callable[[], str]  # the answer so far (joined only when it changed)
    pieces: Callable[[], int]  # how many pieces it has: changed when this grows
    on_lost: Callable[[], None]
    written_pieces: int = 0
    written_at: float = 0.0


class AnswerWriter:
    """The answers this process is generating, saved and renewed in one statement a tick."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.interval = settings.chat_save_interval
        self.lease_every = settings.chat_answer_heartbeat_seconds
        self._answers: dict[int, _Answer] = {}
        self._task: asyncio.Task[None] | None = None

    def add(
        self,
        message_id: int,
        content: Callable[[], str],
        pieces: Callable[[], int],
        on_lost: Callable[[], None],
    ) -> None:
        self._answers[message_id] = _Answer(content, pieces, on_lost, 0, time.monotonic())
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="chat-answer-writer")

    def remove(self, message_id: int) -> None:
        self._answers.pop(message_id, None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self._answers:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except WRITE_ERRORS as exc:
                logger.warning("answers not saved this time (%s); trying again", exc)

    async def tick(self) -> None:
        """Write the answers whose content changed or whose lease is due."""
        now = time.monotonic()
        rows: list[tuple[int, str | None, int]] = []
        for message_id, answer in list(self._answers.items()):
            count = answer.pieces()
            if count != answer.written_pieces:
                rows.append((message_id, answer.content(), count))
            elif now - answer.written_at >= self.lease_every:
                rows.append((message_id, None, count))
        if not rows:
            return
        # A CTE (``WITH given(id, content) AS (VALUES …)``): SQLite does not take the
        # ``FROM (VALUES …) AS given (id, content)`` form.
        given = (
            values(column("id", Integer), column("content", Text), name="given")
            .data([(message_id, content) for message_id, content, _ in rows])
            .cte("given")
        )
        async with self.db.session() as session, atomic(session):
            held = set(
                await session.scalars(
                    update(ChatMessage)
                    .where(ChatMessage.id == given.c.id, ChatMessage.status.in_(ACTIVE_STATUSES))
                    .values(
                        content=func.coalesce(given.c.content, ChatMessage.content),
                        updated_at=utcnow(),
                    )
                    .returning(ChatMessage.id)
                    .execution_options(synchronize_session=False)
                )
            )
        for message_id, _, count in rows:
            current = self._answers.get(message_id)
            if current is None:  # ended meanwhile: its end is its own turn's to write
                continue
            if message_id in held:
                current.written_pieces, current.written_at = count, now
            else:
                self._answers.pop(message_id, None)
                current.on_lost()
