from __future__ import annotations


def test_sign_in_returns_a_token_that_works(client, factory, care):
    r = client.post(
        "/api/v1/auth/token",
        json={"username": care.nurse.username, "password": care.nurse.password},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["user"]["role"] == "nurse"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["username"] == care.nurse.username


def test_password_is_stored_as_argon2id(db, client, care):
    r = client.post(
        "/api/v1/admin/users",
        headers=care.admin.headers,
        json={
            "username": "new.nurse",
            "full_name": "New Nurse",
            "role": "nurse",
            "organisation_id": str(care.nursing),
            "password": "a long enough password",
        },
    )
    assert r.status_code == 201, r.text
    stored = db.execute("SELECT password_hash FROM users WHERE username = 'new.nurse'").fetchone()
    assert stored["password_hash"].startswith("$argon2id$")
    assert "a long enough password" not in stored["password_hash"]


def test_wrong_password_and_unknown_user_look_the_same(client, care):
    wrong = client.post(
        "/api/v1/auth/token", json={"username": care.nurse.username, "password": "nope nope nope"}
    )
    unknown = client.post(
        "/api/v1/auth/token", json={"username": "nobody-here", "password": "nope nope nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_no_token_gets_401(client, care):
    r = client.get(f"/api/v1/patients/{care.patient}")
    assert r.status_code == 401
    assert r.json()["status"] == 401


def test_garbage_token_gets_401(client, care):
    r = client.get("/api/v1/patients/", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


def test_expired_token_gets_401(client, factory, care):
    expired = factory.user("nurse", care.nursing, ttl_s=-1)
    r = client.get(f"/api/v1/patients/{care.patient}", headers=expired.headers)
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


def test_revoked_token_gets_401(client, care):
    assert client.get("/api/v1/auth/me", headers=care.nurse.headers).status_code == 200
    assert client.post("/api/v1/auth/revoke", headers=care.nurse.headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=care.nurse.headers).status_code == 401


def test_deactivated_user_is_locked_out(client, care):
    r = client.post(
        f"/api/v1/admin/users/{care.other_nurse.id}/deactivate", headers=care.admin.headers
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/api/v1/auth/me", headers=care.other_nurse.headers).status_code == 401
    r = client.post(
        "/api/v1/auth/token",
        json={"username": care.other_nurse.username, "password": care.other_nurse.password},
    )
    assert r.status_code == 401


def test_health_checks_database_and_broker(client):
    r = client.get("/healthz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["database"]["ok"] and "timescaledb" in body["database"]["detail"]
    assert body["broker"]["ok"]


def test_openapi_is_served(client):
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    ops = {op.get("operationId") for path in r.json()["paths"].values() for op in path.values()}
    assert {"signIn", "createPatient", "patientAccessLog", "handOver"} <= ops


def test_request_id_is_returned_and_in_errors(client):
    r = client.get("/api/v1/patients/", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json()["request_id"] == "abc-123"
