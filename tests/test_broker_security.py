"""What a device may do at the broker, tried with a real device login against the real broker
and a real ingest worker: it may not subscribe to anything (above all not to the workers'
shared subscription, which would make the broker hand it a share of other patients' readings),
and it may not use a worker's or another device's client id. Each refusal is in the broker log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.broker import sync_broker
from telemed.device_contract import READINGS_FILTER
from tests.mqtt_helpers import DeviceLink, IngestRig, message, open_rig, wait_for

NOT_AUTHORIZED = 0x87


@pytest.fixture
def rig(db, settings, service_env, factory) -> Iterator[IngestRig]:
    # The broker must know the ingest account before a worker logs in (alone, or first).
    sync_broker(db, settings)
    with open_rig(db, settings, service_env, factory) as r:
        yield r


def _broker_log(settings) -> str:
    return (settings.broker_dir / "mosquitto.log").read_text(errors="replace")


class Subscriber:
    """A raw MQTT v5 client subscribing with a device's login; the SUBACK's reason codes."""

    def __init__(self, settings, device, *, persistent: bool = False) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device.device_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(device.device_id, device.password)
        self.received: list[bytes] = []
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.connack: list[ReasonCode] = []
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.append(rc)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self.subacks.__setitem__(mid, rcs)
        self.client.on_message = lambda _c, _u, m: self.received.append(m.payload)
        props = Properties(PacketTypes.CONNECT)
        if persistent:
            props.SessionExpiryInterval = 3600
        self.client.connect(
            settings.mqtt_host, settings.mqtt_port, clean_start=not persistent, properties=props
        )
        self.client.loop_start()
        wait_for(lambda: self.connack, what="CONNACK")
        assert not self.connack[0].is_failure, self.connack

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_for(lambda: self.subacks.get(mid), what=f"SUBACK for {topic}")[0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_a_device_may_subscribe_to_nothing_least_of_all_the_workers_share(rig, settings):
    worker = rig.start(0)
    group = rig.env["TELEMED_INGEST_GROUP"]
    attacker = rig.device()
    victim = rig.device()
    spy = Subscriber(settings, attacker, persistent=True)
    filters = [
        f"$share/{group}/{READINGS_FILTER}",
        f"$share/ingest/{READINGS_FILTER}",  # the production group, named in the public docs
        f"$share/{group}/telemed/v1/devices/{victim.device_id}/readings",
        READINGS_FILTER,
        f"telemed/v1/devices/{attacker.device_id}/readings",
        "#",
        "$SYS/#",
        "$CONTROL/telemed-auth/v1/response",
    ]
    try:
        for topic in filters:
            assert spy.subscribe(topic).value == NOT_AUTHORIZED, topic
        # While the device stays connected, and after it left with its session kept, every
        # reading published by another device is stored: the broker counts no share for it.
        link = rig.link(victim)
        link.publish_many([message(f"m-{i}") for i in range(150)])
        spy.close()
        link.publish_many([message(f"m-{i}") for i in range(150, 300)])
        wait_for(lambda: rig.count(victim.device_id) == 300, timeout=30,
                 what="all 300 readings stored")  # fmt: skip
        assert spy.received == []
        assert worker.alive
    finally:
        spy.close()
    log = _broker_log(settings)
    assert f"refused subscription $share/ingest/{READINGS_FILTER} for device " in log
    assert f"device {attacker.device_id}" in log


def test_a_device_cannot_take_a_workers_or_another_devices_client_id(rig, settings):
    # A worker under the production client ids, telemed-ingest-<slot>.
    rig.prefix = "telemed-ingest"
    rig.env["TELEMED_INGEST_CLIENT_PREFIX"] = "telemed-ingest"
    worker = rig.start(0)
    device, other = rig.device(), rig.device()
    link = rig.link(device)
    lines_before = len(worker.lines)
    for attempt in range(5):  # the attack alternated for seconds
        thief = DeviceLink(settings, other.device_id, other.password, client_id="telemed-ingest-0")
        rc = thief.connect(retry_refused_s=0)
        assert rc.value == NOT_AUTHORIZED, (attempt, rc)
    impostor = DeviceLink(settings, other.device_id, other.password, client_id=device.device_id)
    assert impostor.connect(retry_refused_s=0).value == NOT_AUTHORIZED
    # Neither the worker nor the device lost its connection; everything sent is stored.
    link.publish_many([message(f"t-{i}") for i in range(200)])
    wait_for(lambda: rig.count(device.device_id) == 200, timeout=30, what="200 readings")
    assert link.disconnects == []
    assert not any("disconnected from the broker" in line for line in worker.lines[lines_before:])
    assert worker.alive
    log = _broker_log(settings)
    assert (
        f"refused client id telemed-ingest-0 for device {other.device_id}: client ids "
        "telemed-ingest-* belong to the ingest account" in log
    ) or (f"refused client id telemed-ingest-0 for device {other.device_id}" in log)
    assert f"refused client id {device.device_id} for device {other.device_id}" in log


def test_a_revoked_device_is_cut_off_at_once_while_others_keep_publishing(rig, settings, db):
    from devices.broker_change import apply_changes
    from devices.provisioning import revoke

    rig.start(0)
    doomed, fine = rig.device(), rig.device()
    a, b = rig.link(doomed), rig.link(fine)
    stop = threading.Event()
    sent: list[int] = []

    def keep_publishing() -> None:
        i = 0
        while not stop.is_set():
            b.publish(message(f"k-{i}"))
            sent.append(i)
            i += 1

    t = threading.Thread(target=keep_publishing, daemon=True)
    t.start()
    try:
        time.sleep(0.3)
        with db.transaction():
            revoke(db, doomed.device_id)
            started = time.monotonic()
            apply_changes(db, settings, removed=[doomed.device_id])
        wait_for(lambda: a.disconnects, timeout=5, what="the revoked device to be cut off")
        assert time.monotonic() - started < 5
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(10)
    again = DeviceLink(settings, doomed.device_id, doomed.password)
    assert again.connect(retry_refused_s=0).value == NOT_AUTHORIZED
    assert b.disconnects == [] and b.failed == []
    wait_for(lambda: rig.count(fine.device_id) == len(sent), timeout=30, what="all stored")


# --- TLS -----------------------------------------------------------------------------------


def _connect_packet(client_id: str, username: str, password: str) -> bytes:
    def utf8(s: str) -> bytes:
        b = s.encode()
        return len(b).to_bytes(2, "big") + b

    body = utf8("MQTT") + bytes([4, 0xC2]) + (30).to_bytes(2, "big")
    body += utf8(client_id) + utf8(username) + utf8(password)
    return bytes([0x10, len(body)]) + body


def _raw_connack(settings, device, context) -> bytes | str:
    """CONNECT over the TLS port with `context` (None: plain TCP); the CONNACK's bytes, or why
    there was none."""
    import socket
    import ssl

    with socket.create_connection((settings.mqtt_host, settings.mqtt_tls_port), timeout=5) as raw:
        try:
            sock = raw if context is None else context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(_connect_packet(device.device_id, device.device_id, device.password))
            data = sock.recv(4)
            return data or "closed"
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"


def _context(settings, *, cert=None, key=None, cafile=None):
    import ssl

    ctx = ssl.create_default_context(cafile=str(cafile or settings.mqtt_cafile))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _foreign_cert(tmp_path):
    """A client certificate of a CA the broker does not know, made the same way."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
        "-out", "ca.crt", "-subj", "/CN=not the devices CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "dev.key", "-out", "dev.csr",
        "-subj", "/CN=some device")  # fmt: skip
    run("x509", "-req", "-in", "dev.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "dev.crt")  # fmt: skip
    return tmp_path / "dev.crt", tmp_path / "dev.key"


def test_devices_connect_over_tls_and_a_client_without_a_valid_chain_is_refused(
    rig, settings, tmp_path
):
    from devices.sim_model import DeviceSpec
    from devices.sim_mqtt import DeviceLink as SimLink
    from devices.sim_mqtt import Tls

    rig.start(0)
    device = rig.device()
    good = _context(settings, cert=settings.mqtt_certfile, key=settings.mqtt_keyfile)
    connack = _raw_connack(settings, device, good)
    assert connack == bytes([0x20, 2, 0, 0]), connack  # accepted
    # No client certificate, one of another CA, or no TLS at all: no CONNACK.
    foreign_cert, foreign_key = _foreign_cert(tmp_path)
    for name, ctx in [
        ("no certificate", _context(settings)),
        ("another CA", _context(settings, cert=foreign_cert, key=foreign_key)),
        ("plain TCP", None),
    ]:
        answer = _raw_connack(settings, device, ctx)
        assert isinstance(answer, str), (name, answer)
    # And a device that does not know the broker's CA does not trust the broker.
    wrong_ca = _context(settings, cert=settings.mqtt_certfile, key=settings.mqtt_keyfile,
                        cafile=tmp_path / "ca.crt")  # fmt: skip
    assert "CERTIFICATE_VERIFY_FAILED" in str(_raw_connack(settings, device, wrong_ca))

    # The simulator's device connection over TLS: readings acknowledged and stored.
    spec = DeviceSpec(device_id=device.device_id, password=device.password, kind="copd_kit")
    tls = Tls(cafile=settings.mqtt_cafile, certfile=settings.mqtt_certfile,
              keyfile=settings.mqtt_keyfile)  # fmt: skip
    link = SimLink(spec, settings.mqtt_host, settings.mqtt_tls_port, tls=tls)
    try:
        link.start()
        assert link.connected.wait(10), link.refused
        from datetime import UTC, datetime, timedelta

        from devices.sim_model import Outgoing

        for i in range(5):
            at = datetime.now(UTC) - timedelta(minutes=i + 1)
            out = Outgoing(message(f"tls-{i}", measured_at=at), "application/json", at,
                           f"tls-{i}", 1)  # fmt: skip
            link.publish(out)
        wait_for(lambda: link.acked == 5, what="5 PUBACKs over TLS")
        wait_for(lambda: rig.count(device.device_id) == 5, timeout=20, what="5 stored")
    finally:
        link.stop()
