"""Routing by the baton: an alert goes to the holder at the reading's measured time; open alerts
stay with their organisation after a hand-over and the new holder sees them too."""

from __future__ import annotations

from tests.alert_helpers import ago, alert_by_rule, events_of, hand_over, row, store


def triage(client, user, **params):
    r = client.get("/api/v1/alerts", headers=user.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_routed_to_the_holder_at_the_measured_time(client, db_dsn, db, care):
    n, p = care.nurse.id, care.patient
    hand_over(db, p, care.other_hospital, ago(hours=2))
    # Both arrive now; one was measured before the hand-over, one after.
    store(
        db_dsn,
        [row(p, "spo2", 86, ago(hours=3), n), row(p, "pulse", 130, ago(hours=1), n)],
    )
    assert alert_by_rule(db, p, "absolute:spo2")["organisation_id"] == care.hospital
    assert alert_by_rule(db, p, "absolute:pulse")["organisation_id"] == care.other_hospital
    raised = {e["payload"]["rule_key"]: e["organisation_ids"] for e in events_of(db, p)}
    # Every event goes to the routed organisation and the holder now.
    assert set(raised["absolute:spo2"]) == {care.hospital, care.other_hospital}
    assert raised["absolute:pulse"] == [care.other_hospital]


def test_open_alerts_stay_visible_to_the_old_and_the_new_holder(client, db_dsn, db, care):
    n, p = care.nurse.id, care.patient
    store(db_dsn, [row(p, "spo2", 86, ago(hours=3), n)])
    alert = alert_by_rule(db, p, "absolute:spo2")
    assert [a["id"] for a in triage(client, care.other_specialist)] == []
    hand_over(db, p, care.other_hospital, ago(minutes=30))
    for user in (care.specialist, care.other_specialist):
        assert [a["id"] for a in triage(client, user)] == [alert["id"]]
    queued = triage(client, care.other_specialist)[0]
    assert queued["organisation_id"] == str(care.hospital)
    assert queued["holder_id"] == str(care.other_hospital)
    # A later breach adds to the open alert, which keeps its routing.
    store(db_dsn, [row(p, "spo2", 85, ago(minutes=10), n)])
    merged = alert_by_rule(db, p, "absolute:spo2")
    assert merged["id"] == alert["id"] and merged["count"] == 2
    assert merged["organisation_id"] == care.hospital
    # The new holder acts on it; resolved, it leaves the new holder's queue.
    r = client.post(
        f"/api/v1/alerts/{alert['id']}/resolve",
        headers=care.other_specialist.headers,
        json={"note": "taken over and seen"},
    )
    assert r.status_code == 200, r.text
    assert triage(client, care.other_specialist) == []
    assert triage(client, care.specialist) == []
    assert [a["id"] for a in triage(client, care.specialist, state="resolved")] == [alert["id"]]
    # The old holder is no longer in the patient's care: the patient's alert list is closed to it.
    r = client.get(f"/api/v1/patients/{p}/alerts", headers=care.specialist.headers)
    assert r.status_code == 404


def test_new_alerts_after_a_hand_over_go_to_the_new_holder_only(client, db_dsn, db, care):
    n, p = care.nurse.id, care.patient
    hand_over(db, p, care.other_hospital, ago(hours=2))
    store(db_dsn, [row(p, "temperature", 39.0, ago(hours=1), n)])
    alert = alert_by_rule(db, p, "absolute:temperature")
    assert alert["organisation_id"] == care.other_hospital
    assert [a["id"] for a in triage(client, care.other_specialist)] == [alert["id"]]
    assert triage(client, care.specialist) == []


def test_triage_is_red_first_then_newest(client, db_dsn, db, care, factory):
    n = care.nurse.id
    older_red = care.patient
    newer_red = factory.patient(care.hospital, program="copd", serving=[care.nursing])
    newest_yellow = factory.patient(care.hospital, program="copd", serving=[care.nursing])
    elsewhere = factory.patient(care.other_hospital, program="copd")
    store(
        db_dsn,
        [
            row(older_red, "spo2", 86, ago(hours=5), n),
            row(newer_red, "pulse", 130, ago(hours=1), n),
            row(newest_yellow, "temperature", 37.8, ago(minutes=30), n),
            row(elsewhere, "spo2", 80, ago(minutes=5), n),
        ],
    )
    queue = triage(client, care.specialist)
    assert [(a["patient_id"], a["severity"]) for a in queue] == [
        (str(newer_red), "red"),
        (str(older_red), "red"),
        (str(newest_yellow), "yellow"),
    ]
    assert queue[0]["patient_name"] == "Test Patient" and queue[0]["pseudonym"].startswith("P-")
    assert [a["patient_id"] for a in triage(client, care.specialist, severity="yellow")] == [
        str(newest_yellow)
    ]
    assert triage(client, care.specialist, program="ak") == []
    assert triage(client, care.specialist, state="acknowledged") == []
    assert len(triage(client, care.specialist, limit=2)) == 2
    assert [a["patient_id"] for a in triage(client, care.other_specialist)] == [str(elsewhere)]
    listed = db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE object_type = 'alert' AND action = 'list' "
        "AND actor_id = %s",
        (str(care.specialist.id),),
    ).fetchone()
    assert listed["n"] >= 3


def test_triage_rejects_unknown_filters(client, care):
    r = client.get("/api/v1/alerts", headers=care.specialist.headers, params={"state": "closed"})
    assert r.status_code == 400
    assert client.get("/api/v1/alerts", headers=care.admin.headers).status_code == 403
