"""One envelope for every error: AppError, HTTPException, validation, and the unexpected."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from codeatlas.errors import AppError, Conflict

SECRET = "postgres://admin:hunter2@db/internal"


class Payload(BaseModel):
    name: str
    size: int


@pytest.fixture
async def error_client(app_factory) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    app: FastAPI = app_factory()

    @app.get("/api/v1/_test/app-error")
    async def app_error() -> None:
        raise Conflict("Name already used", details={"field": "name"})

    @app.get("/api/v1/_test/custom")
    async def custom() -> None:
        raise AppError("Teapot", error_code="I_AM_A_TEAPOT", status_code=418)

    @app.get("/api/v1/_test/http")
    async def http_exc() -> None:
        raise HTTPException(403, "nope")

    @app.post("/api/v1/_test/validate")
    async def validate(body: Payload) -> Payload:
        return body

    @app.get("/api/v1/_test/crash")
    async def crash() -> None:
        raise RuntimeError(f"cannot connect to {SECRET}")

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://t",
        ) as c,
    ):
        yield c


def assert_envelope(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert body["request_id"] == r.headers["x-request-id"]
    assert r.headers["x-error-code"] == code
    return body


async def test_app_error_envelope(error_client: httpx.AsyncClient) -> None:
    body = assert_envelope(await error_client.get("/api/v1/_test/app-error"), 409, "CONFLICT")
    assert body["details"] == {"field": "name"}
    assert_envelope(await error_client.get("/api/v1/_test/custom"), 418, "I_AM_A_TEAPOT")


async def test_http_exception_envelope(error_client: httpx.AsyncClient) -> None:
    body = assert_envelope(await error_client.get("/api/v1/_test/http"), 403, "FORBIDDEN")
    assert body["message"] == "nope"
    assert_envelope(await error_client.delete("/api/v1/system/version"), 405, "METHOD_NOT_ALLOWED")


async def test_validation_envelope_has_per_field_details(error_client: httpx.AsyncClient) -> None:
    r = await error_client.post("/api/v1/_test/validate", json={"name": 3})
    body = assert_envelope(r, 422, "VALIDATION_ERROR")
    details = body["details"]
    assert isinstance(details, list)
    locs = {tuple(d["loc"]) for d in details}
    assert ("body", "size") in locs and ("body", "name") in locs


async def test_unexpected_error_leaks_nothing(
    error_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    r = await error_client.get("/api/v1/_test/crash")
    body = assert_envelope(r, 500, "INTERNAL_ERROR")
    assert body["message"] == "Internal server error"
    assert "hunter2" not in r.text and "Traceback" not in r.text and "RuntimeError" not in r.text
    assert "hunter2" in caplog.text  # it went to the log instead


async def test_openapi_documents_the_envelope(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/v1/openapi.json")).json()
    assert "ErrorResponse" in schema["components"]["schemas"]
    props = schema["components"]["schemas"]["ErrorResponse"]["properties"]
    assert {"error_code", "message", "request_id", "details"} <= set(props)
