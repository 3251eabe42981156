"""Start (or reuse) the project's own PostgreSQL+TimescaleDB and Mosquitto for the tests, and
make a fresh database per run from a migrated template.

The roles are those of the local instances (scripts/services): the superuser makes and drops
databases, the owner role migrates the template and owns every object, and the tests and the
application under test connect as the application role, which owns nothing. A test that needs
the owner's rights asks for them (the `owner_db` fixture).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

from telemed.migrate import apply_migrations
from telemed.settings import REPO_ROOT, Settings, load_settings

TEST_STATE = REPO_ROOT / ".dev" / "test"
# The PostgreSQL 15 programs scripts/services runs (PG_BIN there).
PG_BIN = Path("/usr/lib/postgresql/15/bin")
TEST_ENV = {
    "TELEMED_STATE_DIR": str(TEST_STATE),
    "TELEMED_PG_PORT": os.environ.get("TELEMED_TEST_PG_PORT", "55442"),
    "TELEMED_MQTT_PORT": os.environ.get("TELEMED_TEST_MQTT_PORT", "51893"),
}
# The devices' TLS listener of the test instance: its own setting, or the port after MQTT's (so
# that a TELEMED_MQTT_TLS_PORT of another instance in the environment is never taken).
TEST_ENV["TELEMED_MQTT_TLS_PORT"] = os.environ.get("TELEMED_TEST_MQTT_TLS_PORT") or str(
    int(TEST_ENV["TELEMED_MQTT_PORT"]) + 1
)


def ensure_services() -> dict[str, str]:
    """Run `scripts/services start` for the test instance; return its environment."""
    env = {**os.environ, **TEST_ENV}
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "services"), "start"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "services"), "env"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = dict(TEST_ENV)
    for line in out.splitlines():
        line = line.removeprefix("export ").strip()
        if "=" in line:
            key, value = line.split("=", 1)
            found[key] = value.strip("'\"")
    return found


# The local instances' roles and passwords, as scripts/services makes them.
ROLES = {
    "superuser": ("telemed", "telemed"),
    "owner": ("telemed_owner", "telemed_owner"),
    "app": ("telemed_app", "telemed_app"),
}
OWNER_ROLE = ROLES["owner"][0]


def role_dsn(dsn: str, role: str) -> str:
    """The same database as `dsn`, signed in as one of the local roles."""
    user, password = ROLES[role]
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password)}@{host}"))


def _with_db(dsn: str, dbname: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{dbname}"


def migrations_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.sql")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def fresh_database(server_dsn: str, migrations: Path) -> str:
    """A new database for this run, cloned from a template migrated once per migration set (as
    the owner role); returns its DSN for the application role. `server_dsn` is any DSN of the
    cluster."""
    template = f"telemed_tpl_{migrations_digest(migrations)}"
    name = f"telemed_test_{uuid.uuid4().hex[:10]}"
    admin = role_dsn(_with_db(server_dsn, "postgres"), "superuser")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4242)")
        try:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (template,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{template}" OWNER {OWNER_ROLE}')
                with psycopg.connect(role_dsn(_with_db(server_dsn, template), "owner")) as tconn:
                    apply_migrations(tconn, migrations)
                # TimescaleDB's background workers connect to every database with the extension;
                # a template nobody may connect to can always be copied.
                conn.execute(
                    f'ALTER DATABASE "{template}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false'
                )
            _copy_template(conn, template, name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(4242)")
    return role_dsn(_with_db(server_dsn, name), "app")


def _copy_template(conn: psycopg.Connection, template: str, name: str) -> None:
    for attempt in range(50):
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (template,),
        )
        try:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER {OWNER_ROLE}')
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 49:
                raise
            time.sleep(0.1)


def drop_database(dsn: str) -> None:
    server, _, name = role_dsn(dsn, "superuser").rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_settings(env: dict[str, str], dsn: str, tmp: Path) -> Settings:
    merged = {
        **os.environ,
        **env,
        "TELEMED_DSN": dsn,
        "TELEMED_OWNER_DSN": role_dsn(dsn, "owner"),
        "TELEMED_MEDIA_DIR": str(tmp / "media"),
    }
    return load_settings(merged)
