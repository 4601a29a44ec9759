"""Sentry (3-B): an unexpected exception in a background chat turn reaches a (local) Sentry
endpoint tagged with the turn's request id; events carry no PII and no request bodies."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk

from codeatlas.core.sentry import SCRUBBED, before_send
from tests.conftest import free_port
from tests.llm.chathelpers import llm_overrides, start_chat_kit
from tests.llm.openai_server import OpenAITestServer
from tests.llm.sentry_sink import SentrySink


@pytest.fixture
def sink() -> Iterator[SentrySink]:
    with SentrySink() as s:
        try:
            yield s
        finally:
            sentry_sdk.init(dsn=None)  # the next tests run without Sentry again


async def test_unexpected_error_in_a_chat_turn_reaches_sentry_with_its_request_id(
    app_factory: Any, llm_server: OpenAITestServer, sink: SentrySink
) -> None:
    # Redis goes away under the API: publishing the first token fails with a Redis
    # ConnectionError, which no code path expects inside a turn.
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    app = app_factory(
        **llm_overrides(llm_server.base_url),
        sentry_dsn=sink.dsn,
        redis_url=dead_redis,
        chat_context_top_k=0,
    )
    async for kit in start_chat_kit(app):
        chat = await kit.new_chat()
        accepted = await kit.ask(chat, "hello")
        rid = accepted["request_id"]
        msg = await kit.wait(chat, accepted["assistant_message_id"])
        assert msg["status"] == "error" and msg["error_code"] == "INTERNAL_ERROR"
        deadline = time.monotonic() + 30
        while True:
            sentry_sdk.flush(timeout=2)
            tagged = [e for e in sink.events if (e.get("tags") or {}).get("request_id") == rid]
            crashes = [e for e in tagged if e.get("exception")]
            if crashes:
                break
            assert time.monotonic() < deadline, f"no Sentry event with request_id {rid}"
            time.sleep(0.1)
        event = crashes[0]
        [exc] = event["exception"]["values"][-1:]
        assert "ConnectionError" in exc["type"]
        assert "user" not in event or not event["user"].get("ip_address")
        # the turn's error log lines reach Sentry with the tag too
        mid = accepted["assistant_message_id"]
        logged = [e for e in sink.events if f"message {mid}" in json.dumps(e.get("logentry"))]
        assert logged and all(e["tags"]["request_id"] == rid for e in logged)


def test_before_send_scrubs_secrets_and_bodies() -> None:
    event: dict[str, Any] = {
        "request": {
            "headers": {"Authorization": "Bearer secret", "Cookie": "a=b", "Accept": "x"},
            "cookies": {"a": "b"},
            "data": {"password": "hunter2"},
            "query_string": "token=abc",
        }
    }
    out = before_send(event, {})
    assert out["request"]["headers"] == {
        "Authorization": SCRUBBED,
        "Cookie": SCRUBBED,
        "Accept": "x",
    }
    assert "cookies" not in out["request"] and "data" not in out["request"]
    assert out["request"]["query_string"] == SCRUBBED


def test_init_options_keep_pii_and_bodies_out(sink: SentrySink) -> None:
    from codeatlas.core.sentry import init_sentry

    assert init_sentry("", environment="test", release="x") is False
    assert init_sentry(sink.dsn, environment="test", release="x") is True
    options = sentry_sdk.get_client().options
    if int(sentry_sdk.VERSION.split(".")[0]) >= 3:  # the option was renamed in 3.0
        assert options["data_collection"]["user_info"] is False
        assert options["data_collection"]["http_bodies"] == []
    else:
        assert options["send_default_pii"] is False
    assert options["max_request_body_size"] == "never"
