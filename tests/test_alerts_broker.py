"""Alerts from readings that arrive the real way: a provisioned device publishes to the test
broker and ingest worker processes store them, with the rules evaluated in their transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devices.broker import sync_broker
from devices.provisioning import provision
from tests.alert_helpers import alert_by_rule, alerts_of, events_of
from tests.mqtt_helpers import IngestRig, message, wait_for


@pytest.fixture
def broker(db, settings, service_env, factory) -> Iterator[IngestRig]:
    """An ingest rig (test broker, worker processes) torn down after the test."""
    rig = IngestRig(db, settings, service_env, factory)
    try:
        yield rig
    finally:
        rig.close()


def patient_of(rig: IngestRig, device_id: str) -> uuid.UUID:
    found = rig.db.execute("SELECT patient_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    return found["patient_id"]


def test_device_readings_raise_alerts_at_their_measured_time(broker: IngestRig) -> None:
    rig = broker
    kit = rig.device("copd_kit")
    copd = patient_of(rig, kit.device_id)
    ak = rig.factory.patient(rig.factory.org("hospital_department"), program="ak")
    meter = provision(rig.db, patient_id=ak, kind="inr_meter")
    sync_broker(rig.db, rig.settings)
    rig.start(0)
    kit_link, meter_link = rig.link(kit), rig.link(meter)
    now = datetime.now(UTC)
    at = {h: now - timedelta(hours=h) for h in (4, 3, 2, 1)}

    def send(message_id: str, readings: list, hours: int) -> None:
        assert kit_link.publish(message(message_id, readings, measured_at=at[hours])).value == 0

    send("s-1", [("spo2", 86, "%"), ("pulse", 108, "bpm")], 3)
    send("s-2", [("pulse", 105, "bpm")], 2)
    assert meter_link.publish(message("m-1", [("inr", ">8.0", "{INR}")])).value == 0
    spo2 = wait_for(lambda: alert_by_rule(rig.db, copd, "absolute:spo2"), what="the SpO2 alert")
    assert spo2["severity"] == "red" and spo2["first_measured_at"] == at[3]
    inr = wait_for(lambda: alert_by_rule(rig.db, ak, "inr:range"), what="the INR alert")
    assert inr["severity"] == "red" and inr["detail"]["censored"] is True
    # The second yellow pulse makes a sustained alert.
    pulse = wait_for(lambda: alert_by_rule(rig.db, copd, "absolute:pulse"), what="pulse alert")
    assert pulse["severity"] == "yellow" and pulse["count"] == 1 and pulse["last_value"] == 105
    # A late reading, measured before the SpO2 alert began, joins it at its measured time.
    send("s-late", [("spo2", 84, "%")], 4)
    wait_for(lambda: alert_by_rule(rig.db, copd, "absolute:spo2")["count"] == 2, what="merge")
    spo2 = alert_by_rule(rig.db, copd, "absolute:spo2")
    assert spo2["first_measured_at"] == at[4] and spo2["last_measured_at"] == at[3]
    assert spo2["last_value"] == 86
    assert [e["event"] for e in events_of(rig.db, copd)] == ["alert.raised", "alert.raised"]


def test_two_workers_make_one_alert_of_a_flood(broker: IngestRig) -> None:
    rig = broker
    kit = rig.device("copd_kit")
    patient = patient_of(rig, kit.device_id)
    rig.start(0), rig.start(1)
    link = rig.link(kit)
    start = datetime.now(UTC) - timedelta(hours=1)
    flood = [
        message(f"f-{i}", [("spo2", 80 + i % 5, "%")], measured_at=start + timedelta(seconds=i))
        for i in range(300)
    ]
    link.publish_many(flood)
    wait_for(lambda: rig.count(kit.device_id) == len(flood), what="the flood stored")
    alerts = alerts_of(rig.db, patient)
    assert [(a["rule_key"], a["count"]) for a in alerts] == [("absolute:spo2", len(flood))]
    assert alerts[0]["last_measured_at"] == start + timedelta(seconds=len(flood) - 1)
    assert [e["event"] for e in events_of(rig.db, patient)] == ["alert.raised"]
