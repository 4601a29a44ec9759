"""Readiness checks: each component registers one; readiness runs them with a timeout.

A check is an async callable that returns a short detail (or None) when the component is
ready and raises when it is not. Later capabilities register theirs (redis, workers, llm,
vector_store, render) at start-up; HEALTH_MIN_COMPONENTS limits which ones count.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[Any]]


@dataclass(slots=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    detail: Any = None
    timed_out: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The public view: a failing check says only that it failed (and whether it timed
        out); what went wrong (exception text, hosts, file paths) goes to the log only."""
        out: dict[str, Any] = {
            "status": "ready" if self.ok else "error",
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.ok and self.detail is not None:
            out["detail"] = self.detail
        if not self.ok:
            out["reason"] = "timeout" if self.timed_out else "failed"
        return out


class HealthRegistry:
    def __init__(self, timeout: float = 2.0, only: list[str] | None = None) -> None:
        self.timeout = timeout
        self.only = set(only or [])
        self._checks: dict[str, Check] = {}

    def register(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def unregister(self, name: str) -> None:
        self._checks.pop(name, None)

    @property
    def names(self) -> list[str]:
        return [n for n in self._checks if not self.only or n in self.only]

    async def _run(self, name: str, check: Check) -> CheckResult:
        started = time.perf_counter()
        timed_out = False
        try:
            detail = await asyncio.wait_for(check(), timeout=self.timeout)
            ok = True
        except TimeoutError:
            ok, detail, timed_out = False, f"timed out after {self.timeout}s", True
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency means "not ready"
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
        elapsed = (time.perf_counter() - started) * 1000
        if not ok:
            logger.warning("readiness check %s failed: %s", name, detail)
        return CheckResult(name, ok, elapsed, detail, timed_out)

    async def run(self) -> list[CheckResult]:
        names = self.names
        return list(await asyncio.gather(*(self._run(n, self._checks[n]) for n in names)))
