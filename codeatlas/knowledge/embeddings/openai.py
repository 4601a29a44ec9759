"""The HTTP provider: any server that speaks OpenAI's ``POST /v1/embeddings``."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx
import numpy as np
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
)

if TYPE_CHECKING:  # imported lazily at run time: onnxruntime costs ~0.3 s to import
    pass

from codeatlas.knowledge.embeddings.base import (
    EmbeddingUnavailable,
    l2_normalise,
)
from codeatlas.metrics.registry import EMBEDDED_CHUNKS, EMBEDDING_DURATION

logger = logging.getLogger(__name__)


class _TransientStatus(Exception):
    """A response status worth retrying (429 / 5xx); carries Retry-After when given."""

    def __init__(self, status_code: int, retry_after: float | None, detail: str) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.retry_after = retry_after


#: Transport failures that may succeed on a second try. Not ``httpx.TransportError`` as a
#: whole: UnsupportedProtocol / ProxyError / LocalProtocolError are configuration bugs.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    _TransientStatus,
)
_RETRY_STATUSES = frozenset({408, 429})


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: rare for these APIs, fall back to backoff
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible ``/embeddings`` endpoint.

    ``base_url`` ends with ``/v1`` (``https://api.openai.com/v1``, a vLLM/Ollama/LiteLLM
    server, …); requests go to ``base_url + "/embeddings"``. For Azure pass the deployment
    URL up to ``/embeddings`` excluded and its key via ``extra_headers={"api-key": …}``.

    Transient failures (connect errors, timeouts, 408/429/5xx) are retried with exponential
    backoff (honouring ``Retry-After``) up to ``max_retries`` times; anything else, and the
    last transient failure, raises :class:`EmbeddingUnavailable`.
    """

    model_name: str
    dimension: int

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        dimension: int,
        timeout: float = 30.0,
        batch_size: int = 128,
        max_retries: int = 3,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        extra_headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if dimension < 1 or batch_size < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("dimension/batch_size >= 1, max_retries >= 0 and timeout > 0")
        self.model_name = model
        self.dimension = dimension
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.url = base_url.rstrip("/") + "/embeddings"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        headers = {"Content-Type": "application/json", **(extra_headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        # Connect fails fast; the read timeout is the caller's budget for one request.
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _TransientStatus) and exc.retry_after is not None:
            return min(exc.retry_after, self._backoff_max)
        return min(self._backoff_initial * (2 ** (state.attempt_number - 1)), self._backoff_max)

    async def _post_once(self, batch: list[str]) -> list[list[float]]:
        body = {"model": self.model_name, "input": batch, "encoding_format": "float"}
        response = await self._client.post(
            self.url, json=body, headers=self._headers, timeout=self._timeout
        )
        status = response.status_code
        if status in _RETRY_STATUSES or status >= 500:
            raise _TransientStatus(
                status, _parse_retry_after(response.headers.get("retry-after")), response.text[:200]
            )
        if status >= 400:
            raise EmbeddingUnavailable(
                f"embedding provider rejected the request: HTTP {status}: {response.text[:300]}"
            )
        return self._parse(response, len(batch))

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        try:
            data = response.json()["data"]
            rows = sorted(data, key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
        except (ValueError, KeyError, TypeError) as exc:  # bad JSON / missing fields
            raise EmbeddingUnavailable(f"malformed embeddings response: {exc!r}") from exc
        if len(vectors) != expected:
            raise EmbeddingUnavailable(f"expected {expected} embeddings, got {len(vectors)}")
        if any(len(v) != self.dimension for v in vectors):
            raise EmbeddingUnavailable(
                f"model {self.model_name} returned vectors of size "
                f"{len(vectors[0]) if vectors else 0}, configured dimension is {self.dimension}"
            )
        # OpenAI's vectors are already unit length; other servers' are not always.
        return l2_normalise(np.asarray(vectors, dtype=np.float32)).tolist()

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT_ERRORS),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            before_sleep=lambda s: logger.warning(
                "embedding request failed (attempt %d), retrying: %r",
                s.attempt_number,
                s.outcome.exception() if s.outcome is not None else None,
            ),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._post_once(batch)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise EmbeddingUnavailable(
                f"embedding provider unavailable after {self.max_retries + 1} attempts: {last!r}"
            ) from last
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        items = list(texts)
        out: list[list[float]] = []
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            with EMBEDDING_DURATION.time():
                out.extend(await self._embed_batch(batch))
            EMBEDDED_CHUNKS.inc(len(batch))
        return out

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


# --------------------------------------------------------------------------------------------
