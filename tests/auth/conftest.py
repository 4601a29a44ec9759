"""Fixtures of the auth tests: a real local SMTP server (aiosmtpd) and an app that mails to it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI

from tests.conftest import free_port


@dataclass
class Inbox:
    """Every message the SMTP server accepted."""

    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    async def wait_for(self, to: str, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.messages:
                if msg["To"] == to:
                    return msg
            await asyncio.sleep(0.05)
        raise AssertionError(f"no e-mail to {to}; got {[m['To'] for m in self.messages]}")


def verification_token(msg: Message) -> str:
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    found = re.search(r"token=([A-Za-z0-9_\-.]+)", body.decode())
    assert found, body
    return found.group(1)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
async def mail_app(app_factory: Any, inbox: Inbox) -> AsyncIterator[FastAPI]:
    app: FastAPI = app_factory(
        smtp_host="127.0.0.1", smtp_port=inbox.port, smtp_security="none", smtp_timeout=5.0
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mail_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
