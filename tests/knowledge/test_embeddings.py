"""Embeddings: the real local ONNX model, the cache, and OpenAIEmbedder against a real HTTP
server that speaks the OpenAI embeddings wire format (started here, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codeatlas.knowledge.embeddings import (
    LOCAL_MODEL_DIMENSION,
    CachedEmbedder,
    Embedder,
    EmbeddingUnavailable,
    LocalEmbedder,
    OpenAIEmbedder,
    build_embedder,
)

PASSWORD_QUERY = "how do I hash a password"
PASSWORD_CODE = "def hash_password(pw): return argon2.hash(pw)"
UNRELATED = "The weather in Paris is sunny with a light breeze this afternoon."


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    va, vb = np.asarray(a), np.asarray(b)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


@pytest.fixture(scope="module")
async def local() -> AsyncIterator[LocalEmbedder]:
    embedder = LocalEmbedder(batch_size=4)
    yield embedder
    await embedder.aclose()


# --------------------------------------------------------------------------------------------
# LocalEmbedder (real model)
# --------------------------------------------------------------------------------------------


async def test_local_vectors_have_dimension_unit_norm_and_are_deterministic(
    local: LocalEmbedder,
) -> None:
    assert isinstance(local, Embedder)
    assert local.dimension == LOCAL_MODEL_DIMENSION == 384
    assert local.model_name == "all-MiniLM-L6-v2-int8"
    a, b, c = await local.embed([PASSWORD_QUERY, PASSWORD_QUERY, UNRELATED])
    assert len(a) == 384
    for v in (a, b, c):
        assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert a == b
    assert a != c
    again = await local.embed([PASSWORD_QUERY])
    assert again[0] == a


async def test_local_semantic_sanity(local: LocalEmbedder) -> None:
    query, code, unrelated = await local.embed([PASSWORD_QUERY, PASSWORD_CODE, UNRELATED])
    related = cosine(query, code)
    other = cosine(query, unrelated)
    assert related > other + 0.2, (related, other)


async def test_local_batching_matches_single_embedding_and_keeps_order(
    local: LocalEmbedder,
) -> None:
    texts = [
        PASSWORD_CODE,
        "x",
        UNRELATED * 5,
        PASSWORD_QUERY,
        "class UserRepository:\n    def get(self, user_id: int) -> User: ...",
        "SELECT * FROM users WHERE email = ?",
        "",
    ]
    batched = await local.embed(texts)  # batch_size=4: two batches, sorted by length
    singles = [(await local.embed([t]))[0] for t in texts]
    assert len(batched) == len(texts)
    for got, want in zip(batched, singles, strict=True):
        assert np.allclose(got, want, atol=1e-6)


async def test_local_truncates_at_256_tokens(local: LocalEmbedder) -> None:
    # "token" is one WordPiece: 254 of them + [CLS] + [SEP] fill max_length exactly, so any
    # longer text must embed identically.
    at_limit = " ".join(["token"] * 254)
    beyond = " ".join(["token"] * 600) + " completely different tail words"
    a, b = await local.embed([at_limit, beyond])
    assert np.allclose(a, b, atol=1e-6)


async def test_local_empty_input(local: LocalEmbedder) -> None:
    assert await local.embed([]) == []


async def test_local_inference_does_not_block_the_event_loop(local: LocalEmbedder) -> None:
    texts = [f"{UNRELATED} {i} " * 12 for i in range(48)]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await local.embed(texts)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert elapsed > 0.1, "workload too small to show anything"
    assert len(gaps) > 5
    # The loop kept ticking while inference ran in the worker thread.
    assert max(gaps) < max(0.1, elapsed / 3), (max(gaps), elapsed)


async def test_local_missing_model_file_is_unavailable(tmp_path: Path) -> None:
    embedder = LocalEmbedder(model_path=tmp_path / "missing.onnx")
    with pytest.raises(EmbeddingUnavailable):
        await embedder.embed(["x"])
    await embedder.aclose()
    with pytest.raises(EmbeddingUnavailable):
        await embedder.embed(["x"])  # closed


def test_local_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        LocalEmbedder(batch_size=0)
    with pytest.raises(ValueError):
        LocalEmbedder(max_length=1024)


# --------------------------------------------------------------------------------------------
# CachedEmbedder
# --------------------------------------------------------------------------------------------


class CountingEmbedder(LocalEmbedder):
    """The real local model, recording which texts actually reach it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.seen.append(list(texts))
        return await super().embed(texts)


async def test_cache_hits_avoid_recompute_and_keep_order(local: LocalEmbedder) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, maxsize=100)
    try:
        first = await cached.embed([PASSWORD_QUERY, UNRELATED, PASSWORD_QUERY])
        assert inner.seen == [[PASSWORD_QUERY, UNRELATED]]  # the duplicate is embedded once
        assert first[0] == first[2]

        second = await cached.embed([UNRELATED, PASSWORD_CODE, PASSWORD_QUERY])
        assert inner.seen[-1] == [PASSWORD_CODE]  # only the miss
        assert second[0] == first[1] and second[2] == first[0]
        direct = await local.embed([PASSWORD_CODE])
        assert np.allclose(second[1], direct[0], atol=1e-6)

        calls = len(inner.seen)
        third = await cached.embed([PASSWORD_CODE, PASSWORD_QUERY])
        assert len(inner.seen) == calls  # all hits: the model was not called
        assert third == [second[1], first[0]]
        assert cached.hits >= 4 and cached.misses == 3

        third[0][0] = 42.0  # returned lists are copies; the cache is not mutated
        assert (await cached.embed([PASSWORD_CODE]))[0][0] != 42.0
    finally:
        await cached.aclose()


async def test_a_text_being_embedded_is_awaited_not_embedded_again() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, maxsize=100)
    try:
        # Three concurrent asks for the same question (a chat turn's warm-up and its two
        # searches): the model sees it once, everyone gets the same vector.
        results = await asyncio.gather(*(cached.embed([PASSWORD_QUERY]) for _ in range(3)))
        assert inner.seen == [[PASSWORD_QUERY]]
        assert results[0] == results[1] == results[2]

        # The call that is embedding a text is cancelled: a caller waiting for that text
        # is not cancelled with it; it embeds the text itself.
        first = asyncio.create_task(cached.embed([PASSWORD_CODE]))
        await asyncio.sleep(0)  # `first` is now embedding PASSWORD_CODE
        second = asyncio.create_task(cached.embed([PASSWORD_CODE]))
        await asyncio.sleep(0)  # `second` waits for `first`'s embedding
        first.cancel()
        vector = (await second)[0]
        assert first.cancelled()
        assert inner.seen[1:] == [[PASSWORD_CODE], [PASSWORD_CODE]]
        assert np.allclose(vector, (await inner.embed([PASSWORD_CODE]))[0], atol=1e-6)
    finally:
        await cached.aclose()


async def test_cache_is_lru_bounded(local: LocalEmbedder) -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, maxsize=2)
    try:
        await cached.embed(["a"])
        await cached.embed(["b"])
        await cached.embed(["a"])  # a is now most recent
        await cached.embed(["c"])  # evicts b
        assert len(cached) == 2
        inner.seen.clear()
        await cached.embed(["a", "c"])
        assert inner.seen == []
        await cached.embed(["b"])
        assert inner.seen == [["b"]]
    finally:
        await cached.aclose()


async def test_cache_keys_include_the_model_name() -> None:
    class Fake:
        dimension = 2

        def __init__(self, name: str, value: float) -> None:
            self.model_name = name
            self.value = value

        async def embed(self, texts: Sequence[str]) -> list[list[float]]:
            return [[self.value, 0.0] for _ in texts]

        async def aclose(self) -> None:
            return None

    one, two = CachedEmbedder(Fake("m1", 1.0)), CachedEmbedder(Fake("m2", -1.0))
    assert one._key("x") != two._key("x")
    assert (await one.embed(["x"])) != (await two.embed(["x"]))


# --------------------------------------------------------------------------------------------
# build_embedder
# --------------------------------------------------------------------------------------------


async def test_build_embedder() -> None:
    local = build_embedder("local", intra_op_threads=1)
    assert isinstance(local, LocalEmbedder)
    cached = build_embedder("local", cache_size=10)
    assert isinstance(cached, CachedEmbedder) and isinstance(cached.inner, LocalEmbedder)
    remote = build_embedder(
        "openai", base_url="http://127.0.0.1:1/v1", api_key="k", model="m", dimension=8
    )
    assert isinstance(remote, OpenAIEmbedder) and remote.url == "http://127.0.0.1:1/v1/embeddings"
    with pytest.raises(ValueError):
        build_embedder("nope")
    for e in (local, cached, remote):
        await e.aclose()


# --------------------------------------------------------------------------------------------
# OpenAIEmbedder against a real local HTTP server
# --------------------------------------------------------------------------------------------

FAKE_DIM = 8


def fake_vector(text: str, dim: int = FAKE_DIM) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    # Deliberately not unit length: the client must normalise.
    return (np.random.default_rng(seed).standard_normal(dim) * 3.0).tolist()


@dataclass
class FakeOpenAI:
    """Behaviour per model name; records every request."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        model = str(body.get("model"))
        with self.lock:
            n = self.counts[model] = self.counts.get(model, 0) + 1
            self.requests.append({"model": model, "body": body, "headers": headers})
        if model == "flaky" and n <= 2:
            return 500, {}, {"error": {"message": "boom"}}
        if model == "bad":
            return 400, {}, {"error": {"message": "invalid input"}}
        if model == "down":
            return 503, {}, {"error": {"message": "overloaded"}}
        if model == "rate" and n == 1:
            return 429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}
        if model == "slow":
            self.release.wait(5.0)
        dim = 5 if model == "wrongdim" else FAKE_DIM
        texts = body["input"]
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(t, dim)}
            for i, t in enumerate(texts)
        ]
        data.reverse()  # servers may answer out of order; "index" is authoritative
        return 200, {}, {"object": "list", "data": data, "model": model, "usage": {}}


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/v1/embeddings":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            status, headers, payload = state.handle(body, dict(self.headers.items()))
            raw = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


def make_client(server: FakeOpenAI, model: str, **overrides: Any) -> OpenAIEmbedder:
    options: dict[str, Any] = {
        "base_url": f"http://127.0.0.1:{server.port}/v1/",
        "api_key": "sk-test",
        "model": model,
        "dimension": FAKE_DIM,
        "timeout": 2.0,
        "batch_size": 2,
        "max_retries": 3,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    options.update(overrides)
    return OpenAIEmbedder(**options)


async def test_openai_success_batches_orders_and_normalises(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "ok")
    try:
        texts = ["alpha", "beta", "gamma", "delta", "alpha"]
        before = fake_openai.counts.get("ok", 0)
        vectors = await client.embed(texts)
        assert fake_openai.counts["ok"] - before == 3  # batch_size=2 → 3 requests
        assert len(vectors) == 5
        for text, vec in zip(texts, vectors, strict=True):
            assert len(vec) == FAKE_DIM
            assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
            assert cosine(vec, fake_vector(text)) > 0.9999
        assert vectors[0] == vectors[4]
        sent = fake_openai.requests[-1]
        assert sent["headers"]["Authorization"] == "Bearer sk-test"
        assert sent["body"]["model"] == "ok" and sent["body"]["input"] == ["alpha"]
    finally:
        await client.aclose()


async def test_openai_retries_500_then_succeeds(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "flaky")
    try:
        vectors = await client.embed(["one"])
        assert fake_openai.counts["flaky"] == 3  # 500, 500, 200
        assert cosine(vectors[0], fake_vector("one")) > 0.9999
    finally:
        await client.aclose()


async def test_openai_retries_429_honouring_retry_after(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "rate", backoff_initial=5.0, backoff_max=5.0)
    try:
        started = time.perf_counter()
        await client.embed(["x"])
        # Retry-After: 0 was used instead of the 5 s backoff.
        assert time.perf_counter() - started < 2.0
        assert fake_openai.counts["rate"] == 2
    finally:
        await client.aclose()


async def test_openai_400_is_not_retried(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "bad")
    try:
        with pytest.raises(EmbeddingUnavailable, match="400"):
            await client.embed(["x"])
        assert fake_openai.counts["bad"] == 1
    finally:
        await client.aclose()


async def test_openai_persistent_5xx_gives_up_after_max_retries(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "down", max_retries=2)
    try:
        with pytest.raises(EmbeddingUnavailable, match="3 attempts"):
            await client.embed(["x"])
        assert fake_openai.counts["down"] == 3
    finally:
        await client.aclose()


async def test_openai_hang_beyond_timeout_is_unavailable(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "slow", timeout=0.3, max_retries=1)
    try:
        started = time.perf_counter()
        with pytest.raises(EmbeddingUnavailable, match="Timeout"):
            await client.embed(["x"])
        elapsed = time.perf_counter() - started
        assert elapsed < 2.5, elapsed  # two 0.3 s attempts, not the server's 5 s
        assert fake_openai.counts["slow"] == 2
    finally:
        await client.aclose()


async def test_openai_wrong_dimension_is_unavailable(fake_openai: FakeOpenAI) -> None:
    client = make_client(fake_openai, "wrongdim")
    try:
        with pytest.raises(EmbeddingUnavailable, match="dimension"):
            await client.embed(["x"])
    finally:
        await client.aclose()


async def test_openai_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    client = OpenAIEmbedder(
        f"http://127.0.0.1:{port}/v1",
        None,
        "m",
        FAKE_DIM,
        timeout=1.0,
        max_retries=1,
        backoff_initial=0.01,
    )
    try:
        with pytest.raises(EmbeddingUnavailable, match="ConnectError"):
            await client.embed(["x"])
    finally:
        await client.aclose()
