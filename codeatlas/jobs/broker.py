"""The process's Dramatiq broker: a RedisBroker built once, at start-up, from the settings.

The API process uses it to send; worker processes (and the worker threads of the embedded
default) consume from it. Crash recovery is the broker's: a worker that stops heart-beating
for JOBS_BROKER_HEARTBEAT_TIMEOUT_MS counts as dead and any consumer's maintenance pass
(JOBS_BROKER_MAINTENANCE_CHANCE per million commands) puts its unacknowledged messages back
on the queue.
"""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    CurrentMessage,
    Middleware,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from codeatlas.core.redis_client import key
from codeatlas.jobs.actors import declare_actors
from codeatlas.jobs.middleware import JobContext, JobTracking
from codeatlas.jobs.runtime import JobRuntime
from codeatlas.settings import Settings

_broker: RedisBroker | None = None


def build_broker(settings: Settings, runtime: JobRuntime) -> RedisBroker:
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set: there is no broker to build")
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.jobs_broker_socket_timeout,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
    )
    # Order matters: before-hooks run in this order, after-hooks in reverse. JobContext binds
    # the request id before JobTracking logs; JobTracking's after-hook must run after
    # Retries' (which decides retry or dead) and before AsyncIO stops the event loop.
    middleware: list[Middleware] = [
        AgeLimit(),
        TimeLimit(time_limit=settings.jobs_time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        AsyncIO(),
        CurrentMessage(),
        JobContext(),
        JobTracking(runtime),
        Retries(
            max_retries=settings.jobs_max_retries,
            min_backoff=settings.jobs_min_backoff_ms,
            max_backoff=settings.jobs_max_backoff_ms,
        ),
    ]
    broker = RedisBroker(
        client=client,
        namespace=key(settings, "dramatiq"),
        heartbeat_timeout=settings.jobs_broker_heartbeat_timeout_ms,
        maintenance_chance=settings.jobs_broker_maintenance_chance,
        middleware=middleware,
    )
    declare_actors(broker, settings)
    return broker


def setup_broker(settings: Settings, runtime: JobRuntime) -> RedisBroker:
    """Build the broker and make it this process's (and Dramatiq's) global one."""
    global _broker
    broker = build_broker(settings, runtime)
    dramatiq.set_broker(broker)
    _broker = broker
    return broker


def get_broker() -> RedisBroker:
    if _broker is None:
        raise RuntimeError("no broker: the jobs domain has not started")
    return _broker


def close_broker(broker: RedisBroker) -> None:
    global _broker
    broker.close()
    broker.client.close()
    if _broker is broker:
        _broker = None
