"""The pages say when an alert was raised by a reading that came late (measured, received), on
the console's queue and patient page and beside the instruction on the nurse's page, and what
an `alerting:failed` alert is about."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from psycopg.types.json import Jsonb

from tests.alert_helpers import ago, row, store
from tests.browser.conftest import PHONE

pytestmark = pytest.mark.slow


def _store(db_dsn: str, rows: list) -> None:
    # In a thread of its own: Playwright's event loop runs in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(store, db_dsn, rows).result()


def test_late_and_failed_alerts_say_so_on_the_pages(open_tab, care, db, db_dsn):
    nurse_id = care.nurse.id
    _store(db_dsn, [row(care.patient, "spo2", 85, ago(hours=30), nurse_id)])
    (late,) = db.execute(
        "SELECT id FROM alerts WHERE patient_id = %s AND rule_key = 'absolute:spo2'",
        (care.patient,),
    ).fetchall()
    db.execute(
        "INSERT INTO instructions (patient_id, alert_id, author_id, author_org_id, text) "
        "VALUES (%s, %s, %s, %s, 'Ring til patienten')",
        (care.patient, late["id"], care.specialist.id, care.hospital),
    )
    # A stored override no page would write: the weight rule runs at its default, and says so.
    db.execute(
        "INSERT INTO threshold_overrides (patient_id, rule_key, field, value, set_by, reason) "
        "VALUES (%s, 'change:weight', 'delta', %s, %s, 'written past the API')",
        (care.patient, Jsonb("two"), care.specialist.id),
    )
    _store(db_dsn, [row(care.patient, "weight", 81, ago(minutes=2), nurse_id)])
    (failed,) = db.execute(
        "SELECT id FROM alerts WHERE patient_id = %s AND rule_key = 'alerting:failed'",
        (care.patient,),
    ).fetchall()

    console = open_tab()
    console.sign_in(care.specialist.username, care.specialist.password)
    console.page.locator("#queue[aria-busy]").wait_for(state="detached")
    card = console.page.locator(f'#queue li[data-id="{late["id"]}"]')
    text = card.inner_text()
    assert "Målingen kom sent: målt" in text and "modtaget" in text, text
    card = console.page.locator(f'#queue li[data-id="{failed["id"]}"]')
    text = card.inner_text()
    assert "Alarmering fejlede" in text, text
    assert "Regel change:weight: vurderet efter programmets standard" in text, text
    console.assert_accessible()
    console.go(f"/console/patients/{care.patient}")
    alerts = console.page.locator("#patient-alerts li").filter(has_text="Målingen kom sent")
    alerts.first.wait_for()
    console.assert_no_script_errors()

    nurse = open_tab(PHONE)
    nurse.sign_in(care.nurse.username, care.nurse.password)
    nurse.go(f"/nurse/patients/{care.patient}")
    order = nurse.page.locator("#orders-list li[data-instruction]")
    order.wait_for()
    assert "Målingen kom sent: målt" in order.inner_text()
    nurse.assert_accessible()
    nurse.assert_no_script_errors()
