"""Settings, read once from the environment, with the project's local services as defaults."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from telemed.cpr import CprKeys, local_keys, parse_keys
from telemed.resources import package_dir

REPO_ROOT = Path(__file__).resolve().parent.parent


def _state_dir() -> Path:
    return Path(os.environ.get("TELEMED_STATE_DIR", REPO_ROOT / ".dev"))


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
    # The ingest workers' MQTT keep-alive, and the most messages a worker holds waiting for a
    # batch before it stops reading from the broker (0: (lanes + 1) x batch size); docs/ingest.md.
    ingest_keepalive_s: int = 30
    ingest_inbox_max: int = 0

    @property
    def broker_pidfile(self) -> Path:
        return self.broker_dir / "mosquitto.pid"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    e = os.environ if env is None else env
    state = Path(e.get("TELEMED_STATE_DIR", _state_dir()))
    pg_port = e.get("TELEMED_PG_PORT", "55432")
    mqtt_port = e.get("TELEMED_MQTT_PORT", "51883")
    return Settings(
        dsn=e.get(
            "TELEMED_DSN", f"postgresql://telemed_app:telemed_app@127.0.0.1:{pg_port}/telemed"
        ),
        owner_dsn=e.get(
            "TELEMED_OWNER_DSN",
            f"postgresql://telemed_owner:telemed_owner@127.0.0.1:{pg_port}/telemed",
        ),
        mqtt_host=e.get("TELEMED_MQTT_HOST", "127.0.0.1"),
        mqtt_port=int(mqtt_port),
        broker_dir=Path(e.get("TELEMED_BROKER_DIR", state / "mosquitto")),
        media_dir=Path(e.get("TELEMED_MEDIA_DIR", state / "media")),
        migrations_dir=_migrations_dir(e),
        token_ttl_s=int(e.get("TELEMED_TOKEN_TTL_S", str(8 * 3600))),
        ingest_username=e.get("TELEMED_INGEST_USERNAME", "telemed-ingest"),
        ingest_password=e.get("TELEMED_INGEST_PASSWORD", "") or _local_secret(state, "ingest"),
        ingest_keepalive_s=int(e.get("TELEMED_INGEST_KEEPALIVE_S", "30")),
        ingest_inbox_max=int(e.get("TELEMED_INGEST_INBOX_MAX", "0")),
        broker_admin_password=e.get("TELEMED_BROKER_ADMIN_PASSWORD", "")
        or _local_secret(state, "broker-admin"),
        # The devices' TLS listener and the files a device (or the simulator) connects with.
        mqtt_tls_port=int(e.get("TELEMED_MQTT_TLS_PORT", "") or int(mqtt_port) + 1),
        mqtt_cafile=Path(e.get("TELEMED_MQTT_CAFILE", state / "mosquitto" / "tls" / "ca.crt")),
        mqtt_certfile=Path(
            e.get("TELEMED_MQTT_CERTFILE", state / "mosquitto" / "tls" / "device.crt")
        ),
        mqtt_keyfile=Path(
            e.get("TELEMED_MQTT_KEYFILE", state / "mosquitto" / "tls" / "device.key")
        ),
        pool_min=int(e.get("TELEMED_POOL_MIN", "1")),
        pool_max=int(e.get("TELEMED_POOL_MAX", "10")),
        http_host=e.get("TELEMED_HTTP_HOST", "127.0.0.1"),
        http_port=int(e.get("TELEMED_HTTP_PORT", "8000")),
        secure_cookies=e.get("TELEMED_SECURE_COOKIES", "0") == "1",
        cpr_keys=_cpr_keys(e, state),
        **_http_settings(e, state),
    )


def _migrations_dir(e: Mapping[str, str]) -> Path:
    """TELEMED_MIGRATIONS_DIR, or the migrations shipped in the installed `migrations` package."""
    if folder := e.get("TELEMED_MIGRATIONS_DIR"):
        return Path(folder)
    return package_dir("migrations")


def _cpr_keys(e: os._Environ[str] | dict[str, str], state: Path) -> CprKeys:
    """TELEMED_CPR_KEYS and TELEMED_CPR_LOOKUP_KEY, both or neither; neither: keys derived
    from a secret of the local instance."""
    encryption, lookup = e.get("TELEMED_CPR_KEYS", ""), e.get("TELEMED_CPR_LOOKUP_KEY", "")
    if encryption or lookup:
        if not (encryption and lookup):
            raise ValueError("set both TELEMED_CPR_KEYS and TELEMED_CPR_LOOKUP_KEY, or neither")
        return parse_keys(encryption, lookup)
    return local_keys(_local_secret(state, "cpr"))


def _http_settings(e: Mapping[str, str], state: Path) -> dict:
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
    values = {
        "trusted_proxies": proxies,
        "proxy_headers": header,
        "hsts_max_age_s": int(e.get("TELEMED_HSTS_MAX_AGE_S", str(365 * 86400))),
        "tls_certfile": e.get("TELEMED_TLS_CERTFILE", ""),
        "tls_keyfile": e.get("TELEMED_TLS_KEYFILE", ""),
        "max_body_bytes": int(e.get("TELEMED_MAX_BODY_BYTES", str(1024 * 1024))),
        "max_header_bytes": int(e.get("TELEMED_MAX_HEADER_BYTES", str(32 * 1024))),
        "max_headers": int(e.get("TELEMED_MAX_HEADERS", "100")),
        "signin_account_free": int(e.get("TELEMED_SIGNIN_ACCOUNT_FREE", "5")),
        "signin_address_free": int(e.get("TELEMED_SIGNIN_ADDRESS_FREE", "100")),
        "signin_delay_base_s": float(e.get("TELEMED_SIGNIN_DELAY_BASE_S", "1")),
        "signin_delay_max_s": float(e.get("TELEMED_SIGNIN_DELAY_MAX_S", "900")),
        "signin_window_s": float(e.get("TELEMED_SIGNIN_WINDOW_S", "3600")),
        # Every API process must use the same key, or each would count failures apart.
        "signin_key": e.get("TELEMED_SIGNIN_KEY", "") or _local_secret(state, "signin"),
        "hash_workers": int(e.get("TELEMED_HASH_WORKERS", "1")),
        "hash_queue": int(e.get("TELEMED_HASH_QUEUE", "32")),
    }
    _at_least(values, 1, "max_body_bytes", "max_header_bytes", "max_headers", "hash_workers")
    _at_least(values, 1, "signin_account_free", "signin_address_free")
    _at_least(values, 0, "hash_queue", "hsts_max_age_s")
    _at_least(values, 0.001, "signin_delay_base_s", "signin_window_s")
    _at_least(values, values["signin_delay_base_s"], "signin_delay_max_s")
    return values


def _at_least(values: dict, least: float, *names: str) -> None:
    """Refuse to start on a limit that would switch its protection off or lock everyone out."""
    for name in names:
        if values[name] < least:
            raise ValueError(f"TELEMED_{name.upper()} must be at least {least}, not {values[name]}")


def _local_secret(state: Path, name: str) -> str:
    """A random secret kept in the state folder, so local services need no configuration."""
    import secrets

    path = state / "secrets" / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(24)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this instance made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value
