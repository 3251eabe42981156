"""The AK weekly dose is read back before it is sent: outside the usual warfarin range, a change
above 20 %, no current dose, no recorded product or no whole number of half tablets needs the
specialist's explicit confirmation of current dose, new dose and change, recorded with the
instruction; the server refuses the dose without it. The patient's product is recorded by an
administrator (audited), and the dose is given in its tablets."""

from __future__ import annotations

import json
import re

import psycopg
import pytest

from alerts import doses
from tests.alert_helpers import ago, alert_by_rule, row, store

MAREVAN = doses.PRODUCTS["marevan"]
MARCOUMAR = doses.PRODUCTS["marcoumar"]


# --- the read-back, pure -------------------------------------------------------------------


def test_a_ten_fold_dose_is_read_back_with_old_new_and_change():
    found = doses.readback(17.5, 175.0, MAREVAN)
    assert found.needs_confirmation
    assert found.reasons == ["outside_usual_range", "large_change"]
    assert (found.current_weekly_mg, found.new_weekly_mg, found.change_percent) == (17.5, 175, 900)
    assert (found.product_name, found.tablet_mg, found.tablets_per_week) == ("Marevan", 2.5, 70)


@pytest.mark.parametrize(
    ("current", "new", "reasons", "change"),
    [
        (20.0, 17.5, [], -12.5),  # within the usual range, a usual change
        (25.0, 30.0, [], 20.0),  # exactly 20 % is usual
        (35.0, 43.75, ["large_change"], 25.0),
        (17.5, 15.0, ["outside_usual_range"], -14.3),
        (70.0, 72.5, ["outside_usual_range"], 3.6),
        (None, 30.0, ["no_current_dose"], None),
        (30.0, 31.0, ["not_in_tablets"], 3.3),  # 12.4 tablets of 2.5 mg
    ],
)
def test_what_needs_a_read_back_with_marevan(current, new, reasons, change):
    found = doses.readback(current, new, MAREVAN)
    assert found.reasons == reasons and found.change_percent == change


def test_phenprocoumon_and_an_unknown_product_are_always_read_back():
    assert doses.readback(9.0, 9.0, MARCOUMAR).reasons == ["no_usual_range"]
    assert doses.readback(9.0, 9.0, MARCOUMAR).tablets_per_week == 3
    assert doses.readback(30.0, 30.0, None).reasons == ["no_product"]


@pytest.mark.parametrize(
    ("mg", "product", "count"),
    [(17.5, MAREVAN, 7), (18.75, MAREVAN, 7.5), (18.0, MAREVAN, None), (1.25, MAREVAN, 0.5),
     (9.0, MARCOUMAR, 3), (10.5, MARCOUMAR, None)],
)  # fmt: skip
def test_the_dose_in_tablets(mg, product, count):
    assert doses.tablets(mg, product) == count


def test_the_database_knows_exactly_the_products_of_the_catalogue(db):
    check = db.execute(
        "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint"
        " WHERE conrelid = 'anticoagulant_products'::regclass AND contype = 'c'"
        " AND pg_get_constraintdef(oid) LIKE '%%product%%'"
    ).fetchone()["d"]
    assert set(re.findall(r"'([a-z_]+)'", check)) == set(doses.PRODUCTS)


# --- through the API -----------------------------------------------------------------------


@pytest.fixture
def ak(factory, care, db_dsn, db):
    """An AK patient on Marevan whose current weekly dose is 17.5 mg, with an open INR alert."""
    patient = factory.patient(
        care.hospital, program="ak", stratum="2.0-3.0", serving=[care.nursing]
    )
    db.execute(
        "INSERT INTO anticoagulant_products (patient_id, product, set_by, reason)"
        " VALUES (%s, 'marevan', %s, 'test')",
        (patient, care.admin.id),
    )
    store(db_dsn, [row(patient, "inr", 1.7, ago(hours=1), care.nurse.id)])
    alert = alert_by_rule(db, patient, "inr:range")["id"]
    db.execute(
        "INSERT INTO instructions (patient_id, alert_id, author_id, author_org_id, created_at,"
        " text, fields) VALUES (%s, %s, %s, %s, now() - interval '1 day', 'earlier', %s)",
        (patient, alert, care.specialist.id, care.hospital,
         json.dumps({"program": "ak", "weekly_dose_mg": 17.5})),
    )  # fmt: skip
    return patient, alert


def instruct(client, user, alert, fields):
    return client.post(
        f"/api/v1/alerts/{alert}/instructions",
        headers=user.headers,
        json={"text": "Ny ugedosis", "fields": {"program": "ak", **fields}},
    )


def stored(db, alert):
    return [r["fields"] for r in db.execute(
        "SELECT fields FROM instructions WHERE alert_id = %s AND text = 'Ny ugedosis'", (alert,)
    ).fetchall()]  # fmt: skip


def test_a_ten_fold_dose_is_refused_without_the_read_back(client, db, care, ak):
    _, alert = ak
    r = instruct(client, care.specialist, alert, {"weekly_dose_mg": 175})
    assert r.status_code == 422, r.text
    (problem,) = r.json()["problems"]
    assert (problem["field"], problem["code"]) == (
        "fields.weekly_dose_mg",
        "dose_confirmation_required",
    )
    readback = problem["params"]
    assert (readback["current_weekly_mg"], readback["new_weekly_mg"]) == (17.5, 175.0)
    assert readback["change_percent"] == 900.0 and readback["tablets_per_week"] == 70.0
    assert stored(db, alert) == []

    wrong = {"current_weekly_mg": 17.5, "new_weekly_mg": 17.5, "change_percent": 0.0}
    r = instruct(
        client, care.specialist, alert, {"weekly_dose_mg": 175, "dose_confirmation": wrong}
    )
    assert r.status_code == 422 and r.json()["problems"][0]["code"] == "dose_confirmation_mismatch"
    assert stored(db, alert) == []

    confirmed = {k: readback[k] for k in ("current_weekly_mg", "new_weekly_mg", "change_percent")}
    r = instruct(client, care.specialist, alert,
                 {"weekly_dose_mg": 175, "dose_confirmation": confirmed})  # fmt: skip
    assert r.status_code == 201, r.text
    (fields,) = stored(db, alert)
    assert fields["weekly_dose_mg"] == 175 and fields["dose"]["confirmed"] is True
    assert fields["dose"]["reasons"] == ["outside_usual_range", "large_change"]
    assert "dose_confirmation" not in fields


def test_a_usual_dose_change_goes_without_a_read_back(client, db, care, ak):
    _, alert = ak
    r = instruct(client, care.specialist, alert, {"weekly_dose_mg": 20})
    assert r.status_code == 201, r.text
    (fields,) = stored(db, alert)
    assert fields["dose"] == {
        "unit": "mg", "current_weekly_mg": 17.5, "new_weekly_mg": 20.0, "change_percent": 14.3,
        "product": "marevan", "product_name": "Marevan", "tablet_mg": 2.5, "tablets_per_week": 8.0,
        "usual_weekly_mg": [17.5, 70.0], "max_change_percent": 20.0, "reasons": [],
        "confirmed": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("value", "status", "code"),
    [
        (None, 400, "null_not_allowed"),
        ("17,5", 400, "not_a_number"),
        (0, 422, "out_of_range"),
        (250, 422, "out_of_range"),
        (True, 400, "not_a_number"),
    ],
)
def test_a_dose_that_is_no_plausible_number_is_refused(client, db, care, ak, value, status, code):
    _, alert = ak
    r = instruct(client, care.specialist, alert, {"weekly_dose_mg": value})
    assert r.status_code == status, r.text
    (problem,) = r.json()["problems"]
    assert (problem["field"], problem["code"]) == ("fields.weekly_dose_mg", code)
    assert stored(db, alert) == []


def test_an_administrator_records_the_product_and_it_is_audited(client, db, care, factory):
    patient = factory.patient(care.hospital, program="ak", serving=[care.nursing])
    url = f"/api/v1/admin/patients/{patient}/anticoagulant"
    body = {"product": "waran", "reason": "switched at discharge"}
    assert client.put(url, headers=care.specialist.headers, json=body).status_code == 403
    r = client.put(url, headers=care.admin.headers, json=body)
    assert r.status_code == 200, r.text
    current = r.json()["current"]
    assert (current["product"], current["name"], current["tablet_mg"]) == ("waran", "Waran", 2.5)
    assert current["set_by"] == str(care.admin.id) and current["reason"] == "switched at discharge"
    audit = db.execute(
        "SELECT actor_id, detail FROM audit_log WHERE object_type = 'anticoagulant_product'"
        " AND action = 'update' AND patient_id = %s",
        (patient,),
    ).fetchone()
    assert audit["detail"] == {"product": "waran", "reason": "switched at discharge"}
    seen = client.get(f"/api/v1/patients/{patient}/anticoagulant", headers=care.nurse.headers)
    assert seen.status_code == 200 and seen.json()["current"]["product"] == "waran"
    bad = client.put(url, headers=care.admin.headers, json={"product": "aspirin", "reason": "x"})
    assert bad.status_code == 400 and bad.json()["problems"][0]["code"] == "invalid_choice"
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM anticoagulant_products WHERE patient_id = %s", (patient,))


def test_the_demo_patients_on_anticoagulation_have_their_product(service_env):
    from psycopg.rows import dict_row

    from app import demo
    from telemed.settings import REPO_ROOT
    from tests import services

    dsn = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
    try:
        with psycopg.connect(dsn, row_factory=dict_row) as conn:
            ids = demo.seed(conn)
            demo.seed(conn)  # again: nothing twice
            rows = conn.execute(
                "SELECT patient_id, product FROM anticoagulant_products ORDER BY id"
            ).fetchall()
    finally:
        services.drop_database(dsn)
    ak = [name for name, _, program, _ in demo.PATIENTS if program == "ak"]
    assert sorted((r["patient_id"], r["product"]) for r in rows) == sorted(
        (ids["patients"][name], demo.DEMO_PRODUCTS[name]) for name in ak
    )
