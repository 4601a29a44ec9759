"""The pure parts of search: query terms, reciprocal rank fusion, entry chunking; and the two
vector-store additions (list_points, drop_collection) on both adapters."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeatlas.knowledge.chunking import split_entry
from codeatlas.knowledge.hybrid import reciprocal_rank_fusion
from codeatlas.knowledge.keyword import query_terms
from codeatlas.knowledge.vector_store import (
    CollectionNotFound,
    EdgeVectorStore,
    QdrantServerStore,
    SearchFilter,
    VectorPoint,
    VectorStore,
    point_id,
)


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("verify_password", ["verif", "password"]),
        ("parseHTTPHeader", ["pars", "http", "header"]),
        (
            "How are the cookies parsed from request headers?",
            ["cook", "pars", "request", "header"],
        ),
        ("what is it", []),
        ("a b c d e f g h i j k l m n", []),
        ("x1 HTMLParser __init__", ["x1", "html", "parser", "init"]),
    ],
)
def test_query_terms(query: str, terms: list[str]) -> None:
    assert query_terms(query) == terms


def test_query_terms_are_bounded_and_safe_for_like() -> None:
    terms = query_terms(" ".join(f"word{i}" for i in range(50)) + " 100% _x_ a'b \\ ;--")
    assert len(terms) == 8
    assert all(t.isalnum() and t == t.lower() for t in terms)


def test_rrf_orders_by_summed_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d", "a"]], k=60)
    scores = {f.key: f.score for f in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62) and scores["d"] == pytest.approx(1 / 62)
    # Ties broken by best single rank, then first appearance.
    assert [f.key for f in fused] == ["a", "c", "b", "d"]
    assert next(f for f in fused if f.key == "d").ranks == [None, 2]


def test_rrf_weights_duplicates_and_errors() -> None:
    fused = reciprocal_rank_fusion([["a", "a", "b"], ["b"]], k=1, weights=[1.0, 0.0])
    assert [(f.key, f.ranks) for f in fused] == [("a", [1, None]), ("b", [2, 1])]
    assert reciprocal_rank_fusion([[], []]) == []
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], k=0)
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1.0, 2.0])


_content = st.lists(
    st.one_of(st.text(max_size=300), st.just(""), st.text(alphabet="ab \n", max_size=900)),
    max_size=30,
).map("\n".join)


@given(content=_content, max_chars=st.integers(1, 500))
@settings(max_examples=300, deadline=None)
def test_entry_pieces_are_bounded_and_keep_every_line(content: str, max_chars: int) -> None:
    pieces = split_entry(content, max_chars)
    lines = content.splitlines()
    assert all(len(p.text) <= max_chars for p in pieces)
    assert [p.index for p in pieces] == list(range(len(pieces)))
    assert all(1 <= p.start_line <= p.end_line <= len(lines) for p in pieces)
    assert all(a.end_line <= b.start_line for a, b in itertools.pairwise(pieces))
    # Every non-blank character is in some piece, in order.
    assert "".join("".join(p.text.split()) for p in pieces) == "".join(content.split())


def test_entry_pieces_follow_paragraphs() -> None:
    content = "Title\n\nFirst paragraph\nstill first.\n\n\nSecond one.\n" + "x" * 30
    pieces = split_entry(content, 40)
    assert [(p.start_line, p.end_line) for p in pieces] == [(1, 4), (7, 7), (8, 8)]
    assert pieces[0].text == "Title\n\nFirst paragraph\nstill first."
    assert split_entry("", 10) == [] and split_entry("\n\n  \n", 10) == []


StoreFactory = Callable[[], VectorStore]


@pytest.fixture(params=["edge", "qdrant-local"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    made: VectorStore
    if request.param == "edge":
        made = EdgeVectorStore(tmp_path / "edge")
    else:
        made = QdrantServerStore(path=tmp_path / "local")
    yield made
    await made.close()


async def test_list_points_and_drop_collection(store: VectorStore) -> None:
    await store.create_index_if_missing("c", 4, model_name="m1")
    points = [
        VectorPoint(
            point_id("p", i),
            [1.0, float(i), 0.0, 0.0],
            {"project_id": i % 2, "document_id": i % 3, "kind": "code", "language": "go"},
        )
        for i in range(2500)  # more than one scroll page
    ]
    await store.upsert("c", points)
    listed = await store.list_points("c", SearchFilter(document_ids=[1]))
    expected = {p.id for p in points if p.payload["document_id"] == 1}
    assert set(listed) == expected
    assert all(v["document_id"] == 1 for v in listed.values())
    assert len(await store.list_points("c", SearchFilter())) == 2500
    assert len(await store.list_points("c", SearchFilter(), limit=1200)) == 1200
    assert await store.list_points("c", SearchFilter(project_ids=[])) == {}

    await store.drop_collection("c")
    with pytest.raises(CollectionNotFound):
        await store.count("c")
    await store.drop_collection("c")  # dropping again is fine
    await store.create_index_if_missing("c", 8, model_name="m2")  # a new model, a new size
    assert await store.count("c") == 0
