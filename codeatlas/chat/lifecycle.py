"""Start-up of the chat domain: the turn manager and the WS `chat.stop` message.

Answers being generated at shut-down are cancelled and awaited; their messages end as
``error`` / ``INTERRUPTED`` (see :mod:`.turns`). Answers left ``pending``/``streaming`` by a
process that died without shutting down are marked the same way by the sweep of
:mod:`.recovery`: at start-up, then periodically.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI

from codeatlas.chat.recovery import StaleAnswerSweeper
from codeatlas.chat.turns import TurnManager
from codeatlas.errors import NotFound

logger = logging.getLogger(__name__)


async def stop_handler(ctx: Any, payload: dict[str, Any]) -> None:
    """WS ``{"type": "chat.stop", "message_id": N}``: the same as POST …/stop."""
    from codeatlas.chat.service import message_owned

    message_id = payload.get("message_id")
    if not isinstance(message_id, int) or isinstance(message_id, bool) or message_id < 1:
        raise NotFound("Message not found")
    db = ctx.app.state.db
    async with db.session() as session:
        message = await message_owned(session, ctx.user_id, message_id)
    turns: TurnManager = ctx.app.state.chat_turns
    await turns.stop(message.id)


def register_ws_handlers() -> None:
    from codeatlas.ws.handlers import register_handler

    register_handler("chat.stop", stop_handler)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    turns = TurnManager(app)
    app.state.chat_turns = turns
    stack.push_async_callback(turns.aclose)
    register_ws_handlers()
    sweeper = StaleAnswerSweeper(app)
    app.state.chat_sweeper = sweeper
    await sweeper.startup_sweep()
    sweeper.start()
    stack.push_async_callback(sweeper.aclose)
