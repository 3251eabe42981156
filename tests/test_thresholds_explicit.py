"""Threshold changes are explicit: a null or missing value never removes a limit the program
default has; removing one is its own request with a reason; bands stay in order and within the
metric's plausible range. Each refusal is a 422 naming the field, with a stable code."""

from __future__ import annotations

import pytest

from tests.alert_helpers import ago, alert_by_rule, row, store


def put(client, user, patient, changes, reason="habitually low saturation"):
    return client.put(
        f"/api/v1/patients/{patient}/thresholds",
        headers=user.headers,
        json={"reason": reason, "changes": changes},
    )


def field(body, key, name):
    rules = [r for p in body["programs"] for r in p["rules"] if r["key"] == key]
    return next(f for f in rules[0]["fields"] if f["field"] == name)


def overrides(db, patient):
    return db.execute(
        "SELECT rule_key, field, value, reset, reason FROM threshold_overrides"
        " WHERE patient_id = %s ORDER BY id",
        (patient,),
    ).fetchall()


@pytest.mark.parametrize(
    "change",
    [
        {"rule_key": "absolute:spo2", "field": "red_low", "value": None},
        {"rule_key": "absolute:spo2", "field": "red_low"},
    ],
    ids=["null", "missing"],
)
def test_a_null_or_missing_value_does_not_remove_a_red_limit(client, db, db_dsn, care, change):
    r = put(client, care.specialist, care.patient, [change])
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert problem["field"] == "absolute:spo2.red_low"
    assert problem["code"] == "value_required"
    assert overrides(db, care.patient) == []
    # The red limit still holds.
    store(db_dsn, [row(care.patient, "spo2", 80, ago(hours=1), care.nurse.id)])
    assert alert_by_rule(db, care.patient, "absolute:spo2")["severity"] == "red"


def test_a_limit_is_removed_on_purpose_with_a_reason(client, db, db_dsn, care):
    change = {
        "rule_key": "absolute:spo2",
        "field": "yellow_low",
        "remove": True,
        "removal_reason": "chronically 89-91 %, yellow alerts only noise",
    }
    r = put(client, care.specialist, care.patient, [change], reason="agreed with the GP")
    assert r.status_code == 200, r.text
    removed = field(r.json(), "absolute:spo2", "yellow_low")
    assert (removed["value"], removed["source"]) == (None, "override")
    assert field(r.json(), "absolute:spo2", "red_low")["value"] == 88.0
    (stored,) = overrides(db, care.patient)
    assert stored["value"] is None and stored["reset"] is False
    assert "chronically 89-91 %" in stored["reason"] and "agreed with the GP" in stored["reason"]
    audit = db.execute(
        "SELECT detail FROM audit_log WHERE object_type = 'thresholds' AND action = 'update'"
        " AND patient_id = %s",
        (care.patient,),
    ).fetchone()
    assert audit["detail"]["changes"][0]["remove"] is True
    store(db_dsn, [row(care.patient, "spo2", 89, ago(hours=2), care.nurse.id),
                   row(care.patient, "spo2", 89, ago(hours=1), care.nurse.id)])  # fmt: skip
    assert alert_by_rule(db, care.patient, "absolute:spo2") is None


def test_a_removal_needs_its_reason_and_a_removable_field(client, db, care):
    no_reason = {"rule_key": "absolute:spo2", "field": "red_low", "remove": True}
    r = put(client, care.specialist, care.patient, [no_reason])
    assert r.status_code == 422
    assert [(p["field"], p["code"]) for p in r.json()["problems"]] == [
        ("absolute:spo2.red_low.removal_reason", "removal_reason_required")
    ]
    blank = {**no_reason, "removal_reason": "   "}
    assert put(client, care.specialist, care.patient, [blank]).status_code == 422
    schedule = {"rule_key": "missed:spo2", "field": "every_n_days", "remove": True,
                "removal_reason": "x"}  # fmt: skip
    r = put(client, care.specialist, care.patient, [schedule])
    assert r.status_code == 422
    assert r.json()["problems"][0]["code"] == "not_removable"
    assert overrides(db, care.patient) == []


def test_switching_a_rule_off_is_a_removal_too(client, db, care):
    off = {"rule_key": "absolute:temperature", "field": "enabled", "value": False}
    r = put(client, care.specialist, care.patient, [off])
    assert r.status_code == 422
    assert r.json()["problems"][0] == {
        "field": "absolute:temperature.enabled",
        "message": "switching a rule off is a removal: send remove with a removal_reason",
        "code": "value_required",
    }
    off = {"rule_key": "absolute:temperature", "field": "enabled", "remove": True,
           "removal_reason": "fever known, treated"}  # fmt: skip
    r = put(client, care.specialist, care.patient, [off])
    assert r.status_code == 200, r.text
    assert field(r.json(), "absolute:temperature", "enabled")["value"] is False


@pytest.mark.parametrize(
    ("key", "name", "value"),
    [
        ("absolute:spo2", "red_low", 20),  # SpO2 is plausible from 50 %
        ("absolute:spo2", "yellow_high", 101),
        ("absolute:pulse", "red_high", 400),
        ("absolute:temperature", "red_high", 385),  # 38.5 typed without its decimal comma
        ("inr:range", "urgent_high", 25),
        ("baseline:fev1", "red_drop", 150),  # a percent drop above 100 %
    ],
)
def test_a_limit_outside_the_plausible_range_is_refused(
    client, db, care, factory, key, name, value
):
    patient = care.patient
    if key.startswith("inr"):
        patient = factory.patient(care.hospital, program="ak", stratum="2.0-3.0")
    r = put(client, care.specialist, patient, [{"rule_key": key, "field": name, "value": value}])
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert (problem["field"], problem["code"]) == (f"{key}.{name}", "outside_plausible_range")
    assert {"min", "max", "unit"} <= set(problem["params"])
    assert overrides(db, patient) == []


def test_bands_out_of_order_name_the_field_and_the_code(client, care):
    r = put(client, care.specialist, care.patient,
            [{"rule_key": "absolute:spo2", "field": "red_low", "value": 91}])  # fmt: skip
    assert r.status_code == 422
    assert [(p["field"], p["code"]) for p in r.json()["problems"]] == [
        ("absolute:spo2.red_low", "bands_out_of_order")
    ]


def test_the_form_learns_what_each_field_accepts(client, care):
    body = client.get(
        f"/api/v1/patients/{care.patient}/thresholds", headers=care.specialist.headers
    ).json()
    red = field(body, "absolute:spo2", "red_low")
    assert red["removable"] is True
    assert red["spec"]["unit"] == "%" and (red["spec"]["min"], red["spec"]["max"]) == (50, 100)
    assert field(body, "missed:spo2", "every_n_days")["removable"] is False


def legacy_removal(db, care, patient, field="red_low"):
    """A null value written as the console once wrote a word typed into a limit."""
    db.execute(
        "INSERT INTO threshold_overrides (patient_id, rule_key, field, value, set_by, reason)"
        " VALUES (%s, 'absolute:spo2', %s, 'null'::jsonb, %s, 'typo')",
        (patient, field, care.specialist.id),
    )


def test_a_removal_from_before_removals_were_explicit_is_flagged_until_confirmed(client, db, care):
    legacy_removal(db, care, care.patient)
    body = client.get(
        f"/api/v1/patients/{care.patient}/thresholds", headers=care.specialist.headers
    ).json()
    red = field(body, "absolute:spo2", "red_low")
    assert (red["value"], red["unconfirmed_removal"]) == (None, True)
    assert field(body, "absolute:spo2", "yellow_low")["unconfirmed_removal"] is False
    change = {"rule_key": "absolute:spo2", "field": "red_low", "remove": True,
              "removal_reason": "no red limit: palliative care, agreed"}  # fmt: skip
    r = put(client, care.specialist, care.patient, [change])
    assert r.status_code == 200, r.text
    red = field(r.json(), "absolute:spo2", "red_low")
    assert (red["value"], red["unconfirmed_removal"]) == (None, False)
    stored = db.execute(
        "SELECT explicit_removal FROM threshold_overrides WHERE patient_id = %s ORDER BY id",
        (care.patient,),
    ).fetchall()
    assert [r["explicit_removal"] for r in stored] == [False, True]
