"""One shape for what a converted reading keeps of what was sent, whoever sent it: a device's
message and a nurse's entry build it in one place (CanonicalReading.detail), and migration 0091
brings the nurse readings stored in the old shape to it."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime

import psycopg

from telemed.device_contract import Reading, canonical_readings, parse_message
from telemed.migrate import apply_migrations, migration_files
from telemed.settings import REPO_ROOT


def test_a_device_and_a_nurse_keep_a_conversion_alike() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    payload = (
        b'{"message_id": "m1", "measured_at": "2026-03-01T11:59:00+01:00", "readings": ['
        b'{"type": "temperature", "value": 100.4, "unit": "[degF]"},'
        b'{"type": "cat", "value": 12, "unit": "{score}", "items": [1,2,1,2,1,2,1,2]}]}'
    )
    device = parse_message(payload, now=now).accepted
    nurse, problems = canonical_readings(
        [
            Reading(type="temperature", value=100.4, unit="[degF]"),
            Reading(type="cat", value=12, unit="{score}", items=(1, 2, 1, 2, 1, 2, 1, 2)),
        ]
    )
    assert problems == []
    assert (
        [r.detail() for r in device]
        == [r.detail() for r in nurse]
        == [
            {"original_value": 100.4, "original_unit": "[degF]"},
            {"items": [1, 2, 1, 2, 1, 2, 1, 2]},
        ]
    )
    assert nurse[0].detail("measured at home") == {
        "original_value": 100.4,
        "original_unit": "[degF]",
        "note": "measured at home",
    }
    assert canonical_readings([Reading(type="pulse", value=70, unit="/min")])[0][0].detail() is None


def test_migration_0091_brings_old_nurse_readings_to_the_one_shape(empty_db, tmp_path) -> None:
    before = [p for p in migration_files(REPO_ROOT / "migrations") if p.name < "0091"]
    for path in before:
        shutil.copy(path, tmp_path / path.name)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        apply_migrations(conn, tmp_path)
        org = conn.execute(
            "INSERT INTO organisations (name, kind) VALUES ('o', 'home_nursing') RETURNING id"
        ).fetchone()[0]
        user = conn.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
            "VALUES ('nurse.one', 'N', 'nurse', %s, 'x') RETURNING id",
            (org,),
        ).fetchone()[0]
        patient = conn.execute(
            "INSERT INTO patients (pseudonym, name, date_of_birth) "
            "VALUES ('P-1', 'P', '1950-01-01') RETURNING id"
        ).fetchone()[0]
        old = [
            {"original": {"value": 100.4, "unit": "[degF]"}, "note": "at home"},
            {"original": {"value": "<0.5", "unit": "{INR}"}},
            {"note": "no conversion"},
            None,
        ]
        for i, detail in enumerate(old):
            conn.execute(
                "INSERT INTO readings (measured_at, patient_id, metric, value, unit, source, "
                " origin, entered_by, message_id, detail) "
                "VALUES (now(), %s, %s, 1, 'u', 'nurse', %s, %s, %s, %s)",
                (patient, f"m{i}", f"user:{user}", user, uuid.uuid4().hex,
                 None if detail is None else psycopg.types.json.Jsonb(detail)),
            )  # fmt: skip
        assert apply_migrations(conn, REPO_ROOT / "migrations")[0].startswith("0091")
        rows = conn.execute("SELECT detail FROM readings ORDER BY metric").fetchall()
    assert [r[0] for r in rows] == [
        {"original_value": 100.4, "original_unit": "[degF]", "note": "at home"},
        {"original_value": "<0.5", "original_unit": "{INR}"},
        {"note": "no conversion"},
        None,
    ]
