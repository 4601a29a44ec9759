"""Settings owned by the WebSocket and event-bus domain (mixed into ``Settings``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WebSocketSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    # -- the event bus -------------------------------------------------------------------------
    events_stream_maxlen: int = Field(
        1000,
        ge=10,
        description=(
            "Events kept per user for replay after a reconnect (Redis Stream, trimmed with "
            "MAXLEN ~, so a little more may be kept)."
        ),
    )
    events_stream_ttl_seconds: int = Field(
        3600,
        ge=1,
        description=(
            "A user's replay stream expires this long after its last event; a client away "
            "longer reloads its state instead of replaying."
        ),
    )

    # -- connections -------------------------------------------------------------------------
    ws_auth_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a new socket has to send its `auth` message; closed 4401 after.",
    )
    ws_max_connections_per_user: int = Field(
        10,
        ge=1,
        description=(
            "Open sockets one user may hold across all API processes; one more is closed 4429."
        ),
    )
    ws_ping_interval: float = Field(
        20.0,
        gt=0,
        description=(
            'Seconds between the server\'s `{"type": "ping"}` messages; the connection\'s slot '
            "in the per-user count is renewed at the same pace."
        ),
    )
    ws_pong_timeout: float = Field(
        20.0,
        gt=0,
        description=(
            "A socket that sent nothing (no `pong`, no message) for WS_PING_INTERVAL + this "
            "many seconds is dead: closed 4408."
        ),
    )
    ws_send_queue_size: int = Field(
        256,
        ge=1,
        description=(
            "Events waiting to be written to one socket. A client that does not read fills it "
            "and is closed 1013, so memory per connection stays bounded."
        ),
    )
    ws_replay_max: int = Field(
        500,
        ge=0,
        description=(
            "Most events replayed to a reconnecting client that sent `last_event_id`; a client "
            'further behind gets `{"type": "replay.truncated"}` and should reload.'
        ),
    )
    ws_per_message_deflate: bool = Field(
        False,
        description=(
            "Compress WebSocket messages (permessage-deflate) when the client offers it. Off: "
            "events are small (a chat token is a few bytes of text in a ~200-byte envelope) "
            "and compressing every one cost ~10% of an API process's CPU with 200 streams."
        ),
    )
    ws_task_tracking: bool = Field(
        True,
        description=(
            "2-C roll-back. true: every task a connection spawns (sends, handlers) is "
            "registered, cancelled and awaited on disconnect. false: the old fire-and-forget "
            "sends and tasks, nothing cancelled (and no bounded send queue)."
        ),
    )
