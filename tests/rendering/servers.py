"""Real servers standing in for render-svc in the rendering tests (and their helpers).

* :class:`Upstream`: a tiny FastAPI render server under uvicorn in a thread whose behaviour
  the test switches (``ok`` renders with the real core, ``error`` answers 500, ``hang`` sleeps
  past the client's read timeout, ``reject`` answers 422) and which counts its calls.
* :class:`DroppingServer`: a TCP server that accepts and closes every connection without an
  answer (a crashed / restarting process), counting connections.
* :func:`start_render_svc`: the real ``codeatlas render-svc`` command as a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from codeatlas.rendering.core import render_markdown
from codeatlas.rendering.schemas import RenderRequest
from tests.conftest import free_port


@dataclass
class UpstreamState:
    mode: str = "ok"
    hang_seconds: float = 5.0
    calls: int = 0
    request_ids: list[str] = field(default_factory=list)


@dataclass
class Upstream:
    url: str
    state: UpstreamState


def upstream_app(state: UpstreamState) -> FastAPI:
    app = FastAPI()

    @app.post("/render/markdown")
    async def render(body: RenderRequest, request: Request) -> Any:
        state.calls += 1
        state.request_ids.append(request.headers.get("x-request-id", ""))
        if state.mode == "error":
            return JSONResponse({"error_code": "INTERNAL_ERROR"}, status_code=500)
        if state.mode == "reject":
            return JSONResponse({"error_code": "VALIDATION_ERROR"}, status_code=422)
        if state.mode == "hang":
            await asyncio.sleep(state.hang_seconds)
        return render_markdown(body.markdown, body.options)

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        ok = state.mode == "ok"
        return JSONResponse({"status": "ready" if ok else "error"}, status_code=200 if ok else 503)

    return app


@contextlib.contextmanager
def run_uvicorn_in_thread(app: FastAPI) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        server_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"upstream-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "upstream did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class DroppingServer:
    url: str
    connections: int = 0


@contextlib.contextmanager
def run_dropping_server() -> Iterator[DroppingServer]:
    info = DroppingServer(url="")

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            info.connections += 1
            sock: socket.socket = self.request
            with contextlib.suppress(OSError):
                sock.recv(65536)  # read (part of) the request, then hang up without answering

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    info.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield info
    finally:
        server.shutdown()
        server.server_close()


def start_render_svc(
    port: int, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`codeatlas render-svc --port PORT` as a real process (the CLI entry point)."""
    return subprocess.Popen(
        [sys.executable, "-m", "codeatlas", "render-svc", "--port", str(port), *extra],
        env={**os.environ, "LOG_LEVEL": "WARNING", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_ready(url: str, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited with {proc.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} did not become ready"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""
