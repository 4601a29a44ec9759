"""Start-up and shut-down of the jobs domain: called once by the app's lifespan.

Chooses, once, where the jobs this process commits go:

* REDIS_URL set: the Redis broker, fed by this process's outbox relay
  (:mod:`codeatlas.jobs.outbox`), which also keeps leases and runs the reaper. With
  EMBEDDED_WORKER_THREADS > 0 (the embedded default, where `codeatlas serve` started its own
  Valkey) this process also runs worker threads;
  otherwise `codeatlas worker` processes do, and readiness gets the `workers` check (2-B).
* USE_SYNC_BACKGROUND=true (development), or no Redis at all: jobs run on this process's
  event loop right after the commit.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from fastapi import FastAPI

from codeatlas.jobs.broker import close_broker, setup_broker
from codeatlas.jobs.enqueue import InlineDispatcher, set_dispatcher
from codeatlas.jobs.heartbeat import workers_check
from codeatlas.jobs.outbox import BrokerSender, Relay
from codeatlas.jobs.runtime import configure
from codeatlas.jobs.worker import start_worker
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)


async def startup(app: FastAPI, stack: AsyncExitStack) -> None:
    """Create this domain's long-lived resources; register their shut-down on `stack`."""
    settings: Settings = app.state.settings
    runtime = configure(settings)
    if settings.use_sync_background or not settings.redis_url:
        if not settings.use_sync_background:
            logger.warning("REDIS_URL is not set: background jobs run inline, without retries")
        runtime.use_database(app.state.db)
        inline = InlineDispatcher(runtime)
        previous = set_dispatcher(inline)
        app.state.jobs_dispatcher = inline

        async def stop_inline() -> None:
            await inline.drain()
            set_dispatcher(previous)

        stack.push_async_callback(stop_inline)
        return

    broker = await asyncio.to_thread(setup_broker, settings, runtime)
    previous = set_dispatcher(None)  # committed jobs wait in the outbox for the relay
    app.state.jobs_broker = broker

    def stop_broker() -> None:
        set_dispatcher(previous)
        close_broker(broker)

    stack.callback(stop_broker)
    sender = BrokerSender(broker, settings.jobs_relay_send_timeout)
    relay = Relay(settings, app.state.db, runtime, sender, name="api")
    relay.start()
    app.state.jobs_relay = relay
    stack.push_async_callback(relay.stop)

    threads = settings.in_process_worker_threads
    if threads > 0:
        running = await asyncio.to_thread(start_worker, broker, settings, threads, mode="embedded")
        stack.push_async_callback(asyncio.to_thread, running.stop)
    if settings.jobs_workers_required and app.state.redis is not None:
        app.state.health.register("workers", workers_check(app.state.redis, settings))
