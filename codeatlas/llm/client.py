"""The LLM client: streaming chat completions from any OpenAI-compatible server.

It is the official ``openai`` SDK (``AsyncOpenAI``) with the SDK's own retries off, because
the SDK cannot tell "nothing streamed yet" from "half an answer shown": tenacity retries
429, 5xx, timeouts and dropped connections with capped exponential backoff (honouring
Retry-After up to the cap), and only until the first token has been handed to the caller.
Other 4xx are never retried.

Exception scope (checklist 3-B): only the SDK's error types, httpx's, ``TimeoutError`` and
the JSON decoding error of a malformed chunk are caught and turned into :mod:`.errors`;
anything else is a bug and propagates to the global handler and Sentry.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import openai
from openai import AsyncOpenAI
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from codeatlas.llm.errors import (
    LLMBadResponse,
    LLMError,
    LLMNotConfigured,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)
from codeatlas.metrics.registry import (
    LLM_DURATION,
    LLM_ERRORS,
    LLM_TIME_TO_FIRST_TOKEN,
    LLM_TOKENS,
)
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

# What a failing call raises: the SDK's errors (it wraps its HTTP library's), httpx's (for
# transports that let them through), a plain timeout, and a chunk that is not JSON.
CALL_ERRORS: tuple[type[BaseException], ...] = (
    openai.OpenAIError,
    httpx.HTTPError,
    TimeoutError,
    json.JSONDecodeError,
)


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` when the server does not count them: ~4 characters per token."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "estimated": self.estimated,
        }


@dataclass(slots=True)
class StreamOutcome:
    """Filled while a stream runs: what the caller learns besides the text."""

    finish_reason: str | None = None
    usage: Usage | None = None
    attempts: int = 0
    chunks: int = 0
    text: list[str] = field(default_factory=list)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def retryable(exc: BaseException) -> bool:
    """429, 5xx, timeouts and dropped connections; never another 4xx or a bad response."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(
        exc, openai.APIConnectionError | httpx.TransportError | TimeoutError
    ) and not isinstance(exc, httpx.DecodingError)


def to_app_error(exc: BaseException) -> LLMError:
    """The envelope error for a failed call (the original stays as ``__cause__``)."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return LLMTimeout()
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimited()
    if isinstance(exc, openai.APIStatusError):
        hint = {
            401: "; check LLM_API_KEY",
            403: "; check LLM_API_KEY",
            404: "; check LLM_BASE_URL and LLM_MODEL",
        }.get(exc.status_code, "")
        return LLMUnavailable(
            f"The language model server answered HTTP {exc.status_code}{hint}",
            details={"status": exc.status_code},
        )
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        return LLMUnavailable()
    if isinstance(exc, json.JSONDecodeError | openai.APIResponseValidationError):
        return LLMBadResponse()
    if isinstance(exc, openai.APIError):  # an error object inside the stream
        return LLMUnavailable(f"The language model server reported an error: {exc.message}"[:300])
    return LLMUnavailable()


class _Wait:
    """Exponential backoff with full jitter, capped; Retry-After honoured up to the cap."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap

    def __call__(self, state: RetryCallState) -> float:
        exp = min(self.cap, self.base * 2 ** (state.attempt_number - 1))
        delay = random.uniform(exp / 2, exp)
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = _retry_after(exc) if exc is not None else None
        if hinted is not None:
            delay = max(delay, hinted)
        return min(delay, self.cap)


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    logger.warning(
        "LLM call failed (%s), retry %d in %.2fs",
        type(exc).__name__,
        state.attempt_number,
        state.next_action.sleep if state.next_action else 0.0,
    )


def _content(chunk: Any) -> tuple[str | None, str | None, Usage | None]:
    """(text, finish_reason, usage) of one chunk; LLMBadResponse for a shape we cannot use.

    The SDK builds chunks without validating them, so a server that sends the wrong shape
    gives objects with missing or mistyped fields: checked here, not trusted.
    """
    choices = getattr(chunk, "choices", None)
    raw_usage = getattr(chunk, "usage", None)
    if not isinstance(choices, list) or (not choices and raw_usage is None):
        raise LLMBadResponse("The language model sent a chunk without choices")
    usage = None
    if raw_usage is not None:
        prompt = getattr(raw_usage, "prompt_tokens", None)
        completion = getattr(raw_usage, "completion_tokens", None)
        if not isinstance(prompt, int) or not isinstance(completion, int):
            raise LLMBadResponse("The language model sent a malformed usage record")
        usage = Usage(prompt, completion)
    if not choices:
        return None, None, usage
    choice = choices[0]
    delta = getattr(choice, "delta", None)
    text = getattr(delta, "content", None) if delta is not None else None
    finish = getattr(choice, "finish_reason", None)
    if text is not None and not isinstance(text, str):
        raise LLMBadResponse("The language model sent a non-text token")
    if finish is not None and not isinstance(finish, str):
        raise LLMBadResponse("The language model sent a malformed finish reason")
    return text, finish, usage


class LLMClient:
    """One OpenAI-compatible endpoint; create once per process, close with :meth:`aclose`."""

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = (base_url or settings.llm_base_url).rstrip("/")
        if not self.base_url:
            raise LLMNotConfigured()
        self.model = model or settings.llm_model
        self._client = AsyncOpenAI(
            base_url=self.base_url,
            # Local servers (llama.cpp, Ollama, vLLM) need no key, but the SDK insists on one.
            api_key=(api_key if api_key is not None else settings.llm_api_key) or "no-key",
            timeout=openai.Timeout(
                settings.llm_timeout,
                connect=settings.llm_connect_timeout,
                read=settings.llm_read_timeout,
            ),
            max_retries=0,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def list_models(self, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109
        """GET /models (the readiness check); raises the SDK's errors as they are."""
        client = self._client.with_options(
            timeout=timeout or self.settings.llm_health_timeout, max_retries=0
        )
        page = await client.models.list()
        return [m.id for m in page.data]

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(self.settings.llm_max_retries + 1),
            wait=_Wait(self.settings.llm_retry_base_delay, self.settings.llm_retry_max_delay),
            before_sleep=_log_retry,
            reraise=True,
        )

    async def stream_chat(
        self,
        messages: Sequence[dict[str, str]],
        outcome: StreamOutcome | None = None,
        *,
        max_tokens: int | None = None,
    ) -> AsyncGenerator[str, None]:
        """The answer's text pieces as they arrive; ``outcome`` gets finish reason and usage.

        Raises an :class:`LLMError` for every failure of the server: not reachable, an
        error status, a stall longer than LLM_READ_TIMEOUT, malformed chunks, or a stream
        that ends before the model finished (no finish reason).
        """
        out = outcome if outcome is not None else StreamOutcome()
        stream: Any = None
        first: str | None = None
        started = time.perf_counter()
        try:
            async for attempt in self._retrying():
                with attempt:
                    out.attempts += 1
                    if stream is not None:
                        await stream.close()
                    stream = await self._client.chat.completions.create(
                        model=self.model,
                        messages=cast(Any, list(messages)),
                        stream=True,
                        stream_options={"include_usage": True},
                        max_tokens=max_tokens or self.settings.llm_max_tokens,
                        temperature=self.settings.llm_temperature,
                    )
                    # Read up to the first token inside the retry loop: until then a failure
                    # costs the user nothing and may be retried.
                    first = await self._until_first_text(stream, out)
            if first is not None:
                LLM_TIME_TO_FIRST_TOKEN.observe(time.perf_counter() - started)
                out.text.append(first)
                yield first
                async for chunk in stream:
                    out.chunks += 1
                    text, finish, usage = _content(chunk)
                    if usage is not None:
                        out.usage = usage
                    if finish is not None:
                        out.finish_reason = finish
                    if text:
                        out.text.append(text)
                        yield text
        except CALL_ERRORS as exc:
            error = to_app_error(exc)
            LLM_ERRORS.labels(error.error_code).inc()
            logger.warning(
                "LLM call failed: %s (%s: %s)", error.error_code, type(exc).__name__, exc
            )
            raise error from exc
        finally:
            if stream is not None:
                await stream.close()
            LLM_DURATION.observe(time.perf_counter() - started)
        if out.usage is not None:
            LLM_TOKENS.labels("prompt").inc(out.usage.prompt_tokens or 0)
            LLM_TOKENS.labels("completion").inc(out.usage.completion_tokens or 0)
        if out.finish_reason is None:
            LLM_ERRORS.labels(LLMBadResponse.error_code).inc()
            raise LLMBadResponse("The language model stopped before finishing its answer")

    async def _until_first_text(self, stream: Any, out: StreamOutcome) -> str | None:
        async for chunk in stream:
            out.chunks += 1
            text, finish, usage = _content(chunk)
            if usage is not None:
                out.usage = usage
            if finish is not None:
                out.finish_reason = finish
            if text:
                return text
        return None

    async def complete(self, messages: Sequence[dict[str, str]], **kw: Any) -> str:
        """The whole answer as one string (streamed underneath)."""
        return "".join([piece async for piece in self.stream_chat(messages, **kw)])
