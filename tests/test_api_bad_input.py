"""Bad input gets a 400 that names the field, never a 500: NUL characters and text that is not
UTF-8 in any JSON body (sign-in included), bodies nested too deep, dates far away, and numbers
too small to mean anything."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests import alert_helpers as ah

pytest_plugins = ["tests.wound_helpers"]
NUL = "a\u0000b"


def _send(client, method: str, path: str, body: Any, headers: dict | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.request(
        method,
        path,
        content=raw,
        headers={**(headers or {}), "content-type": "application/json"},
    )


def _refused(r, field: str, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and isinstance(body["detail"], str)
    assert field in [p["field"] for p in body.get("problems", [])], body
    assert "request_id" in body
    return body


@pytest.fixture
def alert_id(db, db_dsn, care) -> int:
    at = ah.ago(minutes=5)
    ah.store(db_dsn, [ah.row(care.patient, "spo2", 80, at, care.nurse.id)])
    found = ah.alerts_of(db, care.patient)
    assert found, "a low saturation raises an alert"
    return found[-1]["id"]


def _nul_cases(care, alert_id: int) -> list[tuple[str, str, dict, dict, str]]:
    a, s, n = care.admin.headers, care.specialist.headers, care.nurse.headers
    return [
        ("POST", "/api/v1/auth/token", {}, {"username": NUL, "password": "x"}, "username"),
        ("POST", "/api/v1/admin/organisations", a, {"name": NUL, "kind": "home_nursing"}, "name"),
        (
            "POST",
            "/api/v1/admin/users",
            a,
            {
                "username": f"u{uuid.uuid4().hex[:8]}",
                "full_name": NUL,
                "role": "nurse",
                "organisation_id": str(care.nursing),
                "password": "a long enough password",
            },
            "full_name",
        ),
        (
            "POST",
            "/api/v1/admin/patients",
            a,
            {
                "name": NUL,
                "date_of_birth": "1950-01-01",
                "responsible_organisation_id": str(care.hospital),
            },
            "name",
        ),
        (
            "POST",
            f"/api/v1/admin/patients/{care.patient}/handovers",
            a,
            {"organisation_id": str(care.other_hospital), "reason": NUL},
            "reason",
        ),
        ("POST", f"/api/v1/alerts/{alert_id}/acknowledge", s, {"note": NUL}, "note"),
        ("POST", f"/api/v1/alerts/{alert_id}/resolve", s, {"note": NUL}, "note"),
        (
            "POST",
            f"/api/v1/admin/organisations/{care.hospital}/webhooks",
            a,
            {"url": "https://example.org/hook", "description": NUL},
            "description",
        ),
        (
            "POST",
            f"/api/v1/patients/{care.patient}/readings",
            n,
            {
                "measured_at": ah.ago(minutes=1).isoformat(),
                "readings": [{"type": "spo2", "value": 95, "unit": "%"}],
                "note": NUL,
            },
            "note",
        ),
    ]


def test_a_nul_character_in_any_json_text_field_is_a_400_naming_it(client, care, alert_id) -> None:
    for method, path, headers, body, field in _nul_cases(care, alert_id):
        r = _send(client, method, path, body, headers)
        _refused(r, field)


def test_a_nul_in_a_nested_field_or_a_key_is_named_with_its_path(client, care, alert_id) -> None:
    body = {
        "measured_at": ah.ago(minutes=1).isoformat(),
        "readings": [{"type": "spo2", "value": 95, "unit": "a\u0000"}],
    }
    r = _send(client, "POST", f"/api/v1/patients/{care.patient}/readings", body, care.nurse.headers)
    _refused(r, "readings[0].unit")
    r = _send(client, "POST", "/api/v1/auth/token", {"user\u0000name": "x", "password": "y"})
    _refused(r, "user\\u0000name")


def test_text_that_is_not_utf8_is_a_400_naming_the_field(client) -> None:
    r = _send(client, "POST", "/api/v1/auth/token", b'{"username": "a\xffb", "password": "x"}')
    body = _refused(r, "username")
    assert "UTF-8" in body["problems"][0]["message"]
    # An escaped lone surrogate cannot be stored as UTF-8 either.
    r = _send(client, "POST", "/api/v1/auth/token", b'{"username": "x", "password": "\\ud800"}')
    _refused(r, "password")


@pytest.mark.parametrize("depth", [40, 990, 100_000])
def test_deeply_nested_json_is_refused_before_decoding(client, care, depth: int) -> None:
    body = ("[" * depth + "]" * depth).encode()
    r = _send(client, "POST", "/api/v1/auth/token", body)
    # Sign-in takes 16 KiB: a deeper body is refused for its size before its depth is looked at.
    _refused(r, "body", 400 if len(body) <= 16 * 1024 else 413)
    r = _send(client, "POST", "/api/v1/admin/organisations", body, care.admin.headers)
    _refused(r, "body")
    nested: Any = "x"
    for _ in range(min(depth, 100)):
        nested = {"a": nested}
    r = _send(client, "POST", "/api/v1/admin/organisations", {"name": nested}, care.admin.headers)
    _refused(r, "body")


def test_brackets_inside_strings_do_not_count_as_nesting(client, care) -> None:
    name = "[" * 200 + "{" * 200
    r = _send(
        client,
        "POST",
        "/api/v1/admin/organisations",
        {"name": name[:200], "kind": "home_nursing"},
        care.admin.headers,
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=0001-01-01&to=9999-12-31", "from"),
        ("from=2024-01-01&to=9999-12-31", "to"),
    ],
)
def test_ttr_dates_outside_the_sane_window_are_a_400(client, care, query: str, field: str) -> None:
    r = client.get(f"/api/v1/patients/{care.patient}/ttr?{query}", headers=care.specialist.headers)
    _refused(r, field)


@pytest.mark.parametrize(
    "path",
    [
        "readings?from=0001-01-01T00:00:00Z",
        "readings?to=9999-12-31T23:59:59Z",
        "access-log?since=0001-01-01T00:00:00Z",
    ],
)
def test_every_date_query_parameter_has_the_same_window(client, care, path: str) -> None:
    r = client.get(f"/api/v1/patients/{care.patient}/{path}", headers=care.specialist.headers)
    _refused(r, path.partition("?")[2].partition("=")[0])


def test_a_deadline_of_a_denormal_number_of_minutes_is_a_400(client, care) -> None:
    for value in (5e-324, 1e-9, 0.5):
        r = _send(
            client,
            "PUT",
            "/api/v1/admin/alert-deadlines/ak/red",
            {"ack_within_minutes": value},
            care.admin.headers,
        )
        _refused(r, "ack_within_minutes")
    r = _send(
        client,
        "PUT",
        "/api/v1/admin/alert-deadlines/ak/red",
        {"ack_within_minutes": 30},
        care.admin.headers,
    )
    assert r.status_code == 200, r.text


def test_a_nul_in_a_query_parameter_is_a_400_naming_it(client, care) -> None:
    r = client.get(
        f"/api/v1/patients/{care.patient}/readings?metric=sp%00o2", headers=care.specialist.headers
    )
    body = _refused(r, "metric")
    assert body["problems"][0]["source"] == "query"


def test_a_nul_in_the_json_part_of_a_wound_upload_names_the_field(api, wc) -> None:
    from tests import wound_helpers as wh

    body = wh.case_body(wc.patient, observation=wh.observation(free_text="sår\u0000"))
    r = wh.upload(api, wc.nurse, body, [wh.jpeg()])
    _refused(r, "case.observation.free_text")
    deep = b'{"patient_id": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    r = wh.upload(api, wc.nurse, deep, [wh.jpeg()])
    _refused(r, "case")


def test_a_nul_in_a_page_form_field_is_a_400_page(settings, care) -> None:
    from litestar.testing import TestClient

    from app.asgi import create_app
    from tests.web_helpers import csrf_from

    with TestClient(app=create_app(settings), raise_server_exceptions=False) as browser:
        token = csrf_from(browser.get("/login").text)
        r = browser.post(
            "/login",
            data={"username": NUL, "password": "x", "_csrf_token": token},
            follow_redirects=False,
        )
        assert r.status_code == 400, r.text


def test_a_bad_query_value_is_named_as_the_url_spells_it(client, care) -> None:
    r = client.get("/api/v1/alerts?state=bogus", headers=care.specialist.headers)
    body = _refused(r, "state")
    assert body["problems"][0]["source"] == "query"
    r = client.get(
        f"/api/v1/patients/{care.patient}/readings?from=yesterday", headers=care.specialist.headers
    )
    _refused(r, "from")


def _far_dated_bodies(care) -> list[tuple[str, dict, dict, str]]:
    a, n = care.admin.headers, care.nurse.headers
    patient = f"/api/v1/admin/patients/{care.patient}"
    return [
        (
            "/api/v1/admin/patients",
            a,
            {
                "name": "Far Away",
                "date_of_birth": "0001-01-01",
                "responsible_organisation_id": str(care.hospital),
            },
            "date_of_birth",
        ),
        (
            f"{patient}/enrollments",
            a,
            {"program": "ak", "stratum": "2.0-3.0", "start_date": "0001-01-01"},
            "start_date",
        ),
        (
            f"{patient}/enrollments",
            a,
            {
                "program": "ak",
                "stratum": "2.0-3.0",
                "start_date": "2024-01-01",
                "end_date": "9999-12-31",
            },
            "end_date",
        ),
        (
            f"{patient}/handovers",
            a,
            {
                "organisation_id": str(care.other_hospital),
                "reason": "x",
                "since": "0001-01-01T00:00:00Z",
            },
            "since",
        ),
        (
            f"/api/v1/patients/{care.patient}/readings",
            n,
            {
                "measured_at": "0001-01-01T00:00:00Z",
                "readings": [{"type": "spo2", "value": 95, "unit": "%"}],
            },
            "measured_at",
        ),
    ]


def test_dates_far_away_in_a_body_are_a_400_naming_the_field(client, care, db) -> None:
    for path, headers, body, field in _far_dated_bodies(care):
        _refused(_send(client, "POST", path, body, headers), field)
    kept = db.execute(
        "SELECT count(*) AS n FROM responsibility WHERE patient_id = %s AND since < '1900-01-01'",
        (care.patient,),
    ).fetchone()
    assert kept["n"] == 0


def test_a_wound_onset_far_away_in_the_upload_names_the_field(api, wc) -> None:
    from tests import wound_helpers as wh

    body = wh.case_body(wc.patient, wound=wh.new_wound(onset="0001-01-01"))
    _refused(wh.upload(api, wc.nurse, body, [wh.jpeg()]), "case.wound.onset")
