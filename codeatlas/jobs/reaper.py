"""The reaper: keeps the ``jobs`` table the truth when workers, Redis or the database fail.

Run by every relay every JOBS_REAPER_INTERVAL. Each step is a conditional UPDATE (or guarded
by a Redis ``SET NX``), so relays of several processes may run it at the same time without
doing anything twice that matters:

* a `running` job whose lease expired (its worker was SIGKILLed, or lost the database for
  longer than JOBS_LEASE_SECONDS) is re-queued through the outbox;
* a message Dramatiq dead-lettered (retries exhausted) marks its job `dead` with the error,
  if the worker could not record that itself; the dead-letter entry is then dropped, since
  an admin retries from the table;
* when the broker's Redis comes back empty (a restart without persistence loses every
  message), the one relay that notices first re-sends every job that was sent but not started.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import q_name
from dramatiq.message import Message
from sqlalchemy import and_, or_, update

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models.job import Job, JobStatus
from codeatlas.settings import Settings

if TYPE_CHECKING:
    from codeatlas.jobs.outbox import BrokerSender

logger = logging.getLogger(__name__)

DEAD_LETTER_BATCH = 500
EPOCH_KEY = "codeatlas-epoch"


@dataclass(slots=True)
class ReaperState:
    epoch: str | None = None


def requeue_values(reason: str | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": JobStatus.QUEUED.value,
        "send_at": utcnow(),
        "send_seq": Job.send_seq + 1,
        "send_claimed_until": None,
        "lease_until": None,
        "worker_id": None,
        "updated_at": utcnow(),
    }
    if reason is not None:
        values["last_error"] = reason
    return values


async def reclaim_expired(db: Database, settings: Settings) -> list[str]:
    """Re-queue `running` jobs whose lease expired."""
    now = utcnow()
    async with db.session() as session, atomic(session):
        ids = (
            await session.scalars(
                update(Job)
                .where(
                    Job.status == JobStatus.RUNNING.value,
                    or_(
                        Job.lease_until < now,
                        and_(
                            Job.lease_until.is_(None),
                            Job.updated_at < now - timedelta(seconds=settings.jobs_lease_seconds),
                        ),
                    ),
                )
                .values(**requeue_values("reclaimed: the lease of its worker expired"))
                .returning(Job.message_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    for message_id in ids:
        logger.warning("job %s: its worker's lease expired; re-queued", message_id)
    return list(ids)


# -- Redis side (blocking; runs on the relay's thread) ----------------------------------------


def _epoch(broker: RedisBroker) -> tuple[str, bool]:
    """The broker data's epoch, and whether this call created it (Redis came back empty)."""
    name = f"{broker.namespace}:{EPOCH_KEY}"
    current = broker.client.get(name)
    if current is None:
        fresh = uuid.uuid4().hex
        if broker.client.set(name, fresh, nx=True):
            return fresh, True
        current = broker.client.get(name)
    return (current.decode() if isinstance(current, bytes) else str(current)), False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    queue: str
    redis_id: str
    message_id: str
    dead_at: datetime
    error: str


def _dead_letters(broker: RedisBroker) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    queues = {q_name(q) for q in broker.get_declared_queues()}
    for queue in sorted(queues):
        xq = f"{broker.namespace}:{queue}.XQ"
        entries = broker.client.zrange(xq, 0, DEAD_LETTER_BATCH - 1, withscores=True)
        if not entries:
            continue
        ids = [e[0] for e in entries]
        bodies = broker.client.hmget(xq + ".msgs", ids)
        for (redis_id, score), body in zip(entries, bodies, strict=True):
            rid = redis_id.decode() if isinstance(redis_id, bytes) else str(redis_id)
            if body is None:
                found.append(DeadLetter(queue, rid, "", datetime.now(UTC), ""))
                continue
            message = Message.decode(body)
            trace = str(message.options.get("traceback") or "").strip()
            error = trace.splitlines()[-1] if trace else "dead-lettered by the broker"
            dead_at = datetime.fromtimestamp(score / 1000, UTC)
            found.append(DeadLetter(queue, rid, message.message_id, dead_at, error[:4000]))
    return found


def _forget(broker: RedisBroker, letters: list[DeadLetter]) -> None:
    for letter in letters:
        xq = f"{broker.namespace}:{letter.queue}.XQ"
        broker.client.zrem(xq, letter.redis_id)
        broker.client.hdel(xq + ".msgs", letter.redis_id)


async def sweep_dead_letters(db: Database, sender: BrokerSender) -> int:
    letters: list[DeadLetter] = await sender.call(_dead_letters, sender.broker)
    if not letters:
        return 0
    marked = 0
    async with db.session() as session, atomic(session):
        for letter in letters:
            if not letter.message_id:
                continue
            result = await session.execute(
                update(Job)
                .where(
                    Job.message_id == letter.message_id,
                    Job.status.in_(
                        [JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.RETRYING.value]
                    ),
                    # Not if an admin re-queued it (or a new attempt started) since.
                    Job.updated_at <= letter.dead_at,
                )
                .values(
                    status=JobStatus.DEAD.value,
                    last_error=letter.error,
                    finished_at=utcnow(),
                    updated_at=utcnow(),
                    lease_until=None,
                )
                .execution_options(synchronize_session=False)
            )
            marked += int(getattr(result, "rowcount", 0) or 0)
    await sender.call(_forget, sender.broker, letters)
    if marked:
        logger.warning("%d dead-lettered job(s) marked dead from the broker", marked)
    return marked


async def resend_if_broker_lost(
    db: Database, sender: BrokerSender, state: ReaperState
) -> list[str]:
    epoch, created = await sender.call(_epoch, sender.broker)
    first_look, state.epoch = state.epoch is None, epoch
    if not created:
        return []
    async with db.session() as session, atomic(session):
        ids = (
            await session.scalars(
                update(Job)
                .where(
                    Job.status.in_([JobStatus.QUEUED.value, JobStatus.RETRYING.value]),
                    Job.send_at.is_(None),
                )
                .values(**requeue_values())
                .returning(Job.message_id)
                .execution_options(synchronize_session=False)
            )
        ).all()
    if ids or not first_look:
        logger.warning("the broker's Redis came back empty: %d sent job(s) re-sent", len(ids))
    return list(ids)


async def reap(
    db: Database, settings: Settings, sender: BrokerSender | None, state: ReaperState
) -> None:
    await reclaim_expired(db, settings)
    if sender is None:
        return
    try:
        await resend_if_broker_lost(db, sender, state)
        await sweep_dead_letters(db, sender)
    except Exception as exc:
        logger.debug("reaper: broker side skipped: %s", "".join(traceback.format_exception(exc)))
        raise
