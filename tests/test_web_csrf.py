"""CSRF: the session cookie alone never changes anything; bearer-token clients need no token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient

from app.web.csrf import HEADER, needs_check, uses_bearer
from tests.web_helpers import page_token, sign_in

READING = {
    "measured_at": None,
    "readings": [{"type": "pulse", "value": 72, "unit": "/min"}],
}


def reading() -> dict:
    return {**READING, "measured_at": datetime.now(UTC).isoformat()}


@pytest.fixture(scope="module")
def browser(settings) -> Iterator[TestClient]:
    from app.asgi import create_app

    with TestClient(app=create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(autouse=True)
def fresh_cookies(browser: TestClient) -> None:
    browser.cookies.clear()


paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-", max_size=40)


@given(paths, st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and " " not in s))
def test_a_bearer_request_to_the_api_is_never_checked(tail, token):
    headers = {"authorization": f"Bearer {token}"}
    assert uses_bearer(headers)
    assert not needs_check("/api/" + tail, headers, {"telemed_session": "x"})


@given(paths, st.sampled_from(["", "Bearer", "Bearer ", "Basic abc", "bearer"]))
def test_the_api_with_the_session_cookie_is_checked_unless_a_bearer_token_is_used(tail, auth):
    headers = {"authorization": auth} if auth else {}
    assert needs_check("/api/" + tail, headers, {"telemed_session": "x"})
    # No cookie: nothing a forged request could ride on; the auth middleware answers 401.
    assert not needs_check("/api/" + tail, headers, {})


@pytest.mark.parametrize("path", ["/login", "/logout", "/console", "/nurse/patients/x"])
def test_pages_are_always_checked(path):
    assert needs_check(path, {}, {})


def test_cookie_authenticated_api_post_without_the_token_is_refused(browser, care, db):
    sign_in(browser, care.nurse.username, care.nurse.password)
    before = db.execute("SELECT count(*) AS n FROM readings WHERE patient_id = %s", (care.patient,))
    response = browser.post(f"/api/v1/patients/{care.patient}/readings", json=reading())
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    after = db.execute("SELECT count(*) AS n FROM readings WHERE patient_id = %s", (care.patient,))
    assert after.fetchone()["n"] == before.fetchone()["n"]


def test_a_wrong_or_forged_token_is_refused(browser, care):
    sign_in(browser, care.nurse.username, care.nurse.password)
    real = page_token(browser, "/nurse")
    for forged in ("x" * 128, real[:-1] + ("0" if real[-1] != "0" else "1")):
        response = browser.post(
            f"/api/v1/patients/{care.patient}/readings", json=reading(), headers={HEADER: forged}
        )
        assert response.status_code == 403


def test_cookie_authenticated_api_post_with_the_token_is_accepted(browser, care):
    sign_in(browser, care.nurse.username, care.nurse.password)
    token = page_token(browser, "/nurse")
    response = browser.post(
        f"/api/v1/patients/{care.patient}/readings", json=reading(), headers={HEADER: token}
    )
    assert response.status_code == 201, response.text
    assert response.json()["stored"] == 1


def test_bearer_clients_need_no_csrf_token(client, care):
    response = client.post(
        f"/api/v1/patients/{care.patient}/readings", json=reading(), headers=care.nurse.headers
    )
    assert response.status_code == 201, response.text


def test_a_bearer_token_wins_over_a_session_cookie_and_needs_no_csrf_token(browser, care):
    sign_in(browser, care.specialist.username, care.specialist.password)
    response = browser.post(
        f"/api/v1/patients/{care.patient}/readings", json=reading(), headers=care.nurse.headers
    )
    assert response.status_code == 201, response.text


def test_reading_with_the_cookie_needs_no_token(browser, care):
    sign_in(browser, care.nurse.username, care.nurse.password)
    response = browser.get(f"/api/v1/patients/{care.patient}/readings")
    assert response.status_code == 200


def test_a_form_post_without_the_token_is_refused_and_changes_nothing(browser, care):
    sign_in(browser, care.nurse.username, care.nurse.password)
    response = browser.post("/logout", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert browser.get("/nurse", follow_redirects=False).status_code == 200  # still signed in


def test_the_sign_in_form_needs_its_token_too(browser, care):
    browser.get("/login")
    response = browser.post(
        "/login",
        data={"username": care.nurse.username, "password": care.nurse.password},
        follow_redirects=False,
    )
    assert response.status_code == 403
