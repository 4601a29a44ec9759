"""/metrics: access rules, and that traffic, statements and jobs show up in a scrape."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from codeatlas.db.base import utcnow
from codeatlas.db.session import atomic
from codeatlas.models.job import Job


def samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict[str, list[Any]]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_metrics_count_requests_by_route_template_and_time_statements(
    client: httpx.AsyncClient, app: Any
) -> None:
    import codeatlas

    assert codeatlas.__file__.startswith(str(__import__("pathlib").Path.cwd()))
    for project_id in (1, 2, 3):
        await client.get(f"/api/v1/projects/{project_id}")  # 401: no token
    await client.get("/health/live")
    found = await scrape(client)
    requests = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in found["codeatlas_http_requests_total"]
    }
    # One label for the three ids: the template, never the raw path.
    assert requests[("GET", "/api/v1/projects/{project_id}", "401")] >= 3
    assert not any("/projects/1" in route for _, route, _ in requests)
    assert requests[("GET", "/health/live", "200")] >= 1
    assert found["codeatlas_db_query_duration_seconds_count"][0].value > 0
    assert "codeatlas_db_slow_queries_total" in found
    ready = {s.labels["component"]: s.value for s in found["codeatlas_component_up"]}
    assert ready["db"] == 1


async def test_job_states_and_queue_age_come_from_the_jobs_table(
    client: httpx.AsyncClient, app: Any
) -> None:
    async with app.state.db.session() as session, atomic(session):
        for n, status in enumerate(["queued", "queued", "succeeded", "dead"]):
            session.add(
                Job(
                    message_id=f"m-{n}",
                    actor="code.process_file",
                    queue="q1",
                    status=status,
                )
            )
        # In the outbox, not yet handed to the broker (due in an hour, so the app's own
        # relay leaves it there while the test looks).
        due = utcnow() + timedelta(hours=1)
        session.add(Job(message_id="m-out", actor="code.process_file", send_at=due))
    found = await scrape(client)
    # At least the row due in an hour (the others may be sent by the relay meanwhile).
    assert found["codeatlas_outbox_backlog"][0].value >= 1
    jobs = {(s.labels["actor"], s.labels["state"]): s.value for s in found["codeatlas_jobs"]}
    assert jobs[("code.process_file", "queued")] == 3
    assert jobs[("code.process_file", "dead")] == 1
    depth = {s.labels["queue"]: s.value for s in found["codeatlas_queue_depth"]}
    assert depth["q1"] == 2
    age = {s.labels["queue"]: s.value for s in found["codeatlas_queue_oldest_age_seconds"]}
    assert age["q1"] >= 0


async def test_metrics_need_the_token_when_one_is_set_and_can_be_turned_off(
    app_factory: Any,
) -> None:
    for overrides, headers, expected in [
        ({"metrics_token": "s3cret-token"}, {}, 403),
        ({"metrics_token": "s3cret-token"}, {"Authorization": "Bearer wrong"}, 403),
        ({"metrics_token": "s3cret-token"}, {"Authorization": "Bearer s3cret-token"}, 200),
        ({"metrics_enabled": False}, {}, 404),
    ]:
        application = app_factory(**overrides)
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                response = await c.get("/metrics", headers=headers)
        assert response.status_code == expected, (overrides, headers)


async def test_metrics_refuse_clients_off_the_loopback_without_a_token(app: Any) -> None:
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/metrics")
    assert response.status_code == 403
    assert response.json()["error_code"] == "METRICS_FORBIDDEN"
