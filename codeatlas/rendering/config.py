"""Settings owned by the rendering domain (mixed into :class:`codeatlas.settings.Settings`)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class RenderingSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    render_endpoint: str | None = Field(
        None,
        description=(
            "4-A. Base URL of a `codeatlas render-svc` (e.g. http://render-svc:8080); the API "
            "forwards Markdown to `<RENDER_ENDPOINT>/render/markdown` behind a circuit breaker "
            "and renders locally while it is open. Unset (the roll-back): render in-process."
        ),
    )
    render_connect_timeout: float = Field(
        1.0, gt=0, description="Seconds to open a TCP connection to RENDER_ENDPOINT."
    )
    render_read_timeout: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds render-svc may go without sending bytes once the request is sent (also the "
            "write timeout). A call that hangs longer counts as a breaker failure. An input "
            "within the complexity limits takes < 250 ms of CPU to render (issue 11); keep "
            "it well above that."
        ),
    )
    render_pool_timeout: float = Field(
        1.0,
        gt=0,
        description=(
            "Seconds a request waits for a free pooled connection to render-svc before it is "
            "rendered locally instead. Not a breaker failure: render-svc was not called."
        ),
    )
    render_max_connections: int = Field(
        64, ge=1, description="Connections to render-svc one API process keeps open at most."
    )
    render_max_keepalive: int = Field(
        32, ge=0, description="Idle keep-alive connections to render-svc kept in the pool."
    )
    render_keepalive_expiry: float = Field(
        2.0,
        ge=0,
        description=(
            "Seconds an idle pooled connection to render-svc is reused. Keep it below "
            "render-svc's keep-alive timeout (uvicorn: 5 s), or the server may close a "
            "connection just as it is reused."
        ),
    )
    render_connect_retries: int = Field(
        1,
        ge=0,
        description=(
            "Extra attempts of one call after a network error (refused, reset or dropped "
            "connection; never after a timeout or a 5xx). Attempts of one call count as one "
            "breaker failure."
        ),
    )
    render_breaker_threshold: int = Field(
        3, ge=1, description="Consecutive failed render-svc calls that open the circuit breaker."
    )
    render_breaker_reset: float = Field(
        30.0,
        ge=0,
        description=(
            "Seconds the breaker stays open before one trial call is let through; its success "
            "closes the breaker, its failure re-opens it for another period."
        ),
    )
    render_cache_ttl: int = Field(
        3600,
        ge=0,
        description=(
            "Seconds a rendered result stays cached (Redis when REDIS_URL is set, else an "
            "in-process LRU). 0 disables the cache."
        ),
    )
    render_memory_cache_size: int = Field(
        1024, ge=1, description="Entries of the in-process render cache used without Redis."
    )
    render_max_input_bytes: int = Field(
        200_000,
        ge=1,
        description=(
            "Largest Markdown input (UTF-8 bytes) rendered; larger answers 413 "
            "PAYLOAD_TOO_LARGE. Applies to the API and to render-svc."
        ),
    )
    render_max_inline_marks: int = Field(
        10_000,
        ge=1,
        description=(
            "Most Markdown punctuation marks (* + # _ : @ > ` - [ ] % $ & ! = < \\ ~ ^ { } |) "
            "outside fenced code one input may hold; more answers 422 MARKDOWN_TOO_COMPLEX. "
            "The parser stops at each of them (unmatched brackets, emphasis runs; issue 11)."
        ),
    )
    render_max_lines: int = Field(
        5_000,
        ge=1,
        description=(
            "Most lines outside fenced code one input may hold (each can open a block: "
            "headings, list items, table rows); more answers 422 MARKDOWN_TOO_COMPLEX."
        ),
    )
    render_max_work: int = Field(
        100_000,
        ge=1,
        description=(
            "Most estimated render work one input may need, in units of about 1 µs of CPU on "
            "the reference machine: characters, lines, punctuation marks, brackets, table "
            "cells, formulas, highlighted and linkified characters, each weighted by its "
            "measured cost (codeatlas/rendering/complexity.py). More answers 422 "
            "MARKDOWN_TOO_COMPLEX. The default keeps every accepted input under 250 ms "
            "(docs/benchmarks.md, issue 11); raise it only with a larger time budget."
        ),
    )
    render_max_highlight_chars: int = Field(
        10_000,
        ge=0,
        description=(
            "Characters of fenced code Pygments highlights per document; each also costs 12 "
            "units of what RENDER_MAX_WORK leaves after parsing and linkify (code blocks and "
            "formulas are paid in document order). A block that does not fit is sent as "
            "plain escaped code (not refused). Lexers cost 1-10 µs per character."
        ),
    )
    render_linkify_max_chars: int = Field(
        10_000,
        ge=0,
        description=(
            "Longest document (characters) whose bare URLs are turned into links, if "
            "RENDER_MAX_WORK still has 5 units a character after parsing; "
            "otherwise it is rendered without linkify (explicit links and <https://...> "
            "still work). linkify costs 1.5-4 µs per character."
        ),
    )
    render_max_math_chars: int = Field(
        10_000,
        ge=0,
        description=(
            "Characters of $...$ formulas converted to MathML per document; each also costs 5 "
            "units of what RENDER_MAX_WORK leaves (see RENDER_MAX_HIGHLIGHT_CHARS). A formula "
            "that does not fit is shown as its source. latex2mathml costs 2-5 µs a character."
        ),
    )
    rate_limit_render: str = Field(
        "120/minute",
        description="SlowAPI limit per client IP on POST /rendering/markdown (signed-in users).",
    )
    render_threads: int = Field(
        2,
        ge=1,
        description=(
            "Threads that run the in-process renderer (local mode, fallback and render-svc), so "
            "a slow document never blocks the event loop. Rendering is CPU-bound Python: more "
            "threads do not add throughput; use processes (`--workers`) for that."
        ),
    )

    @field_validator("render_endpoint")
    @classmethod
    def _blank_endpoint_is_unset(cls, value: str | None) -> str | None:
        # RENDER_ENDPOINT= (empty) is how a deployment template "unsets" it: the roll-back.
        if value is None or not value.strip():
            return None
        return value.strip().rstrip("/")
