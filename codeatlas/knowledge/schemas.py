"""Request and response bodies of the knowledge API and the hybrid code search."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codeatlas.core.timestamps import UtcDatetime

Kind = Literal["entry", "code"]
MAX_QUERY = 1000
MAX_TAGS = 20


def clean_title(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("title must not be blank")
    return value


def clean_tags(value: list[str]) -> list[str]:
    out: list[str] = []
    for raw in value:
        tag = raw.strip().lower()
        if not tag or len(tag) > 50:
            raise ValueError("tags are 1-50 characters")
        if tag not in out:
            out.append(tag)
    return out


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("query must not be blank")
    return value


# -- entries -------------------------------------------------------------------------------


class EntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    content: str = Field(
        min_length=1, description="Text (Markdown welcome); at most KB_ENTRY_MAX_CHARS characters."
    )
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    project_id: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="The project the entry belongs to (editors and owners may write it); "
        "omitted: a global entry every user can read.",
    )

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return clean_title(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return clean_tags(value)


class EntryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=300)
    content: str | None = Field(None, min_length=1)
    tags: list[str] | None = Field(None, max_length=MAX_TAGS)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return clean_title(value) if value is not None else None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return clean_tags(value) if value is not None else None


class EntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int | None
    title: str
    content: str
    tags: list[str]
    author_id: int | None
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class EntryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


# -- semantic search -----------------------------------------------------------------------


class KnowledgeSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY, description="Natural-language query.")
    top_k: int | None = Field(
        None,
        ge=1,
        le=200,
        description="Results wanted (default SEARCH_DEFAULT_TOP_K, capped at SEARCH_MAX_TOP_K).",
    )
    project_id: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="Only this project's code and entries, plus global entries. Omitted: every "
        "project you belong to, plus global entries.",
    )
    kinds: list[Kind] | None = Field(
        None,
        min_length=1,
        description="`entry` (knowledge base), `code` (uploaded code chunks); omitted: both.",
    )

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        return not_blank(value)


class SearchResult(BaseModel):
    id: str = Field(description="`entry:<entry id>:<piece>` or `code:<document id>:<chunk>`.")
    kind: Kind
    score: float = Field(description="Cosine similarity of query and piece (higher is closer).")
    project_id: int | None = Field(description="None for a global entry.")
    entry_id: int | None = None
    document_id: int | None = None
    title: str | None = Field(None, description="The entry's title (entries).")
    path: str | None = Field(None, description="The file's path in its project (code).")
    language: str | None = None
    symbol: str | None = Field(None, description="The code symbol the chunk belongs to.")
    start_line: int
    end_line: int
    snippet: str = Field(description="The start of the piece's text (whole lines).")


class KnowledgeSearchResponse(BaseModel):
    query: str
    model: str = Field(description="The embedding model the query and index were embedded with.")
    results: list[SearchResult]
    took_ms: float


# -- context -------------------------------------------------------------------------------


class ContextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY)
    max_context_length: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Upper bound of `context`, counted in CHARACTERS (Unicode code points, "
        "Python's len), citations and separators included; never exceeded. Default "
        "CONTEXT_DEFAULT_MAX_LENGTH, at most CONTEXT_MAX_LENGTH_LIMIT.",
    )
    project_id: int | None = Field(None, ge=1, le=2**31 - 1)
    kinds: list[Kind] | None = Field(None, min_length=1)
    top_k: int | None = Field(None, ge=1, le=200, description="Results considered.")

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        return not_blank(value)


class Citation(BaseModel):
    marker: int = Field(description="The [n] that precedes this source's text in `context`.")
    result_id: str
    kind: Kind
    title: str | None = None
    path: str | None = None
    entry_id: int | None = None
    document_id: int | None = None
    project_id: int | None = None
    start_line: int
    end_line: int
    score: float
    truncated: bool = Field(description="Only the start of the piece fitted.")


class ContextResponse(BaseModel):
    query: str
    context: str = Field(description="Sources glued together, each headed by its [n] citation.")
    length: int = Field(description="len(context) in characters; <= max_context_length.")
    max_context_length: int
    unit: Literal["characters"] = "characters"
    citations: list[Citation]


class ReindexAccepted(BaseModel):
    job_id: int = Field(description="The `jobs` row of the `knowledge.reindex` job.")
    message_id: str


# -- hybrid code search --------------------------------------------------------------------


class HybridSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY)
    project_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Only this project; omitted: every project of yours."
    )
    language: str | None = Field(None, min_length=1, max_length=32, examples=["python"])
    path_prefix: str | None = Field(
        None, min_length=1, max_length=1024, description="Only files whose path starts so."
    )
    top_k: int | None = Field(None, ge=1, le=200)
    group_by_file: bool = Field(
        True,
        description="One result per file (its best chunk), files ranked; false: every "
        "matching chunk, several per file.",
    )
    mode: Literal["hybrid", "semantic", "keyword"] = Field(
        "hybrid",
        description="`hybrid`: both rankings fused by reciprocal rank fusion; the others "
        "return one ranking alone (for comparison).",
    )

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        return not_blank(value)


class HybridResult(BaseModel):
    id: str = Field(description="`code:<document id>:<chunk index>`")
    document_id: int
    project_id: int
    path: str
    language: str | None
    symbol: str | None
    start_line: int
    end_line: int
    snippet: str
    score: float = Field(description="Fused RRF score (or the single ranking's score).")
    semantic_rank: int | None = Field(
        None, description="1-based rank in the semantic ranking (of files when grouped)."
    )
    keyword_rank: int | None = Field(
        None, description="1-based rank in the keyword ranking (of files when grouped)."
    )


class HybridSearchResponse(BaseModel):
    query: str
    mode: str
    results: list[HybridResult]
    took_ms: float
