"""Liveness, readiness and the compatibility /healthz, against the real database and broker;
operational alarms as admins see them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec
import psycopg
import pytest
from litestar.testing import TestClient

from app.asgi import create_app
from telemed import alarms
from telemed.settings import REPO_ROOT, ReadinessSettings, Settings
from tests import services
from tests.mqtt_helpers import wait_for


@pytest.fixture
def own_dsn(service_env: dict[str, str]) -> Iterator[str]:
    dsn = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
    yield dsn
    services.drop_database(dsn)


@contextmanager
def app_client(settings: Settings, dsn: str, config: ReadinessSettings) -> Iterator[TestClient]:
    app = create_app(msgspec.structs.replace(settings, dsn=dsn, pool_max=2, readiness=config))
    with TestClient(app=app, raise_server_exceptions=False) as client:
        yield client


@contextmanager
def broker_frozen(settings: Settings) -> Iterator[None]:
    """SIGSTOP the test broker: it accepts TCP connections (the kernel does) but answers
    nothing, as during a long reload."""
    pid = int(settings.broker_pidfile.read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextmanager
def database_closed(dsn: str) -> Iterator[None]:
    """No connection to this database succeeds (superusers included), existing ones are cut."""
    server, _, name = services.role_dsn(dsn, "superuser").rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def status(client: TestClient, path: str) -> int:
    return client.get(path).status_code


def test_liveness_answers_while_neither_database_nor_broker_does(
    settings: Settings, own_dsn: str
) -> None:
    config = ReadinessSettings(interval_s=0.3, database_timeout_s=0.5, broker_timeout_s=0.5,
                             database_grace_s=2, broker_grace_s=2)  # fmt: skip
    with app_client(settings, own_dsn, config) as client:
        wait_for(lambda: status(client, "/readyz") == 200, what="ready")
        with database_closed(own_dsn), broker_frozen(settings):
            for _ in range(10):
                start = time.monotonic()
                r = client.get("/livez")
                assert r.status_code == 200 and r.json() == {"status": "alive"}
                assert time.monotonic() - start < 0.5
            wait_for(lambda: status(client, "/readyz") == 503, timeout=10, what="not ready")
            body = client.get("/readyz").json()
            assert body["status"] == "not ready"
            assert not body["database"]["ready"] and not body["broker"]["ready"]
            assert body["database"]["ok"] is False and body["broker"]["ok"] is False
            assert status(client, "/healthz") == 503
        wait_for(lambda: status(client, "/readyz") == 200, timeout=20, what="ready again")


def test_readiness_rides_out_a_broker_pause_shorter_than_its_grace(
    settings: Settings, own_dsn: str
) -> None:
    config = ReadinessSettings(interval_s=0.5, database_timeout_s=1, broker_timeout_s=1,
                             database_grace_s=6, broker_grace_s=6)  # fmt: skip
    with app_client(settings, own_dsn, config) as client:
        wait_for(lambda: status(client, "/readyz") == 200, what="ready")
        answers: list[int] = []
        compat: list[int] = []
        with broker_frozen(settings):
            end = time.monotonic() + 3
            while time.monotonic() < end:
                answers.append(status(client, "/readyz"))
                time.sleep(0.1)
            body = client.get("/readyz").json()
            compat.append(status(client, "/healthz"))  # checks now, within 2 s
        assert set(answers) == {200}, answers
        assert body["broker"]["ok"] is False and body["broker"]["ready"] is True
        assert compat == [503]  # what /healthz always did, and why probes must not use it
        # A broker silent for longer than the grace makes the process unready, and ready again.
        with broker_frozen(settings):
            wait_for(lambda: status(client, "/readyz") == 503, timeout=12, what="not ready")
            body = client.get("/readyz").json()
            assert body["broker"]["last_ok_s_ago"] > 6 and body["database"]["ready"]
        wait_for(lambda: status(client, "/readyz") == 200, timeout=10, what="ready again")


def test_operational_alarms_are_listed_for_admins_and_counted_by_readiness(
    client: TestClient, db: psycopg.Connection, care
) -> None:
    key = f"test alarm {time.monotonic_ns()}"
    assert alarms.raise_alarm(db, key, "warning", "a test", "first") == 1
    assert alarms.raise_alarm(db, key, "critical", "a test", "again") == 2
    listed = client.get("/api/v1/admin/alarms", headers=care.admin.headers).json()
    mine = [a for a in listed if a["key"] == key]
    assert len(mine) == 1
    assert mine[0]["occurrences"] == 2 and mine[0]["message"] == "again"
    assert mine[0]["severity"] == "critical" and mine[0]["cleared_at"] is None
    assert client.get("/api/v1/admin/alarms", headers=care.nurse.headers).status_code == 403
    assert client.get("/api/v1/admin/alarms").status_code == 401
    for bad in ("limit=abc", "limit=0", "limit=100000", "limit=17,5", "include_cleared=maybe",
                "limit=%00"):  # fmt: skip
        r = client.get(f"/api/v1/admin/alarms?{bad}", headers=care.admin.headers)
        assert r.status_code == 400, (bad, r.text)
    wait_for(lambda: (client.get("/readyz").json().get("alarms") or 0) >= 1, timeout=15,
             what="the alarm counted")  # fmt: skip
    assert alarms.clear_alarm(db, key, "fixed") and not alarms.clear_alarm(db, key, "again")
    listed = client.get("/api/v1/admin/alarms", headers=care.admin.headers).json()
    assert key not in [a["key"] for a in listed]
    cleared = client.get("/api/v1/admin/alarms?include_cleared=true",
                         headers=care.admin.headers).json()  # fmt: skip
    assert [a["cleared_reason"] for a in cleared if a["key"] == key] == ["fixed"]
    # A new occurrence after the clear is a new alarm.
    assert alarms.raise_alarm(db, key, "warning", "a test", "back") == 1
    alarms.clear_alarm(db, key, "test over")
