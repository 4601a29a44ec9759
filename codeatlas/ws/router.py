"""``/api/v1/ws``: the authenticated WebSocket (protocol in docs/WEBSOCKET.md).

1. The client sends ``{"type": "auth", "token": <access token>, "last_event_id"?: <id>}``
   within WS_AUTH_TIMEOUT; anything else closes 4401 (tokens never travel in URLs and are
   never logged).
2. Over WS_MAX_CONNECTIONS_PER_USER open sockets (all API processes): 4429.
3. ``{"type": "ready", "user_id", "connection_id", "request_id"}``, then the missed events
   (``last_event_id``), then live events; pings every WS_PING_INTERVAL.

The connection runs under one request id (the handshake's ``X-Request-ID`` or a new one):
every log line it writes carries it; each client message runs under its own (2-A).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from fastapi import APIRouter, WebSocket
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from codeatlas.auth.errors import TokenExpired, TokenInvalid
from codeatlas.auth.tokens import decode_access_token
from codeatlas.core.context import bind_request_id, get_request_id
from codeatlas.models import User
from codeatlas.settings import Settings
from codeatlas.ws.connection import (
    CLOSE_AUTH,
    CLOSE_TOO_MANY,
    CLOSE_UNAVAILABLE,
    Connection,
)
from codeatlas.ws.events import parse_event_id, read_since
from codeatlas.ws.handlers import Handler, WSContext, get_handler
from codeatlas.ws.hub import EventHub

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ws"])


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """The event socket (see the module docstring and docs/WEBSOCKET.md)."""
    # The handshake's request id (asgi-correlation-id also handles WebSocket scopes) or ours.
    with bind_request_id(get_request_id()):
        await websocket.accept()
        hub: EventHub | None = getattr(websocket.app.state, "ws_hub", None)
        if hub is None:
            await websocket.close(CLOSE_UNAVAILABLE, "EVENTS_UNAVAILABLE")
            return
        try:
            user_id, last_event_id = await _authenticate(websocket)
        except _Refused as refused:
            logger.info("websocket refused: %s", refused.reason)
            await _close_quietly(websocket, refused.code, refused.reason)
            return
        except _Gone:
            return
        await _serve(websocket, hub, user_id, last_event_id)


class _Gone(Exception):
    """The client left during the handshake."""


async def _authenticate(websocket: WebSocket) -> tuple[int, str | None]:
    settings: Settings = websocket.app.state.settings
    try:
        first = await asyncio.wait_for(websocket.receive(), settings.ws_auth_timeout)
    except TimeoutError:
        raise _Refused(CLOSE_AUTH, "AUTH_TIMEOUT") from None
    if first["type"] == "websocket.disconnect":
        raise _Gone()
    try:
        message = json.loads(first.get("text") or "")
    except ValueError:
        raise _Refused(CLOSE_AUTH, "AUTH_REQUIRED") from None
    if not isinstance(message, dict) or message.get("type") != "auth":
        raise _Refused(CLOSE_AUTH, "AUTH_REQUIRED")
    token = message.get("token")
    if not isinstance(token, str) or not token:
        raise _Refused(CLOSE_AUTH, "AUTH_REQUIRED")
    try:
        claims = decode_access_token(token, settings)
        user_id, version = int(claims["sub"]), int(claims.get("ver", 0))
    except TokenExpired:
        raise _Refused(CLOSE_AUTH, "TOKEN_EXPIRED") from None
    except (TokenInvalid, KeyError, TypeError, ValueError):
        raise _Refused(CLOSE_AUTH, "TOKEN_INVALID") from None
    try:
        async with websocket.app.state.db.session() as session:
            user = await session.get(User, user_id)
            valid = user is not None and user.token_version == version and user.is_active
    except SQLAlchemyError as exc:
        logger.warning("websocket auth: database unavailable: %s", exc)
        raise _Refused(CLOSE_UNAVAILABLE, "DATABASE_UNAVAILABLE") from None
    if not valid:
        # deleted, deactivated, or the password changed since the token was issued
        raise _Refused(CLOSE_AUTH, "TOKEN_INVALID")
    last = message.get("last_event_id")
    return user_id, last if isinstance(last, str) else None


async def _serve(
    websocket: WebSocket, hub: EventHub, user_id: int, last_event_id: str | None
) -> None:
    settings: Settings = websocket.app.state.settings
    connection_id = uuid.uuid4().hex
    try:
        allowed = await hub.acquire_slot(user_id, connection_id)
    except (RedisError, OSError) as exc:
        logger.warning("websocket refused, Redis unavailable: %s", exc)
        await _close_quietly(websocket, CLOSE_UNAVAILABLE, "EVENTS_UNAVAILABLE")
        return
    if not allowed:
        logger.info("websocket refused: user %s is at the connection cap", user_id)
        await _close_quietly(websocket, CLOSE_TOO_MANY, "TOO_MANY_CONNECTIONS")
        return
    conn = Connection(
        websocket,
        user_id=user_id,
        connection_id=connection_id,
        queue_size=settings.ws_send_queue_size,
        tracking=settings.ws_task_tracking,
    )
    # The socket's own loops are always tasks of the connection; only sends and handler
    # tasks follow WS_TASK_TRACKING.
    internal: list[asyncio.Task[Any]] = []
    hub.attach(conn)  # from here on, live events wait in `pending` until replay is done
    logger.info("websocket %s open for user %s", connection_id, user_id)
    try:
        if settings.ws_task_tracking:
            internal.append(asyncio.create_task(conn.writer()))
        conn.send_json(
            {
                "type": "ready",
                "user_id": user_id,
                "connection_id": connection_id,
                "request_id": get_request_id(),
            }
        )
        internal.append(asyncio.create_task(conn.reader(lambda t: _on_message(conn, websocket, t))))
        internal.append(
            asyncio.create_task(
                conn.heartbeat(
                    settings.ws_ping_interval,
                    settings.ws_pong_timeout,
                    lambda: hub.renew_slot(user_id, connection_id),
                )
            )
        )
        await _replay(conn, hub, settings, last_event_id)
        conn.go_live()
        await conn.wait_closed()
    finally:
        hub.detach(conn)
        for task in internal:
            task.cancel()
        await asyncio.gather(*internal, return_exceptions=True)
        await conn.shutdown()
        await conn.close()
        await hub.release_slot(user_id, connection_id)
        logger.info(
            "websocket %s closed (%s %s)", connection_id, conn.close_code, conn.close_reason
        )


async def _replay(
    conn: Connection, hub: EventHub, settings: Settings, last_event_id: str | None
) -> None:
    if last_event_id is None:
        return
    last = parse_event_id(last_event_id)
    if last is None:
        conn.send_json({"type": "replay.truncated", "reason": "unknown last_event_id"})
        return
    conn.last_id = last
    try:
        events, truncated = await read_since(
            hub.redis, settings, conn.user_id, last_event_id, settings.ws_replay_max
        )
    except (RedisError, OSError) as exc:
        logger.warning("replay for connection %s failed: %s", conn.connection_id, exc)
        conn.send_json({"type": "replay.truncated", "reason": "replay unavailable"})
        return
    if truncated:
        conn.send_json({"type": "replay.truncated", "reason": "events were missed"})
    for event_id, text in events:
        parsed = parse_event_id(event_id)
        if parsed is not None and parsed > conn.last_id:
            conn.last_id = parsed
            await conn.put(text, settings.ws_pong_timeout)


def _on_message(conn: Connection, websocket: WebSocket, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        conn.send_json(_error("BAD_MESSAGE", "expected a JSON object with a string `type`"))
        return
    kind = message["type"]
    if kind == "pong":
        return  # `last_seen` is already updated
    if kind == "ping":
        conn.send_json({"type": "pong"})
        return
    handler = get_handler(kind)
    if handler is None:
        conn.send_json(_error("UNKNOWN_MESSAGE_TYPE", f"no handler for {kind[:64]!r}"))
        return
    rid = message.get("request_id")
    with bind_request_id(rid if isinstance(rid, str) else None) as request_id:
        ctx = WSContext(
            app=websocket.app,
            user_id=conn.user_id,
            connection_id=conn.connection_id,
            request_id=request_id,
            _spawn=conn.spawn,
            _send=conn.send_json,
        )
        # The task copies the context now, so the handler runs under `request_id`.
        conn.spawn(_handle(handler, ctx, message))


async def _handle(handler: Handler, ctx: WSContext, message: dict[str, Any]) -> None:
    await handler(ctx, message)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error_code": code, "message": message, "request_id": get_request_id()}


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, OSError):  # the client may already be gone
        await websocket.close(code, reason)
