"""Settings owned by the jobs domain (mixed into :class:`codeatlas.settings.Settings`).

Background jobs (6-B), the worker heartbeats readiness reads (2-B) and the admin pages.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import NoDecode

DEFAULT_EMBEDDED_WORKER_THREADS = 2


class JobsSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    # -- where jobs run --------------------------------------------------------------------
    use_sync_background: bool = Field(
        False,
        description=(
            "6-B roll-back, development only: jobs run inside the API process right after the "
            "request commits (no broker, no retries, no crash recovery). Refused in production."
        ),
    )
    embedded_worker_threads: int | None = Field(
        None,
        description=(
            "Dramatiq worker threads that `codeatlas serve` runs inside the API process. "
            f"Unset: {DEFAULT_EMBEDDED_WORKER_THREADS} when no external REDIS_URL is configured "
            "(the embedded default: one command serves and processes uploads), 0 otherwise "
            "(run `codeatlas worker` processes instead)."
        ),
    )
    embedded_worker_mode: Literal["process", "threads"] = Field(
        "process",
        description=(
            "Where `codeatlas serve` runs the EMBEDDED_WORKER_THREADS when the embedded vector "
            "store is used (QDRANT_URL unset). `process`: a supervised worker child process "
            "that also owns the vector store and serves it to the API processes over a Unix "
            "socket (restarted if it dies; `--workers N` works). `threads`: inside the API "
            "process, as before (one API process only; HNSW builds and embedding then share "
            "the API's GIL). Measured in docs/ARCHITECTURE.md."
        ),
    )
    embedded_worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description=(
            "Scheduling niceness the worker child of `codeatlas serve` (EMBEDDED_WORKER_MODE="
            "process) adds to itself, e.g. 10: parsing and embedding then yield the CPU to "
            "the API processes and to every other program. 0 (default): the same priority "
            "as the API. Measured in docs/benchmarks.md."
        ),
    )
    jobs_worker_threads: int = Field(
        4, description="Default `--threads` of `codeatlas worker`: threads per worker process."
    )
    jobs_extra_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated extra modules whose actors workers load, besides CodeAtlas's own "
            "(plugins; the test suite loads its probe actors this way)."
        ),
    )

    # -- retries and limits ---------------------------------------------------------------
    jobs_max_retries: int = Field(
        3,
        description=(
            "Retries after a failed attempt (so at most 1 + this many attempts) before a job is "
            "`dead`. Actors may declare their own."
        ),
    )
    jobs_min_backoff_ms: int = Field(
        2000,
        description=(
            "Delay before the first retry; each further retry waits about twice as long "
            "(exponential backoff with jitter), capped by JOBS_MAX_BACKOFF_MS."
        ),
    )
    jobs_max_backoff_ms: int = Field(300_000, description="Longest delay between two retries.")
    jobs_time_limit_ms: int = Field(
        600_000,
        description="Default time limit of one attempt; an attempt over it fails and is retried.",
    )
    jobs_shutdown_timeout: float = Field(
        30.0,
        description=(
            "Seconds a stopping worker waits for running jobs to finish; unfinished ones are "
            "redelivered to another worker."
        ),
    )

    # -- crash recovery (Dramatiq's Redis broker) ------------------------------------------
    jobs_broker_heartbeat_timeout_ms: int = Field(
        10_000,
        description=(
            "A worker whose broker heartbeat is older than this counts as dead and its "
            "in-flight messages go back to the queue. Dramatiq's default (60 s), together with "
            "its rare maintenance, left a SIGKILLed worker's job waiting for minutes; keep this "
            "well above the longest pause of a live worker's consumer thread."
        ),
    )
    jobs_broker_maintenance_chance: int = Field(
        500_000,
        description=(
            "Out of 1,000,000 broker commands, how many also run the maintenance that "
            "redelivers dead workers' messages. Idle consumers poll about once a second, so "
            "500000 redelivers within a few seconds after JOBS_BROKER_HEARTBEAT_TIMEOUT_MS "
            "(10-15 s in all with the defaults); Dramatiq's default 1000 takes minutes. While "
            "a dead worker is being cleaned up, maintenance runs a KEYS scan: on a large shared "
            "Redis give the broker its own database."
        ),
    )
    jobs_broker_socket_timeout: float = Field(
        5.0, description="Seconds a broker Redis command may take before it fails."
    )

    # -- worker heartbeats (2-B) ------------------------------------------------------------
    worker_heartbeat_interval: float = Field(
        1.0,
        description=(
            "Each worker process writes Redis key `worker:<host>:<pid>` (under "
            "REDIS_KEY_PREFIX) this often, in seconds; also how soon readiness recovers "
            "after Redis comes back empty (one SET per worker per interval)."
        ),
    )
    worker_heartbeat_stale_after: float = Field(
        4.0,
        description=(
            "Readiness check `workers`: ready while at least one worker heartbeat is younger "
            "than this many seconds (also the keys' TTL)."
        ),
    )
    jobs_workers_required: bool = Field(
        True,
        description=(
            "Register the `workers` readiness check (when Redis is configured and jobs are not "
            "run inline). false: this API node stays ready without any worker."
        ),
    )

    # -- the outbox relay, leases and the reaper (issue 10) --------------------------------
    jobs_relay_poll_interval: float = Field(
        1.0,
        description=(
            "Seconds between two looks of the outbox relay at pending job messages when no "
            "commit woke it (a commit that enqueued wakes the relay of its process at once)."
        ),
    )
    jobs_relay_batch: int = Field(
        200, description="Pending job messages one relay claims and sends per round."
    )
    jobs_relay_backoff_max: float = Field(
        5.0,
        description=(
            "Longest pause of the relay between attempts while Redis or the database is away "
            "(the pause doubles from 0.2 s up to this): pending jobs leave at most this long "
            "after the component returns."
        ),
    )
    jobs_relay_send_timeout: float = Field(
        5.0,
        description=(
            "Seconds one send to the broker may take (it runs in the relay's own thread, never "
            "on the event loop) before the relay counts Redis as away."
        ),
    )
    jobs_lease_seconds: float = Field(
        60.0,
        description=(
            "A running job's lease: its worker renews it every JOBS_LEASE_RENEW_INTERVAL; a "
            "`running` job whose lease is older than this (its worker died or lost the "
            "database) is re-queued by the reaper."
        ),
    )
    jobs_lease_renew_interval: float = Field(
        10.0,
        description=(
            "Seconds between two lease renewals of a worker's running jobs; also how fast a "
            "running job cancelled by an admin is aborted."
        ),
    )
    jobs_reaper_interval: float = Field(
        5.0,
        description=(
            "Seconds between two reaper passes (in every relay): re-queue running jobs with "
            "an expired lease, mark dead-lettered messages `dead`, re-send messages lost with "
            "a Redis restart."
        ),
    )
    jobs_worker_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated queues `codeatlas worker` consumes (its `--queues` default); "
            "empty: all of them (`code.parse`, `knowledge.embed`, `default`)."
        ),
    )

    # -- admin ------------------------------------------------------------------------------
    admin_basic_user: str = Field(
        "",
        description=(
            "With ADMIN_BASIC_PASSWORD: HTTP basic credentials accepted by /admin/jobs and "
            "/api/v1/admin/jobs besides an admin user's token. Empty: basic auth is off."
        ),
    )
    admin_basic_password: str = Field(
        "",
        description="Password for ADMIN_BASIC_USER (at least 12 characters, else basic is off).",
    )

    @field_validator("jobs_extra_modules", "jobs_worker_queues", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_sync_background_in_production(self) -> Self:
        if getattr(self, "env", None) == "production" and self.use_sync_background:
            raise ValueError("USE_SYNC_BACKGROUND is for development only; refused in production")
        return self

    @property
    def admin_basic_enabled(self) -> bool:
        return bool(self.admin_basic_user) and len(self.admin_basic_password) >= 12

    @property
    def in_process_worker_threads(self) -> int:
        """Worker threads inside the API process (0: jobs go to `codeatlas worker`)."""
        if getattr(self, "use_sync_background", False):
            return 0
        if self.embedded_worker_threads is not None:
            return max(0, self.embedded_worker_threads)
        return 0 if getattr(self, "redis_url", None) else DEFAULT_EMBEDDED_WORKER_THREADS
