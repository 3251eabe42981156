"""The ingest worker as a real process between the test broker and the test database."""

from __future__ import annotations

import json
import re
import socket
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt._packet as paho_packet
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest import paho_fast
from ingest.batch import DeviceInfo, Incoming, build
from telemed.device_contract import readings_topic, status_topic
from tests.mqtt_helpers import Ingest, IngestRig, message, remaining_length, wait_for


@pytest.fixture
def ingest(rig: IngestRig) -> Ingest:
    return Ingest(rig)


def test_a_published_reading_is_stored_in_canonical_units(ingest: Ingest) -> None:
    payload = message(
        "kit:0001",
        [("spo2", 93, "%"), ("pulse", 88, "bpm"), ("fev1", 1450, "mL"), ("cat", 18, "{score}")],
    )
    # CAT with its answers, which the stored reading keeps.
    payload = payload.replace(
        b'"unit": "{score}"}', b'"unit": "{score}", "items": [2, 3, 1, 4, 5, 0, 2, 1]}'
    )
    assert ingest.link.publish(payload).value == 0
    rows = wait_for(lambda: len(ingest.rig.readings(ingest.device_id)) == 4 and
                    ingest.rig.readings(ingest.device_id), what="4 readings")  # fmt: skip
    by_metric = {r["metric"]: r for r in rows}
    assert {m: (r["value"], r["unit"]) for m, r in by_metric.items()} == {
        "spo2": (93, "%"),
        "pulse": (88, "/min"),
        "fev1": (1.45, "L"),
        "cat": (18, "{score}"),
    }
    for r in rows:
        assert r["patient_id"] == ingest.device.patient_id
        assert (r["source"], r["origin"], r["device_id"]) == ("device", ingest.device_id,
                                                               ingest.device_id)  # fmt: skip
        assert r["message_id"] == "kit:0001"
    assert by_metric["fev1"]["detail"] == {"original_value": 1450, "original_unit": "mL"}
    assert by_metric["pulse"]["detail"] == {"original_value": 88, "original_unit": "bpm"}
    assert by_metric["cat"]["detail"] == {"items": [2, 3, 1, 4, 5, 0, 2, 1]}
    assert by_metric["spo2"]["detail"] is None
    assert ingest.rig.rejections(ingest.device_id) == []


def test_the_same_message_twice_is_stored_once(ingest: Ingest) -> None:
    payload = message("kit:dup", [("spo2", 95, "%"), ("pulse", 70, "/min")])
    assert ingest.link.publish(payload).value == 0
    assert ingest.link.publish(payload).value == 0
    marker = message("kit:after", [("spo2", 96, "%")])
    assert ingest.link.publish(marker).value == 0
    wait_for(lambda: any(r["message_id"] == "kit:after" for r in ingest.rig.readings(
        ingest.device_id)), what="the marker")  # fmt: skip
    rows = ingest.rig.readings(ingest.device_id)
    assert sorted((r["message_id"], r["metric"]) for r in rows) == [
        ("kit:after", "spo2"),
        ("kit:dup", "pulse"),
        ("kit:dup", "spo2"),
    ]
    assert ingest.rig.rejections(ingest.device_id) == []
    # Other devices on the shared test broker may add messages (and rejections) of their own.
    summary = ingest.worker.stop()
    assert re.fullmatch(r"stopped: \d+ messages, 3 readings stored, \d+ rejected, 0 in flight",
                        summary), summary  # fmt: skip


def test_a_device_status_and_its_last_will_are_recorded(rig: IngestRig) -> None:
    device = rig.device()
    rig.start(0)
    link = rig.link(device, will=True)
    topic = status_topic(device.device_id)
    assert link.publish(b'{"state": "online", "battery": 76}', topic=topic).value == 0

    def status() -> dict | None:
        return rig.db.execute(
            "SELECT * FROM device_status WHERE device_id = %s", (device.device_id,)
        ).fetchone()

    first = wait_for(lambda: (s := status()) and s["state"] == "online" and s, what="online")
    assert first["battery"] == 76
    link.drop()
    last = wait_for(lambda: (s := status()) and s["state"] == "offline" and s, what="the will")
    assert last["battery"] is None and last["at"] >= first["at"]


def test_two_workers_split_a_stream_and_store_everything_once(rig: IngestRig) -> None:
    device = rig.device()
    w0, w1 = rig.start(0), rig.start(1)
    link = rig.link(device)
    run = uuid.uuid4().hex[:6]
    ids = [f"{run}-{i}" for i in range(2000)]
    link.publish_many([message(i) for i in ids])
    wait_for(lambda: rig.count(device.device_id) == len(ids), what="2000 readings")
    stored = [r["message_id"] for r in rig.readings(device.device_id)]
    assert sorted(stored) == sorted(ids)
    # Readings stored, not messages: other devices on the shared test broker send too.
    counts = [_stored(w.stop()) for w in (w0, w1)]
    assert sum(counts) == len(ids)
    assert all(c > len(ids) // 4 for c in counts), counts


def test_a_member_that_dies_for_good_strands_its_share_until_its_slot_returns(
    rig: IngestRig,
) -> None:
    device = rig.device()
    rig.start(0)
    w1 = rig.start(1)
    link = rig.link(device)
    w1.kill()
    run = uuid.uuid4().hex[:6]
    ids = [f"{run}-{i}" for i in range(400)]
    link.publish_many([message(i) for i in ids])
    # Mosquitto 2.0.11 keeps assigning a share to the dead member's persistent session.
    wait_for(lambda: rig.count(device.device_id) >= 100, what="slot 0's share")
    stable = _settled(lambda: rig.count(device.device_id))
    assert 100 <= stable < len(ids), stable
    rig.start(1)
    wait_for(lambda: rig.count(device.device_id) == len(ids), what="the stranded share")
    assert sorted(r["message_id"] for r in rig.readings(device.device_id)) == sorted(ids)


def _stored(summary: str) -> int:
    match = re.match(r"stopped: \d+ messages, (\d+) readings stored", summary)
    assert match, summary
    return int(match[1])


def _settled(read: object, quiet_s: float = 1.0) -> int:
    import time

    assert callable(read)
    value, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = read()
        if now != value:
            value, since = now, time.monotonic()
    return value


publish_properties = st.fixed_dictionaries(
    {},
    optional={
        "PayloadFormatIndicator": st.integers(0, 1),
        "MessageExpiryInterval": st.integers(0, 2**32 - 1),
        "ContentType": st.text(max_size=30),
        "ResponseTopic": st.text(min_size=1, max_size=30),
        "CorrelationData": st.binary(max_size=30),
        "SubscriptionIdentifier": st.lists(st.integers(1, 268435455), min_size=1, max_size=3),
        "UserProperty": st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)),
                                 min_size=1, max_size=3),
    },
)  # fmt: skip


@given(publish_properties)
def test_the_cheaper_properties_decode_exactly_as_paho_does(values: dict) -> None:
    packed = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(packed, name, value)
    wire = packed.pack() + b"payload"

    def decode(cls: type[Properties]) -> tuple:
        try:
            props, length = cls(PacketTypes.PUBLISH).unpack(wire)
        except Exception as exc:  # paho refuses a NUL in a string, say: so must we
            return (type(exc), str(exc))
        return (props.json(), length, props.pack())

    assert decode(paho_fast.DecodedProperties) == decode(Properties)
    assert paho_fast.install() and paho_fast.install()  # idempotent


def _publish_packet(topic: bytes, qos: int, mid: int, props: Properties, payload: bytes) -> bytes:
    """A PUBLISH after its fixed header, as the broker sends it."""
    head = len(topic).to_bytes(2, "big") + topic
    return head + (mid.to_bytes(2, "big") if qos else b"") + props.pack() + payload


@given(
    st.text(min_size=1, max_size=40),
    st.sampled_from([0, 1]),
    st.integers(1, 65535),
    publish_properties,
    st.binary(max_size=200),
    st.integers(0, 60),
)
def test_the_lean_publish_parse_reads_what_paho_reads(
    topic: str, qos: int, mid: int, values: dict, payload: bytes, cut: int
) -> None:
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    try:
        packet = _publish_packet(topic.encode(), qos, mid, props, payload)
    except Exception:  # paho will not pack it (a NUL in a string): nothing to compare
        return
    header = 0x30 | qos << 1
    for wire in (packet, packet[:cut]):  # whole, and cut short anywhere near the start
        try:
            ours = paho_fast.parse_publish(header, wire)
        except Exception as exc:
            ours = type(exc)
        try:
            theirs = paho_packet.decode_publish(header, wire, MQTTProtocolVersion.MQTTv5)
        except Exception:
            # paho refuses it, and so does the lean parse (None, or an error): the lean client
            # then hands the packet to paho, which refuses it as before.
            assert not isinstance(ours, tuple), ours
            continue
        if ours is None:
            continue  # handed to paho, which reads it as above
        assert not isinstance(ours, type), ours
        qos_, mid_, topic_, props_, payload_ = ours
        assert (qos_, mid_, topic_, payload_) == (theirs.qos, theirs.mid, theirs.topic,
                                                  theirs.payload)  # fmt: skip
        assert props_.json() == theirs.properties.json()


@given(
    st.lists(st.binary(max_size=3000), min_size=1, max_size=40),
    st.lists(st.integers(1, 9000), min_size=1, max_size=20),
)
def test_the_buffered_socket_read_delivers_every_packet_whatever_the_split(
    payloads: list[bytes], cuts: list[int]
) -> None:
    """LeanClient reads 64 KiB at a time and handles every packet it holds: packets arriving in
    any pieces all come out, in order, and a read leaves nothing in the buffer."""
    client = paho_fast.LeanClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    got: list[tuple[int, str, bytes]] = []
    client.lean_deliver = lambda mid, qos, topic, payload, props: got.append((mid, topic, payload))
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours  # the socket paho's loop would have connected
    wire = b""
    for mid, payload in enumerate(payloads, start=1):
        body = _publish_packet(b"telemed/v1/devices/d-1/readings", 1, mid,
                               Properties(PacketTypes.PUBLISH), payload)  # fmt: skip
        wire += bytes([0x32]) + remaining_length(len(body)) + body
    try:
        at, i = 0, 0
        while at < len(wire):
            piece = wire[at : at + cuts[i % len(cuts)]]
            broker.sendall(piece)
            at, i = at + len(piece), i + 1
            assert client.loop_read() == 0
            assert client._rpos >= len(client._rbuf)  # the next select may wait safely
    finally:
        ours.close()
        broker.close()
    assert got == [(mid, "telemed/v1/devices/d-1/readings", payload)
                   for mid, payload in enumerate(payloads, start=1)]  # fmt: skip


# --- batch building, without broker or database ---------------------------------------------

PATIENT = uuid.UUID(int=7)


def _incoming(mid: int, topic: str, payload: bytes, content_type: str | None = None) -> Incoming:
    return Incoming(mid, 1, topic, payload, content_type, 1)


def test_a_batch_splits_into_rows_rejections_and_statuses() -> None:
    now = datetime.now(UTC)
    registry = {
        "dev-good": DeviceInfo(PATIENT, True),
        "dev-gone": DeviceInfo(PATIENT, False, now - timedelta(days=1)),
    }
    topic = readings_topic("dev-good")
    batch = [
        _incoming(1, topic, message("m1", [("spo2", 0.93, "{fraction}"), ("glucose", 5, "x")])),
        _incoming(2, topic, b"not json"),
        _incoming(3, readings_topic("dev-gone"), message("m3")),
        _incoming(4, readings_topic("dev-unknown"), message("m4")),
        _incoming(5, status_topic("dev-good"), b'{"state": "online", "battery": 50}'),
        _incoming(6, "telemed/v1/elsewhere", b"{}"),
    ]
    work = build(batch, registry.get, now)
    assert [(r.message_id, r.metric, r.value, r.detail) for r in work.rows] == [
        ("m1", "spo2", 93.0, {"original_value": 0.93, "original_unit": "{fraction}"})
    ]
    assert all(r.patient_id == PATIENT and r.origin == "dev-good" for r in work.rows)
    reasons = [(i, r[2], r[3], r[4], r[5].split(":")[0]) for i, r in
               zip(work.rejection_msg, work.rejections, strict=True)]  # fmt: skip
    assert reasons == [
        (0, "dev-good", "m1", 1, "readings[1].type"),
        (1, "dev-good", None, None, "payload"),
        (2, "dev-gone", None, None, "device"),
        (3, "dev-unknown", None, None, "device"),
        (5, None, None, None, "topic"),
    ]
    assert "was revoked at" in work.rejections[2][5]
    assert "is not registered" in work.rejections[3][5]
    assert json.loads(work.rejections[0][6]) == {"type": "glucose", "value": 5.0, "unit": "x"}
    assert work.rejections[1][6] == b"not json" and work.rejections[1][7] == 8
    assert work.statuses == [("dev-good", "online", 50.0, None, now)]
    parts = work.by_message()
    assert sorted(parts) == [0, 1, 2, 3, 4, 5]
    assert len(parts[0].rows) == 1 and len(parts[0].rejections) == 1
    assert parts[4].statuses == work.statuses and not parts[4].rows
