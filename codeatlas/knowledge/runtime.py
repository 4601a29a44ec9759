"""The knowledge domain's long-lived resources: one embedder and one vector store per process.

Built once from the settings (:func:`configure`, called by the app's start-up, or lazily by
the first job of a `codeatlas worker` process) and found by everyone through
:func:`get_knowledge`:

* QDRANT_URL unset: an :class:`EdgeVectorStore` under VECTOR_STORE_PATH, shared by every
  thread of the process (only one process may open its directory; its calls hold the GIL and
  run inline, so they are safe from any thread or loop).
* QDRANT_URL set: a :class:`QdrantServerStore` per event loop, because its httpx client is
  bound to the loop that created it (the API's loop and Dramatiq's worker loop differ in the
  embedded default).
* The local ONNX model is loaded once per process and shared (it runs on its own executor);
  the OpenAI-compatible client is per loop, like the Qdrant client. Each loop gets its own
  in-memory cache in front.

It also remembers, per collection, whether the collection is usable: a collection filled
by another embedding model is refused (never mixed) until `codeatlas reindex` rebuilds it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from codeatlas.knowledge.embeddings import (
    LOCAL_MODEL_DIMENSION,
    LOCAL_MODEL_NAME,
    CachedEmbedder,
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
)
from codeatlas.knowledge.keyword import TOKENIZER
from codeatlas.knowledge.vector_store import (
    EdgeVectorStore,
    EmbeddingModelMismatch,
    QdrantServerStore,
    VectorStore,
    VectorStoreError,
)
from codeatlas.settings import Settings

logger = logging.getLogger(__name__)

KB_COLLECTION = "kb_entries"
CODE_COLLECTION = "code_chunks"
#: The keyword index of code chunks: sparse vectors only (see :mod:`.keyword`).
KEYWORD_COLLECTION = "code_keywords"
#: Search kinds and the collection each one lives in.
COLLECTIONS: dict[str, str] = {"entry": KB_COLLECTION, "code": CODE_COLLECTION}
#: After a failed check, a collection is looked at again no sooner than this (seconds), so a
#: store that comes back (or a re-index done by another process) is noticed without restart.
RECHECK_AFTER = 5.0
REINDEX_ADVICE = (
    "run `codeatlas reindex` (or POST /api/v1/knowledge/reindex as an admin) to rebuild it "
    "with the configured model"
)


@dataclass(slots=True)
class CollectionState:
    ready: bool = False
    mismatch: str | None = None  # why the collection holds vectors of another model
    error: str | None = None  # why it could not be opened or created
    checked_at: float = field(default=0.0)


@dataclass(slots=True)
class _LoopResources:
    embedder: Embedder
    store: VectorStore | None


class KnowledgeRuntime:
    """Embedder + vector store of this process, and the state of each collection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._edge: EdgeVectorStore | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopResources] = {}
        self.collections: dict[str, CollectionState] = {
            name: CollectionState() for name in (*COLLECTIONS.values(), KEYWORD_COLLECTION)
        }
        self._closed = False

    # -- identity of the configured model --------------------------------------------------

    @property
    def model_name(self) -> str:
        if self.settings.embedding_provider == "local":
            return LOCAL_MODEL_NAME
        return self.settings.embedding_model

    @property
    def dimension(self) -> int:
        if self.settings.embedding_provider == "local":
            return LOCAL_MODEL_DIMENSION
        return self.settings.embedding_dimension

    @property
    def keyword_index(self) -> bool:
        """Whether indexing jobs keep the keyword collection (follows embedding by default)."""
        flag = self.settings.knowledge_keyword_index
        return self.settings.knowledge_embed_code if flag is None else flag

    def identity(self, collection: str) -> tuple[int, str]:
        """``(dimension, model name)`` a collection must have; 0 = a keyword collection."""
        if collection == KEYWORD_COLLECTION:
            return 0, TOKENIZER
        return self.dimension, self.model_name

    @property
    def embedded_store(self) -> bool:
        return not self.settings.qdrant_url

    # -- building ------------------------------------------------------------------------

    def _build_embedder(self) -> Embedder:
        s = self.settings
        inner: Embedder
        if s.embedding_provider == "local":
            inner = shared_local_embedder(
                min(16, s.embedding_batch_size), s.embedding_threads, s.embedding_max_tokens
            )
        else:
            key = s.embedding_api_key or None
            headers = {"api-key": key} if (s.embedding_azure and key) else None
            inner = OpenAIEmbedder(
                base_url=s.embedding_base_url,
                api_key=None if s.embedding_azure else key,
                model=s.embedding_model,
                dimension=s.embedding_dimension,
                timeout=s.embedding_timeout,
                batch_size=s.embedding_batch_size,
                max_retries=s.embedding_max_retries,
                extra_headers=headers,
            )
        if s.embedding_cache_size > 0:
            return CachedEmbedder(inner, maxsize=s.embedding_cache_size)
        return inner

    def _build_store(self) -> VectorStore:
        s = self.settings
        if s.qdrant_url:
            return QdrantServerStore(
                url=s.qdrant_url,
                api_key=s.qdrant_api_key or None,
                timeout=s.qdrant_timeout,
                hnsw_ef=s.vector_hnsw_ef,
            )
        if self._edge is None:
            self._edge = EdgeVectorStore(
                s.resolved_vector_store_path,
                optimize_threshold=s.vector_optimize_threshold or None,
                hnsw_ef=s.vector_hnsw_ef,
            )
        return self._edge

    def _resources(self) -> _LoopResources:
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is not None:
            return found
        with self._lock:
            found = self._loops.get(loop)
            if found is None:
                found = _LoopResources(self._build_embedder(), None)
                self._loops[loop] = found
            return found

    def embedder(self) -> Embedder:
        """The embedder for the running event loop."""
        return self._resources().embedder

    def store(self) -> VectorStore:
        """The vector store for the running event loop."""
        resources = self._resources()
        if resources.store is None:
            with self._lock:
                if resources.store is None:
                    resources.store = self._build_store()
        return resources.store

    # -- collections ---------------------------------------------------------------------

    async def ensure_collections(self, *, force: bool = False) -> None:
        """Create or check every collection (start-up; again later after a failure)."""
        for name in (*COLLECTIONS.values(), KEYWORD_COLLECTION):
            await self.ensure_collection(name, force=force)

    async def ensure_collection(self, collection: str, *, force: bool = False) -> CollectionState:
        """The collection's state, checked now if it was not ready and the last check is old.

        Raises nothing: the state says what is wrong (callers turn it into 503s).
        """
        state = self.collections[collection]
        now = time.monotonic()
        if state.ready and not force:
            return state
        if not force and state.checked_at and now - state.checked_at < RECHECK_AFTER:
            return state
        state.checked_at = now
        try:
            store = self.store()
            dimension, model_name = self.identity(collection)
            await store.create_index_if_missing(collection, dimension, model_name=model_name)
        except EmbeddingModelMismatch as exc:
            if state.mismatch is None:
                logger.error(
                    "vector collection %s: %s. Search and indexing are refused until it is "
                    "rebuilt: %s",
                    collection,
                    exc,
                    REINDEX_ADVICE,
                )
            state.ready, state.mismatch, state.error = False, str(exc), None
        except (VectorStoreError, OSError, ValueError, RuntimeError) as exc:
            # RuntimeError: the edge store's per-collection asyncio.Lock is held by a re-index
            # running on the worker threads' event loop; asyncio refuses to wait on it from
            # another loop. The collection is busy: report it unavailable, look again later.
            error = str(exc)
            if self.embedded_store and "WAL" in error:
                error += (
                    " (the embedded vector store is open in another process: only one process "
                    "may use it; set QDRANT_URL when running `codeatlas worker` processes or "
                    "several API processes)"
                )
            if state.error is None:
                logger.error("vector collection %s unavailable: %s", collection, error)
            state.ready, state.mismatch, state.error = False, None, error
        else:
            if not state.ready:
                logger.info(
                    "vector collection %s ready (%s, %d-d)",
                    collection,
                    self.model_name,
                    self.dimension,
                )
            state.ready, state.mismatch, state.error = True, None, None
        return state

    def mark_unavailable(self, collection: str, error: str) -> None:
        """A call failed: check the collection again before the next use."""
        state = self.collections[collection]
        state.ready, state.error, state.checked_at = False, error, time.monotonic()

    # -- shut-down -----------------------------------------------------------------------

    async def aclose_loop(self) -> None:
        """Close what belongs to the running loop (server clients, embedder sessions)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            resources = self._loops.pop(loop, None)
        if resources is None:
            return
        if resources.store is not None and resources.store is not self._edge:
            try:
                await resources.store.close()
            except VectorStoreError as exc:
                logger.warning("closing the vector store: %s", exc)
        embedder = resources.embedder
        inner = embedder.inner if isinstance(embedder, CachedEmbedder) else embedder
        if not isinstance(inner, LocalEmbedder):  # the local model is shared: it stays
            await embedder.aclose()

    async def aclose(self) -> None:
        """Close the running loop's resources and the process-wide ones (shut-down)."""
        await self.aclose_loop()
        with self._lock:
            self._closed = True
            edge, self._edge = self._edge, None
        if edge is not None:
            try:
                await edge.close()
            except VectorStoreError as exc:
                logger.error("closing the embedded vector store: %s", exc)


_local_models: dict[tuple[int, int, int], LocalEmbedder] = {}
_local_lock = threading.Lock()


def shared_local_embedder(batch_size: int, threads: int, max_length: int = 256) -> LocalEmbedder:
    """The process's local model: loaded once (0.7 s, ~90 MB) and kept, like a library.

    Runtimes come and go (tests build an app per test; a re-configured process builds a
    new runtime) but the model file does not change, so there is no reason to load it twice.
    """
    key = (batch_size, threads, max_length)
    with _local_lock:
        model = _local_models.get(key)
        if model is None:
            model = _local_models[key] = LocalEmbedder(
                batch_size=batch_size, intra_op_threads=threads, max_length=max_length
            )
        return model


_runtime: KnowledgeRuntime | None = None
_runtime_lock = threading.Lock()


def configure(settings: Settings) -> KnowledgeRuntime:
    """The process's runtime for these settings (built once; later calls return it)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime._closed or _runtime.settings is not settings:
            if _runtime is not None and not _runtime._closed and _runtime.settings is not settings:
                logger.debug("replacing the knowledge runtime (new settings)")
            _runtime = KnowledgeRuntime(settings)
        return _runtime


def get_knowledge(settings: Settings | None = None) -> KnowledgeRuntime:
    """The runtime of this process; a worker process builds it on first use."""
    runtime = _runtime
    if runtime is not None and not runtime._closed:
        return runtime
    if settings is None:
        from codeatlas.jobs.runtime import get_runtime

        settings = get_runtime().settings
    return configure(settings)


def reset(runtime: KnowledgeRuntime | None = None) -> None:
    """Forget the runtime (shut-down; tests)."""
    global _runtime
    with _runtime_lock:
        if runtime is None or _runtime is runtime:
            _runtime = None
