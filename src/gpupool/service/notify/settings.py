"""Notification settings: SMTP, the webhook destination allow-list, retries (``GPUPOOL_*``).

This module owns ``NotifySettings``, read from the environment with the service's prefix
(``GPUPOOL_SMTP_HOST``, ``GPUPOOL_WEBHOOK_ALLOW_HOSTS``...). They live apart from
``ServiceSettings`` so that the notifier is one module to add or leave out.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotifySettings(BaseSettings):
    """How notifications are sent (environment prefix ``GPUPOOL_``)."""

    model_config = SettingsConfigDict(env_prefix="GPUPOOL_", extra="ignore")

    #: the SMTP server that sends e-mail notifications; empty: e-mail subscriptions are refused
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "gpupool@localhost"
    #: upgrade the connection with STARTTLS before sending (and before logging in)
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: hosts webhooks may be sent to, comma separated: names (``hooks.example.org``), IP
    #: addresses, or networks (``10.1.0.0/16``, matched by IP-literal URLs only); ``*``: any
    #: host. Empty (the default): no webhook may be created. A webhook is a request the
    #: service makes from inside its network: without this list an admin (or a tenant admin)
    #: could aim it at the metadata service, the database or the service's own API (SSRF).
    webhook_allow_hosts: str = ""
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: tries per delivery before it is given up (``failed``)
    notify_max_attempts: int = Field(default=8, ge=1, le=100)
    #: the wait before the second try; doubled each try after, up to ``notify_max_backoff_s``
    notify_backoff_s: float = Field(default=30.0, gt=0)
    notify_max_backoff_s: float = Field(default=3600.0, gt=0)
    #: how often the worker wakes to read new events and send what is due
    notify_poll_s: float = Field(default=2.0, gt=0, le=3600)
    #: how often allocations are checked for expiring and exhausted
    notify_check_s: float = Field(default=300.0, gt=0)
    #: an allocation is "expiring" this many days before its period ends
    notify_expiring_days: float = Field(default=7.0, gt=0)

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.smtp_host)
