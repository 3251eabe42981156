"""A wound case end to end in two browsers: the nurse on her phone photographs the wound and
sends the case, the specialist sees it arrive in the console without a reload and answers it,
and the nurse's page shows the instructions as they come back."""

from __future__ import annotations

import re

import pytest

from tests import photos
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.slow


PROGRESS_PROBE = """
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("upload-progress");
  if (!bar) return;
  new MutationObserver(() => {
    const seen = Number(sessionStorage.getItem("progress-max") || 0);
    sessionStorage.setItem("progress-max", String(Math.max(seen, Number(bar.value))));
  }).observe(bar, { attributes: true, attributeFilter: ["value"] });
});
"""


def fill_wound_form(page, *, photo: dict) -> None:
    page.get_by_label("Sårtype").select_option("venous_leg_ulcer")
    page.get_by_label("Placering", exact=True).select_option("lower_leg")
    page.get_by_role("group", name="Side").get_by_label("Venstre").check()
    page.get_by_label("Længde (cm)").fill("4,2")
    page.get_by_label("Bredde (cm)").fill("3.1")
    page.get_by_role("group", name="Mængde ekssudat").get_by_label("Moderat").check()
    page.get_by_role("group", name="Tegn på infektion").get_by_label("Varme").check()
    page.get_by_label("Smerte (0–10)").fill("3")
    page.get_by_label("Bemærkninger").fill("Sår på venstre underben, let rødme omkring.")
    page.get_by_label("Patienten har givet samtykke til fotos i journalen").check()
    page.get_by_label("Tag fotos").set_input_files(files=[photo])


def test_nurse_sends_a_wound_case_and_the_specialist_answers_it_live(open_tab, care, db):
    console = open_tab()
    console.sign_in(care.specialist.username, care.specialist.password)
    console.page.locator("#queue[aria-busy]").wait_for(state="detached")
    console.page.evaluate("window.__notReloaded = true")

    nurse = open_tab(PHONE)
    # Record how far the upload progress bar got, across the page change that follows it.
    nurse.page.add_init_script(PROGRESS_PROBE)
    nurse.sign_in(care.nurse.username, care.nurse.password)
    nurse.go(f"/nurse/patients/{care.patient}")

    # A file that says it is a JPEG but is an HTML page is refused, and the nurse is told why.
    fake = {"name": "IMG_0001.jpg", "mimeType": "image/jpeg", "buffer": photos.HTML}
    fill_wound_form(nurse.page, photo=fake)
    nurse.page.get_by_role("button", name="Send sårsag").click()
    refused = nurse.page.locator("#wound-result.error")
    refused.wait_for()
    assert "Sårsagen blev afvist" in refused.inner_text()
    assert "Foto 1 (IMG_0001.jpg): filen er ikke et JPEG-" in refused.inner_text()
    assert (
        db.execute(
            "SELECT count(*) AS n FROM wound_cases WHERE patient_id = %s", (care.patient,)
        ).fetchone()["n"]
        == 0
    )

    real = {"name": "IMG_0002.jpg", "mimeType": "image/jpeg", "buffer": photos.jpeg_with_gps()}
    nurse.page.get_by_label("Tag fotos").set_input_files(files=[real])
    nurse.page.locator("#previews img").wait_for()
    nurse.assert_accessible()
    nurse.screenshot("nurse-wound-form")
    nurse.page.get_by_role("button", name="Send sårsag").click()
    nurse.page.wait_for_url(re.compile(r"/nurse/cases/[0-9a-f-]{36}$"))
    case_id = nurse.page.url.rsplit("/", 1)[1]
    assert nurse.page.evaluate("sessionStorage.getItem('progress-max')") == "100"
    case = db.execute(
        "SELECT state, length_cm, width_cm, observation FROM wound_cases WHERE id = %s", (case_id,)
    ).fetchone()
    assert case["state"] == "submitted"
    assert (case["length_cm"], case["width_cm"]) == (4.2, 3.1)
    assert case["observation"]["exudate_amount"] == "moderate"
    assert case["observation"]["infection_signs"] == ["warmth"]
    assert "Endnu ingen instruktioner." in nurse.page.locator("#answer").inner_text()

    # The console shows the case without a reload.
    card = console.page.locator(f'#queue li[data-kind="wound"][data-id="{case_id}"]')
    card.wait_for()
    assert "Test Patient: Venøst bensår, Underben" in card.inner_text()
    assert console.page.evaluate("window.__notReloaded") is True
    console.assert_accessible()
    console.screenshot("console-queue")

    card.get_by_role("link").click()
    console.page.wait_for_url(f"**/console/wounds/{case_id}")
    photo = console.page.locator("#photos-heading + .photos button").first
    photo.click()
    assert console.page.locator("#zoom").evaluate("d => d.open") is True
    console.page.keyboard.press("Escape")
    assert console.page.locator("#zoom").evaluate("d => d.open") is False
    console.page.get_by_label("Forbinding", exact=True).fill("Sølvskum, skift ved gennemslag")
    console.page.get_by_label("Skift af forbinding").select_option("every_other_day")
    console.page.get_by_label("Bemærkninger").fill("Kompression når infektionen er væk.")
    console.assert_accessible()
    console.screenshot("console-wound", full_page=True)
    console.page.get_by_role("button", name="Send instruktion").click()
    console.page.locator(".instruction").wait_for()
    assert "Sølvskum" in console.page.locator(".instruction").inner_text()

    # The nurse's open page shows the instructions as they arrive, then she confirms.
    instruction = nurse.page.locator("#answer .instruction")
    instruction.wait_for()
    assert "Sølvskum, skift ved gennemslag" in instruction.inner_text()
    assert "Hver anden dag" in instruction.inner_text()
    nurse.assert_accessible()
    nurse.screenshot("nurse-instructions")
    nurse.page.get_by_role("button", name="Bekræft at jeg har læst").click()
    nurse.page.locator("#answer .instruction").filter(has_text="Læst").wait_for()
    state = db.execute("SELECT state FROM wound_cases WHERE id = %s", (case_id,)).fetchone()
    assert state["state"] == "closed"
    nurse.assert_no_script_errors()
    console.assert_no_script_errors()
