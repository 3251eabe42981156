"""Settings: the one place that reads `TELEMED_*` from the environment.

Each process's entry point (`telemed …`, app.cli) calls `load_settings()` once and passes the
frozen `Settings` down; nothing reads the environment anywhere else, nor settings at import time
(tests/test_settings.py checks both). Defaults are the project's local services (scripts/services),
so a development machine needs no configuration; docs/deployment.md ("Settings") lists every
variable with its default.

The fields read by most of the code are at the top level; those of one part are grouped:
`readiness` (the API's /readyz), `scheduler` (job intervals), `events` (the event stream),
`webhooks`, `ingest` (the workers' MQTT options), `wounds` (uploads and stored photos) and `up`
(the supervisor's restarts).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict, TypeVar

import msgspec

from telemed.cpr import CprKeys, local_keys, parse_keys
from telemed.resources import package_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
T = TypeVar("T")


class ReadinessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the API checks its database and broker for /readyz (docs/deployment.md)."""

    interval_s: float = 5.0  # TELEMED_READY_INTERVAL_S
    database_timeout_s: float = 3.0  # TELEMED_READY_DB_TIMEOUT_S
    broker_timeout_s: float = 5.0  # TELEMED_READY_BROKER_TIMEOUT_S
    database_grace_s: float = 15.0  # TELEMED_READY_DB_GRACE_S
    broker_grace_s: float = 30.0  # TELEMED_READY_BROKER_GRACE_S


class SchedulerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds between runs of each job, TELEMED_SCHEDULER_<FIELD> (docs/alerts-operations.md).
    The jobs that prune old rows share `retention_s`."""

    missed_measurements_s: float = 300.0
    escalations_s: float = 60.0
    wound_escalations_s: float = 60.0  # unset: escalations_s
    daily_rollups_s: float = 900.0
    retention_s: float = 86400.0
    media_sweep_s: float = 86400.0
    rule_coverage_s: float = 300.0
    webhook_poll_s: float = 5.0
    lock_retry_s: float = 5.0
    reconnect_s: float = 2.0


class EventStreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The server-sent event stream (events.stream)."""

    heartbeat_s: float = 15.0  # TELEMED_SSE_HEARTBEAT_S
    auth_check_s: float = 2.0  # TELEMED_SSE_AUTH_CHECK_S
    max_stream_s: float = 300.0  # TELEMED_SSE_MAX_S
    replay_h: float = 24.0  # TELEMED_SSE_REPLAY_H


class WebhookSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Webhook delivery (events.notify): retries, and the hosts allowed plain http or a private
    address."""

    retry_base_s: float = 10.0  # TELEMED_WEBHOOK_RETRY_BASE_S
    retry_cap_s: float = 3600.0  # TELEMED_WEBHOOK_RETRY_CAP_S
    max_attempts: int = 50  # TELEMED_WEBHOOK_MAX_ATTEMPTS
    allowed_hosts: frozenset[str] = frozenset()  # TELEMED_WEBHOOK_ALLOWED_HOSTS


class IngestSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The ingest workers' share group and MQTT sessions (ingest.worker.Options)."""

    group: str = "ingest"  # TELEMED_INGEST_GROUP
    client_prefix: str = "telemed-ingest"  # TELEMED_INGEST_CLIENT_PREFIX
    session_expiry_s: int = 7 * 86400  # TELEMED_INGEST_SESSION_EXPIRY_S
    device_cache_s: float = 10.0  # TELEMED_INGEST_DEVICE_CACHE_S
    lanes: int = 2  # TELEMED_INGEST_LANES, at least 1
    # The most messages waiting for a batch before the worker stops reading from the broker
    # (it reads again at half); 0: (lanes + 1) x batch size. docs/ingest.md, "MQTT session".
    inbox_max: int = 0  # TELEMED_INGEST_INBOX_MAX, at least 0
    keepalive_s: int = 30  # TELEMED_INGEST_KEEPALIVE_S, 1 to 65535


class WoundSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Wound photo uploads and the stored files (docs/wounds.md)."""

    max_photos: int = 10  # TELEMED_WOUND_MAX_PHOTOS
    max_photo_bytes: int = 15 * MIB  # TELEMED_WOUND_MAX_PHOTO_BYTES
    max_request_bytes: int = 64 * MIB  # TELEMED_WOUND_MAX_REQUEST_BYTES
    sanitize_threads: int = 2  # TELEMED_WOUND_SANITIZE_THREADS; unset: the number of CPUs
    sweep_grace_h: float = 24.0  # TELEMED_MEDIA_SWEEP_GRACE_H
    orphans_keep_days: int = 90  # TELEMED_MEDIA_ORPHANS_KEEP_DAYS


class SupervisorSettings(msgspec.Struct, frozen=True, kw_only=True):
    """`telemed up`'s restarts (app.supervise.Backoff)."""

    restart_min_s: float = 1.0  # TELEMED_UP_RESTART_MIN_S
    restart_max_s: float = 60.0  # TELEMED_UP_RESTART_MAX_S
    stable_s: float = 60.0  # TELEMED_UP_STABLE_S


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    dsn: str  # the application role: API, ingest workers, scheduler
    owner_dsn: str  # the owner role: migrations (docs/deployment.md, "Database roles")
    mqtt_host: str
    mqtt_port: int
    broker_dir: Path
    media_dir: Path
    migrations_dir: Path
    token_ttl_s: int
    ingest_username: str
    ingest_password: str
    broker_admin_password: str
    mqtt_tls_port: int
    mqtt_cafile: Path
    mqtt_certfile: Path
    mqtt_keyfile: Path
    pool_min: int
    pool_max: int
    http_host: str
    http_port: int
    secure_cookies: bool
    cpr_keys: CprKeys
    # Everything of one instance: its secrets, the demo's device credentials.
    state_dir: Path = REPO_ROOT / ".dev"
    # HTTP: trusted proxies, TLS, request limits, sign-in throttling (docs/deployment.md).
    trusted_proxies: tuple[str, ...] = ()
    proxy_headers: str = "x-forwarded"
    hsts_max_age_s: int = 365 * 86400
    tls_certfile: str = ""
    tls_keyfile: str = ""
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    signin_account_free: int = 5
    signin_address_free: int = 100
    signin_delay_base_s: float = 1.0
    signin_delay_max_s: float = 900.0
    signin_window_s: float = 3600.0
    signin_key: str = ""
    hash_workers: int = 1
    hash_queue: int = 32
    web_secret: str = ""  # signs the pages' CSRF tokens
    # Years of readings kept; below the legal floor the floor applies (telemed.jobs).
    retention_readings_years: int = 10
    readiness: ReadinessSettings = ReadinessSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    events: EventStreamSettings = EventStreamSettings()
    webhooks: WebhookSettings = WebhookSettings()
    ingest: IngestSettings = IngestSettings()
    wounds: WoundSettings = WoundSettings()
    up: SupervisorSettings = SupervisorSettings()

    @property
    def broker_pidfile(self) -> Path:
        return self.broker_dir / "mosquitto.pid"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process, from `env` (default: the environment)."""
    e = os.environ if env is None else env
    state = Path(e.get("TELEMED_STATE_DIR", REPO_ROOT / ".dev"))
    pg_port = e.get("TELEMED_PG_PORT", "55432")
    mqtt_port = _get(e, "TELEMED_MQTT_PORT", int, 51883)
    return Settings(
        dsn=e.get(
            "TELEMED_DSN", f"postgresql://telemed_app:telemed_app@127.0.0.1:{pg_port}/telemed"
        ),
        owner_dsn=e.get(
            "TELEMED_OWNER_DSN",
            f"postgresql://telemed_owner:telemed_owner@127.0.0.1:{pg_port}/telemed",
        ),
        mqtt_host=e.get("TELEMED_MQTT_HOST", "127.0.0.1"),
        mqtt_port=mqtt_port,
        broker_dir=Path(e.get("TELEMED_BROKER_DIR", state / "mosquitto")),
        media_dir=Path(e.get("TELEMED_MEDIA_DIR", state / "media")),
        migrations_dir=_migrations_dir(e),
        token_ttl_s=_get(e, "TELEMED_TOKEN_TTL_S", int, 8 * 3600),
        ingest_username=e.get("TELEMED_INGEST_USERNAME", "telemed-ingest"),
        ingest_password=e.get("TELEMED_INGEST_PASSWORD", "") or _local_secret(state, "ingest"),
        broker_admin_password=e.get("TELEMED_BROKER_ADMIN_PASSWORD", "")
        or _local_secret(state, "broker-admin"),
        # The devices' TLS listener and the files a device (or the simulator) connects with.
        mqtt_tls_port=_get(e, "TELEMED_MQTT_TLS_PORT", int, mqtt_port + 1)
        if e.get("TELEMED_MQTT_TLS_PORT")
        else mqtt_port + 1,
        mqtt_cafile=Path(e.get("TELEMED_MQTT_CAFILE", state / "mosquitto" / "tls" / "ca.crt")),
        mqtt_certfile=Path(
            e.get("TELEMED_MQTT_CERTFILE", state / "mosquitto" / "tls" / "device.crt")
        ),
        mqtt_keyfile=Path(
            e.get("TELEMED_MQTT_KEYFILE", state / "mosquitto" / "tls" / "device.key")
        ),
        pool_min=_get(e, "TELEMED_POOL_MIN", int, 1),
        pool_max=_get(e, "TELEMED_POOL_MAX", int, 10),
        http_host=e.get("TELEMED_HTTP_HOST", "127.0.0.1"),
        http_port=_get(e, "TELEMED_HTTP_PORT", int, 8000),
        secure_cookies=e.get("TELEMED_SECURE_COOKIES", "0") == "1",
        cpr_keys=_cpr_keys(e, state),
        state_dir=state,
        web_secret=e.get("TELEMED_WEB_SECRET", "") or _local_secret(state, "web", nbytes=32),
        retention_readings_years=_get(e, "TELEMED_RETENTION_READINGS_YEARS", int, 10),
        readiness=_readiness(e),
        scheduler=_scheduler(e),
        events=_events(e),
        webhooks=_webhooks(e),
        ingest=_ingest(e),
        wounds=_wounds(e),
        up=_supervisor(e),
        **_http_settings(e, state),
    )


def _migrations_dir(e: Mapping[str, str]) -> Path:
    """TELEMED_MIGRATIONS_DIR, or the migrations shipped in the installed `migrations` package."""
    if folder := e.get("TELEMED_MIGRATIONS_DIR"):
        return Path(folder)
    return package_dir("migrations")


def _get(e: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    """The variable `name` parsed, or `default` when it is unset; a value that does not parse
    is refused, naming the variable."""
    if name not in e:
        return default
    try:
        return parse(e[name])
    except ValueError:
        kind = (
            "a whole number" if parse is int else "a number" if parse is float else parse.__name__
        )
        raise ValueError(f"{name}: {e[name]!r} is not {kind}") from None


def _readiness(e: Mapping[str, str]) -> ReadinessSettings:
    d = ReadinessSettings()
    return ReadinessSettings(
        interval_s=_get(e, "TELEMED_READY_INTERVAL_S", float, d.interval_s),
        database_timeout_s=_get(e, "TELEMED_READY_DB_TIMEOUT_S", float, d.database_timeout_s),
        broker_timeout_s=_get(e, "TELEMED_READY_BROKER_TIMEOUT_S", float, d.broker_timeout_s),
        database_grace_s=_get(e, "TELEMED_READY_DB_GRACE_S", float, d.database_grace_s),
        broker_grace_s=_get(e, "TELEMED_READY_BROKER_GRACE_S", float, d.broker_grace_s),
    )


def _scheduler(e: Mapping[str, str]) -> SchedulerSettings:
    d = SchedulerSettings()
    # As when each job read its own: an empty variable is an unset one.
    e = {k: v for k, v in e.items() if k.startswith("TELEMED_SCHEDULER_") and v}
    found = {
        field: _get(e, f"TELEMED_SCHEDULER_{field.upper()}", float, getattr(d, field))
        for field in SchedulerSettings.__struct_fields__
    }
    if "TELEMED_SCHEDULER_WOUND_ESCALATIONS_S" not in e:
        # Wound cases escalate as often as alerts unless told otherwise.
        found["wound_escalations_s"] = found["escalations_s"]
    return SchedulerSettings(**found)


def _events(e: Mapping[str, str]) -> EventStreamSettings:
    d = EventStreamSettings()
    return EventStreamSettings(
        heartbeat_s=_get(e, "TELEMED_SSE_HEARTBEAT_S", float, d.heartbeat_s),
        auth_check_s=_get(e, "TELEMED_SSE_AUTH_CHECK_S", float, d.auth_check_s),
        max_stream_s=_get(e, "TELEMED_SSE_MAX_S", float, d.max_stream_s),
        replay_h=_get(e, "TELEMED_SSE_REPLAY_H", float, d.replay_h),
    )


def _webhooks(e: Mapping[str, str]) -> WebhookSettings:
    d = WebhookSettings()
    hosts = e.get("TELEMED_WEBHOOK_ALLOWED_HOSTS", "")
    return WebhookSettings(
        retry_base_s=_get(e, "TELEMED_WEBHOOK_RETRY_BASE_S", float, d.retry_base_s),
        retry_cap_s=_get(e, "TELEMED_WEBHOOK_RETRY_CAP_S", float, d.retry_cap_s),
        max_attempts=_get(e, "TELEMED_WEBHOOK_MAX_ATTEMPTS", int, d.max_attempts),
        allowed_hosts=frozenset(h.strip().lower() for h in hosts.split(",") if h.strip()),
    )


def _ingest(e: Mapping[str, str]) -> IngestSettings:
    d = IngestSettings()
    return IngestSettings(
        group=e.get("TELEMED_INGEST_GROUP", d.group),
        client_prefix=e.get("TELEMED_INGEST_CLIENT_PREFIX", d.client_prefix),
        session_expiry_s=_get(e, "TELEMED_INGEST_SESSION_EXPIRY_S", int, d.session_expiry_s),
        device_cache_s=_get(e, "TELEMED_INGEST_DEVICE_CACHE_S", float, d.device_cache_s),
        lanes=max(1, _get(e, "TELEMED_INGEST_LANES", int, d.lanes)),
        inbox_max=_get(e, "TELEMED_INGEST_INBOX_MAX", int, d.inbox_max),
        keepalive_s=_get(e, "TELEMED_INGEST_KEEPALIVE_S", int, d.keepalive_s),
    )


def _wounds(e: Mapping[str, str]) -> WoundSettings:
    d = WoundSettings()
    return WoundSettings(
        max_photos=_get(e, "TELEMED_WOUND_MAX_PHOTOS", int, d.max_photos),
        max_photo_bytes=_get(e, "TELEMED_WOUND_MAX_PHOTO_BYTES", int, d.max_photo_bytes),
        max_request_bytes=_get(e, "TELEMED_WOUND_MAX_REQUEST_BYTES", int, d.max_request_bytes),
        sanitize_threads=_get(e, "TELEMED_WOUND_SANITIZE_THREADS", int, os.cpu_count() or 2),
        sweep_grace_h=_get(e, "TELEMED_MEDIA_SWEEP_GRACE_H", float, d.sweep_grace_h),
        orphans_keep_days=_get(e, "TELEMED_MEDIA_ORPHANS_KEEP_DAYS", int, d.orphans_keep_days),
    )


def _supervisor(e: Mapping[str, str]) -> SupervisorSettings:
    d = SupervisorSettings()
    return SupervisorSettings(
        restart_min_s=_get(e, "TELEMED_UP_RESTART_MIN_S", float, d.restart_min_s),
        restart_max_s=_get(e, "TELEMED_UP_RESTART_MAX_S", float, d.restart_max_s),
        stable_s=_get(e, "TELEMED_UP_STABLE_S", float, d.stable_s),
    )


def _cpr_keys(e: Mapping[str, str], state: Path) -> CprKeys:
    """TELEMED_CPR_KEYS and TELEMED_CPR_LOOKUP_KEY, both or neither; neither: keys derived
    from a secret of the local instance."""
    encryption, lookup = e.get("TELEMED_CPR_KEYS", ""), e.get("TELEMED_CPR_LOOKUP_KEY", "")
    if encryption or lookup:
        if not (encryption and lookup):
            raise ValueError("set both TELEMED_CPR_KEYS and TELEMED_CPR_LOOKUP_KEY, or neither")
        return parse_keys(encryption, lookup)
    return local_keys(_local_secret(state, "cpr"))


class _HttpSettings(TypedDict):
    """The HTTP fields of `Settings`, as `_http_settings` reads them."""

    trusted_proxies: tuple[str, ...]
    proxy_headers: str
    hsts_max_age_s: int
    tls_certfile: str
    tls_keyfile: str
    max_body_bytes: int
    max_header_bytes: int
    max_headers: int
    signin_account_free: int
    signin_address_free: int
    signin_delay_base_s: float
    signin_delay_max_s: float
    signin_window_s: float
    signin_key: str
    hash_workers: int
    hash_queue: int


def _http_settings(e: Mapping[str, str], state: Path) -> _HttpSettings:
    proxies = tuple(p.strip() for p in e.get("TELEMED_TRUSTED_PROXIES", "").split(",") if p.strip())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(
                f"TELEMED_TRUSTED_PROXIES: {proxy!r} is not an IP address or network"
            ) from None
    header = e.get("TELEMED_PROXY_HEADERS", "x-forwarded").strip().lower()
    if header not in ("x-forwarded", "forwarded"):
        raise ValueError(f"TELEMED_PROXY_HEADERS must be x-forwarded or forwarded, not {header!r}")
    values: _HttpSettings = {
        "trusted_proxies": proxies,
        "proxy_headers": header,
        "hsts_max_age_s": _get(e, "TELEMED_HSTS_MAX_AGE_S", int, 365 * 86400),
        "tls_certfile": e.get("TELEMED_TLS_CERTFILE", ""),
        "tls_keyfile": e.get("TELEMED_TLS_KEYFILE", ""),
        "max_body_bytes": _get(e, "TELEMED_MAX_BODY_BYTES", int, 1024 * 1024),
        "max_header_bytes": _get(e, "TELEMED_MAX_HEADER_BYTES", int, 32 * 1024),
        "max_headers": _get(e, "TELEMED_MAX_HEADERS", int, 100),
        "signin_account_free": _get(e, "TELEMED_SIGNIN_ACCOUNT_FREE", int, 5),
        "signin_address_free": _get(e, "TELEMED_SIGNIN_ADDRESS_FREE", int, 100),
        "signin_delay_base_s": _get(e, "TELEMED_SIGNIN_DELAY_BASE_S", float, 1.0),
        "signin_delay_max_s": _get(e, "TELEMED_SIGNIN_DELAY_MAX_S", float, 900.0),
        "signin_window_s": _get(e, "TELEMED_SIGNIN_WINDOW_S", float, 3600.0),
        # Every API process must use the same key, or each would count failures apart.
        "signin_key": e.get("TELEMED_SIGNIN_KEY", "") or _local_secret(state, "signin"),
        "hash_workers": _get(e, "TELEMED_HASH_WORKERS", int, 1),
        "hash_queue": _get(e, "TELEMED_HASH_QUEUE", int, 32),
    }
    _at_least(values, 1, "max_body_bytes", "max_header_bytes", "max_headers", "hash_workers")
    _at_least(values, 1, "signin_account_free", "signin_address_free")
    _at_least(values, 0, "hash_queue", "hsts_max_age_s")
    _at_least(values, 0.001, "signin_delay_base_s", "signin_window_s")
    _at_least(values, values["signin_delay_base_s"], "signin_delay_max_s")
    return values


def _at_least(values: Mapping[str, object], least: float, *names: str) -> None:
    """Refuse to start on a limit that would switch its protection off or lock everyone out."""
    for name in names:
        value = values[name]
        if not isinstance(value, int | float):
            raise TypeError(f"{name} is not a number but {value!r}")
        if value < least:
            raise ValueError(f"TELEMED_{name.upper()} must be at least {least}, not {value}")


def _local_secret(state: Path, name: str, *, nbytes: int = 24) -> str:
    """A random secret kept in the state folder, so local services need no configuration; every
    process of the instance (and every restart) reads the same one."""
    path = state / "secrets" / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(nbytes)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this instance made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value
