"""What other domains do when an account becomes active (verified, or created active).

Hooks run in the activating transaction, in registration order. The projects domain
registers the step that turns invitations into memberships, so auth never imports it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from codeatlas.models import User

ActivationHook = Callable[[AsyncSession, User], Awaitable[object]]

_hooks: list[ActivationHook] = []


def on_activation(hook: ActivationHook) -> ActivationHook:
    """Register ``hook`` (once) to run whenever an account becomes active."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


async def activated(session: AsyncSession, user: User) -> None:
    for hook in _hooks:
        await hook(session, user)
