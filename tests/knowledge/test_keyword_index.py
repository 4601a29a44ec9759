"""The keyword index (sparse vectors in the vector store, scored with Qdrant's IDF): code is
found by identifier, camelCase part, stem and path; a deleted point takes its postings with
it, on both backends (the embedded engine and the Qdrant client); through the API, an
uploaded file is found by keyword and its postings go when the file does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from codeatlas.db.session import Database
from codeatlas.knowledge.keyword import (
    TOKENIZER,
    encode_document,
    encode_query,
    query_terms,
    term_id,
    terms,
)
from codeatlas.knowledge.runtime import KEYWORD_COLLECTION
from codeatlas.knowledge.vector_store import (
    EdgeVectorStore,
    QdrantServerStore,
    SearchFilter,
    VectorPoint,
    VectorStore,
    point_id,
)
from codeatlas.models import CodeDocument
from tests.code.helpers import upload
from tests.knowledge.conftest import Kit, Team

DOCS: list[tuple[str, str | None, str]] = [
    ("app/http/headers.py", "parse_header", "def parse_header(raw):\n    return raw.split(':')"),
    ("app/db/pool.py", "ConnectionPool", "class ConnectionPool:\n    def acquire(self): ..."),
    ("app/auth/tokens.py", "verify_signature", "def verify_signature(token, key): ..."),
    ("app/billing/invoices.py", None, "TOTAL = 0\nrate = 19\n"),
    ("app/util/strings.py", "slugify", "def slugify(title):\n    return title.lower()"),
]


def test_terms_split_identifiers_camel_case_and_stem() -> None:
    assert terms("parseHTTPHeader") == ["pars", "http", "header", "parsehttphead"]
    assert terms("verify_password") == ["verif", "password", "verifypassword"]
    # Stems meet across forms; stop words and code glue are dropped.
    assert terms("verified passwords") == ["verif", "password"]
    assert terms("def self return the") == []
    assert query_terms("How are the cookies parsed from request headers?") == [
        "cook",
        "pars",
        "request",
        "header",
    ]


def test_path_and_symbol_terms_weigh_more_than_text() -> None:
    indices, values = encode_document("x = invoice", "billing/invoice.py", "render_invoice")
    weight = dict(zip(indices, values, strict=True))
    text_only = encode_document("x = invoice", "a.py", None)
    plain = dict(zip(*text_only, strict=True))
    assert weight[term_id("invoic")] > plain[term_id("invoic")]
    assert {term_id(t) for t in terms("billing render")} <= set(weight)
    assert encode_query("")[0] == [] and encode_query("the of and") == ([], [])


def _points() -> list[VectorPoint]:
    out = []
    for n, (path, symbol, text) in enumerate(DOCS, 1):
        out.append(
            VectorPoint(
                point_id("kwtest", n),
                [],
                {
                    "project_id": 1 if n < 5 else 2,
                    "document_id": n,
                    "kind": "code",
                    "language": "python",
                    "chunk_index": 0,
                    "path": path,
                },
                sparse=encode_document(text, path, symbol),
            )
        )
    return out


@pytest.fixture(params=["edge", "qdrant-client"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    s: Any
    if request.param == "edge":
        s = EdgeVectorStore(tmp_path / "vectors")
    else:
        s = QdrantServerStore(location=":memory:")
    await s.create_index_if_missing("kw", 0, model_name=TOKENIZER)
    await s.upsert("kw", _points())
    yield s
    await s.close()


async def _top(store: VectorStore, query: str, flt: SearchFilter | None = None) -> list[int]:
    hits = await store.sparse_search("kw", encode_query(query), 5, flt)
    return [int(h.payload["document_id"]) for h in hits]


async def test_found_by_identifier_camel_case_stem_and_path(store: VectorStore) -> None:
    assert (await _top(store, "parse_header"))[0] == 1
    assert (await _top(store, "HTTP header parsing"))[0] == 1  # stem of "parsing" = "pars"
    assert (await _top(store, "connection pool"))[0] == 2  # camelCase parts
    assert (await _top(store, "verified signatures"))[0] == 3  # stems
    assert (await _top(store, "billing"))[0] == 4  # only in the path
    assert await _top(store, "slugify", SearchFilter(project_ids=[1])) == []  # scope applies
    assert await _top(store, "zebra") == []


async def test_deletes_remove_postings(store: VectorStore) -> None:
    assert 1 in await _top(store, "parse header")
    await store.delete("kw", [point_id("kwtest", 1)])
    assert 1 not in await _top(store, "parse header")
    await store.delete_by_filter("kw", SearchFilter(document_ids=[2]))
    assert await _top(store, "ConnectionPool") == []
    assert await store.count("kw") == len(DOCS) - 2


async def test_a_keyword_collection_refuses_dense_vectors_and_vice_versa(
    store: VectorStore,
) -> None:
    from codeatlas.knowledge.vector_store import EmbeddingModelMismatch

    with pytest.raises(EmbeddingModelMismatch):
        await store.search("kw", [0.1] * 4, 3)
    with pytest.raises(EmbeddingModelMismatch):
        await store.create_index_if_missing("kw", 0, model_name="another-tokenizer")


# -- through the API ------------------------------------------------------------------------

FILES = [
    ("src/net/httpClient.py", b"class HttpClient:\n    def send_request(self, url): ...\n"),
    ("src/store/cache.py", b"def evict_expired(entries):\n    '''Drop stale entries.'''\n"),
    ("docs/billing/notes.py", b"X = 1\n"),
]


async def _search(kit: Kit, team: Team, query: str) -> list[str]:
    r = await kit.client.post(
        "/api/v1/search",
        json={"query": query, "mode": "keyword", "top_k": 5},
        headers=team.headers(team.viewer),
    )
    assert r.status_code == 200, r.text
    return [hit["path"] for hit in r.json()["results"]]


async def test_uploaded_code_is_found_by_keyword_and_deleting_it_removes_postings(
    kit: Kit, team: Team, db: Database
) -> None:
    r = await upload(kit.client, team.project_id, team.headers(team.editor), FILES)
    assert r.status_code in (200, 201), r.text
    await kit.drain()
    assert (await _search(kit, team, "HttpClient"))[0] == "src/net/httpClient.py"
    assert (await _search(kit, team, "http client"))[0] == "src/net/httpClient.py"
    assert (await _search(kit, team, "expiring cache entries"))[0] == "src/store/cache.py"
    assert (await _search(kit, team, "billing"))[0] == "docs/billing/notes.py"  # path only

    async with db.session() as s:
        doc = await s.scalar(select(CodeDocument).where(CodeDocument.file_path.like("%cache%")))
        assert doc is not None and doc.status == "searchable"
    store = kit.runtime.store()
    own = SearchFilter(document_ids=[doc.id])
    assert await store.list_points(KEYWORD_COLLECTION, own)
    r = await kit.client.delete(
        f"/api/v1/projects/{team.project_id}/files/{doc.id}", headers=team.headers(team.editor)
    )
    assert r.status_code == 204
    await kit.drain()
    assert await store.list_points(KEYWORD_COLLECTION, own) == {}
    assert "src/store/cache.py" not in await _search(kit, team, "evict expired entries")
