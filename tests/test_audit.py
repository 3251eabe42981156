from __future__ import annotations


def audit_rows(db, patient):
    return db.execute(
        "SELECT * FROM audit_log WHERE patient_id = %s ORDER BY id", (patient,)
    ).fetchall()


def test_reading_a_patient_writes_an_audit_row(client, db, care):
    before = len(audit_rows(db, care.patient))
    r = client.get(
        f"/api/v1/patients/{care.patient}",
        headers={**care.nurse.headers, "X-Request-ID": "req-audit-1"},
    )
    assert r.status_code == 200
    rows = audit_rows(db, care.patient)
    assert len(rows) == before + 1
    last = rows[-1]
    assert last["action"] == "read" and last["object_type"] == "patient"
    assert last["actor_id"] == str(care.nurse.id) and last["actor_org_id"] == care.nursing
    assert last["request_id"] == "req-audit-1"


def test_audit_row_has_the_client_address(live_server, db, care):
    import httpx

    r = httpx.get(f"{live_server}/api/v1/patients/{care.patient}", headers=care.nurse.headers)
    assert r.status_code == 200
    last = db.execute(
        "SELECT client_addr::text AS addr FROM audit_log WHERE patient_id = %s "
        "ORDER BY id DESC LIMIT 1",
        (care.patient,),
    ).fetchone()
    assert last["addr"] in ("127.0.0.1/32", "127.0.0.1")


def test_listing_patients_audits_each_patient_listed(client, db, care):
    client.get("/api/v1/patients/", headers=care.specialist.headers)
    rows = audit_rows(db, care.patient)
    assert rows[-1]["action"] == "list" and rows[-1]["actor_id"] == str(care.specialist.id)


def test_a_change_and_its_audit_row_are_written_together(client, db, care):
    client.post(
        f"/api/v1/admin/patients/{care.patient}/handovers",
        headers=care.admin.headers,
        json={"organisation_id": str(care.other_hospital), "reason": "test"},
    )
    rows = [r for r in audit_rows(db, care.patient) if r["action"] == "hand_over"]
    assert len(rows) == 1
    assert rows[0]["detail"] == {"to": str(care.other_hospital), "from": str(care.hospital)}


def test_refused_access_writes_no_audit_row_for_the_patient(client, db, care):
    before = len(audit_rows(db, care.patient))
    assert (
        client.get(f"/api/v1/patients/{care.patient}", headers=care.other_nurse.headers).status_code
        == 404
    )
    assert len(audit_rows(db, care.patient)) == before


def test_access_log_shows_who_looked(client, care):
    client.get(f"/api/v1/patients/{care.patient}", headers=care.nurse.headers)
    client.get(f"/api/v1/patients/{care.patient}", headers=care.specialist.headers)
    r = client.get(f"/api/v1/patients/{care.patient}/access-log", headers=care.specialist.headers)
    assert r.status_code == 200
    names = [e["actor_name"] for e in r.json()]
    assert care.nurse.username.title() in names and care.specialist.username.title() in names
    assert {"read"} <= {e["action"] for e in r.json()}
    # Outsiders cannot read it; the admin can.
    assert (
        client.get(
            f"/api/v1/patients/{care.patient}/access-log", headers=care.other_nurse.headers
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"/api/v1/patients/{care.patient}/access-log", headers=care.admin.headers
        ).status_code
        == 200
    )
