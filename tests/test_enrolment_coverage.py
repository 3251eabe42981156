"""Every enrolment the system accepts is watched: a stratum or AK range that enrolment takes
has INR or COPD rules and missed-measurement rules; one it does not cover is refused with a
422 that names the field and says what is allowed."""

from __future__ import annotations

import pytest

from alerts.defaults import default_rules
from alerts.rules import AbsoluteRule, InrRule, MissedRule
from telemed.errors import Invalid
from telemed.patients import check_stratum
from tests.alert_helpers import ago, alert_by_rule, row, store


def _candidates() -> list[tuple[str, str]]:
    ak = [f"{a // 10}.{a % 10}-{b // 10}.{b % 10}" for a in range(100) for b in range(100)]
    words = ["mild", "moderate", "severe", "very severe", "", "2.0-3.0", "severe "]
    return [("ak", s) for s in ak + words] + [("copd", s) for s in words + ak[:300]]


def test_every_stratum_enrolment_accepts_has_alert_rules_and_missed_rules() -> None:
    unwatched = []
    for program, stratum in _candidates():
        try:
            check_stratum(program, stratum)
        except Invalid:
            continue
        try:
            rules = default_rules(program, stratum)
        except ValueError:
            unwatched.append(stratum)
            continue
        main = InrRule if program == "ak" else AbsoluteRule
        if not any(isinstance(r, main) for r in rules) or not any(
            isinstance(r, MissedRule) for r in rules
        ):
            unwatched.append(stratum)
    assert unwatched == []


@pytest.mark.parametrize("stratum", ["4.0-5.0", "2.0-5.0", "0.5-8.0", "1.0-1.4", "3.0-2.0"])
def test_enrolment_refuses_a_range_the_rules_do_not_cover(client, care, stratum) -> None:
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/enrollments",
        headers=care.admin.headers,
        json={"program": "ak", "stratum": stratum, "start_date": "2026-11-01"},
    )
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert problem["field"] == "stratum"
    assert "2.0-3.0" in problem["message"]


def test_registering_a_patient_refuses_an_uncovered_range_on_the_nested_field(client, care):
    r = client.post(
        "/api/v1/admin/patients",
        headers=care.admin.headers,
        json={
            "name": "Ib Ibsen",
            "date_of_birth": "1941-02-03",
            "responsible_organisation_id": str(care.hospital),
            "enrollment": {"program": "ak", "stratum": "1.0-1.4", "start_date": "2026-11-01"},
        },
    )
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert problem["field"] == "enrollment.stratum"
    assert "starts below 1.5" in problem["message"] and "e.g. 2.0-3.0" in problem["message"]


@pytest.mark.parametrize(
    ("program", "stratum", "status"),
    [
        ("copd", "very severe", 422),
        ("ak", "2,0-3,0", 422),  # the Danish decimal comma
        ("ak", "2.0-3.0\u0000", 400),  # a NUL: refused where the body is read
        ("ak", "2 - 3 INR", 422),
        ("ak", "9" * 5000, 400),  # longer than a stratum can be
        ("hf", "mild", 400),  # not a program: the body does not decode
    ],
)
def test_enrolment_refuses_bad_strata(client, care, program, stratum, status) -> None:
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/enrollments",
        headers=care.admin.headers,
        json={"program": program, "stratum": stratum, "start_date": "2026-11-01"},
    )
    assert r.status_code == status, r.text
    assert r.json()["problems"][0]["field"] in ("stratum", "program")
    assert "\x00" not in r.text and "9" * 100 not in r.text


def test_enrolment_takes_a_low_intensity_range_with_urgent_bounds_outside_it(
    client, care, factory
) -> None:
    patient = factory.patient(care.hospital, serving=[care.nursing])
    r = client.post(
        f"/api/v1/admin/patients/{patient}/enrollments",
        headers=care.admin.headers,
        json={"program": "ak", "stratum": "1.5-2.5", "start_date": "2026-11-01"},
    )
    assert r.status_code == 201, r.text
    body = client.get(f"/api/v1/patients/{patient}/thresholds", headers=care.specialist.headers)
    (program,) = body.json()["programs"]
    (inr,) = [rule for rule in program["rules"] if rule["key"] == "inr:range"]
    assert inr["rule"] == {
        "kind": "inr",
        "low": 1.5,
        "high": 2.5,
        "urgent_low": 1.0,
        "urgent_high": 5.0,
    }
    assert program["problems"] == []


def test_a_specialist_sets_a_patients_urgent_bounds_with_who_when_and_why(
    client, db, db_dsn, care, factory
) -> None:
    patient = factory.patient(care.hospital, program="ak", stratum="1.5-2.5")
    url = f"/api/v1/patients/{patient}/thresholds"
    change = [{"rule_key": "inr:range", "field": "urgent_low", "value": 1.2}]
    for reason in ("", "   "):
        r = client.put(url, headers=care.specialist.headers, json={"reason": reason,
                                                                   "changes": change})  # fmt: skip
        assert r.status_code in (400, 422) and "reason" in r.text
    inside = [{"rule_key": "inr:range", "field": "urgent_low", "value": 1.6}]
    r = client.put(url, headers=care.specialist.headers, json={"reason": "x", "changes": inside})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "inr:range.urgent_low"
    assert client.put(url, headers=care.nurse.headers,
                      json={"reason": "x", "changes": change}).status_code == 403  # fmt: skip
    why = "recurrent thrombosis on low intensity"
    r = client.put(url, headers=care.specialist.headers, json={"reason": why, "changes": change})
    assert r.status_code == 200, r.text
    (program,) = r.json()["programs"]
    (inr,) = [rule for rule in program["rules"] if rule["key"] == "inr:range"]
    (urgent,) = [f for f in inr["fields"] if f["field"] == "urgent_low"]
    assert (urgent["value"], urgent["default"], urgent["source"]) == (1.2, 1.0, "override")
    assert urgent["set_by"] == str(care.specialist.id) and urgent["reason"] == why
    assert urgent["set_at"] is not None
    audited = db.execute(
        "SELECT detail FROM audit_log WHERE patient_id = %s AND object_type = 'thresholds' "
        "AND action = 'update'",
        (patient,),
    ).fetchall()
    assert [a["detail"]["reason"] for a in audited] == [why]
    store(db_dsn, [row(patient, "inr", 1.2, ago(hours=1), care.nurse.id)])
    alert = alert_by_rule(db, patient, "inr:range")
    assert alert["severity"] == "red" and "at or below urgent limit 1.2" in alert["message"]
