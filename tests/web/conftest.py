"""Browser tests of the web app: a real `codeatlas serve` (with its job worker threads, on the
test run's PostgreSQL/Redis when configured, else SQLite and an embedded Valkey), a real SMTP
server catching the e-mails, and Debian's Chromium driven by Playwright.

Every page a test opens is checked by axe-core (no serious or critical violations) and for
console errors and CSP violations; main pages are saved as screenshots under
docs/screenshots/ at desktop and phone width.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from tests.auth.conftest import Inbox
from tests.auth.serving import serving
from tests.conftest import ENV_DATABASE_URL, PG_AVAILABLE, _recreate_pg_database, free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
ADMIN_EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"


if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:  # pragma: no cover
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)

# expect() retries until its condition holds: generous, for a busy 2-core CI machine.
EXPECT_TIMEOUT_MS = 30_000


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions, with this suite's timeout."""
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return pw_expect(target)


def sign_in(page: Any, base: str, email: str, password: str = PASSWORD) -> None:
    """Through the login form, until the projects page is up."""
    page.goto(f"{base}/login")
    page.fill("#login-email", email)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.locator("#project-list").wait_for()


@dataclass
class Served:
    base: str
    inbox: Inbox
    env: dict[str, str]
    database_url: str
    log: Path
    llm: Any = None  # the OpenAI-wire test server, where the llm branch's is present

    def register(self, email: str, password: str = PASSWORD) -> None:
        r = httpx.post(
            f"{self.base}/api/v1/auth/register",
            json={"email": email, "password": password, "full_name": "Test"},
            timeout=30,
        )
        assert r.status_code == 202, r.text  # new or taken address alike (no enumeration)

    def wait_for_mail(self, to: str, count: int = 1, timeout: float = 30) -> list[str]:
        """The bodies of the e-mails to `to`, once at least `count` arrived."""
        deadline = time.monotonic() + timeout
        while True:
            bodies = []
            for msg in self.inbox.messages:
                if msg["To"] == to:
                    payload = msg.get_payload(decode=True)
                    assert isinstance(payload, bytes)
                    bodies.append(payload.decode())
            if len(bodies) >= count:
                return bodies
            assert time.monotonic() < deadline, f"{len(bodies)} e-mails to {to}"
            time.sleep(0.2)

    def verified_user(self, email: str, password: str = PASSWORD) -> None:
        """A registered account, verified through the token of its e-mailed link (by the
        API: the browser side of that link has its own test)."""
        self.register(email, password)
        m = re.search(r"/verify-email\?token=(\S+)", self.wait_for_mail(email)[0])
        assert m, "no verification link"
        r = httpx.post(f"{self.base}/api/v1/auth/verify", json={"token": m.group(1)}, timeout=30)
        assert r.status_code == 200, r.text

    def token(self, email: str, password: str = PASSWORD) -> str:
        """An access token of the account, for API calls a browser user would not make."""
        r = httpx.post(
            f"{self.base}/api/v1/auth/session",
            json={"email": email, "password": password},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def _database_url(tmp: Path, suffix: str) -> str:
    if PG_AVAILABLE:
        from sqlalchemy.engine import make_url

        # per xdist worker, like every other database of the suite: each worker starts its
        # own servers, and a second worker recreating the same database would pull it away
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        base = make_url(ENV_DATABASE_URL)
        url = base.set(database=f"{base.database}_{suffix}_{worker}").render_as_string(
            hide_password=False
        )
        asyncio.run(_recreate_pg_database(url))
        return url
    return f"sqlite+aiosqlite:///{tmp / (suffix + '.db')}"


def _start_llm_server() -> Any:
    """The test LLM (a real HTTP server speaking the OpenAI protocol), when it exists."""
    try:
        from tests.llm.openai_server import OpenAITestServer
    except ImportError:
        return None
    return OpenAITestServer().start()


@contextmanager
def _serve(tmp: Path, name: str, *, with_llm: bool) -> Iterator[Served]:
    """A real `codeatlas serve` on a database of its own, with an admin and an SMTP catcher;
    with the test LLM server, or with no LLM at all (LLM_PROVIDER=none)."""
    inbox = Inbox(port=free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database_url = _database_url(tmp, name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("DATABASE_", "REDIS_", "QDRANT_", "EMBEDDING_", "JOBS_", "SMTP_", "LLM_")
        )
    }
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp / "data"),
        SECRET_KEY="web-test-secret-" + uuid.uuid4().hex,
        ENV="test",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(inbox.port),
        SMTP_SECURITY="none",
        VERIFICATION_LINK_TEMPLATE=f"{base}/verify-email?token={{token}}",
        LOGIN_FAILURES_PER_ACCOUNT="3",
        LOGIN_FAILURES_PER_IP="1000",
        RATE_LIMIT_REGISTER="1000/hour",
        RATE_LIMIT_LOGIN="1000/minute",
        RATE_LIMIT_VERIFY="1000/hour",
        RATE_LIMIT_PASSWORD_CHANGE="1000/hour",
        CODEATLAS_ADMIN_PASSWORD=PASSWORD,
    )
    llm = _start_llm_server() if with_llm else None
    if llm is not None:
        env.update(LLM_PROVIDER="openai", LLM_BASE_URL=llm.base_url, LLM_API_KEY="test")
    elif not with_llm:
        env.update(LLM_PROVIDER="none")
    if os.environ.get("REDIS_URL"):
        # The run's Redis, under a prefix of our own; the jobs run in the server's threads.
        env.update(
            REDIS_URL=os.environ["REDIS_URL"],
            REDIS_KEY_PREFIX=f"web-{uuid.uuid4().hex[:8]}:",
            EMBEDDED_WORKER_THREADS="2",
        )
    try:
        subprocess.run(
            [sys.executable, "-m", "codeatlas", "users", "create-admin", "--email", ADMIN_EMAIL],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        log = tmp / "serve.log"
        # a loaded 2-core CI machine migrates slowly: 300 s to become ready
        with serving(env, log, port=port, ready_timeout=300):
            yield Served(base, inbox, env, database_url, log, llm)
    finally:
        if llm is not None:
            llm.stop()
        controller.stop()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with _serve(tmp_path_factory.mktemp("web"), "web", with_llm=True) as s:
        yield s


@pytest.fixture(scope="module")
def served_without_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A second server with no LLM configured (LLM_PROVIDER=none), for the module that
    checks what chat says then; started only where such a test runs."""
    with _serve(tmp_path_factory.mktemp("web-no-llm"), "web_no_llm", with_llm=False) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Per module, not per session: Playwright's sync API keeps an event loop marked running
    # in this thread while it is started, which would break later asyncio tests.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


# Chromium logs every 4xx/5xx fetch as a console error; tests that provoke one on purpose
# (a wrong password) list the statuses they expect.
_FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class Watched:
    """A page with its console errors, uncaught exceptions and CSP violations recorded."""

    page: Any
    errors: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)
    axe_checked: set[str] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    ws_frames: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        for e in self.errors:
            m = _FAILED_LOAD.search(e)
            if m and int(m.group(1)) in self.expected_statuses:
                continue
            out.append(e)
        csp = self.page.evaluate("window.__cspViolations || []")
        return out + [f"CSP violation: {v}" for v in csp]

    def assert_clean(self) -> None:
        assert self.problems() == [], self.failed

    def axe(self, name: str) -> None:
        """axe-core on the current page: no serious or critical violation."""
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        bad = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert bad == [], f"axe on {name}: {bad}"
        self.axe_checked.add(name)

    def shoot(self, name: str) -> None:
        """Screenshots at desktop and phone width (restores the desktop size)."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        if "#" not in self.page.url:
            self.page.evaluate("window.scrollTo(0, 0)")
        self.page.set_viewport_size(DESKTOP)
        self.page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=False)
        self.page.set_viewport_size(PHONE)
        self.page.wait_for_timeout(150)
        self.page.screenshot(path=str(SHOTS / f"{name}-phone.png"), full_page=False)
        self.axe(name + " (phone)")
        self.page.set_viewport_size(DESKTOP)


# Recorded by the page itself, from the first script on: the browser's own report of every
# blocked resource, inline script or style.
_CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


@pytest.fixture
def watched(browser: Any) -> Iterator[Any]:
    """A factory of fresh browser contexts (cookies of their own), each page watched."""
    contexts = []
    pages: list[Watched] = []

    def make() -> Watched:
        ctx = browser.new_context(viewport=DESKTOP)
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        page.add_init_script(_CSP_RECORDER)
        w = Watched(page)
        page.on("console", lambda m: m.type == "error" and w.errors.append(m.text))
        page.on("pageerror", lambda exc: w.errors.append(f"uncaught: {exc}"))
        # names the URL behind Chromium's anonymous "Failed to load resource" lines
        page.on("response", lambda r: r.status >= 400 and w.failed.append(f"{r.status} {r.url}"))
        page.on(
            "websocket",
            lambda ws: ws.on("framereceived", lambda data: w.ws_frames.append(str(data))),
        )
        pages.append(w)
        return w

    try:
        yield make
    finally:
        for ctx in contexts:
            ctx.close()
