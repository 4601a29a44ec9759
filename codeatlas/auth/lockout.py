"""Failed-login limits that stop password guessing without letting anyone lock others out.

Modelled on what mature identity servers do, read before writing this:

* django-axes and Jmix key the lock-out on the (username, client address) *pair*, so
  failures from one address never refuse the owner at another;
* Keycloak's brute-force detection adds a per-user *wait* that grows with each failure
  ("wait increment", capped by "max wait") instead of refusing outright;
* the OWASP Authentication Cheat Sheet recommends counting per account, progressive delays
  rather than hard lock-outs, and not letting the counter become a denial-of-service tool.

So, per fixed window (LOGIN_FAILURE_WINDOW_SECONDS):

1. (account, address): LOGIN_FAILURES_PER_ACCOUNT_AND_IP failures → 429 for that pair only;
2. address: LOGIN_FAILURES_PER_IP failures over any accounts → 429 for that address
   (credential stuffing);
3. account: past LOGIN_FAILURES_PER_ACCOUNT failures from all addresses together, every
   attempt on the account waits 0.5 s · 2^(excess) (≤ LOGIN_DELAY_MAX_SECONDS) before it is
   checked: a distributed guesser is slowed, the owner is slowed but never refused.

Only a wrong password counts (an unknown address counts the same, so the limits do not tell
who has an account); a database or Redis failure, an inactive account or a correct password
count nothing. Attempts of one (account, address) pair are checked one at a time (a short
lock), so parallel guesses cannot all slip under the limit before the first failure lands,
and parallel *correct* logins simply queue instead of being refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from codeatlas.core.ratelimit import REDIS_DOWN, RateLimits, Rule, rule
from codeatlas.errors import RateLimited
from codeatlas.settings import Settings

LOCK_TTL_MS = 10_000
LOCK_WAIT_SECONDS = 10.0
BASE_DELAY_SECONDS = 0.5

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

_local_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def account_id(email: str) -> str:
    """Hashed: no e-mail addresses in Redis keys."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class LoginRules:
    pair: Rule
    ip: Rule
    account: Rule


def login_rules(settings: Settings, email: str, ip: str) -> LoginRules:
    window = settings.login_failure_window_seconds
    account = account_id(email)
    return LoginRules(
        pair=rule(
            settings,
            settings.login_failures_per_account_and_ip,
            window,
            "login",
            "pair",
            account,
            ip,
        ),
        ip=rule(settings, settings.login_failures_per_ip, window, "login", "ip", ip),
        account=rule(
            settings, settings.login_failures_per_account, window, "login", "account", account
        ),
    )


def progressive_delay(failures: int, ceiling: int, cap: float) -> float:
    if failures < ceiling:
        return 0.0
    return float(min(cap, BASE_DELAY_SECONDS * 2 ** min(failures - ceiling, 16)))


@asynccontextmanager
async def one_at_a_time(limits: RateLimits, key: str) -> AsyncIterator[None]:
    """A short lock per (account, address): Redis SET NX PX, or this process's memory."""
    redis = limits.redis
    token = secrets.token_hex(8)
    held = False
    if redis is not None:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        try:
            while not (held := bool(await redis.set(key, token, nx=True, px=LOCK_TTL_MS))):
                if time.monotonic() > deadline:
                    break  # a stuck holder must not block the owner for ever: go on unlocked
                await asyncio.sleep(0.02)
        except REDIS_DOWN:
            held = False
        if held:
            try:
                yield
            finally:
                with contextlib.suppress(*REDIS_DOWN):  # else the TTL frees it
                    await redis.eval(_RELEASE, 1, key, token)
            return
    lock = _local_locks.get(key)
    if lock is None:
        lock = asyncio.Lock()
        _local_locks[key] = lock
    async with lock:
        yield


async def check(limits: RateLimits, settings: Settings, rules: LoginRules) -> None:
    """Refuse a pair or an address over its limit; make a much-guessed account wait."""
    (pair, pair_ttl), (ip, ip_ttl), (account, _) = await limits.peek(
        rules.pair, rules.ip, rules.account
    )
    over = [
        ttl
        for (n, ttl, r) in ((pair, pair_ttl, rules.pair), (ip, ip_ttl, rules.ip))
        if n >= r.limit
    ]
    if over:
        retry_after = max(1, max(over))
        raise RateLimited(
            "Too many failed logins; try again later",
            headers={"Retry-After": str(retry_after)},
            details={"retry_after": retry_after},
        )
    delay = progressive_delay(account, rules.account.limit, settings.login_delay_max_seconds)
    if delay:
        await asyncio.sleep(delay)


async def record_failure(limits: RateLimits, rules: LoginRules) -> None:
    await limits.hit(rules.pair, rules.ip, rules.account)


async def record_success(limits: RateLimits, rules: LoginRules) -> None:
    """A proven password clears that pair's failures (not the account's: other addresses'
    guesses are still guesses)."""
    await limits.clear(rules.pair)


# -- other guessable secrets (issue 11, finding 4) ---------------------------------------------


def _refuse(retry_after: int, what: str) -> RateLimited:
    retry_after = max(1, retry_after)
    return RateLimited(
        f"Too many failed {what}; try again later",
        headers={"Retry-After": str(retry_after)},
        details={"retry_after": retry_after},
    )


async def guarded_failures(limits: RateLimits, limit_rule: Rule, what: str) -> None:
    """429 if `limit_rule` already counts its limit of failures (nothing is counted here)."""
    [(count, ttl)] = await limits.peek(limit_rule)
    if count >= limit_rule.limit:
        raise _refuse(ttl, what)


def admin_basic_rule(settings: Settings, ip: str) -> Rule:
    window = settings.login_failure_window_seconds
    return rule(settings, settings.admin_basic_failures_per_ip, window, "admin-basic", "ip", ip)


def password_change_rule(settings: Settings, user_id: int) -> Rule:
    window = settings.login_failure_window_seconds
    limit = settings.password_change_failures_per_account
    return rule(settings, limit, window, "password-change", "user", user_id)


def verification_mail_rule(settings: Settings, email: str) -> Rule:
    limit = settings.verification_emails_per_address
    return rule(settings, limit, 3600, "verify-mail", "to", account_id(email))


async def may_send_verification(limits: RateLimits, settings: Settings, email: str) -> bool:
    """Count one e-mail to `email`; False past the hourly limit (the caller stays silent)."""
    limit_rule = verification_mail_rule(settings, email)
    [(count, _)] = await limits.hit(limit_rule)
    return count <= limit_rule.limit
