"""Late data, as a clinician expects it: readings that fill a gap close the missed-measurement
alerts of that gap with a note of what arrived when; an alert raised by a back-dated reading
says it came late, with the measured and received times; its escalation says which clock it
counts by."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from alerts import jobs
from alerts.escalation import escalate_due
from alerts.schedule import LOCAL_TZ
from tests import test_alerts_notify_support as support
from tests.alert_helpers import ago, alert_by_rule, row, store
from tests.test_alerts_notify_support import run_async
from tests.test_scheduler_jobs import alerts_of, enrol, insert_reading, local

own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory


def run(dsn: str, fn, **kw):
    async def go():
        async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            return await fn(conn, **kw)

    return run_async(go())


SESSION = (("spo2", 94), ("pulse", 70))


def _shown(at: datetime) -> str:
    return at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def _gap(own_db: psycopg.Connection, own_factory, own_dsn: str):
    """A COPD patient measuring daily (due 10:00, 4 h grace) who measured on days 0-4, then
    the kit went quiet: the sweeps of days 5 and 6 raise one alert for two missed slots."""
    team = own_factory.org()
    nurse = own_factory.user("nurse", team)
    patient = own_factory.patient(team, program="copd", stratum="severe")
    start = date(2025, 1, 6)
    enrol(own_db, patient, start)
    for d in range(5):
        insert_reading(own_db, patient, nurse.id, "spo2", 95, local(start + timedelta(days=d), 9))
    for d in (5, 6):
        run(own_dsn, jobs.missed_measurements, now=local(start + timedelta(days=d), 15))
    (alert,) = alerts_of(own_db, patient)
    assert alert["rule_key"] == "missed:spo2" and alert["count"] == 2
    assert "2 scheduled measurements missed in a row" in alert["message"]
    return patient, nurse, start, alert


def test_readings_that_fill_a_gap_close_its_missed_alert_with_a_note(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    patient, nurse, start, _ = _gap(own_db, own_factory, own_dsn)
    # The backlog arrives: measured in time for each slot, received now.
    measured = [local(start + timedelta(days=5), 9, 55), local(start + timedelta(days=6), 13, 30)]
    for at in measured:
        store(own_dsn, [row(patient, metric, v, at, nurse.id) for metric, v in SESSION])
    received = own_db.execute(
        "SELECT received_at FROM readings WHERE patient_id = %s AND measured_at = %s LIMIT 1",
        (patient, measured[1]),
    ).fetchone()["received_at"]

    sweep = run(own_dsn, jobs.missed_measurements, now=local(start + timedelta(days=6), 16))
    assert sweep["covered"] == 2 and sweep["raised"] == 0
    (closed,) = alerts_of(own_db, patient)
    assert closed["state"] == "resolved" and closed["resolved_by"] is None
    note = closed["resolution_note"]
    assert note.startswith("Covered by readings that arrived late"), note
    for at in measured:
        assert f"measured {_shown(at)}" in note
    assert f"received {_shown(received)}" in note
    covered = closed["detail"]["covered"]
    assert [c["slot_id"] for c in covered] == [
        (start + timedelta(days=d)).isoformat() for d in (5, 6)
    ]
    assert [datetime.fromisoformat(c["measured_at"]) for c in covered] == measured
    assert all(c["received_at"] for c in covered)
    slots = own_db.execute(
        "SELECT covered_at FROM missed_slots WHERE patient_id = %s", (patient,)
    ).fetchall()
    assert len(slots) == 2 and all(s["covered_at"] is not None for s in slots)
    events = own_db.execute(
        "SELECT event FROM outbox WHERE patient_id = %s ORDER BY id", (patient,)
    ).fetchall()
    assert [e["event"] for e in events][-1] == "alert.resolved"
    # Nothing more to do on the next sweep.
    again = run(own_dsn, jobs.missed_measurements, now=local(start + timedelta(days=6), 17))
    assert again["covered"] == 0 and again["raised"] == 0


def test_a_gap_filled_in_part_marks_the_slot_covered_and_stays_open(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    patient, nurse, start, _ = _gap(own_db, own_factory, own_dsn)
    day5 = local(start + timedelta(days=5), 10, 5)
    # Day 5 was measured in time; day 6 only after its deadline (14:00): a slot really missed.
    store(own_dsn, [row(patient, "spo2", 94, day5, nurse.id)])
    store(own_dsn, [row(patient, "spo2", 93, local(start + timedelta(days=6), 15, 30), nurse.id)])
    sweep = run(own_dsn, jobs.missed_measurements, now=local(start + timedelta(days=6), 16))
    assert sweep["covered"] == 1
    (still,) = alerts_of(own_db, patient)
    assert still["state"] == "open"
    assert [c["slot_id"] for c in still["detail"]["covered"]] == [
        (start + timedelta(days=5)).isoformat()
    ]
    assert "1 of 2 missed slots covered by readings that arrived late" in still["message"]
    assert f"measured {_shown(day5)}" in still["message"]


def test_an_alert_from_a_back_dated_reading_says_it_came_late(client, db_dsn, db, care) -> None:
    measured = ago(hours=30).replace(microsecond=0)
    store(db_dsn, [row(care.patient, "spo2", 85, measured, care.nurse.id)])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    got = client.get(f"/api/v1/alerts/{alert['id']}", headers=care.specialist.headers).json()
    assert got["late"] is True
    assert datetime.fromisoformat(got["reading_measured_at"]) == measured
    received = datetime.fromisoformat(got["reading_received_at"])
    assert abs(received - datetime.now(UTC)) < timedelta(minutes=5)
    assert 29 * 60 < got["arrival_delay_minutes"] < 31 * 60
    # Escalation counts from when the alert reached the team, and says so.
    assert got["escalation_clock"] == "raised"
    assert got["escalation_counts_from"] == got["created_at"]
    listed = client.get(
        f"/api/v1/patients/{care.patient}/alerts", headers=care.specialist.headers
    ).json()
    assert [a["late"] for a in listed if a["id"] == alert["id"]] == [True]

    # A reading that arrives as it is measured is not late.
    store(db_dsn, [row(care.patient, "temperature", 39.0, ago(minutes=1), care.nurse.id)])
    fresh = alert_by_rule(db, care.patient, "absolute:temperature")
    got = client.get(f"/api/v1/alerts/{fresh['id']}", headers=care.specialist.headers).json()
    assert got["late"] is False and got["arrival_delay_minutes"] < 5


def test_escalation_of_a_late_alert_names_its_clock(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    team = own_factory.org()
    nurse = own_factory.user("nurse", team)
    patient = own_factory.patient(team, program="copd", stratum="severe")
    measured = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    store(own_dsn, [row(patient, "spo2", 85, measured, nurse.id)])
    (alert,) = alerts_of(own_db, patient)
    run(own_dsn, escalate_due, now=alert["created_at"] + timedelta(minutes=31))
    (event,) = own_db.execute(
        "SELECT payload FROM outbox WHERE event = 'alert.escalated' AND patient_id = %s",
        (patient,),
    ).fetchall()
    payload = event["payload"]
    assert payload["clock"] == "raised"
    assert payload["counts_from"] == alert["created_at"].isoformat()
    assert payload["late"] is True
    assert datetime.fromisoformat(payload["measured_at"]) == measured
    assert payload["received_at"] is not None
