"""Fixtures of the LLM and chat tests: the OpenAI-wire test server, shared per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm.openai_server import OpenAITestServer


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[OpenAITestServer]:
    with OpenAITestServer() as server:
        yield server


@pytest.fixture
def llm_server(llm_server_session: OpenAITestServer) -> Iterator[OpenAITestServer]:
    llm_server_session.reset()
    yield llm_server_session
    llm_server_session.reset()
