"""The jobs admin: `GET /api/v1/admin/jobs`, retry/cancel, and the `/admin/jobs` page."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from codeatlas.db.base import utcnow
from codeatlas.db.session import Database, atomic
from codeatlas.models import Job
from codeatlas.settings import Settings
from tests.factories import auth_headers, create_user
from tests.jobs.conftest import FAST, Probes, add_enqueue_route, wait_for

BASIC = {"admin_basic_user": "ops", "admin_basic_password": "a-long-admin-password"}


async def _messages_are(probes: Probes, n: int) -> bool:
    return await probes.queued_messages() == n


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _seed(db: Database) -> list[Job]:
    """One job in each status, for projects 1 and 2."""
    statuses = ["queued", "running", "retrying", "succeeded", "failed", "dead", "cancelled"]
    jobs = []
    async with db.session() as s, atomic(s):
        for i, status in enumerate(statuses):
            job = Job(
                message_id=f"msg-{i}",
                actor="probe.record" if i % 2 else "code.process_file",
                queue="default",
                args=[i],
                kwargs={},
                args_summary=repr(i),
                status=status,
                attempts=1 if status != "queued" else 0,
                last_error="RuntimeError: boom" if status in {"failed", "dead"} else None,
                project_id=1 + i % 2,
                document_id=100 + i,
                progress=0,
                # A live worker's lease: the relay's reaper must leave it alone.
                lease_until=utcnow() + timedelta(hours=1) if status == "running" else None,
            )
            s.add(job)
            jobs.append(job)
    return jobs


@pytest.fixture
async def admin_app(app_factory: Any) -> Any:
    app: FastAPI = app_factory(**FAST, **BASIC)
    add_enqueue_route(app)
    async with app.router.lifespan_context(app):
        # The relay's first reaper pass finds this test's broker namespace empty and re-sends
        # sent-but-unstarted jobs; let it pass before seeding rows that have no message.
        async def epoch_seen() -> bool:
            return app.state.jobs_relay.reaper_state.epoch is not None

        await wait_for(epoch_seen, what="the relay's first reaper pass")
        yield app


@pytest.fixture
async def admin_client(admin_app: FastAPI) -> Any:
    transport = httpx.ASGITransport(app=admin_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_list_filters_and_pages(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    jobs = await _seed(db)
    admin = await create_user(db, is_admin=True)
    h = auth_headers(admin, settings)

    r = await admin_client.get("/api/v1/admin/jobs", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [j["id"] for j in body["items"]] == [j.id for j in reversed(jobs)]
    assert body["next_cursor"] is None
    assert body["counts"] == {s: 1 for s in [j.status for j in jobs]}

    r = await admin_client.get("/api/v1/admin/jobs", params={"status": "dead"}, headers=h)
    [dead] = r.json()["items"]
    assert (dead["status"], dead["last_error"], dead["document_id"]) == (
        "dead",
        "RuntimeError: boom",
        105,
    )

    r = await admin_client.get("/api/v1/admin/jobs", params={"project_id": 2}, headers=h)
    assert {j["project_id"] for j in r.json()["items"]} == {2}
    r = await admin_client.get("/api/v1/admin/jobs", params={"actor": "probe.record"}, headers=h)
    assert {j["actor"] for j in r.json()["items"]} == {"probe.record"}

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await admin_client.get("/api/v1/admin/jobs", params=params, headers=h)).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [j.id for j in reversed(jobs)]

    bad = await admin_client.get("/api/v1/admin/jobs", params={"status": "lost"}, headers=h)
    assert bad.status_code == 422


async def test_only_admins(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await _seed(db)
    member = await create_user(db)
    r = await admin_client.get("/api/v1/admin/jobs")
    assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
    r = await admin_client.get("/api/v1/admin/jobs", headers=auth_headers(member, settings))
    assert r.status_code == 403 and r.json()["error_code"] == "FORBIDDEN"
    r = await admin_client.post(
        "/api/v1/admin/jobs/1/retry", headers=auth_headers(member, settings)
    )
    assert r.status_code == 403
    r = await admin_client.get("/admin/jobs", headers=auth_headers(member, settings))
    assert r.status_code == 403
    r = await admin_client.get("/api/v1/admin/jobs", headers=_basic("ops", "wrong-password-here"))
    assert r.status_code == 401
    r = await admin_client.get("/api/v1/admin/jobs", headers=_basic(**_creds()))
    assert r.status_code == 200


def _creds() -> dict[str, str]:
    return {"user": BASIC["admin_basic_user"], "password": BASIC["admin_basic_password"]}


async def test_basic_auth_is_off_without_a_long_password(app_factory: Any, db: Database) -> None:
    app: FastAPI = app_factory(**FAST, admin_basic_user="ops", admin_basic_password="short")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        r = await c.get("/api/v1/admin/jobs", headers=_basic("ops", "short"))
    assert r.status_code == 401


async def test_retry_and_cancel_rules(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings, probes: Probes
) -> None:
    jobs = {j.status: j for j in await _seed(db)}
    h = auth_headers(await create_user(db, is_admin=True), settings)

    # Issue 10: any state but `succeeded` can be retried, any unfinished one cancelled.
    r = await admin_client.post(f"/api/v1/admin/jobs/{jobs['succeeded'].id}/retry", headers=h)
    assert r.status_code == 409 and r.json()["error_code"] == "JOB_NOT_RETRYABLE"
    for status in ("succeeded", "cancelled"):
        r = await admin_client.post(f"/api/v1/admin/jobs/{jobs[status].id}/cancel", headers=h)
        assert r.status_code == 409 and r.json()["error_code"] == "JOB_NOT_CANCELLABLE", status
    assert (
        await admin_client.post("/api/v1/admin/jobs/999999/retry", headers=h)
    ).status_code == 404

    r = await admin_client.post(f"/api/v1/admin/jobs/{jobs['dead'].id}/retry", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    # Sent by the relay once the request committed.
    await wait_for(lambda: _messages_are(probes, 1), what="the retried job's message")
    r = await admin_client.post(f"/api/v1/admin/jobs/{jobs['queued'].id}/retry", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    await wait_for(lambda: _messages_are(probes, 2), what="the re-queued job's message")
    for status in ("queued", "retrying", "running", "failed"):
        r = await admin_client.post(f"/api/v1/admin/jobs/{jobs[status].id}/cancel", headers=h)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", status
    r = await admin_client.post(f"/api/v1/admin/jobs/{jobs['cancelled'].id}/retry", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"


async def test_html_page_lists_jobs_with_buttons(
    admin_client: httpx.AsyncClient, db: Database, probes: Probes
) -> None:
    jobs = {j.status: j for j in await _seed(db)}
    r = await admin_client.get("/admin/jobs", headers=_basic(**_creds()))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    for status in jobs:
        assert f'class="status {status}"' in page
    assert f'action="/admin/jobs/{jobs["dead"].id}/retry"' in page
    assert f'action="/admin/jobs/{jobs["queued"].id}/cancel"' in page
    assert f'action="/admin/jobs/{jobs["succeeded"].id}/retry"' not in page
    token = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert token is not None

    r = await admin_client.post(
        f"/admin/jobs/{jobs['dead'].id}/retry", data={"token": "forged"}, headers=_basic(**_creds())
    )
    assert r.status_code == 403
    r = await admin_client.post(
        f"/admin/jobs/{jobs['dead'].id}/retry",
        data={"token": token.group(1)},
        headers=_basic(**_creds()),
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/jobs?notice=")
    await wait_for(lambda: _messages_are(probes, 1), what="the retried job's message")

    filtered = await admin_client.get(
        "/admin/jobs", params={"status": "dead"}, headers=_basic(**_creds())
    )
    assert "No jobs." in filtered.text  # the only dead job was re-queued


async def test_page_is_not_in_the_openapi_document(admin_client: httpx.AsyncClient) -> None:
    paths = (await admin_client.get("/api/v1/openapi.json")).json()["paths"]
    assert "/api/v1/admin/jobs" in paths
    assert "/admin/jobs" not in paths
    assert not any(p.startswith("/admin") for p in paths)


async def test_page_escapes_job_fields(admin_client: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as s, atomic(s):
        s.add(
            Job(
                message_id="xss",
                actor="probe.record",
                queue="default",
                args=[],
                kwargs={},
                args_summary="<script>alert(1)</script>",
                status="failed",
                attempts=1,
                last_error="<img src=x onerror=alert(1)>",
                progress=0,
            )
        )
    page = (await admin_client.get("/admin/jobs", headers=_basic(**_creds()))).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "<img src=x" not in page


async def test_requeue_stuck_sends_old_queued_jobs_again(
    db: Database, jobs_settings: Settings, probes: Probes, app_factory: Any
) -> None:
    """Run-book "re-queue stuck jobs": a job committed while Redis was down stays queued."""
    from datetime import timedelta

    from codeatlas.db.base import utcnow
    from codeatlas.jobs.service import requeue_stuck_jobs

    async with db.session() as s, atomic(s):
        stuck = Job(
            message_id="stuck-1",
            actor="probe.record",
            queue="default",
            args=[41],
            kwargs={},
            args_summary="41",
            status="queued",
            attempts=0,
            progress=0,
        )
        fresh = Job(
            message_id="fresh-1",
            actor="probe.record",
            queue="default",
            args=[42],
            kwargs={},
            args_summary="42",
            status="queued",
            attempts=0,
            progress=0,
        )
        s.add_all([stuck, fresh])
        await s.flush()
        stuck.updated_at = utcnow() - timedelta(hours=1)

    assert await requeue_stuck_jobs(jobs_settings, 600, dry_run=True) == ["stuck-1"]
    assert await requeue_stuck_jobs(jobs_settings, 600, dry_run=False) == ["stuck-1"]
    assert await requeue_stuck_jobs(jobs_settings, 600, dry_run=False) == []  # bumped
    # Only the database was touched: the job waits in the outbox for a relay.
    assert await probes.queued_messages() == 0
    async with db.session() as s:
        pending = (await s.scalars(select(Job.message_id).where(Job.send_at.is_not(None)))).all()
    assert pending == ["stuck-1"]
    app: FastAPI = app_factory(**FAST)
    async with app.router.lifespan_context(app):
        # (A fresh broker namespace also makes its reaper re-send `fresh-1`, which has no
        # message in this test: a Redis that comes back empty lost every message.)
        async def stuck_sent() -> bool:
            async with db.session() as s:
                job = await s.scalar(select(Job).where(Job.message_id == "stuck-1"))
            return job is not None and job.send_at is None

        await wait_for(stuck_sent, what="a relay to send the stuck job")
        assert await probes.queued_messages() >= 1
