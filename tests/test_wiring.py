"""What plugs the domains into the processes is code (app.wiring), not installed metadata: a
process that stores readings without the alert rules' hook refuses, loudly and by name, and the
normal starts (`telemed …`, create_app) register it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import distribution

import pytest

from alerts.hooks import after_readings
from telemed import readings
from telemed.readings import NoReadingHook, ReadingRow
from tests.alert_helpers import store

WIRING = "app.wiring.register_reading_hooks"


@pytest.fixture
def no_hooks() -> Iterator[None]:
    """This process as one started without the wiring; the hooks are back afterwards."""
    saved = dict(readings._hooks)
    readings._hooks.clear()
    try:
        yield
    finally:
        readings._hooks.clear()
        readings._hooks.update(saved)


def _row(patient: uuid.UUID) -> ReadingRow:
    return ReadingRow(
        measured_at=datetime.now(UTC) - timedelta(minutes=1),
        patient_id=patient,
        metric="spo2",
        value=86.0,
        unit="%",
        source="device",
        origin="dev-wiring",
        message_id=f"m-{uuid.uuid4().hex}",
    )


def _stored(db, patient: uuid.UUID) -> int:
    return db.execute("SELECT count(*) AS n FROM readings WHERE patient_id = %s", (patient,))\
        .fetchone()["n"]  # fmt: skip


def test_the_store_refuses_readings_when_no_hook_is_registered(db_dsn, db, care, no_hooks):
    with pytest.raises(NoReadingHook, match=WIRING):
        store(db_dsn, [_row(care.patient)])
    with pytest.raises(NoReadingHook):
        store(db_dsn, [])  # refused before anything is looked at
    assert _stored(db, care.patient) == 0


def test_the_api_refuses_a_nurse_reading_when_no_hook_is_registered(client, db, care, no_hooks):
    body = {
        "measured_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "readings": [{"type": "spo2", "value": 86, "unit": "%"}],
    }
    r = client.post(
        f"/api/v1/patients/{care.patient}/readings", headers=care.nurse.headers, json=body
    )
    assert r.status_code == 500
    assert _stored(db, care.patient) == 0


def test_create_app_registers_the_alert_rules(settings, no_hooks):
    from app.asgi import create_app

    create_app(settings)
    assert readings.reading_hooks() == (after_readings,)


def test_an_ingest_worker_started_without_the_wiring_refuses(settings):
    """ingest's own command, run without app.cli: it refuses before it connects anywhere."""
    code = (
        "import argparse, sys\n"
        "from ingest import cli\n"
        "from telemed.settings import load_settings\n"
        "parser = argparse.ArgumentParser()\n"
        "cli.register(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args, load_settings()))\n"
    )
    for argv in (["ingest", "--slot", "0"], ["ingest", "retire-slot", "0"]):
        done = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done.stderr
        assert "refusing to start" in done.stderr and WIRING in done.stderr


def test_every_telemed_command_runs_with_the_alert_rules_registered():
    code = (
        "from app import cli\n"
        "from telemed import readings\n"
        "assert cli.main(['rules', 'coverage']) == 0\n"
        "print([f'{h.__module__}.{h.__name__}' for h in readings.reading_hooks()])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "['alerts.hooks.after_readings']"


def test_nothing_plugs_in_through_installed_metadata():
    """No entry points of our own but the `telemed` console script."""
    found = [(ep.group, ep.name, ep.value) for ep in distribution("telemed").entry_points]
    assert found == [("console_scripts", "telemed", "app.cli:main")]


def test_the_app_mounts_every_domain(client):
    """The document lists an operation of each domain's controllers, mounted by app.wiring."""
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in (
        "/api/v1/alerts",  # alerts
        "/api/v1/admin/alert-deadlines",  # alerts (escalation)
        "/api/v1/admin/rejected-messages",  # devices
        "/api/v1/events",  # events
        "/api/v1/wound-cases",  # wounds
    ):
        assert path in paths, path
