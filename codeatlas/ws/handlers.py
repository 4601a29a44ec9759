"""Handlers of client → server WebSocket messages, registered by type (e.g. ``chat.stop``).

A domain registers its handler at import time::

    register_handler("chat.stop", stop_generation)

The socket calls it with a :class:`WSContext` and the message (a dict with ``type``) in a
task of the connection (``ctx.spawn``), so a slow handler never stalls the socket's reads and
is cancelled with the connection (2-C). Types ``auth``, ``ping`` and ``pong`` belong to the
socket itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

RESERVED = frozenset({"auth", "ping", "pong"})


@dataclass(frozen=True, slots=True)
class WSContext:
    """What a handler may use: the app, who sent the message, and the connection's tasks."""

    app: FastAPI
    user_id: int
    connection_id: str
    # The id this message runs under (its own ``request_id`` if it sent a valid one): every
    # log line and event the handler produces carries it (2-A).
    request_id: str
    _spawn: Callable[[Coroutine[Any, Any, Any]], Any]
    _send: Callable[[dict[str, Any]], None]

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` as a task of this connection: cancelled and awaited when it closes."""
        return self._spawn(coro)

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for this socket only (not stored for replay)."""
        self._send(message)


Handler = Callable[[WSContext, dict[str, Any]], Awaitable[None]]

_handlers: dict[str, Handler] = {}


def register_handler(type: str, fn: Handler) -> None:
    """Route client messages of ``type`` to ``fn``; registering a type twice is an error."""
    if type in RESERVED:
        raise ValueError(f"message type {type!r} is reserved by the socket")
    existing = _handlers.get(type)
    if existing is not None and existing is not fn:
        raise ValueError(f"a handler for {type!r} is already registered")
    _handlers[type] = fn


def get_handler(type: str) -> Handler | None:
    return _handlers.get(type)


def unregister_handler(type: str) -> None:
    """For tests and plugins that unload."""
    _handlers.pop(type, None)
