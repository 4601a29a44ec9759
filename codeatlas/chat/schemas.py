"""Request and response bodies of the chat API (a contract the web app codes against)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codeatlas.core.timestamps import UtcDatetime

Role = Literal["user", "assistant"]
Status = Literal["pending", "streaming", "complete", "stopped", "error"]
ID = Field(ge=1, le=2**31 - 1)


class ChatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200, description='Default: "New chat".')
    project_id: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Answer from this project only (you must be a member; else 404). "
        "Omitted: every project you are a member of.",
    )


class ChatUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)


class ChatOut(BaseModel):
    id: int
    title: str
    project_id: int | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ChatPage(BaseModel):
    items: list[ChatOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class CitationOut(BaseModel):
    n: int = Field(description="The [n] marker the answer uses.")
    document_id: int | None
    project_id: int | None
    path: str | None
    start_line: int
    end_line: int
    kb_entry_id: int | None
    title: str | None


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = Field(
        False,
        description="True when the LLM server reported no usage (llama.cpp) and the counts "
        "are estimates (characters / 4).",
    )


class MessageOut(BaseModel):
    id: int
    chat_id: int
    role: Role
    content: str
    status: Status
    citations: list[CitationOut]
    usage: UsageOut | None
    error_code: str | None = Field(
        description=(
            "Why an `error` answer failed: an LLM_* code, INTERRUPTED (its server process "
            "stopped while writing it; the partial text is kept: regenerate it), "
            "INTERNAL_ERROR."
        )
    )
    created_at: UtcDatetime


class MessagePage(BaseModel):
    items: list[MessageOut] = Field(description="Newest first.")
    next_cursor: int | None = Field(
        None, description="Pass as `before` for the next (older) page; null on the last."
    )


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(
        description="The question: not blank, at most CHAT_MAX_MESSAGE_CHARS characters "
        "(422 MESSAGE_EMPTY / MESSAGE_TOO_LONG)."
    )


class MessageAccepted(BaseModel):
    user_message_id: int
    assistant_message_id: int
    request_id: str = Field(description="Carried by every WS event of this answer.")


class RegenerateAccepted(BaseModel):
    assistant_message_id: int
    request_id: str


class StopAccepted(BaseModel):
    message_id: int
    status: Status = Field(description="The message's status when the stop was sent.")
