"""Escalation of unacknowledged alerts, on a controllable clock: the deadline per program and
severity, repeats up to the cap, the chain of escalation targets, nothing once acknowledged."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from hypothesis import given
from hypothesis import strategies as st
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from alerts.escalation import (
    AlertClock,
    Deadline,
    escalate_due,
    escalation_target,
    is_due,
    next_escalation_at,
)
from alerts.lifecycle import upsert_breaches
from alerts.rules import Breach, Severity
from tests import test_alerts_notify_support as support
from tests.test_alerts_notify_support import run_async

events_server = support.events_server
events_app = support.events_app
events_settings = support.events_settings
own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory
own_settings = support.own_settings

T0 = datetime(2025, 3, 4, 8, 0, tzinfo=UTC)
RED = Deadline(ack_within=timedelta(minutes=30), repeat_every=timedelta(minutes=30), max_level=3)


def clock(**kw) -> AlertClock:
    base = {
        "state": "open",
        "created_at": T0,
        "severity_changed_at": None,
        "escalated_at": None,
        "escalation_level": 0,
    }
    return AlertClock(**{**base, **kw})


def test_first_escalation_at_the_deadline_then_every_repeat_until_the_cap() -> None:
    assert next_escalation_at(clock(), RED) == T0 + timedelta(minutes=30)
    assert not is_due(clock(), RED, T0 + timedelta(minutes=29, seconds=59))
    assert is_due(clock(), RED, T0 + timedelta(minutes=30))
    once = clock(escalated_at=T0 + timedelta(minutes=41), escalation_level=1)
    assert next_escalation_at(once, RED) == T0 + timedelta(minutes=71)
    assert next_escalation_at(clock(escalated_at=T0, escalation_level=3), RED) is None
    for state in ("acknowledged", "resolved"):
        assert next_escalation_at(clock(state=state), RED) is None


def test_an_upgrade_restarts_the_clock_and_the_level_goes_on() -> None:
    yellow_escalated = clock(escalated_at=T0 + timedelta(hours=8), escalation_level=1)
    upgraded = clock(
        severity_changed_at=T0 + timedelta(hours=9),
        escalated_at=yellow_escalated.escalated_at,
        escalation_level=1,
    )
    assert next_escalation_at(upgraded, RED) == T0 + timedelta(hours=9, minutes=30)


@given(
    st.lists(st.integers(min_value=1, max_value=24 * 60), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=0, max_value=5),
)
def test_sweeps_at_any_times_respect_deadline_spacing_and_cap(
    gaps: list[int], ack: int, repeat: int, cap: int
) -> None:
    deadline = Deadline(
        ack_within=timedelta(minutes=ack), repeat_every=timedelta(minutes=repeat), max_level=cap
    )
    alert, now, times = clock(), T0, []
    for gap in gaps:
        now += timedelta(minutes=gap)
        if is_due(alert, deadline, now):
            times.append(now)
            alert = clock(escalated_at=now, escalation_level=alert.escalation_level + 1)
    assert len(times) <= cap
    if times:
        assert times[0] >= T0 + deadline.ack_within
    for earlier, later in itertools.pairwise(times):
        assert later - earlier >= deadline.repeat_every


def test_escalation_target_follows_the_chain() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    chain = {a: b, b: c}
    assert [escalation_target(a, chain, n) for n in (1, 2, 3)] == [b, c, c]
    assert escalation_target(c, chain, 1) is None
    assert escalation_target(a, {a: b, b: a}, 5) == b


def _raise(dsn: str, patient: uuid.UUID, severity: Severity, now: datetime, key: str) -> int:
    breach = Breach(key, "spo2", severity, 86.0, "SpO2 86 % below red limit 88 %", {}, now)

    async def go() -> int:
        async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            (change,) = await upsert_breaches(conn, [(patient, "copd", breach)], now=now)
            return change.alert_id

    return run_async(go())


def _sweep(dsn: str, now: datetime) -> list:
    async def go() -> list:
        async with await AsyncConnection.connect(dsn, row_factory=dict_row) as conn:
            return await escalate_due(conn, now=now)

    return [e for e in run_async(go()) if e.alert_id in _mine]


_mine: set[int] = set()


def test_red_alert_escalates_along_the_chain_until_acknowledged(
    events_server: str, own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    routed, on_call, region = own_factory.org(), own_factory.org(), own_factory.org()
    admin = own_factory.user("admin", own_factory.org())
    for org, target in ((routed, on_call), (on_call, region)):
        r = httpx.put(
            f"{events_server}/api/v1/admin/organisations/{org}/escalation",
            json={"escalation_organisation_id": str(target)},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
    patient = own_factory.patient(routed, program="copd")
    t0 = datetime.now(UTC)
    alert = _raise(own_dsn, patient, Severity.RED, t0, "absolute:spo2")
    _mine.add(alert)

    assert _sweep(own_dsn, t0 + timedelta(minutes=29)) == []
    (first,) = _sweep(own_dsn, t0 + timedelta(minutes=30))
    assert (first.level, first.target_organisation_id) == (1, on_call)
    assert _sweep(own_dsn, t0 + timedelta(minutes=31)) == []
    (second,) = _sweep(own_dsn, t0 + timedelta(minutes=60))
    assert (second.level, second.target_organisation_id) == (2, region)

    events = own_db.execute(
        "SELECT event, organisation_ids, payload FROM outbox WHERE id = ANY(%s) ORDER BY id",
        ([first.outbox_id, second.outbox_id],),
    ).fetchall()
    assert [e["event"] for e in events] == ["alert.escalated"] * 2
    assert events[0]["organisation_ids"] == [on_call, routed]
    assert events[1]["payload"]["level"] == 2
    assert events[1]["payload"]["alert_id"] == alert
    pseudonym = own_db.execute("SELECT pseudonym FROM patients WHERE id = %s", (patient,))
    assert events[1]["payload"]["pseudonym"] == pseudonym.fetchone()["pseudonym"]
    row = own_db.execute("SELECT * FROM alerts WHERE id = %s", (alert,)).fetchone()
    assert row["escalation_level"] == 2 and row["escalated_at"] == t0 + timedelta(minutes=60)
    consulted = own_db.execute(
        "SELECT organisation_id FROM care_relations WHERE patient_id = %s "
        "AND relation = 'consulted' AND ended_at IS NULL",
        (patient,),
    ).fetchall()
    assert {c["organisation_id"] for c in consulted} == {on_call, region}

    own_db.execute(
        "UPDATE alerts SET state = 'acknowledged', acknowledged_at = %s WHERE id = %s",
        (t0 + timedelta(minutes=70), alert),
    )
    assert _sweep(own_dsn, t0 + timedelta(hours=5)) == []


def test_yellow_escalates_once_after_eight_hours_to_the_routed_team_without_target(
    own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    routed = own_factory.org()
    patient = own_factory.patient(routed, program="copd")
    t0 = datetime.now(UTC)
    alert = _raise(own_dsn, patient, Severity.YELLOW, t0, "absolute:pulse")
    _mine.add(alert)
    assert _sweep(own_dsn, t0 + timedelta(hours=7, minutes=59)) == []
    (only,) = _sweep(own_dsn, t0 + timedelta(hours=8))
    assert only.target_organisation_id is None and only.routed_organisation_id == routed
    assert _sweep(own_dsn, t0 + timedelta(days=3)) == []
    event = own_db.execute(
        "SELECT organisation_ids FROM outbox WHERE id = %s", (only.outbox_id,)
    ).fetchone()
    assert event["organisation_ids"] == [routed]


def test_deadlines_are_data_an_admin_sets(
    events_server: str, own_dsn: str, own_db: psycopg.Connection, own_factory
) -> None:
    admin = own_factory.user("admin", own_factory.org())
    nurse = own_factory.user("nurse", own_factory.org("home_nursing"))
    base = f"{events_server}/api/v1/admin/alert-deadlines"
    listed = httpx.get(base, headers=nurse.headers).json()
    assert {(d["program"], d["severity"], d["ack_within_minutes"]) for d in listed} >= {
        ("copd", "red", 30),
        ("ak", "yellow", 480),
    }
    body = {"ack_within_minutes": 10, "repeat_every_minutes": 20, "max_level": 2}
    assert httpx.put(f"{base}/ak/red", json=body, headers=nurse.headers).status_code == 403
    bad = httpx.put(f"{base}/ak/red", json={"ack_within_minutes": 0}, headers=admin.headers)
    assert bad.status_code == 400
    assert httpx.put(f"{base}/wound/red", json=body, headers=admin.headers).status_code == 400
    r = httpx.put(f"{base}/ak/red", json=body, headers=admin.headers)
    assert r.status_code == 200 and r.json()["repeat_every_minutes"] == 20, r.text

    routed = own_factory.org()
    patient = own_factory.patient(routed, program="ak")
    t0 = datetime.now(UTC)
    breach = Breach("inr:range", "inr", Severity.RED, 5.6, "INR 5.6 at or above 5.0", {}, t0)

    async def raise_ak() -> int:
        async with await AsyncConnection.connect(own_dsn, row_factory=dict_row) as conn:
            (change,) = await upsert_breaches(conn, [(patient, "ak", breach)], now=t0)
            return change.alert_id

    _mine.add(run_async(raise_ak()))
    assert [e.level for e in _sweep(own_dsn, t0 + timedelta(minutes=10))] == [1]
    assert _sweep(own_dsn, t0 + timedelta(minutes=29)) == []
    assert [e.level for e in _sweep(own_dsn, t0 + timedelta(minutes=30))] == [2]
    assert _sweep(own_dsn, t0 + timedelta(hours=9)) == []


def test_escalation_target_settings_are_checked(events_server: str, own_factory) -> None:
    admin = own_factory.user("admin", own_factory.org())
    org = own_factory.org()
    url = f"{events_server}/api/v1/admin/organisations/{org}/escalation"
    assert httpx.get(url, headers=admin.headers).json()["escalation_organisation_id"] is None
    same = httpx.put(url, json={"escalation_organisation_id": str(org)}, headers=admin.headers)
    assert same.status_code == 422
    unknown = {"escalation_organisation_id": str(uuid.uuid4())}
    assert httpx.put(url, json=unknown, headers=admin.headers).status_code == 422
    nobody = f"{events_server}/api/v1/admin/organisations/{uuid.uuid4()}/escalation"
    assert httpx.get(nobody, headers=admin.headers).status_code == 404
