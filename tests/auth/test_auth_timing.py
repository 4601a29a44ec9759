"""1-C: response time does not tell whether an e-mail has an account.

10 random unknown e-mails and one known e-mail with a wrong password, many times each,
interleaved so load changes on the machine hit both sides alike; the medians must be within
10% of each other (Argon2 dominates both: an unknown e-mail is checked against a dummy hash).
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from codeatlas.db.session import Database
from tests.auth.helpers import login
from tests.factories import create_user

pytestmark = pytest.mark.slow

ROUNDS = 8  # x 10 e-mails: 80 timed logins per side


async def _timed(client: httpx.AsyncClient, email: str) -> float:
    started = time.perf_counter()
    r = await login(client, email, "definitely wrong")
    elapsed = time.perf_counter() - started
    assert r.status_code == 401 and r.json()["error_code"] == "BAD_CREDENTIALS"
    return elapsed


async def test_unknown_email_takes_as_long_as_a_wrong_password(
    app_factory: Any, db: Database
) -> None:
    await create_user(db, "known@example.com")
    # the limiter would stop this test long before it is done
    app: FastAPI = app_factory(
        login_failures_per_account=10_000,
        login_failures_per_account_and_ip=10_000,
        login_failures_per_ip=10_000,
        rate_limit_login="10000/minute",
    )
    unknown = [f"{uuid.uuid4().hex}@example.com" for _ in range(10)]
    known_times: list[float] = []
    unknown_times: list[float] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
    ):
        for email in unknown[:3]:  # warm-up: connections, caches
            await _timed(c, email)
            await _timed(c, "known@example.com")
        for _ in range(ROUNDS):
            for email in unknown:
                unknown_times.append(await _timed(c, email))
                known_times.append(await _timed(c, "known@example.com"))
    m_unknown, m_known = statistics.median(unknown_times), statistics.median(known_times)
    spread = abs(m_unknown - m_known) / max(m_unknown, m_known)
    print(f"median unknown {m_unknown * 1000:.1f} ms, known {m_known * 1000:.1f} ms ({spread:.1%})")
    assert spread <= 0.10, (m_unknown, m_known)
