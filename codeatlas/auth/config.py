"""Settings owned by the auth domain (mixed into :class:`codeatlas.settings.Settings`).

Also the rate-limiting switches (1-A) and the embedded Redis of `codeatlas serve`, which this
domain owns although other domains use them.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode


class AuthSettings(BaseModel):
    """Every field is an environment variable of the same name, with a description."""

    # -- tokens ----------------------------------------------------------------------------
    jwt_algorithm: str = Field("HS256", description="Signing algorithm of access tokens.")
    access_token_ttl_seconds: int = Field(
        900, description="Lifetime of an access token (short; refresh tokens renew it)."
    )
    refresh_token_ttl_seconds: int = Field(
        14 * 24 * 3600,
        description=(
            "Lifetime of a refresh token. Each use rotates it (a new token with a fresh "
            "lifetime); reusing a rotated token revokes its whole family."
        ),
    )
    verification_token_ttl_seconds: int = Field(
        48 * 3600, description="How long the e-mail verification link stays valid."
    )
    verification_link_template: str = Field(
        "http://127.0.0.1:8000/verify-email?token={token}",
        description=(
            "Link put in the verification e-mail; `{token}` is replaced by the signed token, "
            "which the page posts to POST /api/v1/auth/verify."
        ),
    )

    # -- mail --------------------------------------------------------------------------------
    smtp_host: str | None = Field(
        None,
        description="SMTP server for account e-mail. Unset: e-mails are written to the log.",
    )
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_security: Literal["none", "starttls", "ssl"] = Field(
        "starttls", description="`starttls` (port 587), `ssl` (implicit TLS, port 465) or `none`."
    )
    smtp_username: str = Field("", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field("", description="SMTP password.")
    smtp_timeout: float = Field(10.0, description="Seconds an SMTP conversation may take.")
    mail_from: str = Field(
        "CodeAtlas <no-reply@localhost>", description="From: address of account e-mail."
    )

    # -- rate limiting (1-A) -----------------------------------------------------------------
    disable_rate_limiter: bool = Field(
        False,
        description=(
            "1-A roll-back: keep every limit but count in this process's memory instead of "
            "Redis (limits then apply per process, not across workers)."
        ),
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Comma-separated addresses or CIDR networks of reverse proxies whose "
            "X-Forwarded-For is believed. Empty: the TCP peer is the client, X-Forwarded-For "
            "is ignored."
        ),
    )
    login_failures_per_account_and_ip: int = Field(
        5,
        description=(
            "Failed logins per (e-mail address, client IP) inside the window; the next attempt "
            "of that pair gets 429. Other addresses are not affected (codeatlas/auth/lockout.py)."
        ),
    )
    login_failures_per_account: int = Field(
        20,
        description=(
            "Failed logins per e-mail address from all IPs inside the window after which every "
            "attempt on it waits 0.5 s, doubling per further failure (progressive delay, never "
            "a refusal, so the owner cannot be locked out by others)."
        ),
    )
    login_delay_max_seconds: float = Field(
        8.0, description="Cap of the progressive per-account login delay, in seconds."
    )
    login_failures_per_ip: int = Field(
        20,
        description=(
            "Failed logins per client IP over any accounts inside the window; the next gets "
            "429 (credential stuffing from one address)."
        ),
    )
    login_failure_window_seconds: int = Field(
        900, description="Window of the failed-login counters (fixed window, seconds)."
    )
    rate_limit_login: str = Field(
        "30/minute", description="SlowAPI limit per client IP on /auth/login and /auth/token."
    )
    admin_basic_failures_per_ip: int = Field(
        5,
        description=(
            "Wrong ADMIN_BASIC_* logins per client IP inside LOGIN_FAILURE_WINDOW_SECONDS; the "
            "next basic-auth attempt from that IP gets 429."
        ),
    )
    password_change_failures_per_account: int = Field(
        5,
        description=(
            "Wrong current passwords on POST /auth/me/password per account inside "
            "LOGIN_FAILURE_WINDOW_SECONDS; the next attempt gets 429 (whatever the IP)."
        ),
    )
    verification_emails_per_address: int = Field(
        3,
        description=(
            "Account e-mails sent to one address per hour (counted on register and resend; "
            "verification links on resend and the notice that an address is already "
            "registered stop past it); the answer stays the same but no e-mail is sent."
        ),
    )
    rate_limit_register: str = Field(
        "10/hour", description="SlowAPI limit per client IP on /auth/register."
    )
    rate_limit_verify: str = Field(
        "30/hour", description="SlowAPI limit per client IP on /auth/verify and its resend."
    )
    rate_limit_refresh: str = Field(
        "60/minute", description="SlowAPI limit per client IP on /auth/refresh and /logout."
    )
    rate_limit_password_change: str = Field(
        "10/hour", description="SlowAPI limit per client IP on /auth/me/password."
    )
    rate_limit_redis_retry_seconds: float = Field(
        5.0,
        description=(
            "After Redis failed, counters stay in memory this long before Redis is tried again "
            "(so a dead Redis does not add a timeout to every request)."
        ),
    )

    # -- embedded Redis ----------------------------------------------------------------------
    embedded_redis_persist: bool = Field(
        True,
        description=(
            "The embedded Valkey of `codeatlas serve` (REDIS_URL unset) keeps an append-only "
            "file under DATA_DIR/valkey, so queued jobs survive a restart."
        ),
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError names the bad entry
        return value
