"""The process's side of the event bus: one Redis subscription, the local sockets, the cap.

Each API process holds one pattern subscription to every user's channel
(``<prefix>events:user:*``) on a connection of its own (no read timeout: it waits for
events) and hands each event to the sockets of that user in this process. The hand-off never
blocks (each socket has its own bounded queue), so one slow client cannot delay others.

Why one pattern subscription and not one channel per connected user or ``XREAD`` per socket:
one connection per process either way, but a per-user ``SUBSCRIBE`` would race with the
reader on that connection, and ``XREAD`` per socket costs a blocked Redis connection per
socket. Each process receives every user's events and drops those it has no socket for; at
the scale CodeAtlas targets (small teams) that is cheap (see benchmarks/ws_cycles.py).

The per-user connection cap counts across processes in a Redis sorted set per user: member =
connection id, score = expiry (Redis server time). A live socket renews its entry with every
heartbeat, so the slot of a crashed process expires by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from codeatlas.core.redis_client import key
from codeatlas.metrics.registry import WS_CONNECTIONS
from codeatlas.settings import Settings
from codeatlas.ws.connection import Connection
from codeatlas.ws.events import channel_pattern, parse_event_id, user_of_channel

logger = logging.getLogger(__name__)

# KEYS: the user's zset. ARGV: connection id, cap, ttl ms. 1 = slot taken, 0 = over the cap.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# Renew a live slot (XX: never re-create one that expired meanwhile and pushed us over).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class EventHub:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        assert settings.redis_url is not None
        # Its own connection pool: the subscription blocks on its socket without a timeout.
        self._sub_client = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=None,
            socket_connect_timeout=settings.redis_timeout,
            socket_keepalive=True,
        )
        self._by_user: defaultdict[int, set[Connection]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        self._listener = asyncio.create_task(self._listen(), name="ws-event-hub")
        try:
            await asyncio.wait_for(self.subscribed.wait(), wait)
        except TimeoutError:
            logger.warning("event hub not subscribed yet (Redis unreachable?); retrying")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._sub_client.aclose()

    async def _listen(self) -> None:
        pattern = channel_pattern(self.settings)
        backoff = 0.1
        while True:
            pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self.subscribed.set()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message["type"] == "pmessage":
                        self._dispatch(message["channel"], message["data"])
            except (RedisError, OSError) as exc:
                # Live events sent meanwhile are lost for live delivery; a client that
                # reconnects with its last id gets them from the stream.
                logger.warning("event subscription lost (%s); resubscribing in %.1fs", exc, backoff)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        user_id = user_of_channel(self.settings, channel.decode())
        connections = self._by_user.get(user_id) if user_id is not None else None
        if not connections:
            return
        text = data.decode()
        # The envelope starts with '{"id":"<id>",' (the publish script puts it there).
        event_id = parse_event_id(text[7 : text.find('"', 7)])
        if event_id is None:
            logger.warning("malformed event on %r dropped", channel)
            return
        for connection in list(connections):
            connection.deliver(event_id, text)

    # -- local sockets -----------------------------------------------------------------------

    def attach(self, connection: Connection) -> None:
        if connection not in self._by_user[connection.user_id]:
            WS_CONNECTIONS.inc()
        self._by_user[connection.user_id].add(connection)

    def detach(self, connection: Connection) -> None:
        connections = self._by_user.get(connection.user_id)
        if connections is not None:
            if connection in connections:
                WS_CONNECTIONS.dec()
            connections.discard(connection)
            if not connections:
                del self._by_user[connection.user_id]

    def local_connections(self, user_id: int | None = None) -> list[Connection]:
        if user_id is not None:
            return list(self._by_user.get(user_id, ()))
        return [c for conns in self._by_user.values() for c in conns]

    # -- the per-user cap --------------------------------------------------------------------

    def _slots_key(self, user_id: int) -> str:
        return key(self.settings, "ws", "conns", "user", user_id)

    @property
    def _slot_ttl_ms(self) -> int:
        s = self.settings
        return int((2 * s.ws_ping_interval + s.ws_pong_timeout) * 1000)

    async def acquire_slot(self, user_id: int, connection_id: str) -> bool:
        taken = await self.redis.eval(
            _ACQUIRE,
            1,
            self._slots_key(user_id),
            connection_id,
            self.settings.ws_max_connections_per_user,
            self._slot_ttl_ms,
        )
        return bool(int(taken))

    async def renew_slot(self, user_id: int, connection_id: str) -> None:
        try:
            await self.redis.eval(
                _RENEW, 1, self._slots_key(user_id), connection_id, self._slot_ttl_ms
            )
        except (RedisError, OSError) as exc:
            logger.warning("connection slot not renewed: %s", exc)

    async def release_slot(self, user_id: int, connection_id: str) -> None:
        try:
            await self.redis.zrem(self._slots_key(user_id), connection_id)
        except (RedisError, OSError) as exc:
            # It expires by itself after the slot TTL.
            logger.warning("connection slot not released: %s", exc)
