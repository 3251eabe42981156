"""The readings' references (patient, device of that patient, entering user) are checked per
batch by the store, and the rows they refer to cannot be removed (migration 0008)."""

from __future__ import annotations

import uuid

import msgspec
import psycopg
import pytest

from devices.provisioning import provision
from telemed.readings import ReadingRow, UnknownReference
from tests.alert_helpers import ago, row, store


def _device_row(patient: uuid.UUID, device_id: str, message_id: str) -> ReadingRow:
    return ReadingRow(
        measured_at=ago(hours=1),
        patient_id=patient,
        metric="spo2",
        value=95.0,
        unit="%",
        source="device",
        origin=device_id,
        device_id=device_id,
        message_id=message_id,
    )


def _count(db: psycopg.Connection, patient: uuid.UUID) -> int:
    return db.execute(
        "SELECT count(*) AS n FROM readings WHERE patient_id = %s", (patient,)
    ).fetchone()["n"]


def test_a_batch_naming_an_unknown_patient_is_refused_whole(db_dsn, db, care):
    ghost = uuid.uuid4()
    rows = [row(care.patient, "spo2", 95, ago(hours=2), care.nurse.id),
            row(ghost, "spo2", 95, ago(hours=1), care.nurse.id, message_id="ghost-1")]  # fmt: skip
    with pytest.raises(
        UnknownReference, match=f"ghost-1/spo2: patient {ghost} does not exist"
    ) as exc:
        store(db_dsn, rows)
    assert exc.value.sqlstate == "23503"  # what the writer sorts as a refusal of content
    assert _count(db, care.patient) == 0


def test_an_unknown_user_or_device_is_refused(db_dsn, db, care):
    stranger = uuid.uuid4()
    with pytest.raises(UnknownReference, match=f"user {stranger} does not exist"):
        store(db_dsn, [row(care.patient, "spo2", 95, ago(hours=1), stranger)])
    with pytest.raises(UnknownReference, match="device no-such-device does not exist"):
        store(db_dsn, [_device_row(care.patient, "no-such-device", "m-1")])
    assert _count(db, care.patient) == 0


def test_a_device_of_another_patient_is_refused(db_dsn, db, care, factory):
    other = factory.patient(care.hospital)
    device = provision(db, patient_id=other, kind="copd_kit")
    with pytest.raises(UnknownReference, match="belongs to another patient"):
        store(db_dsn, [_device_row(care.patient, device.device_id, "m-1")])
    (stored,) = store(db_dsn, [_device_row(other, device.device_id, "m-1")])
    assert msgspec.structs.asdict(stored)["patient_id"] == other


@pytest.mark.parametrize(
    ("statement", "table"),
    [
        ("DELETE FROM patients WHERE id = %(patient)s", "patients"),
        ("UPDATE patients SET id = gen_random_uuid() WHERE id = %(patient)s", "patients"),
        ("DELETE FROM users WHERE id = %(nurse)s", "users"),
        ("TRUNCATE users CASCADE", "users"),
        ("DELETE FROM devices WHERE id = %(device)s", "devices"),
        ("UPDATE devices SET patient_id = %(other)s WHERE id = %(device)s", "devices"),
    ],
)
def test_what_readings_refer_to_is_never_removed(db, owner_db, care, factory, statement, table):
    device = provision(db, patient_id=care.patient, kind="copd_kit")
    params = {"patient": care.patient, "nurse": care.nurse.id, "device": device.device_id,
              "other": factory.patient(care.hospital)}  # fmt: skip
    # Only the owner role may truncate at all; the trigger stops the owner as well.
    conn = owner_db if statement.startswith("TRUNCATE") else db
    with pytest.raises(psycopg.errors.RestrictViolation, match=f"rows of {table} are never"):
        conn.execute(statement, params)
