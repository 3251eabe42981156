"""The worker fleet through the real broker: one process per slot, and retiring a slot whose
worker is gone for good without losing or doubling a reading."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from telemed.settings import REPO_ROOT, Settings
from tests.mqtt_helpers import (
    DeviceLink,
    IngestRig,
    message,
    restart_postgres,
    wait_for,
)


def telemed(rig: IngestRig, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=rig.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def session_present(settings: Settings, client_id: str) -> bool:
    """Whether the broker holds a session under `client_id` (a connect with clean start off;
    Session Expiry 0, so that the look leaves nothing behind)."""
    found: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(settings.ingest_username, settings.ingest_password)
    client.on_connect = lambda c, u, flags, rc, p: found.append(bool(flags.session_present))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    try:
        wait_for(lambda: found, timeout=10, what="CONNACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return found[0]


class Publisher:
    """Publishes uniquely numbered readings from a device until stopped, each acknowledged."""

    def __init__(self, link: DeviceLink, run: str, *, chunk: int = 100, pause_s: float = 0.05):
        self.link = link
        self.run = run
        self.ids: list[str] = []
        self.chunk = chunk
        self.pause_s = pause_s
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                ids = [f"{self.run}-{len(self.ids) + i:06d}" for i in range(self.chunk)]
                self.link.publish_many([message(i) for i in ids])
                self.ids += ids
                time.sleep(self.pause_s)
        except BaseException as exc:
            self._error = exc

    def start(self) -> Publisher:
        self._thread.start()
        return self

    def wait_for(self, n: int) -> None:
        wait_for(lambda: len(self.ids) >= n or self._error, timeout=60, what=f"{n} published")

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(60)
        assert self._error is None, self._error
        return self.ids


def stored_ids(rig: IngestRig, device_id: str) -> list[str]:
    rows = rig.db.execute(
        "SELECT message_id FROM readings WHERE device_id = %s", (device_id,)
    ).fetchall()
    return sorted(r["message_id"] for r in rows)


def test_retiring_dead_slots_while_devices_publish_stores_every_reading_exactly_once(
    rig: IngestRig,
) -> None:
    device = rig.device()
    workers = [rig.start(slot, "--batch-size", "200", "--batch-ms", "20") for slot in range(4)]
    link = rig.link(device)
    publisher = Publisher(link, uuid.uuid4().hex[:6]).start()
    handed = []
    for slot in (1, 2, 3):
        publisher.wait_for(len(publisher.ids) + 600)
        workers[slot].kill()  # gone for good, with messages in flight and its session kept
        publisher.wait_for(len(publisher.ids) + 600)  # a share of these waits in its session
        # Slot 2 with a small Receive Maximum: most of its queue waits behind the messages in
        # flight and is released only by the acknowledgements.
        small = ["--batch-size", "20"] if slot == 2 else []
        done = telemed(rig, "ingest", *small, "retire-slot", str(slot))
        assert done.returncode == 0, done.stderr + done.stdout
        assert f"retired {rig.prefix}-{slot}:" in done.stdout, done.stdout
        # The first connection's acknowledgements were all applied before its DISCONNECT: the
        # checking connection got none of its messages again.
        assert "handed over on connection 2" not in done.stderr, done.stderr
        handed.append(int(done.stdout.split(": ")[1].split(" messages")[0]))
    publisher.wait_for(len(publisher.ids) + 600)  # and afterwards, to slot 0 alone
    ids = publisher.stop()
    wait_for(lambda: len(stored_ids(rig, device.device_id)) >= len(ids), timeout=90,
             what=f"{len(ids)} readings")  # fmt: skip
    assert stored_ids(rig, device.device_id) == sorted(ids)
    assert all(n > 0 for n in handed), handed  # each retired slot had readings waiting
    for slot in (1, 2, 3):
        assert not session_present(rig.settings, f"{rig.prefix}-{slot}")
    assert workers[0].alive
    listed = json.loads(telemed(rig, "ingest", "slots", "--json").stdout)
    states = {r["slot"]: r["state"] for r in listed if r["client_prefix"] == rig.prefix}
    assert states == {0: "running", 1: "retired", 2: "retired", 3: "retired"}


def test_a_slot_runs_in_one_process_only(rig: IngestRig) -> None:
    first = rig.start(0)
    second = subprocess.run(
        [sys.executable, "-m", "app.cli", "ingest", "--slot", "0"],
        env=rig.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 3, second.stderr
    assert f"slot 0 ({rig.prefix}-0) is already running" in second.stderr
    assert "refusing to run it twice" in second.stderr
    assert first.alive and not first.saw("took over the session")


def test_retire_slot_refuses_a_running_slot_and_a_group_without_other_members(
    rig: IngestRig,
) -> None:
    device = rig.device()
    rig.start(0)
    w1 = rig.start(1)
    link = rig.link(device)
    running = telemed(rig, "ingest", "retire-slot", "1")
    assert running.returncode == 3
    assert "is already running" in running.stderr and "stop it before" in running.stderr
    w1.stop()
    rig.workers[0].stop()
    ids = [f"{uuid.uuid4().hex[:6]}-{i}" for i in range(200)]
    link.publish_many([message(i) for i in ids])  # queued in both sessions
    alone = telemed(rig, "ingest", "retire-slot", "1")
    assert alone.returncode == 3
    assert "no other worker of the share group" in alone.stderr
    # Nothing was lost by refusing: both slots back, every reading stored once.
    rig.start(0)
    rig.start(1)
    wait_for(lambda: len(stored_ids(rig, device.device_id)) >= len(ids), what="the readings")
    assert stored_ids(rig, device.device_id) == sorted(ids)


def test_a_slot_keeps_its_lock_across_a_database_restart(
    rig: IngestRig, service_env: dict[str, str]
) -> None:
    worker = rig.start(0)
    restart_postgres(service_env, lambda: None)
    wait_for(lambda: worker.saw("slot 0's lock taken again"), timeout=60, what="the lock again")
    second = telemed(rig, "ingest", "--slot", "0")
    assert second.returncode == 3, second.stderr
    assert worker.alive
    listed = json.loads(telemed(rig, "ingest", "slots", "--json").stdout)
    assert [r["state"] for r in listed if r["client_prefix"] == rig.prefix] == ["running"]


class Member:
    """A raw member of a shared subscription on the ingest account, acknowledging by hand."""

    def __init__(self, settings: Settings, client_id: str, share: str, *, expiry: int) -> None:
        self.settings = settings
        self.share = share
        self.expiry = expiry
        self.got: list[tuple[int, str]] = []  # (mid, message id)
        self.unsubacks: list[int] = []
        self.present: bool | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(settings.ingest_username, settings.ingest_password)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._connected
        self.client.on_message = lambda c, u, m: self.got.append(
            (m.mid, json.loads(m.payload)["message_id"])
        )
        self.client.on_unsubscribe = lambda c, u, mid, rc, p: self.unsubacks.append(mid)

    def _connected(self, client: mqtt.Client, u: object, flags, rc, p) -> None:
        self.present = bool(flags.session_present)

    def connect(self, *, subscribe: bool, receive_maximum: int = 65535) -> Member:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.expiry
        props.ReceiveMaximum = receive_maximum
        self.present = None
        self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port, clean_start=False,
                            properties=props)  # fmt: skip
        self.client.loop_start()
        wait_for(lambda: self.present is not None, what="CONNACK")
        if subscribe:
            self.client.subscribe(self.share, qos=1)
            time.sleep(0.3)
        return self

    def ack_all(self) -> None:
        for mid, _ in self.got:
            self.client.ack(mid, 1)

    def barrier(self) -> None:
        before = len(self.unsubacks)
        self.client.unsubscribe(self.share)
        wait_for(lambda: len(self.unsubacks) > before, what="UNSUBACK")

    def vanish(self) -> None:
        self.client.loop_stop()
        self.client.socket().close()

    def end(self) -> None:
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        time.sleep(0.2)
        self.client.loop_stop()


def test_the_broker_behaves_as_retire_slot_assumes(rig: IngestRig) -> None:
    """Mosquitto 2.0.11, measured: what docs/ingest.md and ingest/retire.py rely on."""
    device = rig.device()
    link = rig.link(device)
    tag = uuid.uuid4().hex[:6]
    share = f"$share/t{tag}/telemed/v1/devices/+/readings"
    a = Member(rig.settings, f"test-ingest-{tag}-a", share, expiry=600).connect(subscribe=True)
    b = Member(rig.settings, f"test-ingest-{tag}-b", share, expiry=600).connect(subscribe=True)
    a.client.manual_ack_set(False)
    b.vanish()  # down, session kept
    first = [f"{tag}-1-{i:03d}" for i in range(200)]
    link.publish_many([message(i) for i in first])
    # 1. A member that is down keeps being assigned its share, queued in its session.
    wait_for(lambda: len(a.got) >= 100, what="a's share")
    time.sleep(0.5)
    assert len(a.got) == 100
    # 2. Resumed with clean start off and a small Receive Maximum, unsubscribed at once: it
    # gets what is queued, and nothing published after the UNSUBACK.
    b = Member(rig.settings, f"test-ingest-{tag}-b", share, expiry=600)
    b.connect(subscribe=False, receive_maximum=10)
    assert b.present is True
    b.barrier()
    assert len(b.got) == 10  # as many as the Receive Maximum allows
    later = [f"{tag}-2-{i:03d}" for i in range(100)]
    link.publish_many([message(i) for i in later])
    wait_for(lambda: len(a.got) == 200, what="every later message to a")
    # 3. Acknowledging releases more of the queue before the barrier's UNSUBACK; a barrier
    # after which nothing new arrived means the queue is empty.
    rounds = 0
    while True:
        rounds += 1
        seen = len(b.got)
        b.ack_all()
        b.barrier()
        if len(b.got) == seen:
            break
    assert rounds >= 2 and len(b.got) == 100
    assert sorted(i for _, i in a.got + b.got) == sorted(first + later)
    # 4. Ending the session (expiry 0 on DISCONNECT) leaves no session under the id.
    b.end()
    assert not session_present(rig.settings, f"test-ingest-{tag}-b")
    # 5. A session that expires takes what was queued in it along.
    c = Member(rig.settings, f"test-ingest-{tag}-c", share, expiry=2).connect(subscribe=True)
    c.vanish()
    a.got.clear()
    lost = [f"{tag}-3-{i:03d}" for i in range(100)]
    link.publish_many([message(i) for i in lost])
    time.sleep(3.5)
    c = Member(rig.settings, f"test-ingest-{tag}-c", share, expiry=2).connect(subscribe=False)
    c.barrier()
    assert c.present is False and c.got == [] and len(a.got) == 50  # 50 readings gone
    c.end()
    a.end()


def test_the_broker_is_the_version_these_measurements_were_taken_on() -> None:
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    assert version.splitlines()[0] == "mosquitto version 2.0.11", (
        "another Mosquitto: run tests/test_fleet.py, check that retire-slot's barrier still "
        "holds (docs/ingest.md, Shrinking the fleet), and update the version here"
    )
