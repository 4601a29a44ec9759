"""Helpers of the chat tests: an app wired to the OpenAI test server, users, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from codeatlas.models import ProjectRole, User
from codeatlas.settings import Settings
from tests.code.helpers import make_project, make_user
from tests.factories import auth_headers

FINAL = {"complete", "stopped", "error"}


def llm_overrides(base_url: str, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "llm_provider": "openai",
        "llm_base_url": base_url,
        "llm_model": "test-model",
        "llm_max_retries": 1,
        "llm_retry_base_delay": 0.01,
        "llm_retry_max_delay": 0.05,
        "llm_read_timeout": 3.0,
        "use_sync_background": True,  # uploads in these tests are indexed inline
    }
    values.update(extra)
    return values


@dataclass
class ChatKit:
    app: FastAPI
    client: httpx.AsyncClient
    user: User
    other: User
    project_id: int
    foreign_project_id: int

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.state.settings
        return settings

    def headers(self, user: User | None = None) -> dict[str, str]:
        return auth_headers(user or self.user, self.settings)

    async def new_chat(self, **body: Any) -> int:
        r = await self.client.post("/api/v1/chats", json=body, headers=self.headers())
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def ask(self, chat_id: int, content: str, expect: int = 202) -> dict[str, Any]:
        r = await self.client.post(
            f"/api/v1/chats/{chat_id}/messages", json={"content": content}, headers=self.headers()
        )
        assert r.status_code == expect, r.text
        data: dict[str, Any] = r.json()
        return data

    async def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        r = await self.client.get(
            f"/api/v1/chats/{chat_id}/messages", params={"limit": 100}, headers=self.headers()
        )
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            if item["id"] == message_id:
                return dict(item)
        raise AssertionError(f"message {message_id} not found")

    async def wait(
        self, chat_id: int, message_id: int, statuses: set[str] = FINAL, timeout: float = 60
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.message(chat_id, message_id)
            if msg["status"] in statuses:
                return msg
            assert time.monotonic() < deadline, f"message stuck in {msg['status']}"
            await asyncio.sleep(0.05)


async def start_chat_kit(app: FastAPI) -> AsyncIterator[ChatKit]:
    db = None
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        db = app.state.db
        user, other = await make_user(db), await make_user(db)
        project = await make_project(db, {user: ProjectRole.OWNER})
        foreign = await make_project(db, {other: ProjectRole.OWNER}, name="elsewhere")
        yield ChatKit(app, c, user, other, project, foreign)
