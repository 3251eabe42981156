"""Sign-in, sessions, page access and the headers every page sends, over the real app."""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import TestClient

from telemed.security import token_digest
from tests.web_helpers import page_token, sign_in


@pytest.fixture(scope="module")
def browser(settings) -> Iterator[TestClient]:
    # A client of its own: its cookies must never reach the shared API client. And an app of
    # its own: leaving a client's block closes its app's pool, which the shared client uses.
    from app.asgi import create_app

    with TestClient(app=create_app(settings), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(autouse=True)
def fresh_cookies(browser: TestClient) -> None:
    browser.cookies.clear()


def set_cookie_headers(response) -> list[str]:
    return response.headers.get_list("set-cookie")


def session_cookie_header(response) -> str:
    found = [c for c in set_cookie_headers(response) if c.startswith("telemed_session=")]
    assert len(found) == 1, set_cookie_headers(response)
    return found[0]


def test_sign_in_makes_a_server_side_session_in_an_httponly_samesite_cookie(browser, care, db):
    response = sign_in(browser, care.nurse.username, care.nurse.password)
    assert response.status_code == 303
    assert response.headers["location"] == "/nurse"
    header = session_cookie_header(response)
    attributes = {a.strip().lower() for a in header.split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes  # plain http in the test, secure_cookies off
    token = header.split(";")[0].split("=", 1)[1]
    row = db.execute(
        "SELECT kind, user_id, revoked_at FROM auth_tokens WHERE token_hash = %s",
        (token_digest(token),),
    ).fetchone()
    assert row["kind"] == "session" and row["user_id"] == care.nurse.id
    assert row["revoked_at"] is None
    home = browser.get("/nurse")
    assert home.status_code == 200
    assert "Test Patient" in home.text


def test_the_specialist_lands_on_the_console(browser, care):
    response = sign_in(browser, care.specialist.username, care.specialist.password)
    assert response.headers["location"] == "/console"
    assert browser.get("/console").status_code == 200


def test_cookie_is_secure_when_settings_say_so(settings, care):
    from app.asgi import create_app

    app = create_app(msgspec.structs.replace(settings, secure_cookies=True))
    with TestClient(app=app, raise_server_exceptions=False) as client:
        # Behind a TLS proxy the app may see plain http; the browser still sees https and sends
        # the Secure CSRF cookie back, which httpx would not do over http: send it by hand.
        form = client.get("/login")
        csrf = next(c for c in set_cookie_headers(form) if c.startswith("telemed_csrf="))
        assert "secure" in {a.strip().lower() for a in csrf.split(";")}
        value = csrf.split(";")[0].split("=", 1)[1]
        response = client.post(
            "/login",
            data={
                "username": care.nurse.username,
                "password": care.nurse.password,
                "_csrf_token": value,
            },
            headers={"cookie": f"telemed_csrf={value}"},
            follow_redirects=False,
        )
    assert response.status_code == 303
    assert "secure" in {a.strip().lower() for a in session_cookie_header(response).split(";")}


def test_cookie_is_secure_when_the_request_came_over_https(settings, care):
    from app.asgi import create_app

    with TestClient(app=create_app(settings), base_url="https://testserver.local") as client:
        response = sign_in(client, care.nurse.username, care.nurse.password)
    assert "secure" in {a.strip().lower() for a in session_cookie_header(response).split(";")}


def test_wrong_password_shows_the_form_again_with_a_message(browser, care):
    response = sign_in(browser, care.nurse.username, "not the password")
    assert response.status_code == 401
    assert "Forkert brugernavn eller adgangskode" in response.text
    assert not [c for c in set_cookie_headers(response) if c.startswith("telemed_session=")]


def test_sign_out_revokes_the_session(browser, care, db):
    response = sign_in(browser, care.nurse.username, care.nurse.password)
    token = session_cookie_header(response).split(";")[0].split("=", 1)[1]
    csrf = page_token(browser, "/nurse")
    out = browser.post("/logout", data={"_csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    row = db.execute(
        "SELECT revoked_at FROM auth_tokens WHERE token_hash = %s", (token_digest(token),)
    ).fetchone()
    assert row["revoked_at"] is not None
    # The old cookie is worthless even if a browser kept it.
    browser.cookies.set("telemed_session", token)
    again = browser.get("/nurse", follow_redirects=False)
    assert again.status_code in (302, 303, 307)
    assert again.headers["location"].startswith("/login")
    api = browser.get("/api/v1/patients")
    assert api.status_code == 401


def test_pages_send_signed_out_users_to_the_form_and_back(browser, care):
    response = browser.get(f"/console/patients/{care.patient}", follow_redirects=False)
    assert response.status_code in (302, 303, 307)
    target = response.headers["location"]
    assert target == f"/login?next=/console/patients/{care.patient}"
    signed = sign_in(
        browser,
        care.specialist.username,
        care.specialist.password,
        next=f"/console/patients/{care.patient}",
    )
    assert signed.headers["location"] == f"/console/patients/{care.patient}"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_sign_in_never_redirects_off_site(browser, care, target):
    response = sign_in(browser, care.nurse.username, care.nurse.password, next=target)
    assert response.headers["location"] == "/nurse"


def test_a_nurse_is_sent_away_from_the_console_and_a_specialist_from_the_nurse_page(browser, care):
    sign_in(browser, care.nurse.username, care.nurse.password)
    response = browser.get("/console", follow_redirects=False)
    assert response.headers["location"] == "/nurse"
    browser.cookies.clear()
    sign_in(browser, care.specialist.username, care.specialist.password)
    response = browser.get("/nurse/", follow_redirects=False)
    assert response.headers["location"] == "/console"


def test_a_patient_out_of_scope_is_not_found(browser, care):
    sign_in(browser, care.other_specialist.username, care.other_specialist.password)
    response = browser.get(f"/console/patients/{care.patient}")
    assert response.status_code == 404
    assert "Test Patient" not in response.text


def test_every_page_sends_a_content_security_policy_without_inline_script(browser, care):
    sign_in(browser, care.specialist.username, care.specialist.password)
    for path in ("/login", "/console", f"/console/patients/{care.patient}", "/static/css/app.css"):
        response = browser.get(path)
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        policy = dict(
            (part.split(" ", 1)[0], part.split(" ", 1)[1] if " " in part else "")
            for part in (p.strip() for p in csp.split(";"))
        )
        assert policy["script-src"] == "'self'"
        assert "unsafe" not in csp
        assert policy["frame-ancestors"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
    page = browser.get(f"/console/patients/{care.patient}")
    assert page.headers["cache-control"] == "no-store"
    for tag in re.findall(r"<script\b[^>]*>", page.text):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_language_follows_the_switch_then_the_cookie_then_the_browser(browser, care):
    sign_in(browser, care.nurse.username, care.nurse.password)
    danish = browser.get("/nurse")
    assert '<html lang="da">' in danish.text and "Vælg patient" in danish.text
    english = browser.get("/nurse?lang=en")
    assert '<html lang="en">' in english.text and "Pick a patient" in english.text
    assert any(c.startswith("telemed_lang=en") for c in set_cookie_headers(english))
    assert "Pick a patient" in browser.get("/nurse").text  # the cookie remembers
    browser.cookies.delete("telemed_lang")
    by_header = browser.get("/nurse", headers={"accept-language": "en-GB,en;q=0.8,da;q=0.5"})
    assert '<html lang="en">' in by_header.text


def test_the_vendored_plot_library_is_served_by_the_app(browser):
    for path in ("/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css"):
        response = browser.get(path)
        assert response.status_code == 200, f"{path}: run scripts/web-assets"
        assert len(response.content) > 1_000
