"""Generating answers: one tracked background task per answer, stoppable from any process.

A turn runs in the API process that accepted the question, under that request's id (every
log line, WS event and Sentry event of the turn carries it). It retrieves material, builds
the prompt, streams the LLM's tokens as ``chat.token`` events, saves the partial answer every
CHAT_SAVE_INTERVAL seconds, and ends with ``chat.done`` (complete or stopped) or
``chat.error`` — the stored message always ends in one of those states.

Stop: ``POST …/stop`` (or the WS message ``chat.stop``) on any process sets a Redis key that
the generating process reads every CHAT_STOP_POLL_INTERVAL seconds, for all its turns in one
MGET (and, on the same process, sets the turn's event directly). Generation is cancelled,
the partial answer kept as ``stopped``.

Tasks are registered in :class:`TurnManager` (never fire-and-forget): cancelled and awaited
at shut-down, their messages marked ``error`` / ``INTERRUPTED``. An unexpected exception
ends the turn as ``error`` / ``INTERNAL_ERROR`` and then reaches the log and Sentry with
the turn's request id.

Lease: while a turn runs it renews its message's ``updated_at`` every
CHAT_ANSWER_HEARTBEAT_SECONDS, and every write of the turn is conditional on the message
still being ``pending``/``streaming``. A process that dies without shutting down leaves a
lease that expires; :mod:`.recovery` then marks the message ``INTERRUPTED``. A turn whose
write matches no row (swept after an outage longer than the lease, or its chat deleted) has
lost its message: it stops and publishes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import sentry_sdk
from fastapi import FastAPI
from sqlalchemy import update

from codeatlas.chat.prompt import Prompt, build_prompt
from codeatlas.chat.retrieval import retrieve
from codeatlas.chat.saving import AnswerWriter
from codeatlas.chat.service import history
from codeatlas.core.context import bind_request_id, get_request_id
from codeatlas.core.ratelimit import REDIS_DOWN
from codeatlas.core.redis_client import key as redis_key
from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.errors import AppError
from codeatlas.knowledge.search import Scope
from codeatlas.llm.client import LLMClient, StreamOutcome, Usage
from codeatlas.llm.errors import LLMNotConfigured
from codeatlas.models import Chat, ChatMessage
from codeatlas.models.chat import ACTIVE_STATUSES
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

STOP_TTL = 300  # seconds a stop flag outlives the request that set it


class LeaseLost(Exception):
    """The turn's message is no longer `pending`/`streaming` (swept, or its chat deleted)."""


@dataclass(frozen=True, slots=True)
class TurnJob:
    chat_id: int
    project_id: int | None
    user_id: int
    question_id: int
    message_id: int
    question: str
    request_id: str
    scope: Scope | None = None  # resolved by the request; None: the turn resolves it


@dataclass(slots=True)
class TurnState:
    pieces: list[str] = field(default_factory=list)
    prompt: Prompt | None = None
    outcome: StreamOutcome = field(default_factory=StreamOutcome)
    lost: bool = False  # the message was taken from this turn (see LeaseLost)

    @property
    def content(self) -> str:
        return "".join(self.pieces)

    def usage(self) -> Usage | None:
        if self.outcome.usage is not None:
            return self.outcome.usage
        if self.prompt is None:
            return None
        # The server reported none (llama.cpp ignores stream_options.include_usage): the
        # prompt is estimated from its characters, the answer counted one token per piece.
        return Usage(math.ceil(self.prompt.chars / 4), len(self.pieces), estimated=True)


def stop_key(settings: Settings, message_id: int) -> str:
    return redis_key(settings, "chat", "stop", message_id)


async def publish(app: FastAPI, user_id: int, type_: str, data: dict[str, Any]) -> None:
    """One WS event to every socket of the user, on any API process (the ws domain's fan-out),
    after every event this process queued before it (:class:`EventBatcher`)."""
    await emit(app, user_id, type_, data)


def emit(app: FastAPI, user_id: int, type_: str, data: dict[str, Any]) -> asyncio.Future[str]:
    """Queue one WS event without waiting for Redis; the future says whether it was sent."""
    from codeatlas.ws.events import EventBatcher

    batcher: EventBatcher | None = getattr(app.state, "event_batcher", None)
    if batcher is None:  # no Redis at all: nobody can be listening (the WS needs it too)
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.set_result("")
        return done
    return batcher.emit(user_id, type_, data, request_id=get_request_id())


class TurnManager:
    """The answers this process is generating, by assistant message id."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.settings: Settings = app.state.settings
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._stops: dict[int, asyncio.Event] = {}
        self._warming: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._writer: AnswerWriter | None = None
        self._closing = False

    @property
    def db(self) -> Database:
        db: Database = self.app.state.db
        return db

    @property
    def writer(self) -> AnswerWriter:
        """Saves every answer's content and renews its lease, one statement per tick."""
        if self._writer is None:
            self._writer = AnswerWriter(self.db, self.settings)
        return self._writer

    @property
    def redis(self) -> aioredis.Redis | None:
        return getattr(self.app.state, "redis", None)

    def active(self) -> list[int]:
        return list(self._tasks)

    def spawn(self, job: TurnJob) -> None:
        if self._closing:
            raise RuntimeError("shutting down")
        with bind_request_id(job.request_id):  # the task and its callback copy this context
            self._stops[job.message_id] = asyncio.Event()
            task = asyncio.create_task(self._run(job), name=f"chat-turn-{job.message_id}")
            self._tasks[job.message_id] = task
            task.add_done_callback(lambda t: self._done(job, t))
        if self.redis is not None and (self._poller is None or self._poller.done()):
            self._poller = asyncio.create_task(self._watch_stops(), name="chat-stop-flags")

    def warm(self, question: str) -> None:
        """Start embedding ``question`` now, while its request is still being written: the
        turn's searches then await this embedding (the embedder shares a text being
        embedded) instead of starting it after the commit. Tracked, cancelled at shut-down."""
        if self._closing or self.settings.chat_context_top_k == 0:
            return
        task = asyncio.create_task(self._warm(question), name="chat-warm")
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _warm(self, question: str) -> None:
        from codeatlas.knowledge.embeddings import EmbeddingUnavailable

        runtime = getattr(self.app.state, "knowledge", None)
        if runtime is None:
            return
        # A failure is the turn's own search's to report (it falls back to keywords).
        with contextlib.suppress(EmbeddingUnavailable):
            await runtime.embedder().embed([question])

    async def start(self, job: TurnJob) -> None:
        """:meth:`spawn` as a coroutine, for Starlette's background tasks (which would run a
        plain function in a thread, outside the event loop)."""
        self.spawn(job)

    def _done(self, job: TurnJob, task: asyncio.Task[None]) -> None:
        self._tasks.pop(job.message_id, None)
        self._stops.pop(job.message_id, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error(
                "chat turn %s failed unexpectedly",
                job.message_id,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            sentry_sdk.capture_exception(exc)

    async def stop(self, message_id: int) -> None:
        """Ask the turn generating ``message_id`` to stop, wherever it runs."""
        event = self._stops.get(message_id)
        if event is not None:
            event.set()
        if self.redis is not None:
            try:
                await self.redis.set(stop_key(self.settings, message_id), b"1", ex=STOP_TTL)
            except REDIS_DOWN as exc:
                if event is None:
                    raise
                logger.warning("stop flag not written to Redis (%s); stopped locally", exc)

    async def aclose(self) -> None:
        self._closing = True
        tasks = [*self._tasks.values(), *self._warming]
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._writer is not None:
            await self._writer.aclose()

    # -- one turn -----------------------------------------------------------------------------

    async def _watch_stops(self) -> None:
        """One poller for every turn of this process: the stop flags of all of them are read
        with one MGET every CHAT_STOP_POLL_INTERVAL (a poll per turn cost 5 Redis calls per
        second per answer: 1,000/s at 200 answers). Ends when no turn is left."""
        redis = self.redis
        assert redis is not None
        while self._stops:
            ids = list(self._stops)
            try:
                flags = await redis.mget([stop_key(self.settings, i) for i in ids])
            except REDIS_DOWN as exc:
                logger.warning("cannot read the stop flags (%s)", exc)
            else:
                for message_id, flag in zip(ids, flags, strict=True):
                    event = self._stops.get(message_id)
                    if flag is not None and event is not None:
                        event.set()
            await asyncio.sleep(self.settings.chat_stop_poll_interval)

    async def _run(self, job: TurnJob) -> None:
        state = TurnState()
        stop = self._stops.get(job.message_id) or asyncio.Event()
        logger.info("chat turn started: chat %s, message %s", job.chat_id, job.message_id)
        started = time.perf_counter()
        helpers: list[asyncio.Task[Any]] = []

        def lost() -> None:  # the writer's renewal matched no row: the message is gone
            state.lost = True
            stop.set()

        self.writer.add(job.message_id, lambda: state.content, lambda: len(state.pieces), lost)
        status, error = "error", AppError("Internal error", error_code="INTERNAL_ERROR")
        gen: asyncio.Task[None] | None = None
        try:
            gen = asyncio.create_task(self._generate(job, state))
            helpers.append(stopper := asyncio.create_task(stop.wait()))
            await asyncio.wait({gen, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if gen.done():
                gen.result()  # an AppError or a bug: raised here
                status = "complete"
            else:
                gen.cancel()
                await asyncio.wait({gen})
                if not gen.cancelled() and gen.exception() is None:
                    status = "complete"  # finished in the same instant
                else:
                    status = "stopped"
        except AppError as exc:
            error = exc
        except LeaseLost:
            state.lost = True
        except asyncio.CancelledError:
            error = AppError("The server shut down during the answer", error_code="INTERRUPTED")
            raise
        finally:
            self.writer.remove(job.message_id)
            for helper in helpers:
                helper.cancel()
            if gen is not None and not gen.done():
                gen.cancel()
                await asyncio.wait({gen})
            # Shielded: a shut-down must not leave the message `streaming` forever.
            await asyncio.shield(self._finish(job, state, status, error))
            if state.lost:
                status = "lost"
            logger.info(
                "chat turn %s: %s in %.0f ms (%d pieces)",
                job.message_id,
                status if status != "error" else f"error {error.error_code}",
                (time.perf_counter() - started) * 1000,
                len(state.pieces),
            )

    async def _generate(self, job: TurnJob, state: TurnState) -> None:
        client: LLMClient | None = getattr(self.app.state, "llm", None)
        if client is None:
            raise LLMNotConfigured()
        retrieval_started = time.perf_counter()
        # The lease write, the history and retrieval overlap: all three stand before the
        # first token.
        held, past, hits = await asyncio.gather(
            self._save(job.message_id, {"status": "streaming"}),
            self._history(job),
            retrieve(
                self.db,
                self.app.state.knowledge,
                self.settings,
                job.user_id,
                job.project_id,
                job.question,
                scope=job.scope,
            ),
        )
        if not held:
            raise LeaseLost()
        state.prompt = build_prompt(self.settings, job.question, past, hits)
        logger.info(
            "prompt: %d chars, %d citations, %d history messages, retrieval %.1f ms",
            state.prompt.chars,
            len(state.prompt.cited),
            state.prompt.history_used,
            (time.perf_counter() - retrieval_started) * 1000,
        )
        # The content so far is saved by the process's AnswerWriter (with the lease).
        # Tokens are queued for Redis without waiting (one pipeline per batch, in order); a
        # token the publisher could not send fails the turn as a failed publish always did.
        sent: deque[asyncio.Future[str]] = deque()
        stream = client.stream_chat(state.prompt.messages, state.outcome)
        async with aclosing(stream) as pieces:
            async for text in pieces:
                index = len(state.pieces)
                state.pieces.append(text)
                sent.append(
                    emit(
                        self.app,
                        job.user_id,
                        "chat.token",
                        {
                            "chat_id": job.chat_id,
                            "message_id": job.message_id,
                            "index": index,
                            "text": text,
                        },
                    )
                )
                while sent and sent[0].done():
                    sent.popleft().result()
        for future in sent:
            await future

    async def _history(self, job: TurnJob) -> list[tuple[str, str]]:
        async with self.db.session() as session:
            return await history(
                session, job.chat_id, job.question_id, self.settings.chat_history_messages
            )

    async def _save(self, message_id: int, values: dict[str, Any]) -> bool:
        """Write the message (and renew its lease) if it is still this turn's to write."""
        async with self.db.session() as session, atomic(session):
            result = await session.execute(
                update(ChatMessage)
                .where(ChatMessage.id == message_id, ChatMessage.status.in_(ACTIVE_STATUSES))
                .values(**values, updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _finish(self, job: TurnJob, state: TurnState, status: str, error: AppError) -> None:
        if state.lost:
            logger.warning(
                "chat turn %s lost its message (marked interrupted by a sweep, or its chat "
                "was deleted); its end is not recorded",
                job.message_id,
            )
            return
        usage = state.usage()
        citations = state.prompt.citations() if state.prompt is not None else []
        values: dict[str, Any] = {
            "content": state.content,
            "status": status,
            "citations": citations,
            "error_code": error.error_code if status == "error" else None,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "usage_estimated": bool(usage and usage.estimated),
        }
        if not await self._save(job.message_id, values):
            state.lost = True
            logger.warning("chat turn %s: its message is gone or already ended", job.message_id)
            return
        async with self.db.session() as session, atomic(session):
            await session.execute(
                update(Chat).where(Chat.id == job.chat_id).values(updated_at=utcnow())
            )
        base = {"chat_id": job.chat_id, "message_id": job.message_id}
        if status == "error":
            logger.warning("chat turn %s ended with %s", job.message_id, error.error_code)
            data = {**base, "error_code": error.error_code, "message": error.message}
            await self._publish_final(job, "chat.error", data)
        else:
            data = {
                **base,
                "status": status,
                "usage": usage.as_dict() if usage else None,
                "citations": citations,
            }
            await self._publish_final(job, "chat.done", data)

    async def _publish_final(self, job: TurnJob, type_: str, data: dict[str, Any]) -> None:
        try:
            await publish(self.app, job.user_id, type_, data)
        except REDIS_DOWN as exc:  # the stored message still says how the turn ended
            logger.error("could not publish %s for message %s: %s", type_, job.message_id, exc)
