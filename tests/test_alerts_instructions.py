"""A specialist's instruction in reply to an alert, the nomogram's suggestion shown beside it,
and the nurse team's confirmations."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from tests.alert_helpers import ago, alert_by_rule, events_of, row, store


@pytest.fixture
def copd_alert(db_dsn, db, care) -> int:
    store(db_dsn, [row(care.patient, "spo2", 85, ago(hours=1), care.nurse.id)])
    return alert_by_rule(db, care.patient, "absolute:spo2")["id"]


@pytest.fixture
def ak_patient(factory, care):
    return factory.patient(care.hospital, program="ak", stratum="2.0-3.0", serving=[care.nursing])


def ak_alert(db_dsn, db, care, patient, value=3.8, comparator=None) -> int:
    store(db_dsn, [row(patient, "inr", value, ago(hours=1), care.nurse.id, comparator=comparator)])
    return alert_by_rule(db, patient, "inr:range")["id"]


def instruct(client, user, alert_id, body):
    return client.post(f"/api/v1/alerts/{alert_id}/instructions", headers=user.headers, json=body)


def confirm(client, user, instruction_id, body):
    return client.post(
        f"/api/v1/instructions/{instruction_id}/confirmations", headers=user.headers, json=body
    )


COPD_REPLY = {
    "text": "Start the rescue pack today and call me tomorrow.",
    "fields": {"program": "copd", "actions": ["start_rescue_pack", "call_patient"]},
}


def test_a_copd_instruction_reaches_the_nurses_who_confirm_it(client, db, care, copd_alert):
    r = instruct(client, care.specialist, copd_alert, COPD_REPLY)
    assert r.status_code == 201, r.text
    instruction = r.json()
    assert instruction["alert_id"] == copd_alert and instruction["confirmations"] == []
    assert instruction["fields"]["actions"] == ["start_rescue_pack", "call_patient"]
    stored = db.execute("SELECT * FROM instructions WHERE id = %s", (instruction["id"],)).fetchone()
    assert stored["alert_id"] == copd_alert and stored["author_org_id"] == care.hospital
    event = events_of(db, care.patient)[-1]
    assert event["event"] == "alert.instruction"
    assert set(event["organisation_ids"]) == {care.hospital, care.nursing, care.gp}
    assert event["payload"]["instruction_id"] == instruction["id"]
    assert "rescue" not in str(event["payload"]) and "Test Patient" not in str(event["payload"])

    seen = client.get(f"/api/v1/alerts/{copd_alert}", headers=care.nurse.headers).json()
    assert [i["id"] for i in seen["instructions"]] == [instruction["id"]]
    listed = client.get(
        f"/api/v1/patients/{care.patient}/instructions", headers=care.nurse.headers
    ).json()
    assert [i["text"] for i in listed] == [COPD_REPLY["text"]]

    assert confirm(client, care.nurse, instruction["id"], {"kind": "read"}).status_code == 201
    again = confirm(client, care.nurse, instruction["id"], {"kind": "read"})
    assert again.status_code == 409
    done = confirm(
        client, care.nurse, instruction["id"], {"kind": "carried_out", "note": "pack started 14:10"}
    )
    assert done.status_code == 201, done.text
    confirmations = done.json()["confirmations"]
    assert [(c["kind"], c["note"]) for c in confirmations] == [
        ("read", None),
        ("carried_out", "pack started 14:10"),
    ]
    assert all(c["user_id"] == str(care.nurse.id) for c in confirmations)
    confirmed = [
        e for e in events_of(db, care.patient) if e["event"] == "alert.instruction_confirmed"
    ]
    assert [e["payload"]["kind"] for e in confirmed] == ["read", "carried_out"]
    assert {care.hospital, care.nursing} <= set(confirmed[0]["organisation_ids"])
    audited = db.execute(
        "SELECT action FROM audit_log WHERE object_type = 'instruction' AND object_id = %s "
        "ORDER BY id",
        (instruction["id"],),
    ).fetchall()
    assert [a["action"] for a in audited] == ["create", "confirm", "confirm"]


def test_who_may_instruct_and_confirm(client, care, copd_alert):
    assert instruct(client, care.nurse, copd_alert, COPD_REPLY).status_code == 403
    assert instruct(client, care.other_specialist, copd_alert, COPD_REPLY).status_code == 404
    instruction = instruct(client, care.specialist, copd_alert, COPD_REPLY).json()
    assert confirm(client, care.other_nurse, instruction["id"], {"kind": "read"}).status_code == 404
    assert confirm(client, care.admin, instruction["id"], {"kind": "read"}).status_code == 403
    listed = client.get(
        f"/api/v1/patients/{care.patient}/instructions", headers=care.other_nurse.headers
    )
    assert listed.status_code == 404


@pytest.mark.parametrize(
    ("fields", "status", "problem"),
    [
        ({"program": "ak", "weekly_dose_mg": 30}, 422, "fields.program"),
        ({"program": "copd", "actions": ["change_oxygen"]}, 422, "fields.oxygen_l_min"),
        ({"program": "copd", "actions": ["other"]}, 422, "fields.other"),
        ({"program": "copd", "actions": ["call_patient", "call_patient"]}, 422, "fields.actions"),
        ({"program": "copd", "actions": ["pray"]}, 400, None),
        ({"program": "copd", "actions": []}, 400, None),
        ({"program": "copd", "actions": ["visit_today"], "colour": "red"}, 400, None),
    ],
)
def test_instruction_fields_are_validated(client, care, copd_alert, fields, status, problem):
    r = instruct(client, care.specialist, copd_alert, {"text": "see fields", "fields": fields})
    assert r.status_code == status, r.text
    if problem:
        assert [p["field"] for p in r.json()["problems"]] == [problem]


def test_copd_oxygen_change_and_other(client, care, copd_alert):
    body = {
        "text": "Raise oxygen and keep the diary.",
        "fields": {
            "program": "copd",
            "actions": ["change_oxygen", "other"],
            "oxygen_l_min": 2.0,
            "other": "diary of breathlessness",
        },
    }
    r = instruct(client, care.specialist, copd_alert, body)
    assert r.status_code == 201, r.text
    assert r.json()["fields"]["oxygen_l_min"] == 2.0


def test_ak_instruction_with_the_nomogram_beside_never_applied(
    client, db_dsn, db, care, ak_patient
):
    alert_id = ak_alert(db_dsn, db, care, ak_patient, 3.8)
    detail = client.get(f"/api/v1/alerts/{alert_id}", headers=care.specialist.headers).json()
    assert detail["dose_suggestion"] is None
    assert "no current weekly dose" in detail["dose_suggestion_note"]
    detail = client.get(
        f"/api/v1/alerts/{alert_id}",
        headers=care.specialist.headers,
        params={"current_weekly_mg": 35},
    ).json()
    suggestion = detail["dose_suggestion"]
    assert (suggestion["band"], suggestion["change_percent"]) == ("above", -10)
    assert suggestion["new_weekly_mg"] == 31.25 and "not an instruction" in suggestion["text"]
    assert [r["value"] for r in detail["readings"]] == [3.8]

    next_date = (date.today() + timedelta(days=7)).isoformat()
    body = {
        "text": "Reduce to 30 mg a week, new INR in a week.",
        "fields": {"program": "ak", "weekly_dose_mg": 30, "next_inr_date": next_date},
    }
    # No dose on record and no product recorded: the first dose is read back and confirmed.
    r = instruct(client, care.specialist, alert_id, body)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert problem["code"] == "dose_confirmation_required"
    readback = problem["params"]
    assert readback["reasons"] == ["no_product", "no_current_dose"]
    shown = ("current_weekly_mg", "new_weekly_mg", "change_percent")
    body["fields"]["dose_confirmation"] = {k: readback[k] for k in shown}
    r = instruct(client, care.specialist, alert_id, body)
    assert r.status_code == 201, r.text
    assert r.json()["fields"] == {
        "program": "ak",
        "weekly_dose_mg": 30.0,
        "next_inr_date": next_date,
        "dose": {**readback, "confirmed": True},
    }
    # The suggestion now starts from the dose the specialist set, and changes nothing itself.
    detail = client.get(f"/api/v1/alerts/{alert_id}", headers=care.nurse.headers).json()
    assert detail["dose_suggestion"]["current_weekly_mg"] == 30.0
    assert detail["dose_suggestion"]["new_weekly_mg"] == 27.5
    assert [i["fields"]["weekly_dose_mg"] for i in detail["instructions"]] == [30.0]


def test_no_suggestion_for_a_censored_high_inr(client, db_dsn, db, care, ak_patient):
    alert_id = ak_alert(db_dsn, db, care, ak_patient, 8.0, comparator=">")
    detail = client.get(
        f"/api/v1/alerts/{alert_id}",
        headers=care.specialist.headers,
        params={"current_weekly_mg": 35},
    ).json()
    assert detail["severity"] == "red" and detail["dose_suggestion"] is None
    assert "does not apply" in detail["dose_suggestion_note"]
    assert detail["readings"][0]["comparator"] == ">"


def test_next_inr_date_in_the_past_is_refused(client, db_dsn, db, care, ak_patient):
    alert_id = ak_alert(db_dsn, db, care, ak_patient, 1.7)
    body = {"text": "x", "fields": {"program": "ak", "next_inr_date": "2020-01-01"}}
    r = instruct(client, care.specialist, alert_id, body)
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "fields.next_inr_date"


def test_instructions_point_at_real_alerts(db, care):
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        db.execute(
            "INSERT INTO instructions (patient_id, alert_id, author_id, author_org_id, text) "
            "VALUES (%s, 987654321, %s, %s, 'x')",
            (care.patient, care.specialist.id, care.hospital),
        )
