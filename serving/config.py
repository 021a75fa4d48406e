"""Serving settings: one pydantic-settings object, read from LEADSCORE_* variables.

`create_app(settings)` takes one (tests and the CLI build their own); without one, and
in uvicorn's factory `app_from_env`, `get_settings()` reads the environment. Nothing is
read at import time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from features.model.names import CHAMPION_URI
from serving.webhooks.dispatch import DispatchSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore")

    model_uri: str = CHAMPION_URI
    #: accepted X-API-Key values for scoring and reading (LEADSCORE_API_KEYS, comma-separated);
    #: empty: no key needed (a loud warning at start-up)
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: X-API-Key values for the admin routes (LEADSCORE_ADMIN_KEYS); scoring keys never open
    #: them. Empty: admin routes are open only when no scoring key is set either.
    admin_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=5_000_000, ge=1_000)
    #: seconds a client has to send its whole body (408 after)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    reasons: int = Field(default=5, ge=0, le=50)
    #: seconds between checks whether the alias moved (0: never). Every worker checks, so
    #: all of them serve a new champion within this many seconds of a promotion.
    alias_poll_seconds: float = Field(default=5.0, ge=0)

    #: the live lead store (events, ledger); empty: no store, only the stateless routes
    database_url: str = "sqlite:///leadscore.db"
    #: items per `POST /v1/events` call (all four lists together)
    max_events: int = Field(default=5000, ge=1, le=100_000)
    #: seconds between rescoring runs of every active lead (points decay, windows move);
    #: 0: never (run `leadscore rescore` from cron instead). One run at a time across workers.
    rescore_every_seconds: float = Field(default=6 * 3600, ge=0)
    #: YAML file mapping Segment event names and page paths to touchpoint types (over the
    #: shipped defaults, serving/segment/mapping.yaml)
    segment_mapping: str | None = None

    #: deliver webhooks and connector writes from inside the server (one dispatcher per
    #: worker); false: run `leadscore dispatch` as its own process instead
    dispatch: bool = True
    #: attempts before a message is given up (dead) until an admin redelivers it
    webhook_max_attempts: int = Field(default=12, ge=1, le=100)
    #: the first retry's wait; each next one doubles, up to the cap (with jitter)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    webhook_retry_cap_seconds: float = Field(default=3600.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    dispatch_poll_seconds: float = Field(default=0.5, gt=0)
    #: how long a dispatcher's claim on messages holds (one killed mid-delivery frees
    #: its messages this long after); more than a few request timeouts
    webhook_lease_seconds: float = Field(default=60.0, ge=1)
    #: YAML file of CRM connectors (Bitrix24, HubSpot, Mautic, Dynamics 365); see
    #: docs/integrations.md. Credentials stay in the environment variables it names.
    connectors: str | None = None

    #: who may sign in to the workspace (/ui): entries name:role:pbkdf2_sha256$..., comma-
    #: separated (`leadscore ui-user` makes one); API and admin keys sign in too
    ui_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: signs the workspace's session cookies; empty: a random one per process (sessions
    #: end at a restart and are not shared between workers)
    ui_secret: str | None = None

    @field_validator("api_keys", "admin_keys", "ui_users", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """LEADSCORE_API_KEYS="key1,key2": several keys, so they can be rotated."""
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value


def dispatch_settings(settings: Settings) -> DispatchSettings:
    return DispatchSettings(
        max_attempts=settings.webhook_max_attempts,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        retry_cap_seconds=settings.webhook_retry_cap_seconds,
        timeout_seconds=settings.webhook_timeout_seconds,
        poll_seconds=settings.dispatch_poll_seconds,
        lease_seconds=max(settings.webhook_lease_seconds, settings.webhook_timeout_seconds * 2),
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
