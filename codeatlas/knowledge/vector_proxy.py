"""The embedded vector store shared over a Unix socket: one owner process, many users.

qdrant-edge lets one process open a data directory. On the embedded default that process is
the worker child of `codeatlas serve` (it upserts and builds HNSW, which holds the GIL for
minutes at 100k vectors); the API processes reach the store through
:class:`ProxyVectorStore`, a :class:`~codeatlas.knowledge.vector_store.VectorStore` that
sends each call over ``VECTOR_STORE_SOCKET`` to :func:`start_vector_server` in the owner.

Wire format: one JSON object per line each way — ``{"op", "args"}`` then ``{"ok", "result"}``
or ``{"ok": false, "error": <class name>, "message"}``; the store's own errors cross the
socket as the same classes. JSON rather than pickle: the socket must never execute what a
peer sends. Calls open their own connection (a Unix connect costs microseconds), so any
number of them run at once and a restarted owner is picked up by the next call.

Every call has a deadline (VECTOR_PROXY_TIMEOUT): while the owner builds HNSW its event loop
is blocked, and the API answers 503 ``VECTOR_STORE_UNAVAILABLE`` instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from codeatlas.knowledge.vector_store import (
    CollectionNotFound,
    EmbeddingModelMismatch,
    SearchFilter,
    VectorHit,
    VectorPoint,
    VectorStore,
    VectorStoreError,
    VectorStoreUnavailable,
)

logger = logging.getLogger(__name__)

#: Largest message either side accepts (list_points of a big project returns many payloads).
MAX_MESSAGE = 256 * 1024 * 1024

_ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        VectorStoreError,
        VectorStoreUnavailable,
        EmbeddingModelMismatch,
        CollectionNotFound,
        ValueError,
    )
}


def _filter_out(flt: SearchFilter | None) -> dict[str, Any] | None:
    if flt is None:
        return None
    return {
        "project_ids": flt.project_ids,
        "kinds": flt.kinds,
        "languages": flt.languages,
        "document_ids": flt.document_ids,
    }


def _filter_in(raw: dict[str, Any] | None) -> SearchFilter | None:
    return None if raw is None else SearchFilter(**raw)


# --------------------------------------------------------------------------------------------
# client
# --------------------------------------------------------------------------------------------


class ProxyVectorStore:
    """A :class:`VectorStore` whose calls run in the process that owns the embedded store."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    async def _call(self, op: str, **args: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_unix_connection(
                    str(self.path), limit=MAX_MESSAGE
                )
                try:
                    writer.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
                    await writer.drain()
                    line = await reader.readline()
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except TimeoutError as exc:
            raise VectorStoreUnavailable(
                f"the vector store owner did not answer {op} within {self.timeout:g} s "
                "(it may be building an HNSW index)"
            ) from exc
        except (OSError, ValueError) as exc:  # ValueError: a line over MAX_MESSAGE
            raise VectorStoreUnavailable(
                f"the vector store owner at {self.path} is not reachable: {exc}"
            ) from exc
        if not line:
            raise VectorStoreUnavailable(f"the vector store owner closed the connection ({op})")
        reply = json.loads(line)
        if reply.get("ok"):
            return reply.get("result")
        cls = _ERRORS.get(str(reply.get("error")), VectorStoreError)
        raise cls(str(reply.get("message")))

    async def create_index_if_missing(
        self, collection: str, dimension: int, *, model_name: str
    ) -> None:
        await self._call(
            "create_index_if_missing",
            collection=collection,
            dimension=dimension,
            model_name=model_name,
        )

    async def upsert(self, collection: str, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        body = [
            {
                "id": p.id,
                "vector": list(p.vector),
                "payload": p.payload,
                "sparse": [list(p.sparse[0]), list(p.sparse[1])] if p.sparse else None,
            }
            for p in points
        ]
        await self._call("upsert", collection=collection, points=body)

    async def delete(self, collection: str, ids: Sequence[int | str]) -> None:
        if ids:
            await self._call("delete", collection=collection, ids=list(ids))

    async def delete_by_filter(self, collection: str, filter: SearchFilter) -> None:
        await self._call("delete_by_filter", collection=collection, filter=_filter_out(filter))

    async def search(
        self,
        collection: str,
        vector: Sequence[float],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        hits = await self._call(
            "search",
            collection=collection,
            vector=list(vector),
            top_k=top_k,
            filter=_filter_out(filter),
        )
        return [VectorHit(h["id"], float(h["score"]), h["payload"]) for h in hits]

    async def sparse_search(
        self,
        collection: str,
        sparse: tuple[list[int], list[float]],
        top_k: int,
        filter: SearchFilter | None = None,
    ) -> list[VectorHit]:
        hits = await self._call(
            "sparse_search",
            collection=collection,
            sparse=[list(sparse[0]), list(sparse[1])],
            top_k=top_k,
            filter=_filter_out(filter),
        )
        return [VectorHit(h["id"], float(h["score"]), h["payload"]) for h in hits]

    async def count(self, collection: str) -> int:
        return int(await self._call("count", collection=collection))

    async def list_points(
        self, collection: str, filter: SearchFilter, *, limit: int = 100_000
    ) -> dict[int | str, dict[str, Any]]:
        pairs = await self._call(
            "list_points", collection=collection, filter=_filter_out(filter), limit=limit
        )
        return {pid: payload for pid, payload in pairs}

    async def drop_collection(self, collection: str) -> None:
        await self._call("drop_collection", collection=collection)

    async def health(self) -> None:
        await self._call("health")

    async def close(self) -> None:
        """Nothing to release: the owner's store stays open for the other processes."""


# --------------------------------------------------------------------------------------------
# server (in the owner process)
# --------------------------------------------------------------------------------------------


async def _dispatch(store: VectorStore, op: str, args: dict[str, Any]) -> Any:
    if op == "create_index_if_missing":
        return await store.create_index_if_missing(
            args["collection"], int(args["dimension"]), model_name=args["model_name"]
        )
    if op == "upsert":
        points = [
            VectorPoint(
                p["id"],
                p["vector"],
                p["payload"],
                (p["sparse"][0], p["sparse"][1]) if p.get("sparse") else None,
            )
            for p in args["points"]
        ]
        return await store.upsert(args["collection"], points)
    if op == "delete":
        return await store.delete(args["collection"], args["ids"])
    if op == "delete_by_filter":
        flt = _filter_in(args["filter"])
        if flt is None:
            raise ValueError("delete_by_filter needs a filter")
        return await store.delete_by_filter(args["collection"], flt)
    if op == "search":
        hits = await store.search(
            args["collection"], args["vector"], int(args["top_k"]), _filter_in(args["filter"])
        )
        return [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]
    if op == "sparse_search":
        indices, values = args["sparse"]
        hits = await store.sparse_search(
            args["collection"], (indices, values), int(args["top_k"]), _filter_in(args["filter"])
        )
        return [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]
    if op == "count":
        return await store.count(args["collection"])
    if op == "list_points":
        flt = _filter_in(args["filter"]) or SearchFilter()
        found = await store.list_points(args["collection"], flt, limit=int(args["limit"]))
        return [[pid, payload] for pid, payload in found.items()]
    if op == "drop_collection":
        return await store.drop_collection(args["collection"])
    if op == "health":
        return await store.health()
    raise ValueError(f"unknown vector store operation {op!r}")


async def start_vector_server(
    store: Callable[[], VectorStore], path: str | Path
) -> asyncio.AbstractServer:
    """Serve ``store()`` on the Unix socket ``path`` (owner only, mode 0600), on this loop.

    Run it on the loop the owner's jobs use, so the store is only ever used from one loop.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a socket file left by a killed owner; the directory lock is ours

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    result = await _dispatch(store(), str(request["op"]), request.get("args", {}))
                    reply: dict[str, Any] = {"ok": True, "result": result}
                except (VectorStoreError, ValueError, KeyError, TypeError) as exc:
                    name = type(exc).__name__
                    reply = {
                        "ok": False,
                        "error": name if name in _ERRORS else "ValueError",
                        "message": str(exc),
                    }
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError) as exc:
            logger.debug("vector proxy connection ended: %s", exc)
        finally:
            writer.close()

    old_umask = os.umask(0o177)  # the socket is created 0600: only this user may connect
    try:
        server = await asyncio.start_unix_server(handle, str(path), limit=MAX_MESSAGE)
    finally:
        os.umask(old_umask)
    logger.info("embedded vector store served on %s", path)
    return server
