"""A patient's thresholds: the rules in force with the source of every value, a specialist's
audited overrides validated as whole rules, and the evaluation that follows them."""

from __future__ import annotations

import psycopg
import pytest

from tests.alert_helpers import ago, alert_by_rule, enroll, row, store


def get(client, user, patient):
    return client.get(f"/api/v1/patients/{patient}/thresholds", headers=user.headers)


def put(client, user, patient, changes, reason="habitually low saturation"):
    return client.put(
        f"/api/v1/patients/{patient}/thresholds",
        headers=user.headers,
        json={"reason": reason, "changes": changes},
    )


def ch(rule_key, name, value):
    return [{"rule_key": rule_key, "field": name, "value": value}]


def rule(body, key):
    rules = [r for program in body["programs"] for r in program["rules"] if r["key"] == key]
    assert len(rules) == 1
    return rules[0]


def field(body, key, name):
    return next(f for f in rule(body, key)["fields"] if f["field"] == name)


def test_defaults_with_their_source(client, care):
    r = get(client, care.nurse, care.patient)
    assert r.status_code == 200, r.text
    body = r.json()
    (program,) = body["programs"]
    assert (program["program"], program["stratum"]) == ("copd", "severe")
    assert "alerts/defaults.py" in program["defaults_source"]
    keys = [r["key"] for r in program["rules"]]
    assert keys[:2] == ["absolute:spo2", "absolute:pulse"] and "missed:spo2" in keys
    yellow = field(body, "absolute:spo2", "yellow_low")
    assert yellow == {
        "field": "yellow_low",
        "value": 90.0,
        "source": "default",
        "default": 90.0,
        "set_by": None,
        "set_by_name": None,
        "set_at": None,
        "reason": None,
        "removable": True,
        "spec": {"unit": "%", "units": ["%", "procent"], "min": 50, "max": 100,
                 "min_exclusive": False, "whole": False, "scale": None, "required": False},
        "unconfirmed_removal": False,
    }  # fmt: skip
    assert rule(body, "absolute:spo2")["rule"]["bands"]["red_low"] == 88.0


def test_a_specialist_overrides_and_the_rule_follows(client, db_dsn, db, care):
    changes = [
        {"rule_key": "absolute:spo2", "field": "red_low", "value": 84},
        {"rule_key": "absolute:spo2", "field": "yellow_low", "value": 87},
    ]
    r = put(client, care.specialist, care.patient, changes)
    assert r.status_code == 200, r.text
    yellow = field(r.json(), "absolute:spo2", "yellow_low")
    assert (yellow["value"], yellow["source"], yellow["default"]) == (87.0, "override", 90.0)
    assert yellow["set_by"] == str(care.specialist.id) and yellow["set_by_name"]
    assert yellow["reason"] == "habitually low saturation" and yellow["set_at"]
    # The nurse sees the same, and the next readings are judged by it.
    assert (
        field(get(client, care.nurse, care.patient).json(), "absolute:spo2", "red_low")["value"]
        == 84.0
    )
    n, p = care.nurse.id, care.patient
    store(db_dsn, [row(p, "spo2", 87.5, ago(hours=4), n), row(p, "spo2", 86, ago(hours=3), n)])
    assert alert_by_rule(db, p, "absolute:spo2") is None  # 87.5 is no longer yellow
    store(db_dsn, [row(p, "spo2", 86.5, ago(hours=2), n)])
    alert = alert_by_rule(db, p, "absolute:spo2")
    assert alert["severity"] == "yellow" and alert["count"] == 1
    assert "yellow limit 87 %" in alert["message"]
    audit = db.execute(
        "SELECT actor_id, detail FROM audit_log WHERE object_type = 'thresholds' "
        "AND action = 'update' AND patient_id = %s",
        (p,),
    ).fetchone()
    assert audit["actor_id"] == str(care.specialist.id)
    assert audit["detail"]["reason"] == "habitually low saturation"
    assert len(audit["detail"]["changes"]) == 2


@pytest.mark.parametrize(
    ("changes", "problem_field"),
    [
        (
            ch("absolute:spo2", "yellow_low", 87),
            "absolute:spo2.yellow_low",
        ),
        (
            ch("absolute:pulse", "red_high", 95),
            "absolute:pulse.red_high",
        ),
        (
            ch("baseline:fev1", "yellow_drop", 35),
            "baseline:fev1.yellow_drop",
        ),
        (
            ch("absolute:resp_rate", "yellow_low", 31),
            "absolute:resp_rate.yellow_low",
        ),
        (
            ch("baseline:pef", "min_readings", 2.5),
            "baseline:pef.min_readings",
        ),
        (
            ch("missed:spo2", "every_n_days", 0),
            "missed:spo2.every_n_days",
        ),
        (ch("absolute:weight", "red_low", 50), "changes[0].rule_key"),
        (ch("absolute:spo2", "delta", 1), "changes[0].field"),
        (ch("absolute:spo2", "enabled", 1), "absolute:spo2.enabled"),
    ],
)
def test_invalid_overrides_name_the_field(client, care, changes, problem_field):
    r = put(client, care.specialist, care.patient, changes)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["problems"]] == [problem_field]


def test_an_invalid_set_writes_nothing(client, db, care):
    changes = [
        {"rule_key": "absolute:spo2", "field": "red_low", "value": 84},
        {"rule_key": "absolute:pulse", "field": "yellow_high", "value": 130},
    ]
    assert put(client, care.specialist, care.patient, changes).status_code == 422
    count = db.execute(
        "SELECT count(*) AS n FROM threshold_overrides WHERE patient_id = %s", (care.patient,)
    ).fetchone()
    assert count["n"] == 0


def test_only_specialists_in_scope_change_thresholds(client, care):
    change = ch("absolute:spo2", "red_low", 84)
    assert put(client, care.nurse, care.patient, change).status_code == 403
    assert put(client, care.admin, care.patient, change).status_code == 403
    assert put(client, care.other_specialist, care.patient, change).status_code == 404
    assert get(client, care.other_nurse, care.patient).status_code == 404
    assert put(client, care.specialist, care.patient, change, reason="  ").status_code == 422
    r = client.put(
        f"/api/v1/patients/{care.patient}/thresholds",
        headers=care.specialist.headers,
        json={"changes": change},
    )
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "reason"


def test_history_is_kept_and_a_reset_returns_to_the_default(client, db, care):
    key = "absolute:temperature"
    assert (
        put(
            client,
            care.specialist,
            care.patient,
            ch(key, "yellow_high", 37.8),
        ).status_code
        == 200
    )
    assert (
        put(
            client,
            care.specialist,
            care.patient,
            ch(key, "yellow_high", 38.0),
        ).status_code
        == 200
    )
    assert field(get(client, care.nurse, care.patient).json(), key, "yellow_high")["value"] == 38.0
    r = put(
        client,
        care.specialist,
        care.patient,
        [{"rule_key": key, "field": "yellow_high", "reset": True}],
        reason="infection over",
    )
    assert r.status_code == 200
    assert field(r.json(), key, "yellow_high")["source"] == "default"
    history = client.get(
        f"/api/v1/patients/{care.patient}/thresholds/history", headers=care.nurse.headers
    ).json()
    assert [(h["value"], h["reset"], h["reason"]) for h in history] == [
        (None, True, "infection over"),
        (38.0, False, "habitually low saturation"),
        (37.8, False, "habitually low saturation"),
    ]
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM threshold_overrides WHERE patient_id = %s", (care.patient,))


def test_a_rule_switched_off_raises_nothing(client, db_dsn, db, care):
    change = [{"rule_key": "absolute:temperature", "field": "enabled", "remove": True,
               "removal_reason": "fever known, treated"}]  # fmt: skip
    r = put(client, care.specialist, care.patient, change, reason="fever known, treated")
    assert r.status_code == 200 and rule(r.json(), "absolute:temperature")["enabled"] is False
    store(db_dsn, [row(care.patient, "temperature", 39.5, ago(hours=1), care.nurse.id)])
    assert alert_by_rule(db, care.patient, "absolute:temperature") is None


def test_an_inr_range_override(client, db_dsn, db, care, factory):
    patient = factory.patient(care.hospital, program="ak", stratum="2.0-3.0")
    changes = [
        {"rule_key": "inr:range", "field": "low", "value": 2.5},
        {"rule_key": "inr:range", "field": "high", "value": 3.5},
    ]
    r = put(client, care.specialist, patient, changes, reason="mechanical mitral valve")
    assert r.status_code == 200, r.text
    store(db_dsn, [row(patient, "inr", 3.3, ago(hours=2), care.nurse.id)])
    assert alert_by_rule(db, patient, "inr:range") is None
    store(db_dsn, [row(patient, "inr", 2.2, ago(hours=1), care.nurse.id)])
    alert = alert_by_rule(db, patient, "inr:range")
    assert alert["severity"] == "yellow" and "range 2.5–3.5" in alert["message"]


def test_an_override_that_no_longer_fits_leaves_its_rule_at_the_default(
    client, db_dsn, db, care, factory
):
    patient = factory.patient(care.hospital, program="ak", stratum="2.0-3.0")
    r = put(client, care.specialist, patient, ch("inr:range", "high", 3.2), reason="bleeding risk")
    assert r.status_code == 200
    enroll(db, patient, "ak", "3.5-4.5", days_ago=20)
    body = get(client, care.specialist, patient).json()
    (program,) = body["programs"]
    assert program["stratum"] == "3.5-4.5" and "inr:range" in program["problems"][0]
    high = field(body, "inr:range", "high")
    assert (high["value"], high["source"]) == (4.5, "default")
    store(db_dsn, [row(patient, "inr", 4.0, ago(hours=1), care.nurse.id)])
    assert alert_by_rule(db, patient, "inr:range") is None  # in 3.5-4.5, the default range


def test_the_next_batch_after_a_change_is_judged_by_it_though_the_context_was_kept(
    client, db_dsn, db, care
):
    """The ingest hook keeps rule contexts between batches (alerts.hooks.ContextCache): an
    override or an enrollment change must still decide the very next batch."""
    n, p = care.nurse.id, care.patient
    store(db_dsn, [row(p, "spo2", 96, ago(hours=6), n)])  # the context is now kept
    r = put(client, care.specialist, p, [*ch("absolute:spo2", "yellow_low", 97),
                                         *ch("absolute:spo2", "red_low", 95)])  # fmt: skip
    assert r.status_code == 200, r.text
    store(db_dsn, [row(p, "spo2", 94, ago(hours=5), n)])
    alert = alert_by_rule(db, p, "absolute:spo2")
    assert alert is not None and alert["severity"] == "red"
    db.execute("UPDATE enrollments SET end_date = current_date - 20 WHERE patient_id = %s", (p,))
    store(db_dsn, [row(p, "resp_rate", 35, ago(hours=4), n)])  # red, if anything judged it
    assert alert_by_rule(db, p, "absolute:resp_rate") is None
