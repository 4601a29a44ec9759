"""`/knowledge/context` never exceeds `max_context_length` (characters): a property test of
the builder over generated results and lengths (hypothesis), and a sweep through the API
with real entries, including lengths shorter than a single result."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeatlas.knowledge.context import ELLIPSIS, build_context, header
from codeatlas.knowledge.search import Hit
from tests.knowledge.conftest import Kit, Team

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=600
) | st.lists(st.text(min_size=0, max_size=90), max_size=20).map("\n".join)


@st.composite
def hits(draw: st.DrawFn) -> list[Hit]:
    out: list[Hit] = []
    for i in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["entry", "code"]))
        start = draw(st.integers(1, 50))
        out.append(
            Hit(
                kind=kind,
                source_id=draw(st.integers(1, 4)),
                chunk_index=i,
                score=1.0 - i / 10,
                project_id=None,
                title=draw(st.text(max_size=40)) if kind == "entry" else None,
                path=draw(st.text(min_size=1, max_size=60)) if kind == "code" else None,
                language=None,
                symbol=None,
                start_line=start,
                end_line=start + draw(st.integers(0, 30)),
                text=draw(_text),
            )
        )
    return out


@given(results=hits(), max_length=st.integers(1, 4000))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_context_never_exceeds_max_length(results: list[Hit], max_length: int) -> None:
    context, cited = build_context(results, max_length)
    assert len(context) <= max_length
    assert [c.marker for c in cited] == list(range(1, len(cited) + 1))
    # Only the last citation can be truncated; all but a fallback first block are headed.
    assert all(not c.truncated for c in cited[:-1])
    for c in cited:
        if not (c.truncated and c.marker == 1 and not context.startswith(header(1, c.hit))):
            assert f"[{c.marker}] " in context
    # Deduplicated: no source span and no text taken twice.
    spans = [(c.hit.kind, c.hit.source_id, c.hit.start_line, c.hit.end_line) for c in cited]
    for i, a in enumerate(spans):
        for b in spans[i + 1 :]:
            assert not (a[:2] == b[:2] and a[2] <= b[3] and b[2] <= a[3])
    texts = [" ".join(c.hit.text.split()) for c in cited]
    assert len(texts) == len(set(texts))
    # Nothing is dropped needlessly: when the best result fits whole, it is there whole.
    if results:
        first = header(1, results[0]) + "\n" + results[0].text
        if len(first) <= max_length:
            assert context.startswith(first)


def test_tiny_limits_cut_the_first_block() -> None:
    hit = Hit("code", 1, 0, 0.9, 1, None, "src/a.py", "python", None, 1, 3, "x = 1\ny = 2\n")
    for n in range(1, 40):
        context, cited = build_context([hit], n)
        assert len(context) <= n
        assert len(cited) == 1
    context, cited = build_context([hit], 200)
    assert context == "[1] src/a.py:1-3\nx = 1\ny = 2\n" and not cited[0].truncated
    long = Hit("code", 2, 0, 0.8, 1, None, "b.py", None, None, 1, 99, "line\n" * 200)
    context, cited = build_context([hit, long], 150)
    assert len(context) <= 150 and context.endswith(ELLIPSIS) and cited[-1].truncated


ENTRY_TEXT = (
    "Backups of the production database run every night at 02:00 UTC and are kept for "
    "thirty days. Restores are tested every month on the staging cluster. "
)


@pytest.fixture
async def indexed(kit: Kit, team: Team) -> Team:
    h = team.headers(team.owner)
    for i in range(5):
        body: dict[str, Any] = {
            "title": f"Backup policy part {i}",
            "content": "\n\n".join([ENTRY_TEXT * (i + 1), f"Appendix {i}: see runbook {i}."]),
            "project_id": team.project_id,
        }
        r = await kit.client.post("/api/v1/knowledge/entries", json=body, headers=h)
        assert r.status_code == 201
        # One at a time: on SQLite a request's write can collide with a job's (see report).
        await kit.drain()
    # The same text twice: the context takes it once.
    for _ in range(2):
        body = {"title": "Backup policy", "content": ENTRY_TEXT, "project_id": team.project_id}
        assert (await kit.client.post("/api/v1/knowledge/entries", json=body, headers=h)).is_success
        await kit.drain()
    return team


@pytest.mark.parametrize(
    "max_length", [1, 2, 7, 30, 79, 80, 81, 120, 181, 400, 999, 2500, 10_000, 100_000]
)
async def test_context_api_respects_every_length(kit: Kit, indexed: Team, max_length: int) -> None:
    r = await kit.client.post(
        "/api/v1/knowledge/context",
        json={"query": "how long are backups kept?", "max_context_length": max_length},
        headers=indexed.headers(indexed.viewer),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unit"] == "characters" and body["max_context_length"] == max_length
    assert len(body["context"]) == body["length"] <= max_length
    assert body["citations"], "a context always starts with the best result"
    if max_length >= 2500:
        texts = [c["result_id"] for c in body["citations"]]
        assert len(texts) == len(set(texts)) >= 3
        # The two entries with the very same text: only one of them is cited.
        assert [c["title"] for c in body["citations"]].count("Backup policy") == 1
        assert body["context"].startswith("[1] entry ")


async def test_context_defaults_and_limits(kit: Kit, indexed: Team) -> None:
    h = indexed.headers(indexed.viewer)
    r = await kit.client.post("/api/v1/knowledge/context", json={"query": "backups"}, headers=h)
    assert r.status_code == 200
    assert r.json()["max_context_length"] == indexed.settings.context_default_max_length
    for bad in (0, -5, 1_000_001):
        r = await kit.client.post(
            "/api/v1/knowledge/context",
            json={"query": "backups", "max_context_length": bad},
            headers=h,
        )
        assert r.status_code == 422
