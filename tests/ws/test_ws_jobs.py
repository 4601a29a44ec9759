"""2-A end to end: an upload's request id travels HTTP → job → real worker process → Redis →
the uploader's WebSocket, on `job.progress` and `document.indexed`."""

from __future__ import annotations

import httpx
import pytest

from codeatlas.db.session import Database
from codeatlas.models import ProjectRole
from codeatlas.settings import Settings
from tests.code.helpers import make_project, upload
from tests.factories import auth_headers, create_user
from tests.jobs.conftest import FAST, Workers, jobs_settings, workers  # noqa: F401
from tests.ws.conftest import LiveFactory, open_ws, recv_json

pytestmark = pytest.mark.slow

SOURCE = b"def greet(name):\n    return f'hello {name}'\n\n\nclass Greeter:\n    pass\n"


async def test_upload_processed_by_a_real_worker_pushes_events_with_its_request_id(
    live_server: LiveFactory,
    db: Database,
    jobs_settings: Settings,  # noqa: F811
    workers: Workers,  # noqa: F811
) -> None:
    live = await live_server(**FAST)
    owner = await create_user(db)
    project_id = await make_project(db, {owner: ProjectRole.OWNER})
    await workers.start(threads=1)
    token = auth_headers(owner, jobs_settings)["Authorization"].removeprefix("Bearer ")
    ws, _ = await open_ws(live.url, token)
    async with ws, httpx.AsyncClient(base_url=live.http, timeout=60) as client:
        headers = auth_headers(owner, jobs_settings) | {"X-Request-ID": "req-ws-upload-0001"}
        r = await upload(client, project_id, headers, [("pkg/greet.py", SOURCE)])
        assert r.status_code == 201, r.text
        events = []
        while not any(e["type"] == "document.indexed" for e in events) or not any(
            e["type"] == "job.progress" and e["data"]["status"] == "succeeded" for e in events
        ):
            message = await recv_json(ws, timeout=120)
            if message["type"] != "ping":
                events.append(message)
    assert {e["request_id"] for e in events} == {"req-ws-upload-0001"}, events
    progress = [e["data"] for e in events if e["type"] == "job.progress"]
    assert progress[0]["status"] == "running" and progress[-1]["status"] == "succeeded"
    assert progress[-1]["progress"] == 100 and progress[-1]["actor"] == "code.process_file"
    (indexed,) = [e["data"] for e in events if e["type"] == "document.indexed"]
    assert indexed["project_id"] == project_id and indexed["symbols"] >= 2
    assert indexed["document_id"] == progress[-1]["document_id"]
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
