"""Readings a nurse enters, and readings read back raw or bucketed for plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from telemed.readings import ReadingRow


def post(client, user, patient, body):
    return client.post(f"/api/v1/patients/{patient}/readings", headers=user.headers, json=body)


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def test_nurse_enters_readings_with_unit_conversion_and_performer(client, db, care):
    r = post(
        client,
        care.nurse,
        care.patient,
        {
            "measured_at": now_iso(timedelta(minutes=-5)),
            "readings": [
                {"type": "spo2", "value": 0.93, "unit": "{fraction}"},
                {"type": "temperature", "value": 100.4, "unit": "[degF]"},
                {"type": "pulse", "value": 88, "unit": "/min"},
            ],
            "note": "patient could not use the oximeter",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["stored"] == 3
    rows = db.execute(
        "SELECT metric, value, unit, source, entered_by, detail FROM readings "
        "WHERE message_id = %s ORDER BY metric",
        (r.json()["message_id"],),
    ).fetchall()
    by_metric = {row["metric"]: row for row in rows}
    assert by_metric["spo2"]["value"] == pytest.approx(93.0) and by_metric["spo2"]["unit"] == "%"
    assert by_metric["temperature"]["value"] == pytest.approx(38.0)
    # The shape a device's converted reading has (tests/test_ingest.py): one shape whoever sent it.
    assert by_metric["temperature"]["detail"] == {
        "original_value": 100.4,
        "original_unit": "[degF]",
        "note": "patient could not use the oximeter",
    }
    assert all(row["source"] == "nurse" and row["entered_by"] == care.nurse.id for row in rows)
    audit = db.execute(
        "SELECT action, object_type FROM audit_log WHERE object_id = %s", (r.json()["message_id"],)
    ).fetchone()
    assert audit == {"action": "create", "object_type": "reading"}


def test_one_bad_reading_refuses_the_whole_entry_naming_the_field(client, db, care):
    r = post(
        client,
        care.nurse,
        care.patient,
        {
            "measured_at": now_iso(),
            "readings": [
                {"type": "pulse", "value": 70, "unit": "/min"},
                {"type": "spo2", "value": 130, "unit": "%"},
            ],
        },
    )
    assert r.status_code == 422, r.text
    problem = r.json()["problems"][0]
    assert problem["field"] == "readings[1].value" and "plausible range" in problem["message"]
    n = db.execute(
        "SELECT count(*) AS n FROM readings WHERE patient_id = %s AND metric = 'pulse' "
        "AND value = 70",
        (care.patient,),
    ).fetchone()["n"]
    assert n == 0


@pytest.mark.parametrize(
    "body,field",
    [
        (
            {
                "measured_at": "2026-11-30T10:00:00",
                "readings": [{"type": "pulse", "value": 70, "unit": "/min"}],
            },
            "measured_at",
        ),
        ({"measured_at": "2026-11-30T10:00:00Z", "readings": []}, "readings"),
        (
            {
                "measured_at": "2026-11-30T10:00:00Z",
                "readings": [{"type": "pulse", "value": "seventy", "unit": "/min"}],
            },
            "readings[0].value",
        ),
    ],
)
def test_malformed_entries_get_400_naming_the_field(client, care, body, field):
    r = post(client, care.nurse, care.patient, body)
    assert r.status_code in (400, 422), r.text
    assert r.json()["problems"][0]["field"] == field


def test_future_reading_is_refused(client, care):
    r = post(
        client,
        care.nurse,
        care.patient,
        {
            "measured_at": now_iso(timedelta(hours=1)),
            "readings": [{"type": "pulse", "value": 70, "unit": "/min"}],
        },
    )
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "measured_at"


def test_only_nurses_in_scope_enter_readings(client, care):
    body = {"measured_at": now_iso(), "readings": [{"type": "pulse", "value": 70, "unit": "/min"}]}
    assert post(client, care.specialist, care.patient, body).status_code == 403
    assert post(client, care.other_nurse, care.patient, body).status_code == 404
    assert post(client, care.admin, care.patient, body).status_code == 403


def _store(db_dsn, rows):
    import asyncio

    import psycopg
    from psycopg.rows import dict_row

    from telemed import readings

    async def go():
        conn = await psycopg.AsyncConnection.connect(db_dsn, row_factory=dict_row)
        async with conn, conn.transaction():
            return await readings.store(conn, rows, run_hooks=False)

    return asyncio.run(go())


def test_store_inserts_each_reading_once(db_dsn, care):
    at = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    row = ReadingRow(
        measured_at=at,
        patient_id=care.patient,
        metric="weight",
        value=71.5,
        unit="kg",
        source="nurse",
        origin="user:x",
        message_id="m-1",
        entered_by=care.nurse.id,
    )
    assert len(_store(db_dsn, [row, row])) == 1
    assert _store(db_dsn, [row]) == []


def test_raw_and_bucketed_series(client, db_dsn, care):
    base = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        ReadingRow(
            measured_at=base + timedelta(hours=6 * i),
            patient_id=care.patient,
            metric="spo2",
            value=90 + (i % 4),
            unit="%",
            source="nurse",
            origin="user:series",
            message_id=f"s-{i}",
            entered_by=care.nurse.id,
        )
        for i in range(8)
    ]
    _store(db_dsn, rows)
    q = {"metric": "spo2", "from": base.isoformat(), "to": (base + timedelta(days=2)).isoformat()}
    raw = client.get(
        f"/api/v1/patients/{care.patient}/readings", params=q, headers=care.specialist.headers
    )
    assert raw.status_code == 200, raw.text
    assert [x["value"] for x in raw.json()] == [93, 92, 91, 90, 93, 92, 91, 90]
    days = client.get(
        f"/api/v1/patients/{care.patient}/readings",
        params={**q, "bucket": "1d"},
        headers=care.specialist.headers,
    ).json()
    assert [(d["min"], d["max"], d["count"]) for d in days] == [(90, 93, 4), (90, 93, 4)]
    assert days[0]["avg"] == pytest.approx(91.5)
    assert (
        client.get(
            f"/api/v1/patients/{care.patient}/readings",
            params=q,
            headers=care.other_specialist.headers,
        ).status_code
        == 404
    )
