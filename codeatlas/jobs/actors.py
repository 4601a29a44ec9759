"""Declaring actors: ``@actor("domain.verb")`` on an async function that takes ids only.

The decorator only records the function and its options; :func:`declare_actors` turns the
records into Dramatiq actors on the broker that start-up builds from the settings. Dramatiq's
own decorator binds to a broker at import time (creating a default one if none is set), which
would make import order decide which Redis a message goes to.

Every actor gets retries with exponential backoff (the checklist's ``retries=3``) and a time
limit, from the settings unless it declares its own. Dramatiq delivers at least once and a
job may be redelivered after a crash, so every actor must be idempotent.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dramatiq
from dramatiq.broker import Broker

from codeatlas.settings import Settings

# The modules whose actors every worker loads; add a domain's `tasks` module here.
ACTOR_MODULES: tuple[str, ...] = ("codeatlas.code.tasks", "codeatlas.knowledge.tasks")

_NAME = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")

ActorFn = Callable[..., Awaitable[Any]]
# Called with the job's arguments and the last error once the job will not run again
# (failed or dead): the place to leave the job's subject in a clear state.
GiveUpFn = Callable[..., Awaitable[None]]
F = TypeVar("F", bound=ActorFn)


@dataclass(frozen=True, slots=True)
class ActorSpec:
    name: str
    fn: ActorFn
    queue: str = "default"
    max_retries: int | None = None
    time_limit_ms: int | None = None
    # Exceptions that mean "retrying cannot help": the job ends `failed` at once.
    throws: tuple[type[BaseException], ...] = field(default_factory=tuple)
    on_give_up: GiveUpFn | None = None

    def dramatiq_options(self, settings: Settings) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_retries": (
                self.max_retries if self.max_retries is not None else settings.jobs_max_retries
            ),
            "min_backoff": settings.jobs_min_backoff_ms,
            "max_backoff": settings.jobs_max_backoff_ms,
            "time_limit": self.time_limit_ms or settings.jobs_time_limit_ms,
        }
        if self.throws:
            options["throws"] = self.throws
        return options


_registry: dict[str, ActorSpec] = {}


def actor(
    name: str,
    *,
    queue: str = "default",
    max_retries: int | None = None,
    time_limit_ms: int | None = None,
    throws: tuple[type[BaseException], ...] = (),
    on_give_up: GiveUpFn | None = None,
) -> Callable[[F], F]:
    """Register an async function as the actor ``name`` (``domain.verb``).

    ``throws``: exceptions retrying cannot fix (the job ends `failed` at once).
    ``on_give_up(*args, error=...)``: awaited when the job ends `failed` or `dead`.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"actor names are `domain.verb` in lower case, not {name!r}")

    def register(fn: F) -> F:
        existing = _registry.get(name)
        if existing is not None and existing.fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"actor {name!r} is already declared by {existing.fn!r}")
        _registry[name] = ActorSpec(name, fn, queue, max_retries, time_limit_ms, throws, on_give_up)
        return fn

    return register


def load_actor_modules(settings: Settings) -> None:
    for module in (*ACTOR_MODULES, *settings.jobs_extra_modules):
        importlib.import_module(module)


def get_spec(name: str, settings: Settings) -> ActorSpec:
    if name not in _registry:
        load_actor_modules(settings)
    try:
        return _registry[name]
    except KeyError:
        raise ValueError(f"no actor named {name!r}") from None


def declare_actors(broker: Broker, settings: Settings) -> None:
    """Declare every registered actor on ``broker`` (a fresh broker, built at start-up)."""
    load_actor_modules(settings)
    for spec in _registry.values():
        declare = dramatiq.actor(
            actor_name=spec.name,
            queue_name=spec.queue,
            broker=broker,
            **spec.dramatiq_options(settings),
        )
        declare(spec.fn)
