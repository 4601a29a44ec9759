"""Schemathesis over the whole API (issue 11, finding 6): every operation of
``/api/v1/openapi.json`` is fuzzed against the real app (uvicorn on the test run's database and
Redis), once as a normal user who owns a project with a file, a knowledge entry and a chat,
and once as an admin. Every phase runs: the schema's examples, the coverage phase (boundary
values, huge integers, wrong types, missing fields, undocumented methods) and Hypothesis
fuzzing of valid and invalid data. Every response must be no 5xx, carry a status the
operation documents, and match the documented schema (content type, headers, body,
timestamps with a UTC offset); invalid data must be refused with a 4xx.

Reproducible: Hypothesis is derandomized (the same cases each run) and has no deadline (a
busy machine makes it slower, never red). Half of the valid cases aim their path ids at the
fixtures' real rows, so the handlers run past their 404s.

No operation is excluded. The WebSocket `/api/v1/ws` is not in the document (its protocol has
its own tests in tests/ws); DELETEs run with generated ids only, so the fixtures survive the
run; no operation can delete or demote the admin, and a password change needs the current
password, which the fuzzer does not know.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from codeatlas.app import create_app
from codeatlas.auth.tokens import create_access_token
from codeatlas.db.session import Database
from codeatlas.settings import Settings
from tests.conftest import free_port
from tests.factories import create_user
from tests.llm.chathelpers import llm_overrides
from tests.llm.openai_server import OpenAITestServer

pytestmark = pytest.mark.slow

# Fuzzing examples per operation and identity; with the examples and coverage phases that is
# about 2,500 requests per identity over the 57 operations (~45 each), a few minutes on a
# busy 2-core machine for both.
MAX_EXAMPLES = 12

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,  # an undocumented method: 405 with Allow
    allow_header_conformance,  # OPTIONS: Allow names exactly the documented methods
]


@dataclass
class World:
    base: str
    tokens: dict[str, str]
    ids: dict[str, int]
    calls: int = 0


@pytest.fixture
async def world(db: Database, settings: Settings) -> AsyncIterator[World]:
    with OpenAITestServer() as llm:
        async for w in _serve(db, settings, llm):
            yield w


async def _serve(db: Database, settings: Settings, llm: OpenAITestServer) -> AsyncIterator[World]:
    admin = await create_user(db, "fuzz-admin@example.com", is_admin=True)
    user = await create_user(db, "fuzz-user@example.com")
    tokens = {"admin": create_access_token(admin.id, settings)}
    tokens["user"] = create_access_token(user.id, settings)
    # The rate limiter is off so the fuzzer reaches the handlers instead of a wall of 429s
    # (the limits have their own tests); the chat answers come from the OpenAI-wire test
    # server (without a model the chat routes answer 503 LLM_NOT_CONFIGURED before anything).
    overrides = llm_overrides(llm.base_url, use_sync_background=False)
    app = create_app(settings.model_copy(update={"disable_rate_limiter": True, **overrides}))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    # Its own thread and event loop: schemathesis calls synchronously.
    thread = threading.Thread(target=server.run, name="fuzz-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive(), "uvicorn exited during start-up"
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        world = World(base, tokens, {"admin": admin.id, "user": user.id, **_seed(base, tokens)})
        yield world
        print(f"fuzz: {world.calls} requests")  # shown with -s
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 60)


def _seed(base: str, tokens: dict[str, str]) -> dict[str, int]:
    """The user's project with one file, a knowledge entry and a chat, made through the API."""
    ids: dict[str, int] = {}
    auth = {"Authorization": f"Bearer {tokens['user']}"}
    with httpx.Client(base_url=base + "/api/v1", headers=auth, timeout=60) as c:
        r = c.post("/projects", json={"name": "fuzzed", "description": "seed"})
        assert r.status_code == 201, r.text
        ids["project"] = r.json()["id"]
        source = ("src/app.py", b"def main():\n    return 1\n", "text/x-python")
        r = c.post(f"/projects/{ids['project']}/files", files=[("files", source)])
        assert r.status_code in (200, 201), r.text
        r = c.get(f"/projects/{ids['project']}/files")
        assert r.status_code == 200, r.text
        ids["document"] = r.json()["items"][0]["id"]
        entry = {"title": "Seed", "content": "Seed entry", "project_id": ids["project"]}
        r = c.post("/knowledge/entries", json=entry)
        assert r.status_code == 201, r.text
        ids["entry"] = r.json()["id"]
        r = c.post("/chats", json={"title": "seed", "project_id": ids["project"]})
        assert r.status_code == 201, r.text
        ids["chat"] = r.json()["id"]
    return ids


@pytest.fixture
def api_schema(world: World) -> Any:
    return schemathesis.openapi.from_url(f"{world.base}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")

# Path parameter -> the fixture row it names.
REAL_IDS = {
    "project_id": "project",
    "document_id": "document",
    "entry_id": "entry",
    "chat_id": "chat",
    "user_id": "user",
}


def _aim_at_real_rows(case: Any, world: World) -> None:
    """Half of the valid cases (chosen by a hash of the case, so reproducibly) name the
    fixtures' rows. DELETEs never do: a deleted fixture would turn the rest of the run into
    404s (deleting with random ids still runs)."""
    meta = case.meta
    if not case.path_parameters or case.method.upper() == "DELETE":
        return
    if meta is not None and not meta.generation.mode.is_positive:
        return
    if zlib.crc32(repr(sorted(case.path_parameters.items())).encode()) % 2:
        return
    for name in list(case.path_parameters):
        if name in REAL_IDS:
            case.path_parameters[name] = world.ids[REAL_IDS[name]]


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def _call(case: Any, world: World, identity: str) -> None:
    _aim_at_real_rows(case, world)
    world.calls += 1
    case.call_and_validate(
        base_url=world.base,
        headers={"Authorization": f"Bearer {world.tokens[identity]}"},
        checks=CHECKS,
        timeout=60,
    )


# Each test runs every operation (schemathesis' subtests) and can take minutes.
@pytest.mark.timeout(900)
@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_a_project_owner(case: Any, world: World) -> None:
    _call(case, world, "user")


@pytest.mark.timeout(900)
@schema.parametrize()
@FUZZ_SETTINGS
def test_api_as_an_admin(case: Any, world: World) -> None:
    _call(case, world, "admin")
