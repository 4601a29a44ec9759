"""CircuitBreaker's ``neutral`` exceptions: neither a failure nor a success."""

from __future__ import annotations

import pytest

from codeatlas.rendering.breaker import CircuitBreaker, CircuitState


class Busy(Exception):
    pass


class Boom(Exception):
    pass


async def _raise(exc: Exception) -> None:
    raise exc


async def _ok() -> int:
    return 1


async def test_neutral_exceptions_neither_open_nor_reset_the_breaker() -> None:
    now = [0.0]
    breaker = CircuitBreaker(2, 10.0, clock=lambda: now[0], neutral=(Busy,))
    with pytest.raises(Boom):
        await breaker.call(_raise, Boom())
    for _ in range(5):
        with pytest.raises(Busy):
            await breaker.call(_raise, Busy())
    assert breaker.failure_count == 1  # not reset by the neutral outcomes, not increased
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Boom):
        await breaker.call(_raise, Boom())
    assert breaker.state is CircuitState.OPEN


async def test_neutral_trial_frees_the_slot_for_the_next_caller() -> None:
    now = [0.0]
    breaker = CircuitBreaker(1, 10.0, clock=lambda: now[0], neutral=(Busy,))
    with pytest.raises(Boom):
        await breaker.call(_raise, Boom())
    now[0] = 10.0
    with pytest.raises(Busy):
        await breaker.call(_raise, Busy())  # the trial told us nothing ...
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(_ok) == 1  # ... so the next call is the trial, and closes it
    assert breaker.state is CircuitState.CLOSED
