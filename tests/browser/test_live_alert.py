"""A reading from a home device, published over MQTT, becomes an alert that the open console
shows without a reload; the specialist acknowledges it, answers it with an instruction and
resolves it there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from telemed.settings import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def ingest_worker(service_env, db, db_dsn, settings) -> Iterator[subprocess.Popen]:
    """`telemed ingest` on the test database, in a shared-subscription group and with a client
    id of its own, whose broker session expires soon after it stops, so that it never holds
    back messages meant for another test's workers. The broker learns the ingest account from
    this database first: a worker whose login is refused stops at once, as it should."""
    pytest.importorskip("ingest.worker")
    broker = pytest.importorskip("devices.broker")
    broker.sync_broker(db, settings)
    tag = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        **service_env,
        "TELEMED_DSN": db_dsn,
        "TELEMED_MEDIA_DIR": str(settings.media_dir),
        "TELEMED_INGEST_GROUP": f"web-{tag}",
        "TELEMED_INGEST_CLIENT_PREFIX": f"web-{tag}",
        "TELEMED_INGEST_SESSION_EXPIRY_S": "5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest", "--slot", "0", "--batch-ms", "20"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def publish(settings, device, payload: dict) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from telemed.device_contract import readings_topic

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=device.device_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(device.mqtt_username, device.password)
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    try:
        info = client.publish(readings_topic(device.device_id), json.dumps(payload), qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), "the broker did not acknowledge the reading"
    finally:
        client.loop_stop()
        client.disconnect()


def reading(metric: str, value: float, unit: str) -> dict:
    return {
        "message_id": uuid.uuid4().hex,
        "measured_at": datetime.now(UTC).isoformat(),
        "readings": [{"type": metric, "value": value, "unit": unit}],
    }


def wait_until_ingesting(db, settings, device, proc, timeout_s: float = 30) -> None:
    """Publish an unremarkable reading until one is stored: the worker is then subscribed (a
    shared-subscription group only receives what is published after it subscribed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"telemed ingest exited: {proc.stdout.read()}")
        publish(settings, device, reading("pulse", 72, "/min"))
        time.sleep(0.5)
        stored = db.execute(
            "SELECT count(*) AS n FROM readings WHERE device_id = %s", (device.device_id,)
        ).fetchone()["n"]
        if stored:
            return
    pytest.fail("telemed ingest stored no reading within 30 s")


def test_an_alert_from_an_mqtt_reading_appears_in_the_console_without_a_reload(
    open_tab, care, db, settings, ingest_worker
):
    provisioning = pytest.importorskip("devices.provisioning")
    broker = pytest.importorskip("devices.broker")
    device = provisioning.provision(db, patient_id=care.patient, kind="copd_kit")
    broker.sync_broker(db, settings)
    try:
        wait_until_ingesting(db, settings, device, ingest_worker)
        console = open_tab()
        console.sign_in(care.specialist.username, care.specialist.password)
        console.page.locator("#queue[aria-busy]").wait_for(state="detached")
        console.page.evaluate("window.__notReloaded = true")

        publish(settings, device, reading("spo2", 82, "%"))
        card = console.page.locator('#queue li[data-kind="alert"]').first
        card.wait_for(timeout=20_000)
        assert "Test Patient: Iltmætning (SpO2) 82" in card.inner_text()
        assert "Rød" in card.inner_text()
        assert console.page.evaluate("window.__notReloaded") is True
        console.assert_accessible()
        console.screenshot("console-alert")

        alert_id = card.get_attribute("data-id")
        card.get_by_label("Note").fill("Ringet op, har det godt")
        card.get_by_role("button", name="Kvittér").click()
        console.page.locator(f'#queue li[data-id="{alert_id}"] .state').filter(
            has_text="Kvitteret"
        ).wait_for()
        row = db.execute(
            "SELECT state, acknowledgement_note FROM alerts WHERE id = %s", (int(alert_id),)
        ).fetchone()
        assert row == {"state": "acknowledged", "acknowledgement_note": "Ringet op, har det godt"}

        # The specialist answers it with an instruction for the carers, in place.
        card = console.page.locator(f'#queue li[data-id="{alert_id}"]')
        card.get_by_text("Skriv instruks").click()
        card.get_by_label("Instruks til plejen").fill("Besøg i dag, mål SpO2 i hvile")
        card.get_by_label("Besøg i dag").check()
        console.assert_accessible()
        console.screenshot("console-instruction")
        card.get_by_role("button", name="Send instruks").click()
        console.page.get_by_text("Instruksen er sendt.").wait_for()
        written = db.execute(
            "SELECT text, fields, author_id FROM instructions WHERE alert_id = %s",
            (int(alert_id),),
        ).fetchall()
        assert written == [{"text": "Besøg i dag, mål SpO2 i hvile",
                            "fields": {"program": "copd", "actions": ["visit_today"],
                                       "other": None},
                            "author_id": care.specialist.id}]  # fmt: skip

        card = console.page.locator(f'#queue li[data-id="{alert_id}"]')
        card.get_by_label("Note").fill("Målt igen: 95 %")
        card.get_by_role("button", name="Afslut").click()
        card.wait_for(state="detached")
        row = db.execute("SELECT state FROM alerts WHERE id = %s", (int(alert_id),)).fetchone()
        assert row["state"] == "resolved"

        # The patient page marks the alert on the SpO2 plot.
        console.go(f"/console/patients/{care.patient}")
        console.page.locator("figure[data-metric=spo2] canvas").first.wait_for()
        legend = console.page.locator("figure[data-metric=spo2] .u-legend").inner_text()
        assert "alarm" in legend
        console.assert_accessible()
        console.screenshot("console-patient", full_page=True)
        console.assert_no_script_errors()
    finally:
        provisioning.revoke(db, device.device_id)
        broker.sync_broker(db, settings)


def test_an_ak_alert_is_answered_with_a_new_weekly_dose_from_the_console(
    open_tab, care, db, db_dsn, factory
):
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date, timedelta

    from tests.alert_helpers import ago, row, store

    patient = factory.patient(care.hospital, program="ak", stratum="2.0-3.0",
                              serving=[care.nursing], name="Anna Antikoaguleret")  # fmt: skip
    db.execute(
        "INSERT INTO anticoagulant_products (patient_id, product, set_by, reason)"
        " VALUES (%s, 'marevan', %s, 'test')",
        (patient, care.admin.id),
    )
    # Through the store and the alert rules, as a nurse's entry goes; in a thread of its own,
    # since Playwright's event loop runs in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(store, db_dsn, [row(patient, "inr", 4.2, ago(hours=1), care.nurse.id)]).result()
    (alert,) = db.execute("SELECT id FROM alerts WHERE patient_id = %s", (patient,)).fetchall()
    # The home nurse has the patient's page open on her phone before the hospital answers.
    from tests.browser.conftest import PHONE

    nurse = open_tab(PHONE)
    nurse.sign_in(care.nurse.username, care.nurse.password)
    nurse.go(f"/nurse/patients/{patient}")
    nurse.page.locator("#orders-list").get_by_text("Ingen instrukser til alarmer.").wait_for()
    nurse.page.evaluate("window.__notReloaded = true")

    console = open_tab()
    console.sign_in(care.specialist.username, care.specialist.password)
    card = console.page.locator(f'#queue li[data-id="{alert["id"]}"]')
    card.get_by_text("Skriv instruks").click()
    next_inr = date.today() + timedelta(days=5)
    card.get_by_label("Instruks til plejen").fill("Spring én dosis over, derefter ny ugedosis")
    card.get_by_label("Ny ugedosis (mg)").fill("32,5")
    card.get_by_label("Næste INR-måling").fill(next_inr.isoformat())
    console.assert_accessible()
    # No weekly dose on record yet: the dose is read back before it can be sent.
    card.get_by_role("button", name="Send instruks").click()
    readback = card.locator("[data-readback]")
    readback.wait_for()
    assert "Nuværende ugedosis: ingen på journalen" in readback.inner_text()
    assert "Ny ugedosis: 32,5 mg om ugen = 13 tabletter Marevan 2,5 mg om ugen" in (
        readback.inner_text()
    )
    assert (
        db.execute(
            "SELECT count(*) AS n FROM instructions WHERE alert_id = %s", (alert["id"],)
        ).fetchone()["n"]
        == 0
    )
    card.get_by_label("Jeg har læst dosis op og bekræfter den").check()
    console.assert_accessible()
    # The queue's redraw after sending is held back, so the card is opened again before it: the
    # form must be empty and usable, not keep the sent text (a resend) or a disabled button.
    held = []

    def queue_fetch(url):
        return "/api/v1/alerts?state=unresolved" in url

    console.page.route(queue_fetch, lambda route: held.append(route))
    card.get_by_role("button", name="Bekræft og send").click()
    console.page.get_by_text("Instruksen er sendt.").wait_for()
    (written,) = db.execute(
        "SELECT text, fields FROM instructions WHERE alert_id = %s", (alert["id"],)
    ).fetchall()
    dose = written["fields"].pop("dose")
    assert written["fields"] == {"program": "ak", "weekly_dose_mg": 32.5,
                                 "next_inr_date": next_inr.isoformat()}  # fmt: skip
    assert dose["confirmed"] is True and dose["reasons"] == ["no_current_dose"]
    # An empty instruction is refused in the page, before any request.
    card.get_by_text("Skriv instruks").click()
    card.get_by_role("button", name="Send instruks").click()
    console.page.get_by_text("Skriv instruksen.").wait_for()
    assert card.get_by_label("Instruks til plejen").input_value() == ""
    count = db.execute("SELECT count(*) AS n FROM instructions WHERE alert_id = %s", (alert["id"],))
    assert count.fetchone()["n"] == 1
    assert held, "the queue was not fetched again after the instruction was sent"
    for route in held:
        route.continue_()
    console.page.unroute(queue_fetch)
    console.assert_no_script_errors()

    # It appears on the nurse's open page without a reload, and she confirms it was carried out.
    order = nurse.page.locator("#orders-list li[data-instruction]")
    order.wait_for()
    assert nurse.page.evaluate("window.__notReloaded") is True
    text = order.inner_text()
    assert "Spring én dosis over, derefter ny ugedosis" in text
    assert "Ny ugedosis: 32,5 mg om ugen" in text and next_inr.isoformat() in text
    assert "= 13 tabletter Marevan 2,5 mg om ugen" in text
    assert "Læst op og bekræftet af lægen" in text
    nurse.assert_accessible()
    order.get_by_role("button", name="Udført").click()
    order.get_by_text("Udført af").wait_for()
    nurse.screenshot("nurse-orders")
    confirmed = db.execute(
        "SELECT c.kind, c.user_id FROM instruction_confirmations c JOIN instructions i"
        " ON i.id = c.instruction_id WHERE i.alert_id = %s",
        (alert["id"],),
    ).fetchall()
    assert confirmed == [{"kind": "carried_out", "user_id": care.nurse.id}]
    nurse.assert_no_script_errors()
