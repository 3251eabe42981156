from __future__ import annotations

from telemed.cpr import reveal


def test_admin_builds_a_care_setting_through_the_api(client, db, care, settings):
    h = care.admin.headers
    org = client.post(
        "/api/v1/admin/organisations",
        headers=h,
        json={
            "name": "Lungemedicinsk Afdeling Test",
            "kind": "hospital_department",
            "region": "Region Hovedstaden",
            "hospital": "Rigshospitalet",
            "specialty": "pulmonology",
        },
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    assert any(
        o["id"] == org_id for o in client.get("/api/v1/admin/organisations", headers=h).json()
    )
    user = client.post(
        "/api/v1/admin/users",
        headers=h,
        json={
            "username": "lunge.spec",
            "full_name": "Lunge Specialist",
            "role": "specialist",
            "organisation_id": org_id,
            "password": "sufficiently long",
        },
    )
    assert user.status_code == 201, user.text
    assert "password" not in user.json() and "password_hash" not in user.json()
    patient = client.post(
        "/api/v1/admin/patients",
        headers=h,
        json={
            "name": "Karen Jensen",
            "date_of_birth": "1948-05-02",
            "cpr": "020548-1234",
            "responsible_organisation_id": org_id,
            "enrollment": {"program": "copd", "stratum": "severe", "start_date": "2026-11-01"},
        },
    )
    assert patient.status_code == 201, patient.text
    body = patient.json()
    assert body["pseudonym"].startswith("P-") and "cpr" not in body
    assert body["responsible_organisation_id"] == org_id
    stored = db.execute(
        "SELECT cpr_enc, cpr_key FROM patients WHERE id = %s", (body["id"],)
    ).fetchone()
    assert reveal(settings.cpr_keys, stored["cpr_enc"], stored["cpr_key"]) == "0205481234"
    enr = client.post(
        f"/api/v1/admin/patients/{body['id']}/enrollments",
        headers=h,
        json={"program": "ak", "stratum": "2.5-3.5", "start_date": "2026-11-10"},
    )
    assert enr.status_code == 201, enr.text
    again = client.post(
        f"/api/v1/admin/patients/{body['id']}/enrollments",
        headers=h,
        json={"program": "ak", "stratum": "2.0-3.0", "start_date": "2026-11-11"},
    )
    assert again.status_code == 409


def test_cpr_is_validated_for_shape_and_never_logged(client, db, care):
    h = care.admin.headers
    base = {
        "name": "X",
        "date_of_birth": "1948-05-02",
        "responsible_organisation_id": str(care.hospital),
    }
    for cpr, message in [
        ("12345", "ten digits"),
        ("3213481234", "valid date"),
        ("0105481234", "does not match"),
    ]:
        r = client.post("/api/v1/admin/patients", headers=h, json={**base, "cpr": cpr})
        assert r.status_code == 422, r.text
        assert r.json()["problems"][0]["field"] == "cpr"
        assert message in r.json()["problems"][0]["message"]
        assert cpr not in r.text
    leaked = db.execute(
        "SELECT count(*) AS n FROM audit_log WHERE detail::text LIKE '%%0205481234%%'"
    ).fetchone()
    assert leaked["n"] == 0


def test_stratum_must_fit_the_program(client, care):
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/enrollments",
        headers=care.admin.headers,
        json={"program": "ak", "stratum": "severe", "start_date": "2026-11-01"},
    )
    assert r.status_code == 422
    assert r.json()["problems"][0]["field"] == "stratum"


def test_hand_over_keeps_history_and_moves_the_baton(client, care):
    h = care.admin.headers
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/handovers",
        headers=h,
        json={"organisation_id": str(care.other_hospital), "reason": "moved to another region"},
    )
    assert r.status_code == 201, r.text
    # The old holder's specialist no longer sees the patient; the new one does.
    assert (
        client.get(f"/api/v1/patients/{care.patient}", headers=care.specialist.headers).status_code
        == 404
    )
    assert (
        client.get(
            f"/api/v1/patients/{care.patient}", headers=care.other_specialist.headers
        ).status_code
        == 200
    )
    hist = client.get(
        f"/api/v1/patients/{care.patient}/responsibility", headers=care.other_specialist.headers
    ).json()
    assert [x["organisation_id"] for x in hist] == [str(care.hospital), str(care.other_hospital)]
    assert hist[0]["until"] == hist[1]["since"] and hist[1]["until"] is None
    assert hist[1]["reason"] == "moved to another region"
    # Handing over to the current holder is refused.
    r = client.post(
        f"/api/v1/admin/patients/{care.patient}/handovers",
        headers=h,
        json={"organisation_id": str(care.other_hospital), "reason": "again"},
    )
    assert r.status_code == 409


def test_malformed_body_gets_400_naming_the_field(client, care):
    h = care.admin.headers
    r = client.post("/api/v1/admin/organisations", headers=h, json={"name": "x"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == 400 and body["problems"][0]["field"] == "kind"
    r = client.post(
        "/api/v1/admin/organisations", headers=h, json={"name": "x", "kind": "pharmacy"}
    )
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "kind"
    r = client.post(
        "/api/v1/admin/patients",
        headers=h,
        json={
            "name": "x",
            "date_of_birth": "not a date",
            "responsible_organisation_id": str(care.gp),
        },
    )
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "date_of_birth"
    r = client.post(
        "/api/v1/admin/organisations",
        headers=h,
        json={"name": "x", "kind": "gp_practice", "colour": "blue"},
    )
    assert r.status_code == 400 and r.json()["problems"][0]["field"] == "colour"
    r = client.post(
        "/api/v1/admin/organisations",
        content=b"{not json",
        headers={**h, "content-type": "application/json"},
    )
    assert r.status_code == 400
