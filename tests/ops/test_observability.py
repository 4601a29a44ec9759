"""The dashboards and alert rules ask only for metrics that exist: every expression parses as
PromQL (promtool when installed, else a PromQL parser), every metric it names is declared,
and a live `/metrics` scrape after traffic, a refused request, jobs and a render through the
breaker contains each of them, so no panel or alert is silently empty."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml

from codeatlas.db.session import atomic
from codeatlas.models.job import Job
from tests.ops.tools import CHART

DASHBOARD = CHART / "files" / "dashboard.json"
ALERTS = CHART / "files" / "alerts.yaml"
METRIC = re.compile(r"\bcodeatlas_[a-z0-9_]+")


def expressions() -> list[str]:
    found = [r["expr"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return found


def referenced() -> set[str]:
    return {name for expr in expressions() for name in METRIC.findall(expr)}


def test_every_expression_is_valid_promql_and_rules_are_well_formed(tmp_path: Path) -> None:
    for expr in expressions():
        promql_parser.parse(expr)  # raises ValueError on a syntax error
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
        runbook = rule["annotations"]["runbook"].split("#")[0]
        assert (CHART.parents[2] / runbook).exists(), runbook
    promtool = shutil.which("promtool")
    if promtool:  # the real checker where the machine has it
        result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_panel_and_alert_names_a_declared_metric() -> None:
    from prometheus_client import REGISTRY

    import codeatlas.metrics.registry  # noqa: F401  (declares every metric)

    declared = {
        sample
        for collector in list(REGISTRY._collector_to_names)
        for sample in REGISTRY._collector_to_names[collector]
    }
    missing = referenced() - declared
    assert not missing, f"dashboards/alerts name undeclared metrics: {sorted(missing)}"
    assert len(referenced()) >= 15


@pytest.fixture
async def observed(app_factory: Any, unused_port: int) -> Any:
    # A render endpoint nobody listens on: rendering falls back in-process and the breaker
    # exists (and counts the failure), as in a cluster with render-svc down.
    application = app_factory(
        render_endpoint=f"http://127.0.0.1:{unused_port}", rate_limit_register="1/hour"
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def unused_port() -> int:
    from tests.conftest import free_port

    return free_port()


async def test_a_live_scrape_has_every_metric_the_dashboards_and_alerts_use(
    observed: Any,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    async with observed.state.db.session() as session, atomic(session):
        session.add(Job(message_id="obs-1", actor="code.process_file", queue="code.parse"))
        session.add(
            Job(message_id="obs-2", actor="knowledge.embed_chunks", status="dead", queue="e")
        )
    transport = httpx.ASGITransport(app=observed)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await c.get("/health/live")
        body = {"email": "obs@example.com", "password": "correct horse battery staple"}
        refused = [(await c.post("/api/v1/auth/register", json=body)).status_code for _ in "ab"]
        assert 429 in refused, refused
        token = await _login_token(observed)
        r = await c.post(
            "/api/v1/rendering/markdown",
            json={"markdown": "# hi"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        r = await c.get("/metrics")
        assert r.status_code == 200
    present = {
        sample.name
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }
    missing = referenced() - present
    assert not missing, f"no samples for: {sorted(missing)}"


async def _login_token(app: Any) -> str:
    from tests.code.helpers import make_user
    from tests.factories import auth_headers

    user = await make_user(app.state.db)
    return auth_headers(user, app.state.settings)["Authorization"].split()[1]
