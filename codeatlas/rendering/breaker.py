"""Asyncio circuit breaker (closed → open → half-open → closed/open).

This module owns the small state machine that stops the rendering path from
hammering a failing dependency (e.g. a shared render cache):

* **closed** - calls pass; ``failure_threshold`` consecutive failures open it.
* **open** - calls are rejected immediately with :class:`CircuitOpenError`
  until ``reset_timeout`` seconds have passed since it opened.
* **half-open** - exactly one trial call is let through; concurrent callers
  are rejected while it runs.  Success closes the circuit, failure re-opens it
  (restarting the timeout).

Why not a library: pybreaker is built around synchronous calls and threading
locks (its asyncio support goes through Tornado's ``gen`` coroutines);
aiobreaker has had no release since 2021; purgatory 3.x reads ``time.time()``
directly (no injectable clock, and wall-clock jumps move its timeout) and lets
every caller through while half-open instead of a single trial.  The state
machine is ~100 lines, so owning it is cheaper than adapting any of them.

Concurrency: safe for callers on a single event loop.  Every state check and
update happens synchronously between awaits, so no lock is needed.  It is not
meant to be shared across threads or event loops.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

__all__ = ["CircuitBreaker", "CircuitOpenError", "CircuitState"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """Rejected without calling the dependency: the circuit is open or probing."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        #: Seconds until a trial call may be admitted (0 while a trial is running).
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Ticket:
    """Identifies one admitted call, so its outcome is applied to the right epoch."""

    epoch: int
    trial: bool


class CircuitBreaker:
    """Consecutive-failure circuit breaker for async callers.

    Use ``await breaker.call(fn, *args)`` or ``async with breaker.guard(): ...``.
    Any :class:`Exception` raised by the guarded code counts as a failure unless
    it is an instance of ``ignore`` (those mean the dependency answered, e.g. a
    validation error, and count as success).  Cancellation and instances of
    ``neutral`` (the call never reached the dependency, e.g. a local connection-pool
    timeout) count as neither.
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "circuit",
        ignore: tuple[type[Exception], ...] = (),
        neutral: tuple[type[Exception], ...] = (),
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must be >= 0")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.name = name
        self._clock = clock
        self._ignore = ignore
        self._neutral = neutral
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        # Bumped on every transition.  Outcomes of calls admitted in an earlier
        # epoch are dropped: a slow call admitted while closed must not close (or
        # re-open) a circuit that has since opened and is probing.
        self._epoch = 0

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> CircuitState:
        """Current state; an open circuit whose timeout has elapsed reads half-open."""
        if self._state is CircuitState.OPEN and self._timeout_elapsed():
            return CircuitState.HALF_OPEN
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def _timeout_elapsed(self) -> bool:
        return self._clock() - self._opened_at >= self.reset_timeout

    def _transition(self, new: CircuitState) -> None:
        old, self._state = self._state, new
        self._epoch += 1
        self._trial_in_flight = False
        if new is CircuitState.OPEN:
            self._opened_at = self._clock()
        if new is CircuitState.CLOSED:
            self._failures = 0
        if old is not new:
            log = logger.warning if new is CircuitState.OPEN else logger.info
            log("circuit %s: %s -> %s", self.name, old.value, new.value)

    # ------------------------------------------------------------------ admission

    def _admit(self) -> _Ticket:
        if self._state is CircuitState.OPEN:
            if not self._timeout_elapsed():
                remaining = self._opened_at + self.reset_timeout - self._clock()
                raise CircuitOpenError(self.name, max(0.0, remaining))
            self._transition(CircuitState.HALF_OPEN)
        if self._state is CircuitState.HALF_OPEN:
            if self._trial_in_flight:
                raise CircuitOpenError(self.name, 0.0)
            self._trial_in_flight = True
            return _Ticket(self._epoch, trial=True)
        return _Ticket(self._epoch, trial=False)

    def _on_success(self, ticket: _Ticket) -> None:
        if ticket.epoch != self._epoch:
            return
        if ticket.trial:
            self._transition(CircuitState.CLOSED)
        else:
            self._failures = 0

    def _on_failure(self, ticket: _Ticket) -> None:
        if ticket.epoch != self._epoch:
            return
        if ticket.trial:
            self._transition(CircuitState.OPEN)
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._transition(CircuitState.OPEN)

    def _on_abort(self, ticket: _Ticket) -> None:
        # A cancelled trial told us nothing: free the slot so the next caller probes.
        if ticket.trial and ticket.epoch == self._epoch:
            self._trial_in_flight = False

    # ------------------------------------------------------------------ API

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run the ``async with`` body as one guarded call.

        Raises :class:`CircuitOpenError` on entry when the call is not admitted.
        """
        ticket = self._admit()
        try:
            yield
        except self._neutral:
            self._on_abort(ticket)
            raise
        except self._ignore:
            self._on_success(ticket)
            raise
        except Exception:
            self._on_failure(ticket)
            raise
        except BaseException:
            self._on_abort(ticket)
            raise
        self._on_success(ticket)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        async with self.guard():
            return await fn(*args, **kwargs)

    def reset(self) -> None:
        """Force the circuit closed (operator action / tests)."""
        self._transition(CircuitState.CLOSED)

    def __repr__(self) -> str:
        return (
            f"<CircuitBreaker {self.name!r} state={self.state.value} "
            f"failures={self._failures}/{self.failure_threshold}>"
        )
