"""Helpers for tests against the real test broker and an ingest worker subprocess.

Each rig uses its own shared-subscription group and client id prefix, so that workers of
another test (or another test run on the same broker) never take a share of its messages, and
forgets its MQTT sessions at teardown, so that no stopped worker keeps collecting messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.broker import sync_broker
from devices.provisioning import ProvisionedDevice, provision
from telemed.device_contract import OFFLINE_PAYLOAD, readings_topic, status_topic
from telemed.settings import REPO_ROOT, Settings
from tests import services

T = TypeVar("T")


def remaining_length(n: int) -> bytes:
    """MQTT's Remaining Length: `n` in 7-bit groups, low first, the top bit saying more follow."""
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


PG_CTL = str(services.PG_BIN / "pg_ctl")


def wait_for(
    check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


def message(
    message_id: str,
    readings: Sequence[tuple[str, Any, str]] = (("spo2", 94, "%"),),
    *,
    measured_at: datetime | None = None,
) -> bytes:
    at = measured_at or datetime.now(UTC) - timedelta(minutes=1)
    body = {
        "message_id": message_id,
        "measured_at": at.isoformat(),
        "readings": [{"type": t, "value": v, "unit": u} for t, v, u in readings],
    }
    return json.dumps(body).encode()


class DeviceLink:
    """A device's own MQTT v5 connection, with its credentials; its client id is its device id
    (the broker refuses any other) unless `client_id` says otherwise."""

    def __init__(
        self,
        settings: Settings,
        device_id: str,
        password: str,
        *,
        will: bool = False,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id if client_id is None else client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(device_id, password)
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        if will:
            self.client.will_set(status_topic(device_id), OFFLINE_PAYLOAD, qos=1, retain=True)
        self.connack: ReasonCode | None = None
        self.disconnects: list[ReasonCode] = []
        self.acks: dict[int, ReasonCode] = {}
        self.acked = 0
        self.failed: list[ReasonCode] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, p: Any) -> None:
        self.connack = rc

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, rc: ReasonCode, p: Any
    ) -> None:
        self.disconnects.append(rc)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: ReasonCode, p: Any) -> None:
        with self._lock:
            self.acks[mid] = rc
            self.acked += 1
            if rc.is_failure:
                self.failed.append(rc)

    def connect(self, *, retry_refused_s: float = 3.0) -> ReasonCode:
        """Connect and wait for CONNACK. A refusal is retried for a moment, because the broker
        rereads its files a little after the SIGHUP of a sync."""
        deadline = time.monotonic() + retry_refused_s
        while True:
            self.connack = None
            self.client.reconnect_delay_set(1, 1)
            self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
            self.client.loop_start()
            rc = wait_for(lambda: self.connack, timeout=10, what="CONNACK")
            if not rc.is_failure or time.monotonic() > deadline:
                if rc.is_failure:
                    self.close()
                return rc
            self.close()
            time.sleep(0.2)

    def publish(
        self,
        payload: bytes,
        *,
        topic: str | None = None,
        content_type: str | None = None,
        retain: bool = False,
        timeout: float = 10.0,
    ) -> ReasonCode:
        """Publish with QoS 1 and wait for the broker's PUBACK; its reason code."""
        props = None
        if content_type is not None:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = content_type
        info = self.client.publish(
            topic or readings_topic(self.device_id), payload, qos=1, retain=retain, properties=props
        )
        return wait_for(lambda: self.acks.get(info.mid), timeout=timeout, what="PUBACK")

    def publish_many(self, payloads: Sequence[bytes], *, window: int = 5000) -> None:
        """Publish all with QoS 1, at most `window` unacknowledged (paho's packet ids wrap at
        65535), and wait until the broker acknowledged every one."""
        topic = readings_topic(self.device_id)
        start, failed = self.acked, len(self.failed)
        sent = 0
        for payload in payloads:
            while sent - (self.acked - start) >= window:
                time.sleep(0.002)
            self.client.publish(topic, payload, qos=1)
            sent += 1
        wait_for(lambda: self.acked - start >= sent, timeout=60, what=f"{sent} PUBACKs")
        assert len(self.failed) == failed, self.failed[failed:][:3]

    def drop(self) -> None:
        """Vanish without DISCONNECT, as a device out of coverage (the broker sends the will)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class IngestWorker:
    """`python -m app.cli ingest --slot N` as a real process."""

    def __init__(self, env: dict[str, str], slot: int, args: Sequence[str] = ()) -> None:
        self.slot = slot
        self.env = env
        self.args = list(args)
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *, wait: bool = True) -> IngestWorker:
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "ingest", "--slot", str(self.slot), *self.args],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if wait:
            wait_for(lambda: self.saw("subscribed to") or not self.alive, timeout=30,
                     what=f"worker {self.slot} to subscribe")  # fmt: skip
            assert self.alive, self.output()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> str:
        """SIGTERM; wait; the summary line."""
        assert self.proc is not None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        wait_for(lambda: self.summary() is not None, timeout=5, what="the summary line")
        return self.summary() or ""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def summary(self) -> str | None:
        return next((line for line in reversed(self.lines) if line.startswith("stopped: ")), None)


def forget_sessions(settings: Settings, client_ids: Sequence[str]) -> None:
    """Delete the broker's persistent sessions of these client ids (clean start, expiry 0)."""
    for client_id in client_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.username_pw_set(settings.ingest_username, settings.ingest_password)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        try:
            client.connect(
                settings.mqtt_host, settings.mqtt_port, clean_start=True, properties=props
            )
            client.loop_start()
            wait_for(client.is_connected, timeout=5, what="connect to forget a session")
            client.disconnect()
        finally:
            client.loop_stop()


class IngestRig:
    def __init__(self, db: psycopg.Connection, settings: Settings, service_env: dict, factory: Any):
        self.db = db
        self.settings = settings
        self.factory = factory
        tag = uuid.uuid4().hex[:8]
        self.prefix = f"test-ingest-{tag}"
        self.env = {
            **os.environ,
            **service_env,
            "TELEMED_DSN": settings.dsn,
            "TELEMED_MQTT_HOST": settings.mqtt_host,
            "TELEMED_MQTT_PORT": str(settings.mqtt_port),
            "TELEMED_BROKER_DIR": str(settings.broker_dir),
            "TELEMED_INGEST_USERNAME": settings.ingest_username,
            "TELEMED_INGEST_PASSWORD": settings.ingest_password,
            "TELEMED_INGEST_GROUP": f"test-{tag}",
            "TELEMED_INGEST_CLIENT_PREFIX": self.prefix,
            "TELEMED_INGEST_SESSION_EXPIRY_S": "600",
            "TELEMED_INGEST_DEVICE_CACHE_S": "0.2",
        }
        self.workers: dict[int, IngestWorker] = {}
        self.links: list[DeviceLink] = []

    def device(self, kind: str = "copd_kit") -> ProvisionedDevice:
        org = self.factory.org("hospital_department")
        patient = self.factory.patient(org, program="copd")
        device = provision(self.db, patient_id=patient, kind=kind)
        sync_broker(self.db, self.settings)
        return device

    def link(self, device: ProvisionedDevice, *, will: bool = False) -> DeviceLink:
        link = DeviceLink(self.settings, device.device_id, device.password, will=will)
        self.links.append(link)
        rc = link.connect()
        if rc.is_failure:
            # Another test run on this broker may have synced it from its own database.
            sync_broker(self.db, self.settings)
            rc = link.connect()
        assert not rc.is_failure, rc
        return link

    def worker(self, slot: int = 0, *args: str) -> IngestWorker:
        if slot not in self.workers:
            self.workers[slot] = IngestWorker(self.env, slot, args)
        return self.workers[slot]

    def start(self, slot: int = 0, *args: str) -> IngestWorker:
        return self.worker(slot, *args).start()

    def readings(self, device_id: str) -> list[dict]:
        return self.db.execute(
            "SELECT * FROM readings WHERE device_id = %s ORDER BY message_id, metric", (device_id,)
        ).fetchall()

    def count(self, device_id: str) -> int:
        row = self.db.execute(
            "SELECT count(*) AS n FROM readings WHERE device_id = %s", (device_id,)
        ).fetchone()
        return row["n"]

    def rejections(self, device_id: str) -> list[dict]:
        return self.db.execute(
            "SELECT * FROM rejected_messages WHERE device_id = %s ORDER BY id", (device_id,)
        ).fetchall()

    def close(self) -> None:
        for link in self.links:
            link.close()
        for w in self.workers.values():
            if w.alive:
                try:
                    w.stop(timeout=15)
                except subprocess.TimeoutExpired:
                    w.kill()
        if self.workers:
            forget_sessions(self.settings, [f"{self.prefix}-{slot}" for slot in self.workers])


@contextmanager
def open_rig(
    db: psycopg.Connection, settings: Settings, service_env: dict, factory: Any
) -> Iterator[IngestRig]:
    """For a `rig` fixture in a test module: `with open_rig(...) as r: yield r`."""
    r = IngestRig(db, settings, service_env, factory)
    try:
        yield r
    finally:
        r.close()


class Ingest:
    """A rig with a provisioned device, its connection and a running worker in slot 0."""

    def __init__(self, rig: IngestRig) -> None:
        self.rig = rig
        self.device = rig.device()
        self.worker = rig.start(0)
        self.link = rig.link(self.device)

    @property
    def device_id(self) -> str:
        return self.device.device_id


def restart_postgres(service_env: dict[str, str], stopped: Callable[[], None]) -> None:
    """Stop the test PostgreSQL (only it), run `stopped`, start it again with scripts/services."""
    pgdata = (Path(service_env["TELEMED_STATE_DIR"]) / "pg").resolve()
    cmd = [PG_CTL, "-D", str(pgdata), "-m", "fast", "-w", "-t", "60", "stop"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", pgdata.owner(), "--", *cmd]
    subprocess.run(cmd, check=True, cwd="/", capture_output=True)
    try:
        stopped()
    finally:
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "services"), "start"],
            env={**os.environ, **service_env},
            check=True,
            capture_output=True,
        )
