"""Tests for codeatlas.rendering.breaker: the full state machine on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from codeatlas.rendering.breaker import CircuitBreaker, CircuitOpenError, CircuitState


class FakeClock:
    """Manually advanced monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


async def ok(value: int = 1) -> int:
    return value


async def fail() -> int:
    raise Boom("dependency down")


def make(threshold: int = 3, timeout: float = 30.0) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(failure_threshold=threshold, reset_timeout=timeout, clock=clock), clock


async def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        with pytest.raises(Boom):
            await breaker.call(fail)


async def test_full_state_machine_walk() -> None:
    breaker, clock = make(threshold=3, timeout=30.0)
    assert breaker.state is CircuitState.CLOSED

    # closed: failures below the threshold keep it closed; a success resets the count.
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.failure_count == 2
    assert await breaker.call(ok, 7) == 7
    assert breaker.failure_count == 0
    assert breaker.state is CircuitState.CLOSED

    # three consecutive failures open it.
    await trip(breaker)
    assert breaker.state is CircuitState.OPEN

    # open: rejected fast, the function is not called.
    calls = 0

    async def counted() -> int:
        nonlocal calls
        calls += 1
        return 1

    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(counted)
    assert calls == 0
    assert info.value.retry_after == pytest.approx(20.0)

    # just before the timeout: still open.
    clock.advance(19.999)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.call(counted)

    # at the timeout: half-open, one trial; its failure re-opens (timer restarts).
    clock.advance(0.001)
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitState.OPEN
    clock.advance(29.9)
    with pytest.raises(CircuitOpenError):
        await breaker.call(counted)
    assert calls == 0

    # next timeout: trial succeeds, circuit closes and calls flow again.
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(counted) == 1
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0
    assert await breaker.call(counted) == 1
    assert calls == 2

    # and it needs a full threshold of new failures to open again.
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state is CircuitState.CLOSED


async def test_half_open_admits_exactly_one_concurrent_trial() -> None:
    breaker, clock = make(threshold=1, timeout=5.0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(5.0)

    release = asyncio.Event()
    started = 0

    async def slow_probe() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "ok"

    trial = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)  # let the trial get admitted
    assert started == 1

    others = await asyncio.gather(
        *(breaker.call(slow_probe) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, CircuitOpenError) for r in others)
    assert all(r.retry_after == 0.0 for r in others if isinstance(r, CircuitOpenError))
    assert started == 1
    assert breaker.state is CircuitState.HALF_OPEN

    release.set()
    assert await trial == "ok"
    assert breaker.state is CircuitState.CLOSED
    results = await asyncio.gather(*(breaker.call(ok, i) for i in range(5)))
    assert results == [0, 1, 2, 3, 4]


async def test_failed_trial_rejects_waiting_callers_until_next_timeout() -> None:
    breaker, clock = make(threshold=1, timeout=5.0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(5.0)

    gate = asyncio.Event()

    async def failing_probe() -> int:
        await gate.wait()
        raise Boom("still down")

    trial = asyncio.create_task(breaker.call(failing_probe))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    gate.set()
    with pytest.raises(Boom):
        await trial
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.retry_after == pytest.approx(5.0)


async def test_cancelled_trial_frees_the_slot() -> None:
    breaker, clock = make(threshold=1, timeout=1.0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    clock.advance(1.0)

    never = asyncio.Event()
    trial = asyncio.create_task(breaker.call(never.wait))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    # Cancellation says nothing about the dependency: still probing, slot free.
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok, 3) == 3
    assert breaker.state is CircuitState.CLOSED


async def test_stale_outcome_from_before_opening_is_ignored() -> None:
    breaker, _ = make(threshold=1, timeout=1.0)
    gate = asyncio.Event()

    async def slow_ok() -> int:
        await gate.wait()
        return 1

    slow = asyncio.create_task(breaker.call(slow_ok))  # admitted while closed
    await asyncio.sleep(0)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitState.OPEN
    gate.set()
    assert await slow == 1
    # A success admitted before the circuit opened must not close it.
    assert breaker.state is CircuitState.OPEN


async def test_guard_context_manager() -> None:
    breaker, clock = make(threshold=2, timeout=10.0)
    async with breaker.guard():
        pass
    for _ in range(2):
        with pytest.raises(Boom):
            async with breaker.guard():
                raise Boom
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        async with breaker.guard():
            pytest.fail("body must not run while open")
    clock.advance(10)
    async with breaker.guard():
        pass
    assert breaker.state is CircuitState.CLOSED


async def test_ignored_exceptions_count_as_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock, ignore=(ValueError,))

    async def bad_request() -> None:
        raise ValueError("caller's fault")

    for _ in range(3):
        with pytest.raises(ValueError):
            await breaker.call(bad_request)
    assert breaker.state is CircuitState.CLOSED


async def test_reset_and_repr() -> None:
    breaker, _ = make(threshold=1)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert "state=open" in repr(breaker)
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED


def test_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_timeout=-1)


async def test_default_clock_is_monotonic() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.05)
    with pytest.raises(Boom):
        await breaker.call(fail)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)
    await asyncio.sleep(0.06)
    assert await breaker.call(ok) == 1
    assert breaker.state is CircuitState.CLOSED
