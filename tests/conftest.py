"""Fixtures for tests against the real PostgreSQL+TimescaleDB and Mosquitto."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import psycopg
import pytest
from psycopg.rows import dict_row

from telemed.security import hash_password, new_token
from telemed.settings import Settings
from tests import services
from tests.mqtt_helpers import IngestRig, open_rig


@pytest.fixture(scope="session", autouse=True)
def reading_hooks() -> None:
    """The test process stores readings as the API and the ingest workers do: with the alert
    rules' hook registered at start, as app.wiring does for them (tests/test_wiring.py shows a
    process without it refuses)."""
    from app import wiring

    wiring.register_reading_hooks()


@pytest.fixture(scope="session")
def service_env() -> dict[str, str]:
    return services.ensure_services()


@pytest.fixture(scope="session")
def db_dsn(service_env: dict[str, str]) -> Iterator[str]:
    server = service_env["TELEMED_DSN"]
    from telemed.settings import REPO_ROOT

    dsn = services.fresh_database(server, REPO_ROOT / "migrations")
    yield dsn
    if not os.environ.get("TELEMED_KEEP_TEST_DB"):
        services.drop_database(dsn)


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str], db_dsn: str, tmp_path_factory) -> Settings:
    return services.test_settings(service_env, db_dsn, tmp_path_factory.mktemp("state"))


@pytest.fixture
def empty_db(service_env: dict[str, str]) -> Iterator[str]:
    """An empty database of the owner role; its DSN signs in as the owner, as migrations do."""
    name = f"telemed_empty_{uuid.uuid4().hex[:8]}"
    server = services.role_dsn(service_env["TELEMED_DSN"], "superuser").rpartition("/")[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER {services.OWNER_ROLE}')
    dsn = services.role_dsn(f"{server}/{name}", "owner")
    yield dsn
    services.drop_database(dsn)


@pytest.fixture
def db(db_dsn: str) -> Iterator[psycopg.Connection]:
    """The test database as the application role, with the application's rights and no more."""
    with psycopg.connect(db_dsn, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="session")
def owner_dsn(db_dsn: str) -> str:
    return services.role_dsn(db_dsn, "owner")


@pytest.fixture
def owner_db(owner_dsn: str) -> Iterator[psycopg.Connection]:
    """The test database as the owner role, for a test that needs the owner's rights."""
    with psycopg.connect(owner_dsn, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture(scope="session")
def app(settings: Settings):
    from app.asgi import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def client(app):
    from litestar.testing import TestClient

    with TestClient(app=app, raise_server_exceptions=False) as c:
        yield c


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[str]:
    """The app served by a real uvicorn on a loopback port, in a thread of the test process."""
    import threading
    import time

    import uvicorn

    from app.asgi import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class User:
    id: uuid.UUID
    username: str
    role: str
    organisation_id: uuid.UUID
    token: str
    password: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


# One hash for all test users: argon2 is deliberately slow, and the tests sign in rarely.
_PASSWORD = "correct horse battery"
_HASH = hash_password(_PASSWORD)


class Factory:
    """Makes organisations, users (with a live token) and patients straight in the database."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def org(
        self,
        kind: str = "hospital_department",
        *,
        name: str | None = None,
        region: str | None = "Region Nordjylland",
        hospital: str | None = None,
        specialty: str | None = None,
    ) -> uuid.UUID:
        name = name or f"org-{uuid.uuid4().hex[:8]}"
        row = self.conn.execute(
            "INSERT INTO organisations (name, kind, region, hospital, specialty) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (name, kind, region, hospital, specialty),
        ).fetchone()
        return row["id"]

    def user(self, role: str, org: uuid.UUID, *, ttl_s: int = 3600) -> User:
        username = f"{role}-{uuid.uuid4().hex[:8]}"
        row = self.conn.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (username, username.title(), role, org, _HASH),
        ).fetchone()
        token, digest = new_token()
        self.conn.execute(
            "INSERT INTO auth_tokens (token_hash, user_id, expires_at) "
            "VALUES (%s, %s, now() + make_interval(secs => %s))",
            (digest, row["id"], ttl_s),
        )
        return User(row["id"], username, role, org, token, _PASSWORD)

    def patient(
        self,
        responsible: uuid.UUID,
        *,
        program: str | None = None,
        stratum: str | None = None,
        serving: list[uuid.UUID] = (),
        consulted: list[uuid.UUID] = (),
        name: str = "Test Patient",
    ) -> uuid.UUID:
        pseudonym = f"P-{uuid.uuid4().hex[:8].upper()}"
        pid = self.conn.execute(
            "INSERT INTO patients (pseudonym, name, date_of_birth) VALUES (%s, %s, %s) "
            "RETURNING id",
            (pseudonym, name, date(1950, 3, 14)),
        ).fetchone()["id"]
        self.conn.execute(
            "INSERT INTO responsibility (patient_id, organisation_id, since, reason) "
            "VALUES (%s, %s, now() - interval '1 day', 'test')",
            (pid, responsible),
        )
        for org in serving:
            self.conn.execute(
                "INSERT INTO care_relations (patient_id, organisation_id, relation)"
                " VALUES (%s, %s, 'serving')",
                (pid, org),
            )
        for org in consulted:
            self.conn.execute(
                "INSERT INTO care_relations (patient_id, organisation_id, relation)"
                " VALUES (%s, %s, 'consulted')",
                (pid, org),
            )
        if program:
            self.conn.execute(
                "INSERT INTO enrollments (patient_id, program, stratum, start_date) "
                "VALUES (%s, %s, %s, current_date - 30)",
                (pid, program, stratum or ("severe" if program == "copd" else "2.0-3.0")),
            )
        return pid


@pytest.fixture
def factory(db: psycopg.Connection) -> Factory:
    return Factory(db)


@dataclass
class Care:
    """A typical care setting: a hospital department responsible, a home-nursing unit serving,
    a GP practice, and an unrelated organisation of each kind."""

    hospital: uuid.UUID
    nursing: uuid.UUID
    gp: uuid.UUID
    other_hospital: uuid.UUID
    other_nursing: uuid.UUID
    patient: uuid.UUID
    specialist: User
    nurse: User
    admin: User
    other_specialist: User
    other_nurse: User


@pytest.fixture
def care(factory: Factory) -> Care:
    hospital = factory.org("hospital_department", hospital="Aalborg Universitetshospital")
    nursing = factory.org("home_nursing")
    gp = factory.org("gp_practice")
    other_hospital = factory.org("hospital_department")
    other_nursing = factory.org("home_nursing")
    admin_org = factory.org("hospital_department")
    patient = factory.patient(hospital, program="copd", serving=[nursing, gp])
    return Care(
        hospital=hospital,
        nursing=nursing,
        gp=gp,
        other_hospital=other_hospital,
        other_nursing=other_nursing,
        patient=patient,
        specialist=factory.user("specialist", hospital),
        nurse=factory.user("nurse", nursing),
        admin=factory.user("admin", admin_org),
        other_specialist=factory.user("specialist", other_hospital),
        other_nurse=factory.user("nurse", other_nursing),
    )


@pytest.fixture
def rig(db, settings, service_env, factory) -> Iterator[IngestRig]:
    """Ingest workers of a test's own share group and client ids on the test broker, stopped
    at the end (tests.mqtt_helpers.open_rig)."""
    with open_rig(db, settings, service_env, factory) as r:
        yield r
