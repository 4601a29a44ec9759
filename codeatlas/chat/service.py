"""Chat rules: ownership, pagination, message validation, limits, and accepting a question.

Services only flush; the request dependency owns the transaction. An answer is generated
after the request committed (:mod:`.turns`), so this module only writes the rows it reads.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.chat.prompt import fixed_prompt_tokens
from codeatlas.chat.schemas import ChatCreate
from codeatlas.db.base import utcnow
from codeatlas.errors import AppError, BadRequest, Conflict, NotFound
from codeatlas.knowledge.search import resolve_scope
from codeatlas.models import Chat, ChatMessage
from codeatlas.models.chat import ACTIVE_STATUSES
from codeatlas.settings import Settings

DEFAULT_TITLE = "New chat"


class MessageInvalid(AppError):
    status_code = 422
    error_code = "MESSAGE_INVALID"
    message = "Invalid message"


class QuotaExceeded(AppError):
    status_code = 429
    error_code = "QUOTA_EXCEEDED"
    message = "Daily token budget used up"


class ChatBusy(Conflict):
    error_code = "CHAT_BUSY"
    message = "An answer is still being generated in this chat; stop it or wait"


# -- chats ---------------------------------------------------------------------------------


async def create_chat(session: AsyncSession, user_id: int, body: ChatCreate) -> Chat:
    if body.project_id is not None:
        await resolve_scope(session, user_id, body.project_id)  # 404 unless a member
    title = (body.title or "").strip() or DEFAULT_TITLE
    chat = Chat(user_id=user_id, project_id=body.project_id, title=title)
    session.add(chat)
    await session.flush()
    return chat


async def get_chat(session: AsyncSession, user_id: int, chat_id: int) -> Chat:
    chat = await session.get(Chat, chat_id)
    if chat is None or chat.user_id != user_id:
        raise NotFound("Chat not found")
    return chat


def _encode_cursor(chat_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"id": chat_id}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["id"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR") from None
    if not isinstance(value, int):
        raise BadRequest("Invalid cursor", error_code="INVALID_CURSOR")
    return value


async def list_chats(
    session: AsyncSession, user_id: int, cursor: str | None, limit: int
) -> tuple[list[Chat], str | None]:
    """The user's chats, newest first, keyset-paginated by id."""
    conditions: list[ColumnElement[bool]] = [Chat.user_id == user_id]
    if cursor is not None:
        conditions.append(Chat.id < _decode_cursor(cursor))
    rows = list(
        await session.scalars(
            select(Chat).where(*conditions).order_by(Chat.id.desc()).limit(limit + 1)
        )
    )
    page = rows[:limit]
    return page, (_encode_cursor(page[-1].id) if len(rows) > limit else None)


async def rename_chat(session: AsyncSession, user_id: int, chat_id: int, title: str) -> Chat:
    chat = await get_chat(session, user_id, chat_id)
    title = title.strip()
    if not title:
        raise MessageInvalid("The title must not be blank", error_code="TITLE_EMPTY")
    chat.title = title
    chat.updated_at = utcnow()
    await session.flush()
    return chat


async def delete_chat(session: AsyncSession, user_id: int, chat_id: int) -> list[int]:
    """Delete the chat; the ids of answers still generating (the caller stops them)."""
    chat = await get_chat(session, user_id, chat_id)
    active = await session.scalars(
        select(ChatMessage.id).where(
            ChatMessage.chat_id == chat.id, ChatMessage.status.in_(ACTIVE_STATUSES)
        )
    )
    ids = list(active)
    await session.execute(delete(ChatMessage).where(ChatMessage.chat_id == chat.id))
    await session.delete(chat)
    await session.flush()
    return ids


# -- messages ------------------------------------------------------------------------------


async def list_messages(
    session: AsyncSession, chat: Chat, before: int | None, limit: int
) -> tuple[list[ChatMessage], int | None]:
    """A page of the chat's messages, newest first; the cursor is the oldest id shown."""
    conditions: list[ColumnElement[bool]] = [ChatMessage.chat_id == chat.id]
    if before is not None:
        conditions.append(ChatMessage.id < before)
    rows = list(
        await session.scalars(
            select(ChatMessage).where(*conditions).order_by(ChatMessage.id.desc()).limit(limit + 1)
        )
    )
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit else None)


def check_content(settings: Settings, content: str) -> str:
    """The question as sent, or 422: blank, over CHAT_MAX_MESSAGE_CHARS, or over what the
    model's context window can take with the instructions and room for an answer."""
    if not content.strip():
        raise MessageInvalid("The message must not be blank", error_code="MESSAGE_EMPTY")
    limit = settings.chat_max_message_chars
    if len(content) > limit:
        raise MessageInvalid(
            f"The message is longer than {limit} characters",
            error_code="MESSAGE_TOO_LONG",
            details={"max_chars": limit, "chars": len(content)},
        )
    room = settings.llm_context_window - settings.llm_max_tokens
    if fixed_prompt_tokens(content) > room:
        raise MessageInvalid(
            "The message does not fit the model's context window",
            error_code="MESSAGE_TOO_LONG",
            details={"context_window": settings.llm_context_window},
        )
    return content


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def tokens_today(session: AsyncSession, user_id: int) -> int:
    since = _day_start(utcnow())
    used = await session.scalar(
        select(
            func.coalesce(
                func.sum(
                    func.coalesce(ChatMessage.prompt_tokens, 0)
                    + func.coalesce(ChatMessage.completion_tokens, 0)
                ),
                0,
            )
        ).where(ChatMessage.user_id == user_id, ChatMessage.created_at >= since)
    )
    return int(used or 0)


async def check_budget(session: AsyncSession, settings: Settings, user_id: int) -> None:
    budget = settings.chat_daily_token_budget
    if not budget:
        return
    used = await tokens_today(session, user_id)
    if used >= budget:
        now = utcnow()
        retry = int((_day_start(now) + timedelta(days=1) - now).total_seconds()) + 1
        raise QuotaExceeded(
            f"Daily token budget of {budget} tokens used up; it resets at 00:00 UTC",
            headers={"Retry-After": str(retry)},
            details={"budget": budget, "used": used, "retry_after": retry},
        )


async def _active_answer(session: AsyncSession, chat_id: int) -> int | None:
    return await session.scalar(
        select(ChatMessage.id)
        .where(ChatMessage.chat_id == chat_id, ChatMessage.status.in_(ACTIVE_STATUSES))
        .limit(1)
    )


def _pending_answer(chat: Chat, request_id: str) -> ChatMessage:
    return ChatMessage(
        chat_id=chat.id,
        user_id=chat.user_id,
        role="assistant",
        content="",
        status="pending",
        citations=[],
        request_id=request_id,
    )


async def _touch(session: AsyncSession, chat: Chat) -> None:
    """Write first: on SQLite a transaction that read and then writes fails at once
    ("database is locked") if another connection committed in between (a turn saving its
    answer); one that starts with a write waits for the lock instead."""
    await session.execute(update(Chat).where(Chat.id == chat.id).values(updated_at=utcnow()))


async def add_question(
    session: AsyncSession, chat: Chat, content: str, request_id: str
) -> tuple[ChatMessage, ChatMessage]:
    """The question (complete) and its answer (pending), written together.

    The chat row is written first (:func:`_touch`), which serialises asks on one chat; the
    request's own transaction is fine (SQLite takes its write lock at that first write,
    :mod:`codeatlas.db.sqlite_locking`). ``chat`` is only read.
    """
    await _touch(session, chat)
    if await _active_answer(session, chat.id) is not None:
        raise ChatBusy()
    question = ChatMessage(
        chat_id=chat.id,
        user_id=chat.user_id,
        role="user",
        content=content,
        status="complete",
        citations=[],
        request_id=request_id,
    )
    answer = _pending_answer(chat, request_id)
    # One flush, one INSERT for both rows: the ORM's multi-row INSERT … RETURNING assigns
    # the ids in the order the rows were added (on PostgreSQL by its INSERT … SELECT …
    # ORDER BY form), so the question's id stays below its answer's.
    session.add_all([question, answer])
    await session.flush()
    assert question.id < answer.id
    return question, answer


async def prepare_regenerate(
    session: AsyncSession, chat: Chat, request_id: str
) -> tuple[ChatMessage, ChatMessage]:
    """Replace the last answer by a new pending one; (its question, the new answer)."""
    await _touch(session, chat)
    if await _active_answer(session, chat.id) is not None:
        raise ChatBusy()
    last = await session.scalar(
        select(ChatMessage)
        .where(ChatMessage.chat_id == chat.id)
        .order_by(ChatMessage.id.desc())
        .limit(1)
    )
    if last is None:
        raise Conflict("There is no answer to regenerate", error_code="NOTHING_TO_REGENERATE")
    if last.role == "assistant":
        question = await session.scalar(
            select(ChatMessage)
            .where(
                ChatMessage.chat_id == chat.id,
                ChatMessage.role == "user",
                ChatMessage.id < last.id,
            )
            .order_by(ChatMessage.id.desc())
            .limit(1)
        )
        await session.delete(last)
    else:  # the answer was deleted with its chat's last turn: answer the last question again
        question = last
    if question is None:
        raise Conflict("There is no question to answer", error_code="NOTHING_TO_REGENERATE")
    answer = _pending_answer(chat, request_id)
    session.add(answer)
    await session.flush()
    return question, answer


async def history(
    session: AsyncSession, chat_id: int, before_id: int, limit: int
) -> list[tuple[str, str]]:
    """(role, content) of earlier finished messages, oldest first, for the prompt."""
    if limit <= 0:
        return []
    rows = await session.execute(
        select(ChatMessage.role, ChatMessage.content)
        .where(
            ChatMessage.chat_id == chat_id,
            ChatMessage.id < before_id,
            ChatMessage.status.in_(("complete", "stopped")),
            ChatMessage.content != "",
        )
        .order_by(ChatMessage.id.desc())
        .limit(limit)
    )
    return [(r, c) for r, c in reversed(rows.all())]


async def message_owned(session: AsyncSession, user_id: int, message_id: int) -> ChatMessage:
    msg = await session.get(ChatMessage, message_id)
    if msg is None or msg.user_id != user_id:
        raise NotFound("Message not found")
    return msg
