"""The clinical forms in a real browser never send what they could not read: a word typed into a
red limit, "17,5" in the weekly dose, "4 cm" and "5/10" in the wound form; and a limit is
removed only on purpose, with a confirmation that says what it means.

Fields are found by their names where the form had them before these rules, so that the tests
show the old pages' faults rather than a renamed label."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests import photos
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.slow
RED_LOW = 'input[name="absolute:spo2|red_low"]'
YELLOW_LOW = 'input[name="absolute:spo2|yellow_low"]'


def watch_requests(tab, method: str, fragment: str) -> list[str]:
    sent: list[str] = []
    tab.page.on(
        "request",
        lambda r: (
            sent.append(r.post_data or "") if r.method == method and fragment in r.url else None
        ),
    )
    return sent


def overrides(db, patient) -> list[dict]:
    return db.execute(
        "SELECT rule_key, field, value, reason FROM threshold_overrides WHERE patient_id = %s"
        " ORDER BY id",
        (patient,),
    ).fetchall()


def described(page, locator) -> str:
    ids = (locator.get_attribute("aria-describedby") or "").split()
    return " ".join(page.locator("#" + i).inner_text() for i in ids)


def open_thresholds(open_tab, care):
    tab = open_tab()
    tab.sign_in(care.specialist.username, care.specialist.password)
    tab.go(f"/console/patients/{care.patient}")
    tab.page.locator(RED_LOW).wait_for()
    return tab


def test_a_word_typed_into_a_red_limit_is_refused_at_the_field(open_tab, care, db):
    tab = open_thresholds(open_tab, care)
    puts = watch_requests(tab, "PUT", "/thresholds")
    red = tab.page.locator(RED_LOW)
    red.fill("otteogfirs")
    tab.page.locator("#threshold-reason").fill("typo")
    tab.page.locator("#threshold-reason").press("Enter")  # submits the form, as Save would
    tab.page.wait_for_function(
        "document.querySelector('[aria-invalid=true]') || document.getElementById('status')"
        ".textContent"
    )
    tab.page.wait_for_timeout(300)  # a request the page made would have been seen by now

    # Nothing was sent, nothing stored, nothing said to be saved.
    assert puts == [] and overrides(db, care.patient) == []
    assert "gemt" not in tab.page.locator("#status").inner_text()
    # The field says why in Danish, linked to it, and Save stays blocked.
    assert red.get_attribute("aria-invalid") == "true"
    assert "Skriv et tal" in described(tab.page, red)
    assert tab.page.locator("#threshold-form button[type=submit]").is_disabled()

    # Emptying a limit in force does not remove it either.
    red.fill("")
    assert "Fjern grænse" in described(tab.page, red)
    assert puts == []

    # A number the reader can read is sent, and the page shows what the server stored.
    red.fill("85")
    assert red.get_attribute("aria-invalid") is None
    tab.page.locator("#threshold-form button[type=submit]").click()
    status = tab.page.locator("#status")
    status.filter(has_text="Gemt hos serveren").wait_for()
    assert "Iltmætning (SpO2) Rød under 85 %" in status.inner_text()
    assert [(o["field"], o["value"]) for o in overrides(db, care.patient)] == [("red_low", 85)]
    tab.page.locator(RED_LOW + '[data-initial="85"]').wait_for()
    assert tab.page.locator(RED_LOW).input_value() == "85"
    tab.assert_accessible()
    tab.assert_no_script_errors()


def test_a_limit_is_removed_on_purpose_with_a_confirmation_naming_the_consequence(
    open_tab, care, db
):
    tab = open_thresholds(open_tab, care)
    puts = watch_requests(tab, "PUT", "/thresholds")
    tab.page.get_by_role("button", name="Fjern grænsen Gul under for Iltmætning (SpO2)").click()
    dialog = tab.page.get_by_role("dialog", name="Fjern en grænse")
    dialog.wait_for()
    text = dialog.inner_text()
    assert "»Gul under 90 %« for Iltmætning (SpO2)" in text
    assert "ingen gul alarm for lave værdier hos denne patient" in text
    tab.assert_accessible()
    tab.screenshot("console-remove-limit")

    # Not without a reason.
    dialog.get_by_role("button", name="Fjern grænsen").click()
    reason = dialog.get_by_label("Hvorfor fjernes grænsen?")
    assert reason.get_attribute("aria-invalid") == "true"
    assert "Skriv hvorfor grænsen fjernes." in described(tab.page, reason)
    assert tab.page.evaluate("document.activeElement.id") == "remove-reason"
    assert puts == []

    reason.fill("Habituelt 89-91 %, aftalt med egen læge")
    dialog.get_by_role("button", name="Fjern grænsen").click()
    dialog.wait_for(state="detached")
    status = tab.page.locator("#status")
    status.filter(has_text="Grænsen er fjernet").wait_for()
    assert "Iltmætning (SpO2) Gul under ingen grænse" in status.inner_text()
    (stored,) = overrides(db, care.patient)
    assert (stored["field"], stored["value"]) == ("yellow_low", None)
    assert "Habituelt 89-91 %" in stored["reason"]
    assert json.loads(puts[0])["changes"][0]["remove"] is True
    # Drawn again from the server: the field is empty and has nothing left to remove.
    tab.page.locator(YELLOW_LOW + '[data-initial=""]').wait_for()
    assert (
        tab.page.get_by_role("button", name="Fjern grænsen Gul under for Iltmætning (SpO2)").count()
        == 0
    )
    assert tab.page.locator(RED_LOW).input_value() == "88"
    tab.assert_no_script_errors()


@pytest.fixture
def ak_alert(care, db, db_dsn, factory):
    """An AK patient on Marevan whose current weekly dose is 20 mg, with an open INR alert."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.alert_helpers import ago, row, store

    patient = factory.patient(care.hospital, program="ak", stratum="2.0-3.0",
                              serving=[care.nursing], name="Dora Dosis")  # fmt: skip
    db.execute(
        "INSERT INTO anticoagulant_products (patient_id, product, set_by, reason)"
        " VALUES (%s, 'marevan', %s, 'test')",
        (patient, care.admin.id),
    )
    with ThreadPoolExecutor(1) as pool:
        pool.submit(store, db_dsn, [row(patient, "inr", 3.6, ago(hours=1), care.nurse.id)]).result()
    (alert,) = db.execute("SELECT id FROM alerts WHERE patient_id = %s", (patient,)).fetchall()
    db.execute(
        "INSERT INTO instructions (patient_id, alert_id, author_id, author_org_id, created_at,"
        " text, fields) VALUES (%s, %s, %s, %s, now() - interval '7 days', 'earlier', %s)",
        (patient, alert["id"], care.specialist.id, care.hospital,
         json.dumps({"program": "ak", "weekly_dose_mg": 20})),
    )  # fmt: skip
    return patient, alert["id"]


def dose_field(card):
    return card.locator('input[name="weekly_dose_mg"]')


def test_a_dose_typed_with_a_decimal_comma_is_sent_as_typed(open_tab, care, db, ak_alert):
    patient, alert = ak_alert
    console = open_tab()
    console.sign_in(care.specialist.username, care.specialist.password)
    card = console.page.locator(f'#queue li[data-id="{alert}"]')
    card.get_by_text("Skriv instruks").click()
    card.locator('textarea[name="text"]').fill("Ny ugedosis 17,5 mg, INR om en uge")
    # Typed key by key, as on a Danish keyboard.
    dose_field(card).press_sequentially("17,5")
    card.get_by_role("button", name="Send instruks").click()
    console.page.get_by_text("Instruksen er sendt.").wait_for()
    fields = db.execute(
        "SELECT fields FROM instructions WHERE alert_id = %s AND text <> 'earlier'", (alert,)
    ).fetchone()["fields"]
    assert fields["weekly_dose_mg"] == 17.5
    assert fields["dose"]["change_percent"] == -12.5 and fields["dose"]["tablets_per_week"] == 7

    nurse = open_tab(PHONE)
    nurse.sign_in(care.nurse.username, care.nurse.password)
    nurse.go(f"/nurse/patients/{patient}")
    order = nurse.page.locator("#orders-list li[data-instruction]").filter(has_text="17,5")
    order.wait_for()
    text = order.inner_text()
    assert "Ny ugedosis: 17,5 mg om ugen" in text
    assert "= 7 tabletter Marevan 2,5 mg om ugen" in text
    assert "175" not in text
    nurse.assert_accessible()
    nurse.assert_no_script_errors()

    # A unit that is not the field's own is refused at the field, and nothing is sent.
    posts = watch_requests(console, "POST", "/instructions")
    card.get_by_text("Skriv instruks").click()
    card.locator('textarea[name="text"]').fill("Ny ugedosis")
    dose_field(card).press_sequentially("17,5 g")
    card.get_by_role("button", name="Send instruks").click()
    assert "Skriv tallet i mg" in described(console.page, dose_field(card))
    assert console.page.evaluate("document.activeElement.name") == "weekly_dose_mg"
    assert posts == []
    console.assert_no_script_errors()


def test_a_ten_fold_dose_is_read_back_before_it_is_sent(open_tab, care, db, ak_alert):
    _, alert = ak_alert
    console = open_tab()
    console.sign_in(care.specialist.username, care.specialist.password)
    posts = watch_requests(console, "POST", "/instructions")
    card = console.page.locator(f'#queue li[data-id="{alert}"]')
    card.get_by_text("Skriv instruks").click()
    card.locator('textarea[name="text"]').fill("Ny ugedosis")
    dose_field(card).fill("175")
    card.get_by_role("button", name="Send instruks").click()
    readback = card.get_by_role("group", name="Læs dosis op før den sendes")
    readback.wait_for()
    text = readback.inner_text()
    assert "Nuværende ugedosis: 20 mg om ugen" in text
    assert "Ny ugedosis: 175 mg om ugen = 70 tabletter Marevan 2,5 mg om ugen" in text
    assert "Ændring: +775 %" in text
    assert "Uden for det sædvanlige interval 17,5–70 mg om ugen." in text
    console.assert_accessible()
    console.screenshot("console-dose-readback")

    # Not without ticking the confirmation; then sent with the read-back it confirmed.
    card.get_by_role("button", name="Bekræft og send").click()
    assert (
        card.get_by_label("Jeg har læst dosis op og bekræfter den").get_attribute("aria-invalid")
        == "true"
    )
    assert len(posts) == 1
    card.get_by_label("Jeg har læst dosis op og bekræfter den").check()
    card.get_by_role("button", name="Bekræft og send").click()
    console.page.get_by_text("Instruksen er sendt.").wait_for()
    assert json.loads(posts[-1])["fields"]["dose_confirmation"] == {
        "current_weekly_mg": 20, "new_weekly_mg": 175, "change_percent": 775,
    }  # fmt: skip
    fields = db.execute(
        "SELECT fields FROM instructions WHERE alert_id = %s AND text <> 'earlier'", (alert,)
    ).fetchone()["fields"]
    assert fields["dose"]["confirmed"] is True
    console.assert_no_script_errors()


def fill_wound(page, length: str, width: str, pain: str) -> None:
    page.locator("#wound_type").select_option("venous_leg_ulcer")
    page.locator("#body_location").select_option("lower_leg")
    page.locator('input[name="laterality"][value="left"]').check()
    page.locator("#length_cm").fill(length)
    page.locator("#width_cm").fill(width)
    page.locator("#pain").fill(pain)
    page.locator("#photo_consent").check()
    page.locator("#photos").set_input_files(
        files=[{"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": photos.jpeg_with_gps()}]
    )


def test_a_size_typed_with_its_unit_and_pain_out_of_ten_are_kept(open_tab, care, db):
    nurse = open_tab(PHONE)
    nurse.sign_in(care.nurse.username, care.nurse.password)
    nurse.go(f"/nurse/patients/{care.patient}")
    fill_wound(nurse.page, "4 cm", "3,5 cm", "5/10")
    nurse.page.locator("#wound-form button[type=submit]").click()
    nurse.page.wait_for_url("**/nurse/cases/**")
    case = db.execute(
        "SELECT length_cm, width_cm, observation FROM wound_cases WHERE patient_id = %s",
        (care.patient,),
    ).fetchone()
    assert (case["length_cm"], case["width_cm"]) == (4.0, 3.5)
    assert case["observation"]["pain"] == 5
    nurse.assert_no_script_errors()

    # A unit not the field's own, and a pain not out of ten, are refused at their fields.
    nurse.go(f"/nurse/patients/{care.patient}")
    uploads = watch_requests(nurse, "POST", "/api/v1/wound-cases")
    fill_wound(nurse.page, "4 mm", "3 cm", "5/5")
    nurse.page.locator("#wound-form button[type=submit]").click()
    length = nurse.page.locator("#length_cm")
    assert length.get_attribute("aria-invalid") == "true"
    assert "Skriv tallet i cm" in described(nurse.page, length)
    assert "skalaen 0–10" in described(nurse.page, nurse.page.locator("#pain"))
    assert nurse.page.evaluate("document.activeElement.id") == "length_cm"
    assert uploads == []
    nurse.assert_accessible()
    nurse.assert_no_script_errors()


def test_a_reading_typed_the_danish_way_is_stored_as_typed(open_tab, care, db):
    nurse = open_tab(PHONE)
    nurse.sign_in(care.nurse.username, care.nurse.password)
    nurse.go(f"/nurse/patients/{care.patient}")
    nurse.page.locator("#m-temperature").fill("38,2 °C")
    nurse.page.locator("#m-pulse").fill("otte")
    nurse.page.get_by_role("button", name="Gem måling").click()
    assert "Skriv et tal" in described(nurse.page, nurse.page.locator("#m-pulse"))
    since = datetime.now(UTC) - timedelta(minutes=10)
    stored = "SELECT metric, value FROM readings WHERE patient_id = %s AND received_at > %s"
    assert db.execute(stored, (care.patient, since)).fetchall() == []
    nurse.page.locator("#m-pulse").fill("")
    nurse.page.get_by_role("button", name="Gem måling").click()
    nurse.page.locator("#reading-result").filter(has_text="Målingen er gemt.").wait_for()
    rows = db.execute(stored, (care.patient, since)).fetchall()
    assert [(r["metric"], r["value"]) for r in rows] == [("temperature", 38.2)]
    nurse.assert_no_script_errors()


def test_a_limit_a_typo_once_removed_is_shown_until_it_is_set_or_confirmed(open_tab, care, db):
    from tests.test_thresholds_explicit import legacy_removal

    legacy_removal(db, care, care.patient)
    tab = open_thresholds(open_tab, care)
    red = tab.page.locator(RED_LOW)
    assert red.input_value() == ""
    assert "Fjernet uden bekræftelse" in described(tab.page, red)
    tab.assert_accessible()
    # Set again: the warning is gone and the limit holds.
    red.fill("86")
    tab.page.locator("#threshold-reason").fill("the red limit was lost to a typo")
    tab.page.locator("#threshold-form button[type=submit]").click()
    tab.page.locator(RED_LOW + '[data-initial="86"]').wait_for()
    assert "Fjernet uden bekræftelse" not in described(tab.page, tab.page.locator(RED_LOW))
    assert overrides(db, care.patient)[-1]["value"] == 86
    tab.assert_no_script_errors()
