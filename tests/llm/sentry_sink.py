"""A local HTTP endpoint that receives Sentry envelopes (DSN http://key@127.0.0.1:PORT/1).

The Sentry SDK posts each event to ``/api/1/envelope/`` (gzip- or brotli-compressed); this
server decompresses and parses the envelopes and keeps their items, so a test can assert on
what would have reached Sentry.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        return bytes(brotli.decompress(body))
    return body


def parse_envelope(raw: bytes) -> list[dict[str, Any]]:
    """The JSON items of one envelope (header line, then item header / payload pairs)."""
    lines = raw.split(b"\n")
    items: list[dict[str, Any]] = []
    i = 1
    while i + 1 < len(lines):
        header = json.loads(lines[i]) if lines[i].strip() else {}
        payload = lines[i + 1]
        i += 2
        if header.get("type") in {"event", "transaction"}:
            items.append(json.loads(payload))
    return items


class SentrySink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = _decode(self.rfile.read(length), self.headers.get("Content-Encoding", ""))
                sink.raw.append(body)
                if "envelope" in self.path:
                    sink.events.extend(parse_envelope(body))
                elif "store" in self.path:
                    sink.events.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def __enter__(self) -> SentrySink:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
