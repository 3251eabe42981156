"""The scheduler's jobs against the real database, each on a controllable clock: missed
measurements (one alert per slot, never twice), retention (old chunks go, recent stay, never
below the floor; the delivery log, old events and job runs pruned), daily rollups per local day,
the record of every run, and the escalation of overdue wound cases."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from alerts import jobs
from alerts.schedule import LOCAL_TZ
from app.scheduler import record_run
from events import jobs as events_jobs
from telemed import jobs as core_jobs
from tests import test_alerts_notify_support as support
from tests.test_alerts_notify_support import run_async
from wounds import jobs as wounds_jobs

own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory


def run(dsn: str, fn, **kw: Any) -> Any:
    async def go() -> Any:
        async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            return await fn(conn, **kw)

    return run_async(go())


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=LOCAL_TZ)


def insert_reading(
    db: psycopg.Connection, patient: uuid.UUID, user: uuid.UUID, metric: str, value: float, at
) -> None:
    db.execute(
        "INSERT INTO readings (measured_at, patient_id, metric, value, unit, source, origin, "
        " entered_by, message_id) VALUES (%s, %s, %s, %s, '%%', 'nurse', %s, %s, %s)",
        (at, patient, metric, value, f"user:{user}", user, uuid.uuid4().hex),
    )


def enrol(db: psycopg.Connection, patient: uuid.UUID, start: date) -> None:
    db.execute(
        "UPDATE enrollments SET start_date = %s, created_at = %s WHERE patient_id = %s",
        (start, local(start, 9) - timedelta(days=3), patient),
    )


def alerts_of(db: psycopg.Connection, patient: uuid.UUID) -> list[dict]:
    return db.execute(
        "SELECT * FROM alerts WHERE patient_id = %s ORDER BY id", (patient,)
    ).fetchall()


def test_missed_sweep_raises_one_alert_per_missed_slot(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    team = own_factory.org()
    patient = own_factory.patient(team, program="copd", stratum="severe")
    start = date(2025, 1, 6)
    enrol(own_db, patient, start)
    # COPD: daily for 14 days, then weekly (days 14, 21, 28, 35, ...), due 10:00, 4 h grace.
    day30 = local(start + timedelta(days=30), 15)

    first = run(own_dsn, jobs.missed_measurements, now=day30)
    assert first["raised"] >= 1
    assert run(own_dsn, jobs.missed_measurements, now=day30 + timedelta(hours=1))["raised"] == 0
    (alert,) = alerts_of(own_db, patient)
    assert alert["rule_key"] == "missed:spo2" and alert["severity"] == "yellow"
    assert alert["detail"]["slot_id"] == (start + timedelta(days=28)).isoformat()
    assert alert["organisation_id"] == team and alert["count"] == 1
    assert alert["first_measured_at"] == local(start + timedelta(days=28), 14)
    # never measured: the 14 daily slots and the weekly ones of days 14, 21 and 28
    assert alert["detail"]["missed_slots"] == 17
    raised = own_db.execute(
        "SELECT count(*) AS n FROM outbox WHERE event = 'alert.raised' AND patient_id = %s",
        (patient,),
    ).fetchone()
    assert raised["n"] == 1

    day35 = local(start + timedelta(days=35), 14, 1)
    assert run(own_dsn, jobs.missed_measurements, now=day35)["raised"] >= 1
    (alert,) = alerts_of(own_db, patient)
    assert alert["count"] == 2
    assert alert["detail"]["slot_id"] == (start + timedelta(days=35)).isoformat()
    assert alert["detail"]["missed_slots"] == 18

    own_db.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = %s, resolution_note = 'called' "
        "WHERE id = %s",
        (day35, alert["id"]),
    )
    run(own_dsn, jobs.missed_measurements, now=day35 + timedelta(hours=2))
    assert len(alerts_of(own_db, patient)) == 1
    run(own_dsn, jobs.missed_measurements, now=day35 + timedelta(days=7))
    later = alerts_of(own_db, patient)
    assert len(later) == 2 and later[1]["state"] == "open"
    slots = own_db.execute(
        "SELECT slot_id, alert_id FROM missed_slots WHERE patient_id = %s ORDER BY slot_id",
        (patient,),
    ).fetchall()
    assert [s["alert_id"] for s in slots] == [alert["id"], alert["id"], later[1]["id"]]


def test_missed_sweep_leaves_measuring_and_unenrolled_patients_alone(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    team = own_factory.org()
    nurse = own_factory.user("nurse", team)
    measuring = own_factory.patient(team, program="ak", stratum="2.0-3.0")
    silent = own_factory.patient(team, program="ak", stratum="2.0-3.0")
    ended = own_factory.patient(team, program="copd")
    start = date(2025, 1, 6)
    for p in (measuring, silent, ended):
        enrol(own_db, p, start)
    own_db.execute("UPDATE enrollments SET end_date = %s WHERE patient_id = %s", (start, ended))
    # AK: weekly INR due 12:00 with a day's grace; the slot of day 28 is missed on day 29 12:00.
    insert_reading(own_db, measuring, nurse.id, "inr", 2.4, local(start + timedelta(days=27), 18))
    now = local(start + timedelta(days=29), 13)
    run(own_dsn, jobs.missed_measurements, now=now)
    assert alerts_of(own_db, measuring) == [] and alerts_of(own_db, ended) == []
    (alert,) = alerts_of(own_db, silent)
    assert alert["rule_key"] == "missed:inr" and alert["program"] == "ak"


def test_enrolled_at_is_the_start_day_unless_enrolled_on_it() -> None:
    start = date(2025, 3, 30)
    assert jobs.enrolled_at(start, local(start, 11)) == local(start, 11)
    assert jobs.enrolled_at(start, local(start, 0) - timedelta(days=2)) == local(start, 0)
    assert jobs.enrolled_at(start, local(start, 0) + timedelta(days=2)) == local(start, 0)


def test_retention_drops_old_chunks_only_and_never_below_the_floor(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    team = own_factory.org()
    nurse = own_factory.user("nurse", team)
    patient = own_factory.patient(team)
    now = datetime.now(UTC)
    ages = {95.0: 11 * 366, 96.0: 9 * 365, 97.0: 1}  # value -> age in days
    for value, days in ages.items():
        insert_reading(own_db, patient, nurse.id, "spo2", value, now - timedelta(days=days))

    def kept() -> list[float]:
        rows = own_db.execute(
            "SELECT value FROM readings WHERE patient_id = %s ORDER BY value", (patient,)
        ).fetchall()
        return [r["value"] for r in rows]

    result = run(own_dsn, core_jobs.retention, now=now, years=3)
    assert result["keep_years"] == 10 and result["chunks_dropped"] >= 1
    assert kept() == [96.0, 97.0]
    assert run(own_dsn, core_jobs.retention, now=now)["chunks_dropped"] == 0
    assert kept() == [96.0, 97.0]
    assert core_jobs.readings_keep_years(2) == 10
    assert core_jobs.readings_keep_years(15) == 15


def test_retention_prunes_old_delivery_log_and_job_runs(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    org = own_factory.org()
    now = datetime.now(UTC)
    hook = own_db.execute(
        "INSERT INTO webhooks (organisation_id, url, secret) VALUES (%s, %s, %s) RETURNING id",
        (org, "https://integration.region.dk/h", "x" * 40),
    ).fetchone()["id"]
    ages = [40, 20, None]
    ids = [support.enqueue(own_db, "alert.raised", {}, [org]) for _ in ages]
    for outbox_id, age in zip(ids, ages, strict=True):
        own_db.execute(
            "INSERT INTO webhook_deliveries (outbox_id, webhook_id, delivered_at) "
            "VALUES (%s, %s, %s)",
            (outbox_id, hook, None if age is None else now - timedelta(days=age)),
        )
    own_db.execute(
        "INSERT INTO job_runs (job, instance, started_at, ok) VALUES ('x', 't', %s, true), "
        "('x', 't', %s, true)",
        (now - timedelta(days=31), now - timedelta(days=1)),
    )
    # Events: old and delivered long ago (its delivery goes first), old and still pending,
    # old with no webhook at all, and recent.
    pending = support.enqueue(own_db, "alert.raised", {}, [org])
    own_db.execute(
        "INSERT INTO webhook_deliveries (outbox_id, webhook_id) VALUES (%s, %s)", (pending, hook)
    )
    lonely = support.enqueue(own_db, "alert.raised", {}, [org])
    recent = support.enqueue(own_db, "alert.raised", {}, [org])
    old = [*ids, pending, lonely]
    own_db.execute(
        "UPDATE outbox SET created_at = %s WHERE id = ANY(%s)", (now - timedelta(days=45), old)
    )
    result = run(own_dsn, events_jobs.retention, now=now)
    assert run(own_dsn, core_jobs.retention, now=now)["job_runs_pruned"] == 1
    assert result["deliveries_pruned"] == 1
    left = own_db.execute(
        "SELECT outbox_id FROM webhook_deliveries WHERE webhook_id = %s ORDER BY outbox_id",
        (hook,),
    ).fetchall()
    assert [r["outbox_id"] for r in left] == [*ids[1:], pending]
    assert result["outbox_events_pruned"] == 2  # the delivered one's and the lonely one
    kept = own_db.execute("SELECT id FROM outbox WHERE id = ANY(%s) ORDER BY id",
                          ([*old, recent],)).fetchall()  # fmt: skip
    assert [r["id"] for r in kept] == [*ids[1:], pending, recent]


def _expected(rows: list[tuple[datetime, float]]) -> dict[date, tuple[float, float, float, int]]:
    by_day: dict[date, list[float]] = defaultdict(list)
    for at, value in rows:
        by_day[at.astimezone(LOCAL_TZ).date()].append(value)
    return {day: (min(v), statistics.fmean(v), max(v), len(v)) for day, v in by_day.items()}


def assert_rollups(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for day, values in expected.items():
        assert found[day] == pytest.approx(values), day


def _rollups(db: psycopg.Connection, patient: uuid.UUID, metric: str) -> dict:
    rows = db.execute(
        "SELECT day, min, avg, max, count FROM daily_rollups WHERE patient_id = %s AND metric = %s",
        (patient, metric),
    ).fetchall()
    return {r["day"]: (r["min"], r["avg"], r["max"], r["count"]) for r in rows}


def test_daily_rollups_per_local_day_including_late_readings_and_dst(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    team = own_factory.org()
    nurse = own_factory.user("nurse", team)
    patient = own_factory.patient(team)
    today = datetime.now(LOCAL_TZ).date()
    d1, d2 = today - timedelta(days=5), today - timedelta(days=4)
    # 23:30 and 00:30 local fall on one UTC day but on two local days.
    rows = [
        (local(d1, 8), 94.0),
        (local(d1, 23, 30), 90.0),
        (local(d2, 0, 30), 88.0),
        (local(d2, 12), 91.5),
    ]
    # The spring-forward day of 2025 has 23 hours; both ends still belong to it.
    dst = date(2025, 3, 30)
    rows += [(local(dst, 0, 15), 93.0), (local(dst, 23, 45), 89.0)]
    for at, value in rows:
        insert_reading(own_db, patient, nurse.id, "spo2", value, at)
    now = datetime.now(UTC)
    result = run(own_dsn, core_jobs.daily_rollups, now=now, max_days=3650)
    assert result["rows"] >= 3 and result["continuous_aggregates"] is False
    assert_rollups(_rollups(own_db, patient, "spo2"), _expected(rows))

    late = (local(d1, 12), 97.0)
    insert_reading(own_db, patient, nurse.id, "spo2", late[1], late[0])
    run(own_dsn, core_jobs.daily_rollups, now=now, received_since=now - timedelta(seconds=1))
    assert_rollups(_rollups(own_db, patient, "spo2"), _expected([*rows, late]))


def test_record_run_keeps_failures_and_skips_empty_results(
    own_dsn: str, own_db: psycopg.Connection
) -> None:
    name = f"probe-{uuid.uuid4().hex[:6]}"

    async def boom() -> dict:
        raise RuntimeError("no such luck")

    async def nothing() -> dict:
        return {"attempted": 0}

    now = datetime.now(UTC)
    assert run(own_dsn, record_run, job=name, instance="t", work=boom, now=now) is None
    kept = run(
        own_dsn,
        record_run,
        job=name,
        instance="t",
        work=nothing,
        now=now,
        keep=lambda r: bool(r["attempted"]),
    )
    assert kept == {"attempted": 0}
    rows = own_db.execute("SELECT ok, error FROM job_runs WHERE job = %s", (name,)).fetchall()
    assert rows == [{"ok": False, "error": "RuntimeError: no such luck"}]


def test_escalation_sweep_escalates_overdue_wound_cases_once(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    clinic, nursing = own_factory.org(), own_factory.org("home_nursing")
    nurse = own_factory.user("nurse", nursing)
    patient = own_factory.patient(clinic, serving=[nursing])
    wound = own_db.execute(
        "INSERT INTO wounds (patient_id, wound_type, body_location, laterality, created_by, "
        " created_by_org) VALUES (%s, 'venous', 'lower_leg', 'left', %s, %s) RETURNING id",
        (patient, nurse.id, nursing),
    ).fetchone()["id"]
    now = datetime.now(UTC)
    case = own_db.execute(
        "INSERT INTO wound_cases (wound_id, patient_id, state, urgent, wound_type, observation, "
        " submitted_by, submitted_by_org, routed_org_id, due_at) "
        "VALUES (%s, %s, 'submitted', false, 'venous', '{}', %s, %s, %s, %s) RETURNING id",
        (wound, patient, nurse.id, nursing, clinic, now - timedelta(hours=1)),
    ).fetchone()["id"]
    assert run(own_dsn, wounds_jobs.escalations, now=now)["wound_cases"] == 1
    assert run(own_dsn, wounds_jobs.escalations, now=now + timedelta(days=1))["wound_cases"] == 0
    event = own_db.execute(
        "SELECT organisation_ids FROM outbox WHERE event = 'wound_case.escalated' "
        "AND patient_id = %s",
        (patient,),
    ).fetchone()
    assert set(event["organisation_ids"]) == {clinic, nursing}
    escalated = own_db.execute("SELECT escalated_at FROM wound_cases WHERE id = %s", (case,))
    assert escalated.fetchone()["escalated_at"] == now
