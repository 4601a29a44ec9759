"""The chat API: chats, history, questions (answered over the WebSocket), stop, regenerate."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.auth.deps import AppSettings, CurrentUser
from codeatlas.chat import service
from codeatlas.chat.schemas import (
    ChatCreate,
    ChatOut,
    ChatPage,
    ChatUpdate,
    CitationOut,
    MessageAccepted,
    MessageCreate,
    MessageOut,
    MessagePage,
    RegenerateAccepted,
    StopAccepted,
    UsageOut,
)
from codeatlas.chat.turns import TurnJob, TurnManager
from codeatlas.core.context import get_request_id, new_request_id
from codeatlas.core.ratelimit import RateLimitsDep, rule
from codeatlas.db.session import SessionDep, atomic
from codeatlas.errors import NotFound, responses
from codeatlas.knowledge.search import Scope, resolve_scope
from codeatlas.llm.client import LLMClient
from codeatlas.llm.lifecycle import get_llm
from codeatlas.models import Chat, ChatMessage
from codeatlas.models.chat import ACTIVE_STATUSES
from codeatlas.settings import Settings

router = APIRouter(prefix="/chats", tags=["chat"])

ChatId = Annotated[int, Path(ge=1, le=2**31 - 1)]
MessageId = Annotated[int, Path(ge=1, le=2**31 - 1)]
LLMDep = Annotated[LLMClient, Depends(get_llm)]
ASK_ERRORS = responses(401, 404, 409, 429, 503)


def get_turns(request: Request) -> TurnManager:
    turns: TurnManager = request.app.state.chat_turns
    return turns


TurnsDep = Annotated[TurnManager, Depends(get_turns)]


def _chat(chat: Chat) -> ChatOut:
    return ChatOut(
        id=chat.id,
        title=chat.title,
        project_id=chat.project_id,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
    )


def _message(m: ChatMessage) -> MessageOut:
    usage = None
    if m.prompt_tokens is not None or m.completion_tokens is not None:
        usage = UsageOut(
            prompt_tokens=m.prompt_tokens or 0,
            completion_tokens=m.completion_tokens or 0,
            estimated=m.usage_estimated,
        )
    citations: list[Any] = m.citations or []
    return MessageOut(
        id=m.id,
        chat_id=m.chat_id,
        role=m.role,
        content=m.content,
        status=m.status,
        citations=[CitationOut(**c) for c in citations],
        usage=usage,
        error_code=m.error_code,
        created_at=m.created_at,
    )


# -- chats ---------------------------------------------------------------------------------


@router.post("", status_code=201, responses=responses(401, 404), summary="Start a chat")
async def create_chat(body: ChatCreate, user: CurrentUser, session: SessionDep) -> ChatOut:
    """A new chat, answering from `project_id` (you must be a member; else 404) or from
    every project you are a member of."""
    return _chat(await service.create_chat(session, user.id, body))


@router.get("", responses=responses(400, 401), summary="Your chats, newest first")
async def list_chats(
    user: CurrentUser,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ChatPage:
    chats, next_cursor = await service.list_chats(session, user.id, cursor, limit)
    return ChatPage(items=[_chat(c) for c in chats], next_cursor=next_cursor)


@router.patch("/{chat_id}", responses=responses(401, 404), summary="Rename a chat")
async def rename_chat(
    chat_id: ChatId, body: ChatUpdate, user: CurrentUser, session: SessionDep
) -> ChatOut:
    return _chat(await service.rename_chat(session, user.id, chat_id, body.title))


@router.delete(
    "/{chat_id}", status_code=204, responses=responses(401, 404), summary="Delete a chat"
)
async def delete_chat(
    chat_id: ChatId, user: CurrentUser, session: SessionDep, turns: TurnsDep
) -> Response:
    """Deletes the chat and its messages; an answer still being generated is stopped."""
    for message_id in await service.delete_chat(session, user.id, chat_id):
        await turns.stop(message_id)
    return Response(status_code=204)


# -- messages ------------------------------------------------------------------------------


@router.get("/{chat_id}/messages", responses=responses(401, 404), summary="History, newest first")
async def list_messages(
    chat_id: ChatId,
    user: CurrentUser,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> MessagePage:
    """Newest first; pass `next_cursor` as `before` for older messages. An answer still being
    generated shows the content saved so far (the WS events carry every token)."""
    chat = await service.get_chat(session, user.id, chat_id)
    messages, next_cursor = await service.list_messages(session, chat, before, limit)
    return MessagePage(items=[_message(m) for m in messages], next_cursor=next_cursor)


async def _limits(request: Request, limits: RateLimitsDep, user_id: int) -> None:
    settings = request.app.state.settings
    await limits.enforce(
        rule(settings, settings.chat_messages_per_minute, 60, "chat-messages", user_id)
    )


async def _scope(session: AsyncSession, settings: Settings, chat: Chat) -> Scope | None:
    """What the answer may draw on, checked now, in the request's session: the turn starts
    retrieving at once instead of opening a session for it first (~3 ms before the first
    token). None when answers use no context."""
    if settings.chat_context_top_k == 0:
        return None
    return await resolve_scope(session, chat.user_id, chat.project_id)


def _spawn_after_commit(
    tasks: BackgroundTasks,
    turns: TurnManager,
    chat: Chat,
    q: ChatMessage,
    a: ChatMessage,
    scope: Scope | None,
) -> None:
    # Background tasks run after the request's transaction committed: the turn's own
    # sessions then see both rows.
    job = TurnJob(
        chat_id=chat.id,
        project_id=chat.project_id,
        user_id=chat.user_id,
        question_id=q.id,
        message_id=a.id,
        question=q.content,
        request_id=a.request_id or new_request_id(),
        scope=scope,
    )
    tasks.add_task(turns.start, job)


@router.post(
    "/{chat_id}/messages",
    status_code=202,
    responses={**ASK_ERRORS, **responses(422)},
    summary="Ask a question; the answer streams over the WebSocket",
)
async def ask(
    request: Request,
    chat_id: ChatId,
    body: MessageCreate,
    user: CurrentUser,
    session: SessionDep,
    settings: AppSettings,
    limits: RateLimitsDep,
    turns: TurnsDep,
    tasks: BackgroundTasks,
    _llm: LLMDep,
) -> MessageAccepted:
    """Stores the question and a `pending` answer, then generates the answer in the
    background: `chat.token` events (`{chat_id, message_id, index, text}`), then `chat.done`
    (`{…, status, usage, citations}`) or `chat.error` (`{…, error_code, message}`), each
    with this request's `request_id`. 422 MESSAGE_EMPTY / MESSAGE_TOO_LONG, 429
    RATE_LIMITED (CHAT_MESSAGES_PER_MINUTE) or QUOTA_EXCEEDED (CHAT_DAILY_TOKEN_BUDGET),
    409 CHAT_BUSY while an answer is generating, 503 LLM_NOT_CONFIGURED."""
    content = service.check_content(settings, body.content)
    chat = await service.get_chat(session, user.id, chat_id)
    await service.check_budget(session, settings, user.id)
    await _limits(request, limits, user.id)
    turns.warm(content)  # the question's embedding overlaps the writes below
    scope = await _scope(session, settings, chat)
    rid = get_request_id() or new_request_id()
    # In the request's own transaction: a second session per request deadlocked the pool
    # under concurrent asks (each request held one connection and waited for another;
    # 30 asks over two processes answered 503 after the 30 s pool timeout).
    async with atomic(session):
        question, answer = await service.add_question(session, chat, content, rid)
    _spawn_after_commit(tasks, turns, chat, question, answer, scope)
    return MessageAccepted(
        user_message_id=question.id, assistant_message_id=answer.id, request_id=rid
    )


@router.post(
    "/{chat_id}/regenerate",
    status_code=202,
    responses=ASK_ERRORS,
    summary="Replace the last answer by a new one",
)
async def regenerate(
    request: Request,
    chat_id: ChatId,
    user: CurrentUser,
    session: SessionDep,
    settings: AppSettings,
    limits: RateLimitsDep,
    turns: TurnsDep,
    tasks: BackgroundTasks,
    _llm: LLMDep,
) -> RegenerateAccepted:
    """Deletes the last answer and generates a new one for the same question (same events
    as asking). 409 NOTHING_TO_REGENERATE on an empty chat, CHAT_BUSY while generating."""
    chat = await service.get_chat(session, user.id, chat_id)
    await service.check_budget(session, settings, user.id)
    await _limits(request, limits, user.id)
    scope = await _scope(session, settings, chat)
    rid = get_request_id() or new_request_id()
    async with atomic(session):
        question, answer = await service.prepare_regenerate(session, chat, rid)
    _spawn_after_commit(tasks, turns, chat, question, answer, scope)
    return RegenerateAccepted(assistant_message_id=answer.id, request_id=rid)


@router.post(
    "/{chat_id}/messages/{message_id}/stop",
    status_code=202,
    responses=responses(401, 404),
    summary="Stop generating an answer",
)
async def stop(
    chat_id: ChatId, message_id: MessageId, user: CurrentUser, session: SessionDep, turns: TurnsDep
) -> StopAccepted:
    """Ends the generation within about a second, whichever API process runs it; the partial
    answer is kept with status `stopped` (announced by `chat.done`). A finished answer is
    left as it is."""
    chat = await service.get_chat(session, user.id, chat_id)
    message = await service.message_owned(session, user.id, message_id)
    if message.chat_id != chat.id:
        raise NotFound("Message not found")
    if message.status in ACTIVE_STATUSES:
        await turns.stop(message.id)
    return StopAccepted(message_id=message.id, status=message.status)
