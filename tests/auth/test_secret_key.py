"""Finding 1 of issue 11: no forgeable tokens on a default install.

A token signed with a placeholder or with any key but the instance's is refused on every
route (the routes are read from the app, not listed by hand); an instance without SECRET_KEY
generates a random key once, keeps it in DATA_DIR (0600) and reuses it after a restart.
"""

from __future__ import annotations

import multiprocessing
import re
import secrets
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from codeatlas.core.secret_key import key_file, load_or_create
from codeatlas.settings import DEV_SECRET, KNOWN_PLACEHOLDERS, Settings
from tests.factories import create_user


def _forged(sub: int, key: str) -> str:
    now = int(time.time())
    claims = {"sub": str(sub), "iat": now, "exp": now + 600, "typ": "access", "ver": 0}
    return jwt.encode(claims, key, algorithm="HS256")


def _fill(path: str) -> str:
    # ints satisfy every path parameter of the API (ids); `:path` ones take a file name
    return re.sub(r"\{[^}:]+:path\}", "a.py", re.sub(r"\{[^}:]+\}", "1", path))


def _routes(routes: list[Any]) -> list[Any]:
    # FastAPI >= 0.16x keeps included routers as lazy branches with the effective routes inside
    out: list[Any] = []
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            out.extend(route.effective_route_contexts())
        else:
            out.append(route)
    return out


def _operations(app: Any) -> list[tuple[str, str]]:
    out = []
    for route in _routes(app.routes):
        if getattr(route, "methods", None) and getattr(route, "path", None):
            for method in sorted(route.methods - {"HEAD"}):
                out.append((method, _fill(route.path)))
    return out


async def test_placeholder_or_foreign_key_tokens_get_401_on_every_route(app_factory, db) -> None:  # type: ignore[no-untyped-def]
    instance_key = secrets.token_urlsafe(48)
    app = app_factory(secret_key=instance_key)
    admin = await create_user(db, "root@example.com", is_admin=True)
    keys = [*sorted(k for k in KNOWN_PLACEHOLDERS if k), secrets.token_urlsafe(48)]
    forged = [_forged(admin.id, key) for key in keys]
    spec_security: dict[tuple[str, str], bool] = {}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        spec = (await c.get("/api/v1/openapi.json")).json()
        for path, item in spec["paths"].items():
            for method, op in item.items():
                spec_security[(method.upper(), _fill(path))] = bool(op.get("security"))
        operations = _operations(app)
        assert len(operations) >= len(spec_security) > 20
        protected = 0
        for method, path in operations:
            anonymous = await c.request(method, path)
            needs_auth = spec_security.get((method, path), path.startswith("/admin/"))
            if path.startswith("/api/v1/auth/session"):
                # The web app's cookie session (refresh cookie + CSRF token), not bearer
                # tokens: a forged bearer token changes nothing there (checked below).
                needs_auth = False
            if needs_auth:
                protected += 1
                assert anonymous.status_code == 401, (method, path, anonymous.text)
            for token in forged:
                r = await c.request(method, path, headers={"Authorization": f"Bearer {token}"})
                # a forged token is worth exactly as much as no token
                assert r.status_code == anonymous.status_code, (method, path, r.text)
                if needs_auth:
                    assert r.status_code == 401
        genuine = _forged(admin.id, instance_key)
        r = await c.get("/api/v1/admin/jobs", headers={"Authorization": f"Bearer {genuine}"})
        assert r.status_code == 200, r.text
    assert protected > 20


def test_fresh_data_dir_gets_a_random_key_that_survives_a_restart(tmp_path: Path) -> None:
    first = Settings(env="development", data_dir=tmp_path / "a")
    path = key_file(tmp_path / "a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32 and first.secret_key not in KNOWN_PLACEHOLDERS
    restarted = Settings(env="development", data_dir=tmp_path / "a")
    assert restarted.secret_key == first.secret_key
    other = Settings(env="development", data_dir=tmp_path / "b")
    assert other.secret_key != first.secret_key
    # an explicit SECRET_KEY wins and nothing is written
    explicit = Settings(env="development", data_dir=tmp_path / "c", secret_key="k" * 40)
    assert explicit.secret_key == "k" * 40
    assert not key_file(tmp_path / "c").exists()


def _load(data_dir: str, queue: Any) -> None:
    queue.put(load_or_create(Path(data_dir)))


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load, args=(str(tmp_path), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    keys = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("key", sorted(k for k in KNOWN_PLACEHOLDERS if k))
def test_placeholders_are_refused_outside_the_test_suite(
    env: str, key: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(env=env, secret_key=key, data_dir=tmp_path)


def test_short_keys_and_unset_production_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(env="development", secret_key="short", data_dir=tmp_path)
    with pytest.raises(ValueError, match="SECRET_KEY"):
        Settings(env="production", data_dir=tmp_path)  # replicas must share an explicit key
    assert Settings(env="test", data_dir=tmp_path).secret_key == DEV_SECRET


@pytest.mark.slow
def test_default_install_signs_with_its_own_key_across_a_restart(tmp_path: Path) -> None:
    """Real `codeatlas serve`, ENV=development, no SECRET_KEY: the first start generates the
    key, the token it issued still works after a restart, a placeholder-signed one never."""
    import subprocess
    import sys

    from tests.auth.serving import serve_env, serving

    data = tmp_path / "data"
    env = serve_env(DATA_DIR=str(data), ENV="development", CODEATLAS_ADMIN_PASSWORD="p" * 16)
    env.pop("SECRET_KEY", None)
    made = subprocess.run(
        [sys.executable, "-m", "codeatlas", "users", "create-admin", "--email", "a@example.com"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "generated a random signing key" in made.stderr
    assert stat.S_IMODE(key_file(data).stat().st_mode) == 0o600
    key = key_file(data).read_text().strip()
    with serving(env, tmp_path / "serve1.log") as (port, _):
        base = f"http://127.0.0.1:{port}/api/v1"
        r = httpx.post(f"{base}/auth/login", json={"email": "a@example.com", "password": "p" * 16})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert httpx.get(f"{base}/admin/jobs", headers=_bearer(token)).status_code == 200
    assert "generated a random" not in (tmp_path / "serve1.log").read_text()
    with serving(env, tmp_path / "serve2.log") as (port, _):
        base = f"http://127.0.0.1:{port}/api/v1"
        assert httpx.get(f"{base}/admin/jobs", headers=_bearer(token)).status_code == 200
        claims = jwt.decode(token, key, algorithms=["HS256"])
        for other in (DEV_SECRET, secrets.token_urlsafe(48)):
            forged = jwt.encode(claims, other, algorithm="HS256")
            assert httpx.get(f"{base}/admin/jobs", headers=_bearer(forged)).status_code == 401
    assert key_file(data).read_text().strip() == key


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
