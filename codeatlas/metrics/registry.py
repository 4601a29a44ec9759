"""Every metric CodeAtlas exposes, declared once.

Names follow Prometheus conventions (``codeatlas_`` prefix, base units, ``_total`` for
counters). Gauges carry a ``multiprocess_mode`` so that with ``serve --workers N``
(``PROMETHEUS_MULTIPROC_DIR`` set by serve) each is aggregated the way it means: counts of
this process's things are summed over live processes; values read from the database or
Redis at scrape time are the same everywhere, so the most recent one wins.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "codeatlas_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "codeatlas_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_QUERY_DURATION = Histogram(
    "codeatlas_db_query_duration_seconds",
    "Time of one database statement.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 5),
)
DB_SLOW_QUERIES = Counter(
    "codeatlas_db_slow_queries_total",
    "Database statements slower than METRICS_SLOW_QUERY_SECONDS (0.2 s by default).",
)
RATE_LIMIT_REFUSALS = Counter(
    "codeatlas_rate_limit_refusals_total",
    "Requests refused with 429, by route template.",
    ["route"],
)
JOBS = Gauge(
    "codeatlas_jobs",
    "Jobs in the jobs table, by actor and state (read at scrape time).",
    ["actor", "state"],
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH = Gauge(
    "codeatlas_queue_depth",
    "Jobs waiting to run (queued), by queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)
QUEUE_OLDEST_AGE = Gauge(
    "codeatlas_queue_oldest_age_seconds",
    "Age of the oldest queued job, by queue (0 when none waits).",
    ["queue"],
    multiprocess_mode="mostrecent",
)
OUTBOX_BACKLOG = Gauge(
    "codeatlas_outbox_backlog",
    "Job messages written but not yet handed to the broker.",
    multiprocess_mode="mostrecent",
)
WORKERS_ALIVE = Gauge(
    "codeatlas_worker_heartbeats",
    "Worker processes whose heartbeat is fresh.",
    multiprocess_mode="mostrecent",
)
COMPONENT_UP = Gauge(
    "codeatlas_component_up",
    "Readiness of each component: 1 ready, 0 failing (checked at scrape time).",
    ["component"],
    multiprocess_mode="mostrecent",
)
BREAKER_STATE = Gauge(
    "codeatlas_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["breaker"],
    multiprocess_mode="max",
)
WS_CONNECTIONS = Gauge(
    "codeatlas_ws_connections",
    "Open WebSocket connections.",
    multiprocess_mode="livesum",
)
WS_TASKS = Gauge(
    "codeatlas_ws_tasks",
    "Tasks tracked for WebSocket connections (2-C); should follow connections.",
    multiprocess_mode="livesum",
)
LLM_DURATION = Histogram(
    "codeatlas_llm_request_duration_seconds",
    "Time of one LLM completion, from request to the last token.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LLM_TIME_TO_FIRST_TOKEN = Histogram(
    "codeatlas_llm_time_to_first_token_seconds",
    "Time from sending a completion request to its first token.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LLM_TOKENS = Counter(
    "codeatlas_llm_tokens_total",
    "Tokens sent to and received from the LLM, by kind (prompt, completion).",
    ["kind"],
)
LLM_ERRORS = Counter(
    "codeatlas_llm_errors_total",
    "LLM calls that ended in an error, by error code.",
    ["error_code"],
)
EMBEDDED_CHUNKS = Counter(
    "codeatlas_embedded_chunks_total",
    "Texts embedded (code chunks and knowledge entries).",
)
EMBEDDING_DURATION = Histogram(
    "codeatlas_embedding_batch_duration_seconds",
    "Time to embed one batch of texts.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


# Known label values start at 0, so a dashboard shows "none yet" rather than "no data".
for _kind in ("prompt", "completion"):
    LLM_TOKENS.labels(_kind)
for _code in ("LLM_UNAVAILABLE", "LLM_RATE_LIMITED", "LLM_TIMEOUT", "LLM_BAD_RESPONSE"):
    LLM_ERRORS.labels(_code)
