"""2-A and stop across processes, with two real uvicorn workers of `codeatlas serve`.

* The request id of ``POST …/messages`` (served by worker A) is on every WS event of that
  answer received by a socket held by worker B, and on the turn's log lines.
* A stop sent to worker B ends the stream worker A generates; the partial answer is kept.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets

from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.auth.serving import worker_pids
from tests.factories import auth_headers, create_user
from tests.llm.openai_server import DEFAULT_ANSWER, OpenAITestServer, stream
from tests.llm.serving import chat_env, serving

pytestmark = pytest.mark.slow


class Pinned:
    """One keep-alive HTTP connection (so one worker process), with a bearer token."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json", **headers}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        assert self.conn.sock is not None
        self.local_port: int = self.conn.sock.getsockname()[1]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else {})

    def close(self) -> None:
        self.conn.close()


def serving_pid(local_port: int, port: int, candidates: list[int]) -> int | None:
    for pid in candidates:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == local_port and c.laddr.port == port:
                return pid
    return None


class Worker:
    """Requests to one worker process: each on a fresh connection pinned to it (uvicorn
    closes idle keep-alive connections after 5 s, and this machine may be slow)."""

    def __init__(self, port: int, headers: dict[str, str], pid: int, workers: list[int]) -> None:
        self.port, self.headers, self.pid, self.workers = port, headers, pid, workers

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        conn = pinned_on(self.port, self.headers, self.pid, self.workers)
        try:
            return conn.call(method, path, body)
        finally:
            conn.close()


def pinned_on(port: int, headers: dict[str, str], pid: int, workers: list[int]) -> Pinned:
    for _ in range(100):
        conn = Pinned(port, headers)
        conn.call("GET", "/health/live")
        if serving_pid(conn.local_port, port, workers) == pid:
            return conn
        conn.close()
    raise AssertionError(f"no connection reached worker {pid}")


class Socket:
    """An authenticated /api/v1/ws held by a known worker process."""

    def __init__(self, ws: Any, pid: int) -> None:
        self.ws, self.pid = ws, pid

    async def next_event(self, timeout: float = 120) -> dict[str, Any]:
        while True:
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if msg.get("type") == "ping":  # the socket's heartbeat wants an answer
                await self.ws.send(json.dumps({"type": "pong"}))
            elif msg.get("type") not in {"pong", "ready"}:
                return dict(msg)

    async def until_done(self, message_id: int) -> list[dict[str, Any]]:
        events = []
        while True:
            event = await self.next_event()
            if event["data"].get("message_id") != message_id:
                continue
            events.append(event)
            if event["type"] in {"chat.done", "chat.error"}:
                return events


async def socket_on(port: int, token: str, pid: int, workers: list[int]) -> Socket:
    for _ in range(100):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws")
        await ws.send(json.dumps({"type": "auth", "token": token}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert ready["type"] == "ready", ready
        local_port = ws.local_address[1]
        if serving_pid(local_port, port, workers) == pid:
            return Socket(ws, pid)
        await ws.close()
    raise AssertionError(f"no WebSocket reached worker {pid}")


async def test_request_id_and_stop_across_two_workers(
    settings: Settings, db: Database, tmp_path: Path, llm_server: OpenAITestServer
) -> None:
    user = await create_user(db)
    headers = auth_headers(user, settings)
    token = headers["Authorization"].split()[1]
    log = tmp_path / "serve.log"
    with serving(chat_env(settings, tmp_path, llm_server), log, workers=2) as (port, proc):
        workers = worker_pids(proc, port, 2)
        pid_a, pid_b = workers
        a = Worker(port, headers, pid_a, workers)
        b = Worker(port, headers, pid_b, workers)
        sock = await socket_on(port, token, pid_b, workers)
        try:
            status, chat = a.call("POST", "/api/v1/chats", {})
            assert status == 201, chat

            # -- 2-A: one request id from the POST on A to every event on B's socket --------
            status, accepted = a.call(
                "POST", f"/api/v1/chats/{chat['id']}/messages", {"content": "hello"}
            )
            assert status == 202, accepted
            rid, mid = accepted["request_id"], accepted["assistant_message_id"]
            events = await sock.until_done(mid)
            assert {e["request_id"] for e in events} == {rid}
            tokens = [e for e in events if e["type"] == "chat.token"]
            assert [e["data"]["index"] for e in tokens] == list(range(len(DEFAULT_ANSWER)))
            assert "".join(e["data"]["text"] for e in tokens) == "".join(DEFAULT_ANSWER)
            assert events[-1]["type"] == "chat.done"
            assert events[-1]["data"]["status"] == "complete"
            deadline = time.monotonic() + 30
            while True:  # the turn's log lines carry the same id
                lines = [ln for ln in log.read_text().splitlines() if f"| {rid} |" in ln]
                if any("chat turn started" in ln for ln in lines) and any(
                    "complete in" in ln for ln in lines
                ):
                    break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                await asyncio.sleep(0.2)

            # -- stop on B ends the stream generated on A ---------------------------------
            llm_server.default = stream([f"w{i} " for i in range(400)], delay=0.05)
            status, accepted = a.call(
                "POST", f"/api/v1/chats/{chat['id']}/messages", {"content": "a long one"}
            )
            assert status == 202, accepted
            mid = accepted["assistant_message_id"]
            seen: list[str] = []
            while len(seen) < 5:
                event = await sock.next_event()
                if event["type"] == "chat.token" and event["data"]["message_id"] == mid:
                    seen.append(event["data"]["text"])
            sent_at = time.monotonic()
            status, body = b.call("POST", f"/api/v1/chats/{chat['id']}/messages/{mid}/stop")
            assert status == 202, body
            rest = await sock.until_done(mid)
            stopped_after = time.monotonic() - sent_at
            seen += [e["data"]["text"] for e in rest if e["type"] == "chat.token"]
            assert rest[-1]["type"] == "chat.done" and rest[-1]["data"]["status"] == "stopped"
            assert len(seen) < 400
            print(f"stop from worker B ended worker A's stream after {stopped_after:.3f}s")
            status, page = b.call("GET", f"/api/v1/chats/{chat['id']}/messages?limit=1")
            [stored] = page["items"]
            assert stored["id"] == mid and stored["status"] == "stopped"
            assert stored["content"].startswith("".join(seen))
        finally:
            await sock.ws.close()
