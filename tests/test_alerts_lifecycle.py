"""One open alert per patient and rule, also with two writers at once, and the transitions
open → acknowledged → resolved through the API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alerts.lifecycle import upsert_breaches
from alerts.rules import Breach, Severity
from telemed import readings
from tests.alert_helpers import (
    ago,
    alert_by_rule,
    alerts_of,
    connect,
    events_of,
    row,
    store,
)


def red_spo2(care, value=86.0, hours=1.0):
    return row(care.patient, "spo2", value, ago(hours=hours), care.nurse.id)


def test_two_ingest_writers_at_once_make_one_alert_with_both_counts(db_dsn, db, care):
    async def scenario() -> bool:
        first, second = await connect(db_dsn), await connect(db_dsn)
        async with first, second:

            async def other_worker() -> None:
                async with second.transaction():
                    await readings.store(second, [red_spo2(care, 85.0, 0.5)])

            async with first.transaction():
                await readings.store(first, [red_spo2(care, 86.0, 1.0)])
                waiting = asyncio.create_task(other_worker())
                await asyncio.sleep(0.5)
                blocked = not waiting.done()
            await waiting
            return blocked

    assert asyncio.run(scenario()), "the second writer should wait for the first's alert"
    alerts = alerts_of(db, care.patient)
    assert len(alerts) == 1
    assert alerts[0]["count"] == 2 and alerts[0]["last_value"] == 85.0
    assert [e["event"] for e in events_of(db, care.patient)] == ["alert.raised"]


def test_concurrent_merges_into_an_open_alert_lose_no_count(db_dsn, db, care):
    store(db_dsn, [red_spo2(care, 86.0, 3)])
    now = datetime.now(UTC)

    def breach(value: float) -> Breach:
        return Breach("absolute:spo2", "spo2", Severity.RED, value, f"SpO2 {value}", {}, now)

    async def scenario() -> None:
        conns = [await connect(db_dsn) for _ in range(4)]

        async def write(conn, value):
            async with conn, conn.transaction():
                await upsert_breaches(conn, [(care.patient, "copd", breach(value))], now=now)

        await asyncio.gather(*(write(c, 80.0 + i) for i, c in enumerate(conns)))

    asyncio.run(scenario())
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    assert alert["count"] == 5 and len(alerts_of(db, care.patient)) == 1


def test_a_red_breach_upgrades_an_acknowledged_yellow_alert(client, db_dsn, db, care):
    n = care.nurse.id
    store(db_dsn, [row(care.patient, "spo2", 89, ago(hours=h), n) for h in (3, 2)])
    alert = alert_by_rule(db, care.patient, "absolute:spo2")
    assert alert["severity"] == "yellow"
    r = client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge", headers=care.specialist.headers, json={}
    )
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    store(db_dsn, [row(care.patient, "spo2", 86, ago(hours=1), n)])
    upgraded = alert_by_rule(db, care.patient, "absolute:spo2")
    assert upgraded["id"] == alert["id"] and upgraded["severity"] == "red"
    # Re-opened: the red deadline runs from the upgrade, so it escalates if nobody acts.
    assert upgraded["state"] == "open" and upgraded["count"] == 2
    assert upgraded["message"] == "SpO2 86 % below red limit 88 %"
    assert [e["event"] for e in events_of(db, care.patient)] == [
        "alert.raised",
        "alert.acknowledged",
        "alert.upgraded",
    ]
    r = client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge", headers=care.specialist.headers, json={}
    )
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"


def post(client, user, alert_id, action, body):
    return client.post(f"/api/v1/alerts/{alert_id}/{action}", headers=user.headers, json=body)


def test_acknowledge_then_resolve_with_a_note(client, db_dsn, db, care):
    store(db_dsn, [red_spo2(care)])
    alert_id = alert_by_rule(db, care.patient, "absolute:spo2")["id"]
    r = post(client, care.specialist, alert_id, "acknowledge", {"note": "calling her"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acknowledged_by"] == str(care.specialist.id)
    assert body["acknowledgement_note"] == "calling her" and body["acknowledged_at"]
    r = post(client, care.specialist, alert_id, "resolve", {"note": "probe was loose"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "resolved" and body["resolution_note"] == "probe was loose"
    assert body["resolved_by_name"] and body["resolved_at"]
    events = events_of(db, care.patient)
    assert [e["event"] for e in events] == ["alert.raised", "alert.acknowledged", "alert.resolved"]
    assert events[-1]["payload"]["state"] == "resolved"
    assert events[-1]["organisation_ids"] == [care.hospital]
    actions = [
        a["action"]
        for a in db.execute(
            "SELECT action FROM audit_log WHERE object_type = 'alert' AND object_id = %s "
            "ORDER BY id",
            (str(alert_id),),
        ).fetchall()
    ]
    assert actions == ["acknowledge", "resolve"]


def test_illegal_transitions_are_conflicts(client, db_dsn, db, care):
    store(db_dsn, [red_spo2(care)])
    alert_id = alert_by_rule(db, care.patient, "absolute:spo2")["id"]
    assert post(client, care.specialist, alert_id, "acknowledge", {}).status_code == 200
    again = post(client, care.specialist, alert_id, "acknowledge", {})
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    assert post(client, care.specialist, alert_id, "resolve", {"note": "done"}).status_code == 200
    assert post(client, care.specialist, alert_id, "acknowledge", {}).status_code == 409
    assert post(client, care.specialist, alert_id, "resolve", {"note": "x"}).status_code == 409


def test_resolve_straight_from_open_needs_a_note(client, db_dsn, db, care):
    store(db_dsn, [red_spo2(care)])
    alert_id = alert_by_rule(db, care.patient, "absolute:spo2")["id"]
    assert post(client, care.specialist, alert_id, "resolve", {}).status_code == 400
    blank = post(client, care.specialist, alert_id, "resolve", {"note": "   "})
    assert blank.status_code == 422 and blank.json()["problems"][0]["field"] == "note"
    r = post(client, care.specialist, alert_id, "resolve", {"note": "seen at the clinic"})
    assert r.status_code == 200 and r.json()["acknowledged_at"] is None


def test_after_resolving_a_new_breach_opens_a_new_alert(client, db_dsn, db, care):
    store(db_dsn, [red_spo2(care, hours=2)])
    first = alert_by_rule(db, care.patient, "absolute:spo2")
    assert post(client, care.specialist, first["id"], "resolve", {"note": "ok"}).status_code == 200
    store(db_dsn, [red_spo2(care, hours=1)])
    alerts = alerts_of(db, care.patient)
    assert [(a["state"], a["count"]) for a in alerts] == [("resolved", 1), ("open", 1)]


def test_who_may_act_on_an_alert(client, db_dsn, db, care):
    store(db_dsn, [red_spo2(care)])
    alert_id = alert_by_rule(db, care.patient, "absolute:spo2")["id"]
    # The serving home nurse sees the alert but it is the hospital's to handle.
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=care.nurse.headers).status_code == 200
    assert post(client, care.nurse, alert_id, "acknowledge", {}).status_code == 403
    # Unrelated organisations do not learn that it exists; admins read no clinical data.
    for user in (care.other_nurse, care.other_specialist):
        assert client.get(f"/api/v1/alerts/{alert_id}", headers=user.headers).status_code == 404
        assert post(client, user, alert_id, "acknowledge", {}).status_code == 404
    assert post(client, care.admin, alert_id, "acknowledge", {}).status_code == 403
    assert client.get("/api/v1/alerts/999999", headers=care.specialist.headers).status_code == 404
