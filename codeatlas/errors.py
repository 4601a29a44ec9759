"""The error family and the one JSON envelope every error response uses.

Every failure leaves the API as ``{"error_code", "message", "request_id", "details"?}`` with
an ``X-Error-Code`` header, whether it started as an :class:`AppError`, a Starlette
``HTTPException``, a request-validation failure or an unexpected exception.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import sentry_sdk
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codeatlas.core.context import get_request_id

logger = logging.getLogger(__name__)


class ErrorResponse(BaseModel):
    """The envelope of every error response."""

    error_code: str = Field(examples=["NOT_FOUND"])
    message: str = Field(examples=["Project not found"])
    request_id: str | None = Field(None, description="The X-Request-ID of the request.")
    details: Any | None = Field(None, description="Machine-readable detail, when there is any.")


class AppError(Exception):
    """Base of every error the application raises on purpose."""

    status_code: int = 400
    error_code: str = "BAD_REQUEST"
    message: str = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        error_code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.error_code = error_code or self.error_code
        self.status_code = status_code or self.status_code
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(AppError):
    status_code = 400
    error_code = "BAD_REQUEST"


class Unauthorized(AppError):
    status_code = 401
    error_code = "UNAUTHORIZED"
    message = "Authentication required"


class Forbidden(AppError):
    status_code = 403
    error_code = "FORBIDDEN"
    message = "Not allowed"


class NotFound(AppError):
    status_code = 404
    error_code = "NOT_FOUND"
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    error_code = "CONFLICT"
    message = "Conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"
    message = "Payload too large"


class RateLimited(AppError):
    status_code = 429
    error_code = "RATE_LIMITED"
    message = "Too many requests"


class ServiceUnavailable(AppError):
    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"
    message = "Service unavailable"


class DbUnavailable(ServiceUnavailable):
    error_code = "DB_UNAVAILABLE"
    message = "The database cannot be reached; try again shortly"


class DbBusy(ServiceUnavailable):
    error_code = "DB_BUSY"
    message = "The database is busy with other writes; try again shortly"


class RedisUnavailable(ServiceUnavailable):
    error_code = "REDIS_UNAVAILABLE"
    message = "Redis cannot be reached; try again shortly"


# classify() names the component; each maps to its 503 (see codeatlas.core.outages).
OUTAGE_ERRORS: dict[str, type[ServiceUnavailable]] = {
    "db": DbUnavailable,
    "db_busy": DbBusy,
    "redis": RedisUnavailable,
}


def outage_error(exc: BaseException, retry_after: int = 5) -> ServiceUnavailable | None:
    """The 503 for an exception that means a dependency is away, or None for a real bug."""
    from codeatlas.core.outages import classify

    kind = classify(exc)
    if kind is None:
        return None
    retry = str(retry_after)
    return OUTAGE_ERRORS[kind](headers={"Retry-After": retry}, details={"retry_after": retry_after})


_STATUS_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def error_code_for_status(status: int) -> str:
    return _STATUS_CODES.get(status) or HTTPStatus(status).phrase.upper().replace(" ", "_")


def error_response(
    status_code: int,
    error_code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Build the envelope; the one function every handler goes through."""
    body = ErrorResponse(
        error_code=error_code, message=message, request_id=get_request_id(), details=details
    ).model_dump(exclude_none=True)
    all_headers = {"X-Error-Code": error_code, **(headers or {})}
    return JSONResponse(body, status_code=status_code, headers=all_headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each listed status documented with the envelope."""
    return {s: {"model": ErrorResponse, "description": HTTPStatus(s).phrase} for s in statuses}


def _app_error_response(exc: AppError) -> JSONResponse:
    return error_response(
        exc.status_code, exc.error_code, exc.message, details=exc.details, headers=exc.headers
    )


async def _app_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return _app_error_response(exc)


# FastAPI's own 400 for a body it cannot parse (not UTF-8, a broken multipart stream).
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _http_exception_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    code = headers.pop("X-Error-Code", None) or error_code_for_status(exc.status_code)
    if exc.status_code == 400 and message == _UNPARSABLE_BODY:
        code = "MALFORMED_BODY"
    return error_response(exc.status_code, code, message, headers=headers)


async def _validation_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return error_response(422, "VALIDATION_ERROR", "Request validation failed", details=fields)


class UnhandledErrorMiddleware:
    """Turns any exception that escaped the routes into a 500 envelope.

    It sits just inside the correlation-id middleware, so the request id is still known and
    the X-Request-ID header is still added; Starlette's own ServerErrorMiddleware runs outside
    every middleware, where the id is already gone. Nothing about the exception reaches the
    body: it goes to the log and to Sentry.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
            outage = outage_error(exc, getattr(settings, "unavailable_retry_after", 5))
            if outage is not None:
                # A dependency is away, not a bug: a 503 the client may retry, one log line.
                logger.warning(
                    "%s %s: %s (%s: %s)",
                    scope.get("method"),
                    scope.get("path"),
                    outage.error_code,
                    type(exc).__name__,
                    exc,
                )
                if started:
                    raise
                await _app_error_response(outage)(scope, receive, send)
                return
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            sentry_sdk.capture_exception(exc)
            if started:
                raise
            response = error_response(500, "INTERNAL_ERROR", "Internal server error")
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
