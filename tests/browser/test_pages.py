"""The pages in a real browser: sign-in, the nurse's reading entry on a phone, the patient plots,
the language switch, keyboard use and the accessibility check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.conftest import PHONE

pytestmark = pytest.mark.slow


def seed_readings(db, patient, nurse, metric: str, unit: str, values: list[float]) -> None:
    """One reading a day up to yesterday, entered by `nurse`."""
    now = datetime.now(UTC)
    for i, value in enumerate(values):
        db.execute(
            "INSERT INTO readings (measured_at, patient_id, metric, value, unit, source, origin,"
            " entered_by, message_id) VALUES (%s, %s, %s, %s, %s, 'nurse', 'test', %s, %s)",
            (now - timedelta(days=len(values) - i), patient, metric, value, unit, nurse, f"m-{i}"),
        )


def test_sign_in_page_is_accessible_and_refuses_a_wrong_password(open_tab, care):
    tab = open_tab()
    tab.go("/login")
    tab.assert_accessible()
    tab.screenshot("login")
    tab.page.get_by_label("Brugernavn").fill(care.nurse.username)
    tab.page.get_by_label("Adgangskode").fill("wrong wrong")
    tab.page.get_by_role("button", name="Log ind").click()
    assert tab.page.get_by_role("alert").inner_text() == "Forkert brugernavn eller adgangskode."
    tab.assert_no_script_errors()


def test_nurse_enters_a_reading_on_a_phone(open_tab, care, db):
    tab = open_tab(PHONE)
    tab.sign_in(care.nurse.username, care.nurse.password)
    assert tab.page.url.endswith("/nurse")
    tab.assert_accessible()
    tab.screenshot("nurse-patients")
    tab.page.get_by_role("link", name="Test Patient").click()
    tab.page.get_by_label("Puls").fill("88")
    tab.page.get_by_label("Iltmætning (SpO2)").fill("93")
    tab.page.get_by_role("button", name="Gem måling").click()
    result = tab.page.locator("#reading-result")
    result.filter(has_text="Målingen er gemt.").wait_for()
    rows = db.execute(
        "SELECT metric, value, source, entered_by FROM readings WHERE patient_id = %s"
        " ORDER BY metric",
        (care.patient,),
    ).fetchall()
    assert [(r["metric"], r["value"], r["source"]) for r in rows] == [
        ("pulse", 88.0, "nurse"),
        ("spo2", 93.0, "nurse"),
    ]
    assert {r["entered_by"] for r in rows} == {care.nurse.id}
    # No horizontal scrolling at 360 px.
    width = tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    tab.assert_accessible()
    tab.screenshot("nurse-reading")
    tab.assert_no_script_errors()


def test_nurse_sees_why_a_reading_is_refused(open_tab, care):
    tab = open_tab(PHONE)
    tab.sign_in(care.nurse.username, care.nurse.password)
    tab.go(f"/nurse/patients/{care.patient}")
    tab.page.get_by_label("Puls").fill("400")
    tab.page.get_by_role("button", name="Gem måling").click()
    tab.page.locator("#reading-result.error").wait_for()
    # Said at the field, in Danish, with the metric's plausible range, and the focus is there.
    pulse = tab.page.get_by_label("Puls")
    assert pulse.get_attribute("aria-invalid") == "true"
    note = tab.page.locator("#" + pulse.get_attribute("aria-describedby"))
    assert note.inner_text() == "Skriv et tal mellem 25 og 250 /min."
    assert tab.page.evaluate("document.activeElement.id") == "m-pulse"
    tab.assert_no_script_errors()


def test_specialist_sees_plots_of_the_patient_in_english(open_tab, care, db):
    seed_readings(db, care.patient, care.nurse.id, "spo2", "%", [95, 94, 92, 89, 91, 93])
    seed_readings(db, care.patient, care.nurse.id, "pulse", "/min", [70, 75, 82, 96, 104, 88])
    tab = open_tab()
    tab.sign_in(care.specialist.username, care.specialist.password)
    tab.go(f"/console/patients/{care.patient}?lang=en")
    figure = tab.page.locator("figure[data-metric=spo2]")
    figure.wait_for()
    assert tab.page.locator("figure[data-metric=spo2] canvas").count() >= 1
    assert "Oxygen saturation" in figure.inner_text()
    tab.page.get_by_role("button", name="7 days").click()
    assert tab.page.get_by_role("button", name="7 days").get_attribute("aria-pressed") == "true"
    tab.page.locator("figure[data-metric=pulse] canvas").first.wait_for()
    tab.assert_accessible()
    tab.assert_no_script_errors()


def test_the_console_can_be_used_with_the_keyboard(open_tab, care):
    tab = open_tab()
    tab.go("/login")
    tab.page.keyboard.press("Tab")  # the skip link comes first
    assert tab.page.evaluate("document.activeElement.className") == "skip"
    tab.page.get_by_label("Brugernavn").focus()
    tab.page.keyboard.type(care.specialist.username)
    tab.page.keyboard.press("Tab")
    tab.page.keyboard.type(care.specialist.password)
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/console")
    tab.page.keyboard.press("Tab")
    tab.page.keyboard.press("Enter")  # follows the skip link
    assert tab.page.evaluate("document.activeElement.id") == "main"


# A text/plain form can send a body that parses as JSON: name={"...": "=" ...}.
FORGED_JSON = (
    '{{"measured_at": "2026-01-01T00:00:00+00:00", '
    '"readings": [{{"type": "pulse", "value": 70, "unit": "/min", "x": "'
)
ATTACKER = (
    "<!doctype html><html><body>"
    '<form id="out" method="post" action="{base}/logout"></form>'
    '<form id="reading" method="post" enctype="text/plain"'
    ' action="{base}/api/v1/patients/{patient}/readings">'
    "<input name='" + FORGED_JSON + "' value='\"}}]}}'></form>"
    "</body></html>"
)


def test_a_cross_site_form_post_with_the_cookie_is_refused(open_tab, care, db):
    tab = open_tab()
    tab.sign_in(care.nurse.username, care.nurse.password)
    sessions = "SELECT count(*) AS n FROM auth_tokens WHERE user_id = %s AND kind = 'session'"
    live = sessions + " AND revoked_at IS NULL"
    before = db.execute(live, (care.nurse.id,)).fetchone()["n"]
    assert before >= 1
    page = ATTACKER.format(base=tab.base, patient=care.patient)
    tab.page.route(
        "http://attacker.example/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=page),
    )
    statuses = []
    tab.page.on(
        "response", lambda r: statuses.append(r.status) if r.request.method == "POST" else None
    )
    for form in ("out", "reading"):
        tab.page.goto("http://attacker.example/")
        with tab.page.expect_navigation():
            tab.page.evaluate(f"document.getElementById('{form}').submit()")
    assert statuses and all(s in (401, 403) for s in statuses), statuses
    assert db.execute(live, (care.nurse.id,)).fetchone()["n"] == before
    count = db.execute(
        "SELECT count(*) AS n FROM readings WHERE patient_id = %s", (care.patient,)
    ).fetchone()["n"]
    assert count == 0
    tab.go("/nurse")
    assert tab.page.url.endswith("/nurse")  # still signed in
