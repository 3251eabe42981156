"""Settings, read once from the environment, with the project's local services as defaults."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from telemed.cpr import CprKeys, local_keys, parse_keys

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
        migrations_dir=Path(e.get("TELEMED_MIGRATIONS_DIR", REPO_ROOT / "migrations")),
        token_ttl_s=int(e.get("TELEMED_TOKEN_TTL_S", str(8 * 3600))),
        ingest_username=e.get("TELEMED_INGEST_USERNAME", "telemed-ingest"),
        ingest_password=e.get("TELEMED_INGEST_PASSWORD", "") or _local_secret(state, "ingest"),
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
    )


def _cpr_keys(e: os._Environ[str] | dict[str, str], state: Path) -> CprKeys:
    """TELEMED_CPR_KEYS and TELEMED_CPR_LOOKUP_KEY, both or neither; neither: keys derived
    from a secret of the local instance."""
    encryption, lookup = e.get("TELEMED_CPR_KEYS", ""), e.get("TELEMED_CPR_LOOKUP_KEY", "")
    if encryption or lookup:
        if not (encryption and lookup):
            raise ValueError("set both TELEMED_CPR_KEYS and TELEMED_CPR_LOOKUP_KEY, or neither")
        return parse_keys(encryption, lookup)
    return local_keys(_local_secret(state, "cpr"))


def _local_secret(state: Path, name: str) -> str:
    """A random secret kept in the state folder, so local services need no configuration."""
    import secrets

    path = state / "secrets" / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value
