"""Faults: a worker killed with messages in flight, the database restarting, devices that
speak for others or were revoked, and every kind of malformed message."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import psycopg

from devices.broker import sync_broker
from devices.provisioning import revoke
from telemed.device_contract import readings_topic
from tests.mqtt_helpers import (
    DeviceLink,
    IngestRig,
    IngestWorker,
    message,
    restart_postgres,
    wait_for,
)


def _ids(rig: IngestRig, device_id: str) -> list[str]:
    rows = rig.db.execute(
        "SELECT message_id FROM readings WHERE device_id = %s", (device_id,)
    ).fetchall()
    return sorted(r["message_id"] for r in rows)


def test_kill_9_with_messages_in_flight_then_the_same_slot_stores_exactly_the_set(
    rig: IngestRig,
) -> None:
    device = rig.device()
    worker = rig.start(0, "--batch-size", "200", "--batch-ms", "20")
    link = rig.link(device)
    run = uuid.uuid4().hex[:6]
    ids = [f"{run}-{i:05d}" for i in range(5000)]
    link.publish_many([message(i) for i in ids[:3000]])
    wait_for(lambda: rig.count(device.device_id) > 0, what="a first committed batch")
    worker.kill()
    at_kill = rig.count(device.device_id)
    assert at_kill < 3000, "nothing was in flight; the test proves nothing"
    link.publish_many([message(i) for i in ids[3000:]])  # queued for the dead slot
    rig.start(0)
    wait_for(lambda: rig.count(device.device_id) >= len(ids), timeout=60, what="all readings")
    assert _ids(rig, device.device_id) == ids


def test_the_database_restarting_while_devices_publish_loses_nothing(
    rig: IngestRig, service_env: dict[str, str], settings
) -> None:
    device = rig.device()
    worker = rig.start(0, "--batch-size", "100")
    link = rig.link(device)
    run = uuid.uuid4().hex[:6]
    ids = [f"{run}-{i:04d}" for i in range(1500)]
    link.publish_many([message(i) for i in ids[:500]])
    wait_for(lambda: rig.count(device.device_id) == 500, what="the first 500")

    def while_down() -> None:
        link.publish_many([message(i) for i in ids[500:]])
        wait_for(lambda: worker.saw("database unavailable"), what="the worker to notice")
        assert worker.alive

    restart_postgres(service_env, while_down)
    with psycopg.connect(settings.dsn, autocommit=True) as conn:

        def stored() -> list[str]:
            rows = conn.execute(
                "SELECT message_id FROM readings WHERE device_id = %s", (device.device_id,)
            ).fetchall()
            return sorted(r[0] for r in rows)

        wait_for(lambda: len(stored()) >= len(ids), timeout=60, what="every reading")
        assert stored() == ids
    assert worker.alive


def test_a_device_cannot_publish_for_another(rig: IngestRig) -> None:
    mine, other = rig.device(), rig.device()
    rig.start(0)
    link = rig.link(mine)
    refused = link.publish(message("spoof-1"), topic=readings_topic(other.device_id))
    assert refused.getName() == "Not authorized"
    elsewhere = link.publish(message("spoof-2"), topic="telemed/v1/anything")
    assert elsewhere.getName() == "Not authorized"
    assert link.publish(message("own-1")).value == 0
    wait_for(lambda: rig.count(mine.device_id) == 1, what="the device's own reading")
    assert rig.count(other.device_id) == 0
    assert rig.rejections(other.device_id) == []


def test_a_revoked_device_is_locked_out_and_its_queued_messages_rejected(rig: IngestRig) -> None:
    device = rig.device()
    worker = rig.start(0)
    link = rig.link(device)
    assert link.publish(message("before")).value == 0
    wait_for(lambda: rig.count(device.device_id) == 1, what="the first reading")
    worker.stop()
    assert link.publish(message("queued")).value == 0  # waits in the worker's session
    revoke(rig.db, device.device_id)
    sync_broker(rig.db, rig.settings)
    wait_for(lambda: link.disconnects, what="the broker to drop the revoked device")
    late = DeviceLink(rig.settings, device.device_id, device.password)
    assert late.connect(retry_refused_s=0).getName() == "Not authorized"
    rig.start(0)
    rejected = wait_for(lambda: rig.rejections(device.device_id), what="the queued message")
    assert [r["reason"] for r in rejected] == [f"device: {device.device_id} was revoked at "
                                              f"{_revoked_at(rig, device.device_id)}"]  # fmt: skip
    assert json.loads(bytes(rejected[0]["raw"]))["message_id"] == "queued"
    assert rig.count(device.device_id) == 1


def _revoked_at(rig: IngestRig, device_id: str) -> str:
    row = rig.db.execute("SELECT revoked_at FROM devices WHERE id = %s", (device_id,)).fetchone()
    return row["revoked_at"].isoformat()


def _msgpack(message_id: str, value: float) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=2)
    return msgspec.msgpack.encode(
        {
            "message_id": message_id,
            "measured_at": at,
            "readings": [{"type": "spo2", "value": value, "unit": "%"}],
        }
    )


def _raw_json(message_id: str, value_text: str, at: str | None = None) -> bytes:
    at = at or (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    return (
        f'{{"message_id": "{message_id}", "measured_at": "{at}", '
        f'"readings": [{{"type": "spo2", "value": {value_text}, "unit": "%"}}]}}'
    ).encode()


def _cases() -> list[tuple[str, bytes, str | None, int | None, str]]:
    """(message id, payload, content type, reading index or None for the whole, reason part)"""
    now = datetime.now(UTC)
    padded = json.loads(message("big"))
    padded["padding"] = "x" * 70_000
    return [
        ("bad-json", b'{"message_id": "bad-json", "measured_at": ', None, None,
         "payload: not valid JSON"),
        ("wrong-type", json.dumps({"message_id": 5, "measured_at": now.isoformat(),
                                   "readings": []}).encode(), None, None,
         "message_id: expected str, got int"),
        ("json-nan", _raw_json("json-nan", "NaN"), None, None, "payload: not valid JSON"),
        ("json-inf", _raw_json("json-inf", "Infinity"), None, None, "payload: not valid JSON"),
        ("mp-nan", _msgpack("mp-nan", math.nan), "application/msgpack", 0,
         "readings[0].value: NaN is not a measurement"),
        ("mp-inf", _msgpack("mp-inf", math.inf), "application/msgpack", 0,
         "readings[0].value: inf is not a finite number"),
        ("unknown", message("unknown", [("spo2", 94, "%"), ("glucose", 5.5, "mmol/L")]), None, 1,
         "readings[1].type: unknown metric 'glucose'"),
        ("unit", message("unit", [("spo2", 94, "mmHg")]), None, 0,
         "readings[0].unit: 'mmHg' is not an accepted unit for spo2"),
        ("impossible", message("impossible", [("spo2", 130, "%")]), None, 0,
         "readings[0].value: 130 % is outside the plausible range 50–100 % for spo2"),
        ("naive", _raw_json("naive", "94", at="2026-11-30T08:42:10"), None, None,
         "measured_at: timestamp has no UTC offset"),
        ("future", message("future", measured_at=now + timedelta(days=1)), None, None,
         "in the future (limit 5 min)"),
        ("big", json.dumps(padded).encode(), None, None, "is over the limit of 65536 bytes"),
    ]  # fmt: skip


def test_each_malformed_message_is_rejected_with_its_reason_and_never_redelivered(
    rig: IngestRig, client, care
) -> None:
    device = rig.device()
    worker = rig.start(0)
    link = rig.link(device)
    cases = _cases()
    for _, payload, content_type, _, _ in cases:
        assert link.publish(payload, content_type=content_type).value == 0
    rows = wait_for(lambda: (r := rig.rejections(device.device_id)) and len(r) >= len(cases)
                    and r, what="every rejection")  # fmt: skip
    assert len(rows) == len(cases)
    for message_id, payload, content_type, index, reason in cases:
        if index is None:
            (row,) = [r for r in rows if bytes(r["raw"]) == payload]
            assert row["message_id"] is None
        else:
            (row,) = [r for r in rows if r["message_id"] == message_id]
            assert json.loads(bytes(row["raw"]))["type"] in ("spo2", "glucose")
        assert (row["reading_index"], row["payload_size"], row["content_type"]) == (
            index,
            len(payload),
            content_type,
        )
        assert reason in row["reason"], (message_id, row["reason"])
        assert row["topic"] == readings_topic(device.device_id)
    # The good reading beside the unknown metric is stored.
    assert _ids(rig, device.device_id) == ["unknown"]
    # Every one was acknowledged: after a restart the broker has nothing to redeliver.
    worker.stop()
    rig.start(0)
    assert link.publish(message("sentinel")).value == 0
    wait_for(lambda: "sentinel" in _ids(rig, device.device_id), what="the sentinel")
    assert len(rig.rejections(device.device_id)) == len(cases)
    listed = client.get(
        "/api/v1/admin/rejected-messages",
        params={"device_id": device.device_id},
        headers=care.admin.headers,
    )
    assert listed.status_code == 200, listed.text
    assert sorted(r["reason"] for r in listed.json()) == sorted(r["reason"] for r in rows)


def test_a_message_the_database_cannot_hold_is_rejected_and_its_batch_stored(
    rig: IngestRig,
) -> None:
    device = rig.device()
    rig.start(0, "--batch-ms", "300")
    link = rig.link(device)
    # Valid by the contract, and PostgreSQL stores it, but it is 31 December of year 0 in UTC,
    # which no Python datetime can hold when the row comes back.
    year_zero = _raw_json("year-zero", "94", at="0001-01-01T00:30:00+01:00")
    assert link.publish(message("good-1")).value == 0
    assert link.publish(year_zero).value == 0
    assert link.publish(message("good-2")).value == 0
    wait_for(lambda: rig.count(device.device_id) == 2 and rig.rejections(device.device_id),
             what="the good readings and the rejection")  # fmt: skip
    assert _ids(rig, device.device_id) == ["good-1", "good-2"]
    (row,) = rig.rejections(device.device_id)
    assert row["reason"].startswith("database: refused the message")
    assert "before year 1" in row["reason"]
    assert bytes(row["raw"]) == year_zero and row["reading_index"] is None


def test_a_refused_login_stops_the_worker_and_says_why(rig: IngestRig) -> None:
    worker = IngestWorker({**rig.env, "TELEMED_INGEST_PASSWORD": "not-the-password"}, 0)
    worker.start(wait=False)
    assert worker.proc is not None
    assert worker.proc.wait(30) == 2
    wait_for(lambda: worker.saw("refused the login"), timeout=5, what="the reason")
    assert worker.saw("stopped: 0 messages, 0 readings stored, 0 rejected, 0 in flight")
