"""The LLM client against a real HTTP server speaking the OpenAI wire protocol (3-B).

Retries happen for 429, 5xx, timeouts and dropped connections, only before the first token;
other 4xx, malformed chunks and streams cut short end the call with their envelope error.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from codeatlas.llm.client import LLMClient, StreamOutcome
from codeatlas.llm.errors import (
    LLMBadResponse,
    LLMNotConfigured,
    LLMRateLimited,
    LLMTimeout,
    LLMUnavailable,
)
from codeatlas.settings import Settings
from tests.conftest import free_port
from tests.llm.openai_server import (
    DEFAULT_ANSWER,
    OpenAITestServer,
    drop,
    end_early,
    garbage,
    stall,
    status,
    stream,
)

ROOT = Path(__file__).resolve().parents[2]
QUESTION = [{"role": "user", "content": "hello?"}]


def make_client(base_url: str, **overrides: Any) -> LLMClient:
    values: dict[str, Any] = {
        "env": "test",
        "llm_base_url": base_url,
        "llm_model": "test-model",
        "llm_max_retries": 2,
        "llm_retry_base_delay": 0.01,
        "llm_retry_max_delay": 0.05,
        "llm_read_timeout": 2.0,
        "llm_connect_timeout": 2.0,
    }
    values.update(overrides)
    return LLMClient(Settings(**values))


async def collect(client: LLMClient, outcome: StreamOutcome | None = None) -> list[str]:
    out: list[str] = []
    async for piece in client.stream_chat(QUESTION, outcome):
        out.append(piece)
    return out


async def test_streams_tokens_in_order_with_usage(llm_server: OpenAITestServer) -> None:
    client = make_client(llm_server.base_url)
    outcome = StreamOutcome()
    assert await collect(client, outcome) == DEFAULT_ANSWER
    assert outcome.finish_reason == "stop"
    assert outcome.usage is not None and outcome.usage.completion_tokens == len(DEFAULT_ANSWER)
    assert not outcome.usage.estimated
    [body] = llm_server.requests
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "test-model" and body["messages"] == QUESTION
    await client.aclose()


async def test_no_usage_from_server_leaves_usage_unknown(llm_server: OpenAITestServer) -> None:
    llm_server.push(stream(usage=False))
    client = make_client(llm_server.base_url)
    outcome = StreamOutcome()
    assert await collect(client, outcome) == DEFAULT_ANSWER
    assert outcome.usage is None
    await client.aclose()


async def test_429_is_retried_honouring_retry_after(llm_server: OpenAITestServer) -> None:
    llm_server.push(status(429, retry_after="1"))
    client = make_client(llm_server.base_url, llm_retry_max_delay=5.0)
    started = time.monotonic()
    assert await collect(client) == DEFAULT_ANSWER
    assert time.monotonic() - started >= 0.9  # waited for Retry-After (a lower bound only)
    assert len(llm_server.requests) == 2
    await client.aclose()


async def test_retry_after_is_capped(llm_server: OpenAITestServer) -> None:
    llm_server.push(status(429, retry_after="3600"))
    client = make_client(llm_server.base_url, llm_retry_max_delay=0.05)
    assert await collect(client) == DEFAULT_ANSWER  # did not wait an hour
    await client.aclose()


async def test_5xx_is_retried_then_succeeds(llm_server: OpenAITestServer) -> None:
    llm_server.push(status(500), status(503))
    client = make_client(llm_server.base_url)
    outcome = StreamOutcome()
    assert await collect(client, outcome) == DEFAULT_ANSWER
    assert outcome.attempts == 3 and len(llm_server.requests) == 3
    await client.aclose()


@pytest.mark.parametrize(
    ("code", "error"), [(500, LLMUnavailable), (502, LLMUnavailable), (429, LLMRateLimited)]
)
async def test_retries_are_bounded(llm_server: OpenAITestServer, code: int, error: type) -> None:
    llm_server.default = status(code)
    client = make_client(llm_server.base_url, llm_max_retries=2)
    with pytest.raises(error) as info:
        await collect(client)
    assert len(llm_server.requests) == 3
    assert info.value.error_code in {"LLM_UNAVAILABLE", "LLM_RATE_LIMITED"}
    await client.aclose()


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 422])
async def test_other_4xx_are_never_retried(llm_server: OpenAITestServer, code: int) -> None:
    llm_server.default = status(code)
    client = make_client(llm_server.base_url)
    with pytest.raises(LLMUnavailable) as info:
        await collect(client)
    assert len(llm_server.requests) == 1
    assert info.value.details == {"status": code}
    assert str(code) in info.value.message
    await client.aclose()


async def test_stall_before_first_byte_times_out_and_is_retried(
    llm_server: OpenAITestServer,
) -> None:
    llm_server.default = stream(first_delay=3.0)
    client = make_client(llm_server.base_url, llm_read_timeout=0.3, llm_max_retries=1)
    with pytest.raises(LLMTimeout) as info:
        await collect(client)
    assert info.value.error_code == "LLM_TIMEOUT"
    assert len(llm_server.requests) == 2
    await client.aclose()


async def test_stall_then_recovery(llm_server: OpenAITestServer) -> None:
    llm_server.push(stream(first_delay=3.0))
    client = make_client(llm_server.base_url, llm_read_timeout=0.3, llm_max_retries=1)
    assert await collect(client) == DEFAULT_ANSWER
    assert len(llm_server.requests) == 2
    await client.aclose()


async def test_drop_before_first_token_is_retried(llm_server: OpenAITestServer) -> None:
    llm_server.push(drop(after=0))
    client = make_client(llm_server.base_url)
    assert await collect(client) == DEFAULT_ANSWER
    assert len(llm_server.requests) == 2
    await client.aclose()


async def test_drop_after_first_token_is_not_retried(llm_server: OpenAITestServer) -> None:
    llm_server.default = drop(after=3)
    client = make_client(llm_server.base_url)
    got: list[str] = []
    with pytest.raises(LLMUnavailable):
        async for piece in client.stream_chat(QUESTION):
            got.append(piece)
    assert got == DEFAULT_ANSWER[:3]  # what was shown stays shown, nothing repeated
    assert len(llm_server.requests) == 1
    await client.aclose()


async def test_stall_mid_stream_times_out_without_retry(llm_server: OpenAITestServer) -> None:
    llm_server.default = stall(3.0, after=2)
    client = make_client(llm_server.base_url, llm_read_timeout=0.3)
    got: list[str] = []
    with pytest.raises(LLMTimeout):
        async for piece in client.stream_chat(QUESTION):
            got.append(piece)
    assert got == DEFAULT_ANSWER[:2]
    assert len(llm_server.requests) == 1
    await client.aclose()


@pytest.mark.parametrize("after", [0, 2])
async def test_malformed_chunk_is_a_bad_response(llm_server: OpenAITestServer, after: int) -> None:
    llm_server.default = garbage(after=after)
    client = make_client(llm_server.base_url)
    got: list[str] = []
    with pytest.raises(LLMBadResponse) as info:
        async for piece in client.stream_chat(QUESTION):
            got.append(piece)
    assert info.value.error_code == "LLM_BAD_RESPONSE"
    assert got == DEFAULT_ANSWER[:after]
    assert len(llm_server.requests) == 1  # garbage is not retried
    await client.aclose()


async def test_stream_ending_before_finish_is_a_bad_response(
    llm_server: OpenAITestServer,
) -> None:
    llm_server.default = end_early(after=3)
    client = make_client(llm_server.base_url)
    got: list[str] = []
    with pytest.raises(LLMBadResponse):
        async for piece in client.stream_chat(QUESTION):
            got.append(piece)
    assert got == DEFAULT_ANSWER[:3]
    await client.aclose()


async def test_nobody_listening_is_unavailable_after_retries() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/v1", llm_max_retries=1)
    with pytest.raises(LLMUnavailable):
        await collect(client)
    await client.aclose()


async def test_unexpected_errors_are_not_swallowed(llm_server: OpenAITestServer) -> None:
    """A bug on our side (an unserialisable message) is no LLM error: it propagates as it is,
    to the global handler and Sentry."""
    client = make_client(llm_server.base_url)
    with pytest.raises(TypeError):
        async for _ in client.stream_chat([{"role": "user", "content": object()}]):  # type: ignore[dict-item]
            pass
    assert llm_server.requests == []
    await client.aclose()


async def test_models_and_its_timeout(llm_server: OpenAITestServer) -> None:
    client = make_client(llm_server.base_url, llm_health_timeout=0.3)
    assert await client.list_models() == ["test-model"]
    llm_server.models_delay = 2.0
    with pytest.raises(Exception) as info:  # the SDK's timeout error, raised as it is
        await client.list_models()
    assert "Timeout" in type(info.value).__name__
    await client.aclose()


def test_not_configured_says_what_to_set() -> None:
    with pytest.raises(LLMNotConfigured) as info:
        LLMClient(Settings(env="test", llm_base_url=""))
    assert info.value.status_code == 503
    assert "LLM_BASE_URL" in info.value.message


@pytest.mark.timeout(1200)  # pylint infers through the openai SDK: minutes on a busy machine
def test_llm_package_catches_no_broad_exception() -> None:
    """3-B DoD: pylint's broad-exception-caught passes on codeatlas/llm."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pylint",
            "--disable=all",
            "--enable=broad-exception-caught",
            "codeatlas/llm",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
