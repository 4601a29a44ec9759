"""2-A (HTTP part): X-Request-ID in, out, and in every log line of the request."""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI

from codeatlas.core.logging import TEXT_FORMAT, JsonFormatter, RequestIdFilter


@pytest.fixture
async def logging_app(app_factory) -> FastAPI:  # type: ignore[no-untyped-def]
    app: FastAPI = app_factory()

    @app.get("/api/v1/_test/log")
    async def log_something() -> dict[str, str]:
        logging.getLogger("codeatlas.test").info("handling the request")
        return {"ok": "yes"}

    return app


def _capture() -> tuple[logging.Handler, list[str]]:
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = ListHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    return handler, lines


async def _get(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        return await c.get("/api/v1/_test/log", headers=headers or {})


async def test_incoming_id_is_kept_and_logged(logging_app: FastAPI) -> None:
    handler, lines = _capture()
    logger = logging.getLogger("codeatlas.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        rid = "client-supplied-id-0001"
        r = await _get(logging_app, {"X-Request-ID": rid})
    finally:
        logger.removeHandler(handler)
    assert r.headers["x-request-id"] == rid
    [line] = [ln for ln in lines if "handling the request" in ln]
    assert f"| INFO | {rid} | codeatlas.test | handling the request" in line


async def test_generated_id_matches_log_line(logging_app: FastAPI) -> None:
    handler, lines = _capture()
    logger = logging.getLogger("codeatlas.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        r = await _get(logging_app)
    finally:
        logger.removeHandler(handler)
    rid = r.headers["x-request-id"]
    assert len(rid) == 32
    assert any(f"| {rid} |" in ln for ln in lines)


@pytest.mark.parametrize(
    "bad",
    [
        "short",
        "x" * 300,
        "evil\r\nInjected: yes",
        "id with spaces 123456",
        "<script>alert(1)</script>",
    ],
)
async def test_malformed_id_is_replaced(logging_app: FastAPI, bad: str) -> None:
    try:
        r = await _get(logging_app, {"X-Request-ID": bad})
    except httpx.LocalProtocolError:
        pytest.skip("httpx refuses to send this header at all")
    rid = r.headers["x-request-id"]
    assert rid != bad and len(rid) == 32 and rid.isalnum()


async def test_disable_correlation_id_removes_middleware(app_factory) -> None:  # type: ignore[no-untyped-def]
    app = app_factory(disable_correlation_id=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        r = await c.get("/health/live", headers={"X-Request-ID": "client-supplied-id-0001"})
    assert "x-request-id" not in r.headers


def test_json_log_format_carries_request_id() -> None:
    record = logging.LogRecord("codeatlas.x", logging.INFO, __file__, 1, "hello %s", ("w",), None)
    record.request_id = "abc123abc123"
    import json

    out = json.loads(JsonFormatter().format(record))
    assert out["request_id"] == "abc123abc123" and out["message"] == "hello w"
    assert out["level"] == "INFO" and out["logger"] == "codeatlas.x"
