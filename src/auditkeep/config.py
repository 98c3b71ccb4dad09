"""Settings: defaults that work on a laptop, ``auditkeep.toml``, then ``AUDITKEEP_*`` variables.

Every option has one name used everywhere: ``checkpoint_interval`` in the file is
``AUDITKEEP_CHECKPOINT_INTERVAL`` in the environment; options in a table such as
``[limits] max_string`` become ``AUDITKEEP_LIMITS_MAX_STRING``. Lists in the environment are
comma-separated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from auditkeep.crypto.atrest import EncryptionSettings
from auditkeep.errors import ConfigError as ConfigError  # re-exported: its old home
from auditkeep.ledger.config import DEFAULT_PERSONAL_FIELDS, LedgerConfig
from auditkeep.model.validate import Limits

if TYPE_CHECKING:
    from auditkeep.store.base import Store

ENV_PREFIX = "AUDITKEEP_"
CONFIG_FILE = "auditkeep.toml"


class LimitSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_event_bytes: int = 64 * 1024
    max_keys: int = 64
    max_depth: int = 8
    max_string: int = 8192
    max_array: int = 1024


class AlertSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``[alerts]`` table: the alert runner and its notifiers (see docs/alerts.md)."""

    run_in_server: bool = True  # run the alert runner inside `auditkeep serve`
    # [[alerts.notifiers]] tables: {name, type = webhook|slack|email|stdout, ...}; checked
    # when the runner is built (auditkeep.alerts.config), so a bad one names its field.
    notifiers: list[dict[str, Any]] = msgspec.field(default_factory=list)
    default_notify: list[str] = msgspec.field(default_factory=list)
    poll_interval: float = 1.0  # seconds between looks at the log when no commit woke the runner
    tick_interval: float = 10.0  # seconds between clock ticks (absence rules)
    save_interval: float = 1.0  # seconds between saves of cursor + engine state
    rules_interval: float = 2.0  # seconds between checks of the rules directory
    batch_events: int = 2000  # events read per tenant per step
    retry_attempts: int = 5
    retry_base: float = 0.5
    retry_max_delay: float = 60.0
    max_rule_bytes: int = 64 * 1024  # size bound of a rule body posted to the API


class WitnessSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One ``[[witness]]`` table: a C2SP tlog-witness that cosigns this log's checkpoints."""

    url: str  # its submission prefix: POST {url}/add-checkpoint
    key: str  # its verifier key, name+hexid+base64(0x04 || key) (auditkeep witness init prints it)


class RetentionSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``[retention]`` table (see docs/retention.md)."""

    # [[retention.policy]] tables, first match wins: {name, tenant, category, action,
    # archive_after, delete_after}; checked by auditkeep.retention.policy.load_policies.
    policy: list[dict[str, Any]] = msgspec.field(default_factory=list)
    run_in_server: bool = True  # run retention in the background under `auditkeep serve`
    interval: float = 3600.0  # seconds between background runs

    def policies(self) -> list[Any]:
        from auditkeep.retention.policy import PolicyError, load_policies

        try:
            return load_policies(self.policy)
        except PolicyError as exc:
            raise ConfigError(str(exc)) from None
class ArchiveSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``[archive]`` table: where WORM archive segments go (see docs/archive.md). Object
    storage credentials come from boto3's usual sources (environment, profile), never from here."""

    dir: str | None = None  # a directory target
    s3_bucket: str | None = None  # or an S3-compatible bucket
    s3_endpoint: str | None = None  # e.g. https://minio.example:9000 (default: AWS)
    s3_region: str | None = None
    s3_prefix: str = ""  # key prefix, e.g. "auditkeep/"
    s3_sse: str | None = None  # server-side encryption of each object: "AES256" or "aws:kms"
    s3_kms_key_id: str | None = None  # the KMS key of "aws:kms" (default: the bucket's)
    lock_days: int = 0  # S3 Object Lock retention (retain-until = upload + lock_days); 0: no lock
    lock_mode: str = "COMPLIANCE"  # or GOVERNANCE
    segment_entries: int = 65536  # entries per segment at most (segments align to multiples)

    @property
    def configured(self) -> bool:
        return bool(self.dir or self.s3_bucket)


class ForwardSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One ``[[forward]]`` table: a target the forwarder sends the committed log to (see
    docs/forwarding.md). Secrets are named by environment variable, never written here."""

    name: str
    type: str  # file | splunk_hec | webhook | syslog | nats
    format: str = "native"  # native (the record as stored) | ocsf | cef
    tenants: list[str] = msgspec.field(default_factory=list)  # empty: every tenant
    actions: list[str] = msgspec.field(default_factory=list)  # exact, or a prefix ending in *
    categories: list[str] = msgspec.field(default_factory=list)
    outcomes: list[str] = msgspec.field(default_factory=list)
    batch: int = 500  # log entries read (and at most sent) at a time
    max_request_bytes: int = 4 * 1024 * 1024  # a batch is split into requests/writes of at most this
    retry_max_delay: float = 30.0  # seconds; retries back off up to this, and never give up
    # file
    path: str | None = None
    max_bytes: int = 100 * 1024 * 1024  # rotate past this size
    keep: int = 5  # rotated files kept (path.1 ... path.N)
    # splunk_hec, webhook
    url: str | None = None
    token_env: str | None = None  # environment variable holding the HEC token
    secret_env: str | None = None  # environment variable holding the webhook's HMAC secret
    ca_file: str | None = None  # CA bundle for https:// and tls syslog (default: the system's)
    timeout: float = 10.0
    # syslog (RFC 5424 over TLS, octet counting)
    address: str | None = None  # host:port
    confirm_after: float = 2.0  # seconds a sent message must survive on a live connection
    # nats (JetStream)
    servers: str = "nats://127.0.0.1:4222"
    subject: str = "auditkeep.events"
    stream: str | None = None  # created for the subject when it does not exist


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """All options. Unknown keys are errors, so a typo never silently does nothing."""

    data: str = "auditkeep-data"  # data directory (SQLite files, signing key)
    db: str | None = None  # postgresql://... to use PostgreSQL instead of embedded SQLite
    signing_key: str | None = None  # the key text itself (e.g. from a secret); else data/signing.key
    signing_key_file: str | None = None
    console_key_file: str | None = None  # the console's key for TOTP secrets; else data/console.key
    log_id: str | None = None
    durability: str = "full"
    checkpoint_interval: float = 1.0
    personal_fields: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_PERSONAL_FIELDS))
    subject_field: str = "actor.id"
    limits: LimitSettings = msgspec.field(default_factory=LimitSettings)
    # server
    host: str = "127.0.0.1"
    port: int = 8700
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    max_batch_events: int = 10_000
    max_body_bytes: int = 10 * 1024 * 1024
    rate_limit: float = 200.0  # requests per second per key (burst = 2x)
    # sources, alerts
    policy_file: str | None = None
    rules_dir: str | None = None
    syslog: list[str] = msgspec.field(default_factory=list)
    syslog_tenant: str = "default"  # the tenant log syslog messages go to
    syslog_tls_cert: str | None = None  # tls:// listeners; default: tls_cert
    syslog_tls_key: str | None = None  # default: tls_key
    syslog_udp_buffer: int = 8 * 1024 * 1024  # receive buffer asked for each udp:// socket
    kubernetes_stages: str = "final"  # "final": one event per request; "all": every stage
    kubernetes_stage_timeout: float = 60.0  # seconds an early stage waits for its final one
    # Kubernetes webhook over mutual TLS without a token: "CN=<name>" or "O=<org>" -> tenant
    client_cert_tenants: dict[str, str] = msgspec.field(default_factory=dict)
    quarantine_max_bytes: int = 1024 * 1024  # raw bytes kept per quarantined record
    # gateways (docs/gateway-postgres.md): events waiting in memory for the ledger; past
    # this, the oldest go to the gateway's spool directory
    gateway_max_queue: int = 50_000
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    # witnesses (docs/witness.md): each new checkpoint is sent to them in the background
    witness: list[WitnessSettings] = msgspec.field(default_factory=list)
    witness_quorum: int = 1  # cosignatures a checkpoint needs to count as witnessed
    witness_timeout: float = 10.0  # seconds one add-checkpoint request may take
    witness_retry_max: float = 60.0  # longest pause between retries to a failing witness
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    archive: ArchiveSettings = msgspec.field(default_factory=ArchiveSettings)
    forward: list[ForwardSettings] = msgspec.field(default_factory=list)  # [[forward]] targets
    encryption: EncryptionSettings = msgspec.field(default_factory=EncryptionSettings)  # docs/encryption.md
    extra: dict[str, Any] = msgspec.field(default_factory=dict)

    def ledger_config(self) -> LedgerConfig:
        return LedgerConfig(
            limits=Limits(**msgspec.structs.asdict(self.limits)),
            personal_fields=tuple(self.personal_fields),
            subject_field=self.subject_field,
            checkpoint_interval=self.checkpoint_interval,
            durability=self.durability,
        )

    def signing_key_text(self) -> str | None:
        if self.signing_key:
            return self.signing_key
        if self.signing_key_file:
            return Path(self.signing_key_file).read_text()
        return None


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    limit_fields = {f.name for f in msgspec.structs.fields(LimitSettings)}
    alert_fields = {f.name: f.type for f in msgspec.structs.fields(AlertSettings) if f.name != "notifiers"}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name.startswith("limits_") and name[7:] in limit_fields:
            out.setdefault("limits", {})[name[7:]] = _coerce(value, int)
        elif name.startswith("alerts_") and name[7:] in alert_fields:
            out.setdefault("alerts", {})[name[7:]] = _coerce(value, alert_fields[name[7:]])
        elif name in fields and name not in ("limits", "alerts", "retention", "archive", "forward", "extra", "client_cert_tenants",
                                             "witness", "encryption"):
            out[name] = _coerce(value, fields[name])
    return out


def _coerce(value: str, typ: Any) -> Any:
    text = str(typ)
    if "list" in text:
        return [v.strip() for v in value.split(",") if v.strip()]
    if typ is bool or text == "bool":
        if value.strip().lower() not in ("1", "true", "yes", "0", "false", "no"):
            raise ValueError(f"expected true or false, got {value!r}")
        return value.strip().lower() in ("1", "true", "yes")
    if typ is int or text == "int":
        return int(value)
    if typ is float or text == "float":
        return float(value)
    return value


def _split_lists(values: dict[str, Any], struct: type[msgspec.Struct]) -> None:
    for f in msgspec.structs.fields(struct):
        if f.type == list[str] and isinstance(values.get(f.name), str):
            values[f.name] = [v.strip() for v in values[f.name].split(",") if v.strip()]


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults, then the TOML file (``path``, ``$AUDITKEEP_CONFIG`` or ./auditkeep.toml if it
    exists), then the environment, then ``overrides`` (command-line options)."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    file = Path(path) if path else Path(env["AUDITKEEP_CONFIG"]) if env.get("AUDITKEEP_CONFIG") else None
    if file is None and Path(CONFIG_FILE).exists():
        file = Path(CONFIG_FILE)
    if file is not None:
        import tomllib  # only when there is a file: most commands run without one

        try:
            merged = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {file} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}") from None
    try:
        env_values = _env_overrides(env)
    except ValueError as exc:
        raise ConfigError(f"environment: {exc}") from None
    for key, value in env_values.items():
        if key in ("limits", "alerts"):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    for key, value in (overrides or {}).items():
        if value is not None:
            merged[key] = value
    # A list may also be written as one comma-separated string, as the environment and the
    # command line take it (docs/configuration.md shows `syslog` that way).
    _split_lists(merged, Settings)
    if isinstance(merged.get("alerts"), dict):
        _split_lists(merged["alerts"], AlertSettings)
    try:
        settings = msgspec.convert(merged, Settings)
    except msgspec.ValidationError as exc:
        where = f" in {file}" if file else ""
        raise ConfigError(f"invalid setting{where}: {exc}") from None
    if settings.durability not in ("full", "normal"):
        raise ConfigError("durability must be 'full' or 'normal'")
    if settings.kubernetes_stages not in ("final", "all"):
        raise ConfigError("kubernetes_stages must be 'final' or 'all'")
    _check_witnesses(settings)
    if not 1.0 <= settings.retention.interval <= 7 * 86400:
        raise ConfigError("retention.interval must be between 1 and 604800 seconds")
    policies = settings.retention.policies()  # a bad policy stops here, naming it
    _check_archive(settings, policies)
    return settings


def _check_archive(settings: Settings, policies: list[Any]) -> None:
    a = settings.archive
    if a.dir and a.s3_bucket:
        raise ConfigError("archive: set either archive.dir or archive.s3_bucket, not both")
    if not 0 <= a.lock_days <= 36500:
        raise ConfigError("archive.lock_days must be between 0 and 36500")
    if a.lock_mode not in ("COMPLIANCE", "GOVERNANCE"):
        raise ConfigError("archive.lock_mode must be 'COMPLIANCE' or 'GOVERNANCE'")
    if not 256 <= a.segment_entries <= 1_048_576:
        raise ConfigError("archive.segment_entries must be between 256 and 1048576")
    if a.s3_sse not in (None, "AES256", "aws:kms"):
        raise ConfigError("archive.s3_sse must be 'AES256' or 'aws:kms'")
    if a.s3_kms_key_id and a.s3_sse != "aws:kms":
        raise ConfigError("archive.s3_kms_key_id needs archive.s3_sse = 'aws:kms'")
    if a.lock_days and not a.s3_bucket:
        raise ConfigError("archive.lock_days needs archive.s3_bucket (Object Lock is an S3 feature)")
    for p in policies:
        if p.archive_after_ns is not None and not a.configured:
            raise ConfigError(
                f"retention.policy {p.name!r} has archive_after but no archive target is configured "
                "(archive.dir or archive.s3_bucket); its events could never be deleted"
            )


def _check_witnesses(settings: Settings) -> None:
    from urllib.parse import urlsplit

    from auditkeep.log.cosignature import CosignatureVerifier

    seen: set[str] = set()
    for n, w in enumerate(settings.witness, start=1):
        try:
            u = urlsplit(w.url)
            ok = u.scheme in ("http", "https") and bool(u.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"[[witness]] {n}: url must be an http(s) URL, got {w.url!r}")
        try:
            v = CosignatureVerifier.from_vkey(w.key)
        except ValueError as exc:
            raise ConfigError(f"[[witness]] {n}: key: {exc}") from None
        if v.vkey() in seen:
            raise ConfigError(f"[[witness]] {n}: the same witness key is configured twice")
        seen.add(v.vkey())
    if settings.witness and not 1 <= settings.witness_quorum <= len(settings.witness):
        raise ConfigError(
            f"witness_quorum must be between 1 and the {len(settings.witness)} configured witnesses, "
            f"got {settings.witness_quorum}"
        )
    if settings.witness_timeout <= 0 or settings.witness_retry_max <= 0:
        raise ConfigError("witness_timeout and witness_retry_max must be positive")


# Without a policy file: keep every event whole and replace secrets, but leave e-mail
# addresses alone, since personal fields are sealed (and erasable) rather than masked.
DEFAULT_POLICY: dict[str, Any] = {
    "redaction": {
        "detectors": [
            "private_key", "jwt", "bearer_token", "aws_access_key", "aws_secret_key", "password", "card_number",
        ]
    }
}


def load_pipeline(settings: Settings) -> Any:
    """The capture policy and redaction of ``policy_file``, or :data:`DEFAULT_POLICY`."""
    from auditkeep.policy import Pipeline, PolicyError

    try:
        if settings.policy_file:
            return Pipeline.load(settings.policy_file)
        return Pipeline.from_dict(DEFAULT_POLICY)
    except FileNotFoundError:
        raise ConfigError(f"policy_file {settings.policy_file} not found") from None
    except (PolicyError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy_file {settings.policy_file}: {exc}") from None


def open_store(settings: Settings, *, create: bool = True, read_only: bool = False) -> Store:
    """The store these settings name: embedded SQLite in ``data`` unless ``db`` says otherwise.
    ``read_only`` opens it so that nothing is ever written to it. (A front for
    :func:`auditkeep.store.factory.open_store`, which does the opening.)"""
    from auditkeep.ledger.atrest import at_rest
    from auditkeep.store.factory import open_store as open_location

    store = open_location(
        settings.db or Path(settings.data), durability=settings.durability, read_only=read_only, create=create
    )
    try:
        return at_rest(store, settings.encryption, Path(settings.data), create=create, read_only=read_only)
    except BaseException:
        store.close()
        raise


def open_reader(settings: Settings) -> Any:
    """A reader of the log these settings name, opened read-only: it needs no signing key,
    writes nothing and signs nothing."""
    from auditkeep.ledger.reader import LogReader

    store = open_store(settings, create=False, read_only=True)
    try:
        return LogReader(store, settings.ledger_config())
    except BaseException:
        store.close()
        raise


def open_ledger(settings: Settings, *, create: bool = True, background: bool = True) -> Any:
    """The ledger these settings describe (embedded SQLite unless ``db`` names PostgreSQL)."""
    from auditkeep.ledger.datadir import establish
    from auditkeep.ledger.ledger import Ledger

    cfg = settings.ledger_config()
    pipeline = load_pipeline(settings)  # before the store opens: a bad policy file stops here
    store = open_store(settings, create=create)
    try:
        identity, _ = establish(
            store,
            Path(settings.data),
            log_id=settings.log_id,
            signing_key=settings.signing_key_text(),
            create=create,
        )
    except BaseException:
        store.close()
        raise
    return Ledger(store, identity, cfg, background=background, pipeline=pipeline)
