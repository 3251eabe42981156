"""A patient's rules failing on the ingest path: the readings are stored once, the worker goes on,
and the failure is loud — a row naming patient, rule and error, and an open alert to the
holder. The rules are made to fail the way real data can break them: a stored override row
written past the API (the API would refuse it), through the real broker and worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.alert_helpers import ago, alert_by_rule, row, store
from tests.mqtt_helpers import IngestRig, message, wait_for

FAILED = "alerting:failed"


def _patient_and_holder(rig: IngestRig, device_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    found = rig.db.execute(
        "SELECT d.patient_id, r.organisation_id FROM devices d "
        "JOIN responsibility r ON r.patient_id = d.patient_id WHERE d.id = %s",
        (device_id,),
    ).fetchone()
    return found["patient_id"], found["organisation_id"]


def _corrupt_override(
    db: psycopg.Connection, patient: uuid.UUID, holder: uuid.UUID, rule_key: str, field: str, value
) -> None:
    """A row as no API would write it, straight into the append-only table."""
    author = db.execute(
        "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
        "VALUES (%s, 'Dr Test', 'specialist', %s, 'x') RETURNING id",
        (f"spec-{uuid.uuid4().hex[:8]}", holder),
    ).fetchone()["id"]
    db.execute(
        "INSERT INTO threshold_overrides (patient_id, rule_key, field, value, set_by, reason) "
        "VALUES (%s, %s, %s, %s, %s, 'written past the API')",
        (patient, rule_key, field, Jsonb(value), author),
    )


def _failures(db: psycopg.Connection, patient: uuid.UUID) -> list[dict]:
    return db.execute(
        "SELECT * FROM rule_failures WHERE patient_id = %s ORDER BY id", (patient,)
    ).fetchall()


@pytest.mark.parametrize(
    ("rule_key", "field", "value", "error", "outcome", "severity"),
    [
        # Fails in Python, building the patient's rules: a word where a number belongs. The
        # rule runs at the programme default, and the alert (yellow) says so.
        (
            "absolute:spo2",
            "red_low",
            "ninety",
            "Expected `bool | float | null`, got `str`",
            "default_used",
            "yellow",
        ),
        # Fails in the database, reading the rule's history: a window no timestamp can hold.
        # The rule judges nothing, and the alert is red.
        ("baseline:spo2", "window_days", 1e8, "out of range", "not_evaluated", "red"),
    ],
)
def test_one_patients_failing_rule_is_loud_and_stalls_nothing(
    rig: IngestRig, rule_key: str, field: str, value, error: str, outcome: str, severity: str
) -> None:
    broken_kit, fine_kit = rig.device(), rig.device()
    broken, holder = _patient_and_holder(rig, broken_kit.device_id)
    fine, _ = _patient_and_holder(rig, fine_kit.device_id)
    _corrupt_override(rig.db, broken, holder, rule_key, field, value)
    worker = rig.start(0)
    broken_link, fine_link = rig.link(broken_kit), rig.link(fine_kit)
    at = datetime.now(UTC) - timedelta(minutes=10)
    # Both in flight at once, so that they are likely to share a batch.
    broken_link.client.publish(
        f"telemed/v1/devices/{broken_kit.device_id}/readings",
        message("b-1", [("spo2", 85, "%"), ("pulse", 70, "bpm")], measured_at=at),
        qos=1,
    )
    assert fine_link.publish(message("f-1", [("spo2", 85, "%")], measured_at=at)).value == 0

    wait_for(lambda: alert_by_rule(rig.db, fine, "absolute:spo2"), what="the other's alert")
    failed = wait_for(lambda: alert_by_rule(rig.db, broken, FAILED), what="the failure alert")
    assert rig.count(broken_kit.device_id) == 2

    # The failure, as a row naming patient, rule and error, and the reading it concerned.
    rows = _failures(rig.db, broken)
    assert [r["rule_key"] for r in rows] == [rule_key]
    assert error in rows[0]["error"] and rows[0]["outcome"] == outcome
    assert rows[0]["message_id"] == "b-1" and rows[0]["metric"] == "spo2"
    assert rows[0]["measured_at"] == at and rows[0]["alert_id"] == failed["id"]
    # ... and as an open red alert to the organisation holding the patient.
    assert failed["state"] == "open" and failed["severity"] == severity
    assert failed["organisation_id"] == holder
    assert "Alerting failed" in failed["message"] and rule_key in failed["message"]
    assert "SpO2 85 %" in failed["message"]
    assert failed["detail"]["rule_key"] == rule_key and failed["detail"]["message_id"] == "b-1"
    assert failed["detail"]["measured_at"] == at.isoformat()

    # The patient's other rules still ran: the red SpO2 is an alert of its own.
    assert alert_by_rule(rig.db, broken, "absolute:spo2")["severity"] == "red"

    # The worker goes on: later messages of both are stored, the failure counted on one alert.
    assert broken_link.publish(message("b-2", [("spo2", 84, "%")])).value == 0
    assert fine_link.publish(message("f-2", [("spo2", 96, "%")])).value == 0
    wait_for(lambda: rig.count(fine_kit.device_id) == 2, what="the next message stored")
    wait_for(lambda: len(_failures(rig.db, broken)) == 2, what="the second failure")
    assert alert_by_rule(rig.db, broken, FAILED)["count"] == 2
    assert rig.count(broken_kit.device_id) == 3
    summary = worker.stop()
    assert "0 in flight" in summary, worker.output()
    # (The summary's rejections may count other tests' devices on the same broker.)
    assert rig.rejections(broken_kit.device_id) == rig.rejections(fine_kit.device_id) == []
    assert rig.count(broken_kit.device_id) == 3 and rig.count(fine_kit.device_id) == 2


def test_a_transient_database_error_in_the_rules_retries_the_batch(db_dsn, db, care) -> None:
    """A lock that cannot be had (lock_timeout) is the database being busy, not a rule failing:
    the whole transaction fails and nothing is recorded as a failure."""
    import asyncio

    from alerts import hooks
    from tests.alert_helpers import connect

    reading = row(care.patient, "spo2", 89, ago(minutes=5), care.nurse.id)
    with psycopg.connect(db_dsn, autocommit=False) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", hooks.patient_lock(care.patient))

        async def attempt() -> None:
            conn = await connect(db_dsn)
            async with conn:
                await conn.execute("SET lock_timeout = '200ms'")
                from telemed import readings

                async with conn.transaction():
                    await readings.store(conn, [reading])

        with pytest.raises(psycopg.errors.LockNotAvailable):
            asyncio.run(attempt())
        holder.rollback()
    assert _failures(db, care.patient) == []
    assert (
        db.execute(
            "SELECT count(*) AS n FROM readings WHERE message_id = %s", (reading.message_id,)
        ).fetchone()["n"]
        == 0
    )
    store(db_dsn, [reading])
    assert _failures(db, care.patient) == []


def test_admins_read_rule_failures_and_the_read_is_audited(client, db_dsn, db, care) -> None:
    _corrupt_override(db, care.patient, care.hospital, "change:weight", "delta", [2])
    store(db_dsn, [row(care.patient, "weight", 80, ago(minutes=5), care.nurse.id)])
    url = f"/api/v1/admin/rule-failures?patient_id={care.patient}"
    assert client.get(url, headers=care.nurse.headers).status_code == 403
    assert client.get(url, headers=care.specialist.headers).status_code == 403
    r = client.get(url, headers=care.admin.headers)
    assert r.status_code == 200, r.text
    (failure,) = r.json()
    assert failure["rule_key"] == "change:weight" and failure["stage"] == "rules"
    assert failure["outcome"] == "default_used" and failure["metric"] == "weight"
    assert failure["alert_state"] == "open" and failure["pseudonym"].startswith("P-")
    audited = db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE patient_id = %s AND object_type = "
        "'rule_failure' AND actor_id = %s",
        (care.patient, str(care.admin.id)),
    ).fetchone()
    assert audited["n"] == 1
