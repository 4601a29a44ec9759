"""A real HTTP server speaking the OpenAI wire protocol, with scripted misbehaviour.

It stands in for a paid LLM in the tests and benchmarks: uvicorn serves a small Starlette app
on 127.0.0.1 in a thread of the test process (or, with ``python -m tests.llm.openai_server``,
in its own process). Each POST /v1/chat/completions takes the next :class:`Behaviour` from
the script (or the default: a normal stream of the default answer) and records the request
body, so tests can check what the client sent, and how often.

Behaviours: a normal SSE stream (optionally without usage, with a delay between chunks),
a stall before the first byte, an HTTP error status (429 with Retry-After, 500, 401, …),
a connection dropped after N chunks, a stream that ends cleanly but early (no finish reason,
no [DONE]), a malformed chunk, a stall after N chunks.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_ANSWER = ["Hello", ",", " this", " is", " a", " scripted", " answer", "."]


class DroppedConnection(Exception):
    """Raised inside the streaming body: uvicorn then closes the socket mid-response."""


@dataclass
class Behaviour:
    kind: str = "stream"  # stream | status | drop | end_early | garbage | stall
    tokens: list[str] = field(default_factory=lambda: list(DEFAULT_ANSWER))
    delay: float = 0.0  # seconds between chunks
    first_delay: float = 0.0  # seconds before the response starts
    usage: bool = True  # send the usage chunk when the client asks for it
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0  # chunks sent before drop / garbage / stall / early end
    stall: float = 0.0  # seconds of silence (kind=stall, after `after` chunks)
    finish_reason: str = "stop"
    # Each token's text is the server's time.monotonic() when it was sent (the chat
    # benchmark measures what happens to a token after the LLM sent it).
    stamp: bool = False


def stream(tokens: list[str] | None = None, **kw: Any) -> Behaviour:
    return Behaviour("stream", tokens=list(tokens or DEFAULT_ANSWER), **kw)


def status(code: int, **headers: str) -> Behaviour:
    return Behaviour(
        "status", status=code, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )


def drop(after: int) -> Behaviour:
    return Behaviour("drop", after=after)


def end_early(after: int) -> Behaviour:
    return Behaviour("end_early", after=after)


def garbage(after: int = 0) -> Behaviour:
    return Behaviour("garbage", after=after)


def stall(seconds: float, after: int = 0) -> Behaviour:
    return Behaviour("stall", after=after, stall=seconds)


def _chunk(model: str, content: str | None, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {} if content is None else {"role": "assistant", "content": content}
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _usage_chunk(model: str, prompt: int, completion: int) -> bytes:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class OpenAITestServer:
    """The server and its script; start() in a thread, or use it as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, model: str = "test-model") -> None:
        self.host = host
        self.port = port
        self.model = model
        self.script: deque[Behaviour] = deque()
        self.default = Behaviour()
        self.requests: list[dict[str, Any]] = []
        self.models_status = 200
        self.models_delay = 0.0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    # -- scripting --------------------------------------------------------------------------

    def push(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self.script.extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()
            self.default = Behaviour()
            self.models_status, self.models_delay = 200, 0.0

    def _next(self) -> Behaviour:
        with self._lock:
            return self.script.popleft() if self.script else self.default

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- endpoints --------------------------------------------------------------------------

    async def _models(self, _: Request) -> Response:
        if self.models_delay:
            await asyncio.sleep(self.models_delay)
        if self.models_status != 200:
            return JSONResponse({"error": {"message": "down"}}, status_code=self.models_status)
        return JSONResponse(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "test"}]}
        )

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
        b = self._next()
        if b.kind == "stream" and (wanted := _tokens_asked(body)):  # benchmarks: answer length
            b = replace(b, tokens=_answer(wanted))
        if b.first_delay:
            await asyncio.sleep(b.first_delay)
        if b.kind == "status":
            return JSONResponse(
                {"error": {"message": f"scripted {b.status}", "type": "test", "code": None}},
                status_code=b.status,
                headers=b.headers,
            )
        if not body.get("stream"):
            text = "".join(b.tokens)
            return JSONResponse(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": b.finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 10,
                        "completion_tokens": len(b.tokens),
                        "total_tokens": 10 + len(b.tokens),
                    },
                }
            )
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        return StreamingResponse(
            self._events(b, want_usage and b.usage, max(1, prompt_chars // 4)),
            media_type="text/event-stream",
        )

    async def _events(self, b: Behaviour, usage: bool, prompt_tokens: int) -> AsyncIterator[bytes]:
        limit = b.after if b.kind != "stream" else len(b.tokens)
        for i, token in enumerate(b.tokens[:limit] if b.kind != "stream" else b.tokens):
            if i and b.delay:
                await asyncio.sleep(b.delay)
            yield _chunk(self.model, f"{time.monotonic():.6f} " if b.stamp else token)
        if b.kind == "drop":
            raise DroppedConnection("scripted drop")
        if b.kind == "end_early":
            return
        if b.kind == "garbage":
            yield b"data: {this is not json\n\n"
            return
        if b.kind == "stall":
            await asyncio.sleep(b.stall)
            for token in b.tokens[limit:]:
                yield _chunk(self.model, token)
        yield _chunk(self.model, None, b.finish_reason)
        if usage:
            yield _usage_chunk(self.model, prompt_tokens, len(b.tokens))
        yield b"data: [DONE]\n\n"

    # -- running ----------------------------------------------------------------------------

    def start(self) -> OpenAITestServer:
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="error", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test OpenAI server did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


_TOKENS_MARK = re.compile(r"\[tokens=(\d{1,6})\]")


def _tokens_asked(body: dict[str, Any]) -> int:
    """``[tokens=N]`` in the last message: stream N tokens (a benchmark's long answers)."""
    messages = body.get("messages") or [{}]
    found = _TOKENS_MARK.search(str(messages[-1].get("content", "")))
    return int(found.group(1)) if found else 0


def _answer(count: int) -> list[str]:
    return (DEFAULT_ANSWER * (count // len(DEFAULT_ANSWER) + 1))[:count]


if __name__ == "__main__":  # python -m tests.llm.openai_server PORT [DELAY [stamp] [tokens=N]]
    import sys

    srv = OpenAITestServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    if len(sys.argv) > 2:
        count = next((int(a[7:]) for a in sys.argv[3:] if a.startswith("tokens=")), 0)
        answer = _answer(count) if count else None
        srv.default = stream(answer, delay=float(sys.argv[2]), stamp="stamp" in sys.argv[3:])
    srv.start()
    print(srv.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
