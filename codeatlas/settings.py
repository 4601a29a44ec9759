"""Application settings: the one place every knob of CodeAtlas is declared.

Each field reads the environment variable of the same name (case-insensitive), so the
checklist's roll-back flags keep their names: ``DISABLE_CORRELATION_ID``,
``ATOMIC_TRANSACTIONS``, ``ALLOW_SYNC_DB``, ``HEALTH_MIN_COMPONENTS`` and so on.
An env file can be chosen with ``CODEATLAS_ENV_FILE`` (default ``.env``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from codeatlas.auth.config import AuthSettings
from codeatlas.code.config import CodeSettings
from codeatlas.core.config import InfraSettings
from codeatlas.jobs.config import JobsSettings
from codeatlas.knowledge.config import KnowledgeSettings
from codeatlas.llm.config import LLMSettings
from codeatlas.rendering.config import RenderingSettings
from codeatlas.security.config import SecuritySettings
from codeatlas.web.config import WebSettings
from codeatlas.ws.config import WebSocketSettings

DEV_SECRET = "dev-only-secret-change-me-in-production-0123456789"
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", DEV_SECRET})
# Known published values: refused everywhere except the test suite's own ENV=test.
KNOWN_PLACEHOLDERS = PLACEHOLDER_SECRETS | frozenset(
    {"changeit", "change-me-in-production", "your-secret-key", "secret-key", "supersecret"}
)


class Settings(
    InfraSettings,
    AuthSettings,
    CodeSettings,
    JobsSettings,
    RenderingSettings,
    KnowledgeSettings,
    WebSettings,
    WebSocketSettings,
    SecuritySettings,
    LLMSettings,
    BaseSettings,
):
    """Typed, documented settings. Every field is an environment variable.

    Each domain declares its own fields in its ``config.py``; they are mixed in here so there
    is still one settings object.
    """

    model_config = SettingsConfigDict(
        env_file=os.environ.get("CODEATLAS_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment environment; `production` refuses placeholders."
    )
    data_dir: Path = Field(
        Path("./data"),
        description="Where the embedded default keeps its SQLite file, vectors and uploads.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL. postgresql+asyncpg://… for PostgreSQL, sqlite+aiosqlite:///… for "
            "SQLite. Unset: SQLite file `codeatlas.db` under DATA_DIR."
        ),
    )
    db_pool_size: int = Field(10, description="Connection pool size (PostgreSQL only).")
    db_echo: bool = Field(False, description="Log every SQL statement (debugging only).")
    secret_key: str = Field(
        "",
        description=(
            "Signs access tokens and verification links (at least 32 characters). Unset: "
            "a random key is generated once and kept in DATA_DIR/secret_key (mode 0600), "
            "shared by every process of that data dir; required when ENV=production. Known "
            "placeholders are refused unless ENV=test."
        ),
    )

    # -- 3-A / 5-C ---------------------------------------------------------------------------
    atomic_transactions: bool = Field(
        True,
        description=(
            "3-A roll-back. true: every request and `atomic()` block is one transaction. "
            "false (temporary): the connection runs in autocommit, so each write commits on "
            "its own as the old code did."
        ),
    )
    allow_sync_db: bool = Field(
        False,
        description=(
            "5-C escape hatch, development only: build the schema from the models (create-all) "
            "instead of Alembic. Refused when ENV=production."
        ),
    )
    migrate_on_start: bool = Field(
        True, description="`codeatlas serve` runs `alembic upgrade head` before serving."
    )

    # -- 2-A -----------------------------------------------------------------------------------
    disable_correlation_id: bool = Field(
        False, description="2-A roll-back: remove the X-Request-ID middleware."
    )
    log_level: str = Field("INFO", description="Root log level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description=(
            "`text`: '%(asctime)s | %(levelname)s | %(request_id)s | %(name)s | %(message)s'; "
            "`json`: one JSON object per line with the same fields."
        ),
    )
    sentry_dsn: str = Field("", description="Sentry DSN; empty disables Sentry (3-B roll-back).")

    # -- 5-B -----------------------------------------------------------------------------------
    api_legacy_sunset: datetime = Field(
        datetime(2027, 6, 30, tzinfo=UTC),
        description=(
            "Un-versioned /api/... paths answer 301 to /api/v1/... until this instant, "
            "410 API_VERSION_GONE after it."
        ),
    )

    # -- 2-B -----------------------------------------------------------------------------------
    health_min_components: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "2-B roll-back: comma-separated component names (e.g. `db`); when set, readiness "
            "only checks these. Empty: every registered check."
        ),
    )
    health_check_timeout: float = Field(
        2.0, description="Seconds each readiness check may take before it counts as failed."
    )

    # -- uploads (1-B) -----------------------------------------------------------------------
    upload_root: Path | None = Field(
        None, description="Where uploaded files are stored. Unset: DATA_DIR/uploads."
    )

    @model_validator(mode="before")
    @classmethod
    def _split_components(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in list(data):
                if key.lower() == "health_min_components" and isinstance(data[key], str):
                    data[key] = [p.strip() for p in data[key].split(",") if p.strip()]
        return data

    @model_validator(mode="after")
    def _resolve_secret_key(self) -> Settings:
        if self.env == "test":
            self.secret_key = self.secret_key or DEV_SECRET  # the suite's own fixed key
        elif self.secret_key.strip() in KNOWN_PLACEHOLDERS and self.secret_key:
            raise ValueError("SECRET_KEY is a known placeholder; unset it or set a real secret")
        elif not self.secret_key and self.env != "production":
            from codeatlas.core.secret_key import load_or_create

            self.secret_key = load_or_create(self.data_dir)
        elif self.env == "development" and len(self.secret_key) < 32:
            raise ValueError("SECRET_KEY is shorter than 32 characters; set a longer one")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "production":
            if self.secret_key in PLACEHOLDER_SECRETS or len(self.secret_key) < 32:
                raise ValueError(
                    "SECRET_KEY is a placeholder or shorter than 32 characters; "
                    "set a real secret when ENV=production"
                )
            if self.allow_sync_db:
                raise ValueError("ALLOW_SYNC_DB is for development only; refused in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'codeatlas.db').resolve()}"

    @property
    def UPLOAD_ROOT(self) -> Path:
        """1-B: the resolved directory every uploaded file must stay inside."""
        root = self.upload_root if self.upload_root is not None else self.data_dir / "uploads"
        return Path(root).resolve()


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
