"""The worker fleet through the real broker: one process per slot, and retiring a slot whose
worker is gone for good without losing or doubling a reading."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from telemed.settings import REPO_ROOT, Settings
from tests.mqtt_helpers import DeviceLink, IngestRig, message, open_rig, wait_for


@pytest.fixture
def rig(db, settings, service_env, factory) -> Iterator[IngestRig]:
    with open_rig(db, settings, service_env, factory) as r:
        yield r


def telemed(rig: IngestRig, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telemed.cli", *args],
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
        [sys.executable, "-m", "telemed.cli", "ingest", "--slot", "0"],
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
    from tests.test_ingest_faults import _restart_postgres

    worker = rig.start(0)
    _restart_postgres(service_env, lambda: None)
    wait_for(lambda: worker.saw("slot 0's lock taken again"), timeout=60, what="the lock again")
    second = telemed(rig, "ingest", "--slot", "0")
    assert second.returncode == 3, second.stderr
    assert worker.alive
    listed = json.loads(telemed(rig, "ingest", "slots", "--json").stdout)
    assert [r["state"] for r in listed if r["client_prefix"] == rig.prefix] == ["running"]
