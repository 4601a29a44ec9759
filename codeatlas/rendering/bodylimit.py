"""Size limits of the render routes (API and render-svc): both answer 413 PAYLOAD_TOO_LARGE.

:func:`too_large` maps an oversized Markdown input to the error envelope. The input check
happens after JSON parsing, so :class:`BoundedBodyRoute` also caps the request body (derived
from RENDER_MAX_INPUT_BYTES at run time): a client cannot make the server buffer and parse an
arbitrarily large body first.

Hand-written rather than FastAPI's ``max_body_size``: that one is fixed when the route is
declared (ours comes from settings when the app is built), needs a newer FastAPI than the
project requires, and answers an over-declared Content-Length with a plain-text 413 outside
our error envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from codeatlas.errors import PayloadTooLarge
from codeatlas.rendering.core import RenderTooLarge

# JSON may spell one input byte as up to six (a control character as \u0001), plus room for
# the options and the envelope.
_JSON_EXPANSION = 6
_OVERHEAD = 16 * 1024


def body_limit(max_input_bytes: int) -> int:
    """Largest request body that can carry a Markdown input of ``max_input_bytes``."""
    return max_input_bytes * _JSON_EXPANSION + _OVERHEAD


def too_large(exc: RenderTooLarge) -> PayloadTooLarge:
    """The 413 envelope for a Markdown input over RENDER_MAX_INPUT_BYTES."""
    return PayloadTooLarge(
        f"Markdown input is {exc.size} bytes; the limit is {exc.limit} bytes",
        details={"size": exc.size, "limit": exc.limit},
    )


def _body_too_large(limit: int) -> HTTPException:
    # A Starlette HTTPException: FastAPI re-raises it from body parsing untouched, and the
    # app's handler turns 413 into the PAYLOAD_TOO_LARGE envelope.
    return HTTPException(413, f"Request body is larger than {limit} bytes")


def _capped(receive: Receive, limit: int) -> Receive:
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _body_too_large(limit)
        return message

    return capped_receive


class BoundedBodyRoute(APIRoute):
    """Rejects bodies over :func:`body_limit` of ``app.state.settings.render_max_input_bytes``.

    A declared Content-Length over the cap is refused before anything is read; a chunked body
    is counted while it streams in.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            limit = body_limit(request.app.state.settings.render_max_input_bytes)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _body_too_large(limit)
            return await handler(Request(request.scope, _capped(request.receive, limit)))

        return bounded
