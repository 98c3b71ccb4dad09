"""The ``[alerts]`` settings turned into notifiers and a retry policy.

Notifier tables are checked here, not when the settings file is read, so the error names
the notifier and the key. Secrets come from environment variables named in the file
(``secret_env``, ``password_env``, ``url_env``) and never appear in an error or a log line.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from auditkeep.alerts.notify import (
    EmailNotifier,
    Notifier,
    RetryPolicy,
    SlackNotifier,
    StdoutNotifier,
    WebhookNotifier,
)
from auditkeep.config import AlertSettings, ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class WebhookConfig(msgspec.Struct, tag="webhook", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    name: str
    url: str | None = None
    url_env: str | None = None
    secret: str | None = None
    secret_env: str | None = None
    timeout: float = 10.0
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class SlackConfig(msgspec.Struct, tag="slack", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    name: str
    url: str | None = None
    url_env: str | None = None
    timeout: float = 10.0


class EmailConfig(msgspec.Struct, tag="email", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    name: str
    host: str
    sender: str
    recipients: list[str]
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    timeout: float = 30.0


class StdoutConfig(msgspec.Struct, tag="stdout", tag_field="type", forbid_unknown_fields=True, kw_only=True):
    name: str = "stdout"
    format: Literal["json", "text"] = "json"


NotifierConfig = WebhookConfig | SlackConfig | EmailConfig | StdoutConfig


def _env(var: str, env: Mapping[str, str], name: str, key: str) -> str:
    value = env.get(var)
    if not value:
        raise ConfigError(f"alerts.notifiers {name!r}: environment variable {var} (from {key}) is not set")
    return value


def _url(cfg: WebhookConfig | SlackConfig, env: Mapping[str, str]) -> str:
    if (cfg.url is None) == (cfg.url_env is None):
        raise ConfigError(f"alerts.notifiers {cfg.name!r}: give exactly one of url and url_env")
    url = cfg.url if cfg.url is not None else _env(cfg.url_env or "", env, cfg.name, "url_env")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"alerts.notifiers {cfg.name!r}: the URL must start with http:// or https://")
    return url


def parse_notifier(table: Mapping[str, Any]) -> NotifierConfig:
    """One ``[[alerts.notifiers]]`` table, checked; ``ConfigError`` names what is wrong."""
    label = table.get("name") if isinstance(table.get("name"), str) else "?"
    try:
        cfg: NotifierConfig = msgspec.convert(table, NotifierConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"alerts.notifiers {label!r}: {exc}") from None
    if not _NAME.match(cfg.name):
        raise ConfigError(f"alerts.notifiers {cfg.name!r}: a name is letters, digits and _ . : - (at most 64)")
    return cfg


def build_notifier(cfg: NotifierConfig, env: Mapping[str, str] | None = None) -> Notifier:
    environ = os.environ if env is None else env
    if isinstance(cfg, WebhookConfig):
        if cfg.secret is not None and cfg.secret_env is not None:
            raise ConfigError(f"alerts.notifiers {cfg.name!r}: give secret or secret_env, not both")
        secret = cfg.secret if cfg.secret_env is None else _env(cfg.secret_env, environ, cfg.name, "secret_env")
        return WebhookNotifier(cfg.name, _url(cfg, environ), secret=secret, timeout=cfg.timeout, headers=cfg.headers)
    if isinstance(cfg, SlackConfig):
        return SlackNotifier(cfg.name, _url(cfg, environ), timeout=cfg.timeout)
    if isinstance(cfg, EmailConfig):
        password = None
        if cfg.password_env is not None:
            if cfg.username is None:
                raise ConfigError(f"alerts.notifiers {cfg.name!r}: password_env needs username")
            password = _env(cfg.password_env, environ, cfg.name, "password_env")
        if cfg.username is not None and not cfg.starttls:
            raise ConfigError(f"alerts.notifiers {cfg.name!r}: a login needs starttls = true")
        try:
            context = ssl.create_default_context(cafile=cfg.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"alerts.notifiers {cfg.name!r}: ca_file: {exc}") from None
        try:
            return EmailNotifier(
                cfg.name,
                host=cfg.host,
                port=cfg.port,
                sender=cfg.sender,
                recipients=cfg.recipients,
                starttls=cfg.starttls,
                username=cfg.username,
                password=password,
                ssl_context=context,
                timeout=cfg.timeout,
            )
        except ValueError as exc:
            raise ConfigError(f"alerts.notifiers {cfg.name!r}: {exc}") from None
    return StdoutNotifier(cfg.name, json=cfg.format == "json")


def build_notifiers(settings: AlertSettings, env: Mapping[str, str] | None = None) -> list[Notifier]:
    """Every configured notifier; ``ConfigError`` for a bad table, a duplicate name, a missing
    secret or a ``default_notify`` name that is not configured."""
    out: list[Notifier] = []
    for table in settings.notifiers:
        cfg = parse_notifier(table)
        if any(n.name == cfg.name for n in out):
            raise ConfigError(f"alerts.notifiers: the name {cfg.name!r} is used twice")
        out.append(build_notifier(cfg, env))
    names = {n.name for n in out}
    for name in settings.default_notify:
        if name not in names:
            raise ConfigError(f"alerts.default_notify: no notifier named {name!r} is configured")
    return out


def retry_policy(settings: AlertSettings) -> RetryPolicy:
    if settings.retry_attempts < 1:
        raise ConfigError("alerts.retry_attempts must be at least 1")
    return RetryPolicy(attempts=settings.retry_attempts, base=settings.retry_base, max_delay=settings.retry_max_delay)


def check_timings(settings: AlertSettings) -> None:
    for key in ("poll_interval", "tick_interval", "rules_interval"):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"alerts.{key} must be positive")
    if settings.save_interval < 0:
        raise ConfigError("alerts.save_interval must be 0 (save after every step) or more")
    if settings.batch_events < 1 or settings.max_rule_bytes < 1:
        raise ConfigError("alerts.batch_events and alerts.max_rule_bytes must be positive")
