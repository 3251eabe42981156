"""Attacks with a real login, through the real broker and its telemed_auth plugin: a device, the
ingest account and strangers try what their account may not. Each test checks the refusal AND
that nothing changed: the other devices still connect and publish, every reading sent is stored
once, no account was added or removed, and the broker log names the attempt.

Mosquitto 2.0.11 (Debian's) answers a refused publish with PUBACK 0x87 and then closes the
connection; the tests expect that of the attacker's own connection, never of anyone else's.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices import broker
from devices.broker_change import apply_changes
from devices.broker_control import CONTROL_TOPIC, RESPONSE_TOPIC
from telemed.device_contract import readings_topic, status_topic
from tests.mqtt_helpers import DeviceLink, IngestRig, message, open_rig, wait_for

NOT_AUTHORIZED = 0x87


@pytest.fixture
def rig(db, settings, service_env, factory) -> Iterator[IngestRig]:
    # The broker must know the ingest account before a worker logs in.
    broker.sync_broker(db, settings)
    with open_rig(db, settings, service_env, factory) as r:
        yield r


def _log_from(settings, offset: int) -> str:
    with open(settings.broker_dir / "mosquitto.log", "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _log_size(settings) -> int:
    return (settings.broker_dir / "mosquitto.log").stat().st_size


def _logged(settings, offset: int, text: str) -> str:
    """Wait for `text` in the broker log after `offset` (the broker writes it a moment later)."""
    return wait_for(lambda: text in _log_from(settings, offset) and text, timeout=10,
                    what=f"{text!r} in the broker log")  # fmt: skip


class Client:
    """A raw MQTT v5 client with any login and client id; what the broker answered."""

    def __init__(self, settings, username: str | None, password: str | None, client_id: str,
                 *, will: tuple[str, bytes, bool] | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            topic, payload, retain = will
            self.client.will_set(topic, payload, qos=1, retain=retain)
        self.connack: list[ReasonCode] = []
        self.acks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.received: list[mqtt.MQTTMessage] = []
        self.disconnects: list[ReasonCode] = []
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.append(rc)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self.subacks.__setitem__(mid, rcs)
        self.client.on_message = lambda _c, _u, m: self.received.append(m)
        self.client.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.append(rc)

    def connect(self) -> ReasonCode:
        self.client.reconnect_delay_set(30, 30)  # one connection per client, no second try
        self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        rc = wait_for(lambda: self.connack and self.connack[0], timeout=10, what="CONNACK")
        if rc.is_failure:
            self.close()
        return rc

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return wait_for(lambda: self.acks.get(info.mid), what=f"PUBACK for {topic}")

    def subscribe(self, topic: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos=1)
        return wait_for(lambda: self.subacks.get(mid), what=f"SUBACK for {topic}")[0]

    def drop(self) -> None:
        """Vanish without DISCONNECT: the broker sends the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _ingest_spy(rig: IngestRig, name: str) -> Client:
    """The ingest account on a plain subscription of its own (a client id no worker uses)."""
    spy = Client(rig.settings, rig.settings.ingest_username, rig.settings.ingest_password,
                 f"{rig.prefix}-{name}")  # fmt: skip
    assert not spy.connect().is_failure
    return spy


def _still_works(rig: IngestRig, device, link: DeviceLink, tag: str, n: int = 20,
                 *, was_refused: bool = False) -> None:  # fmt: skip
    """`device` is still connected on `link` (or, `was_refused`, connected again after the
    broker closed it) and every reading it sends now is stored once."""
    if was_refused:
        wait_for(link.client.is_connected, what=f"{device.device_id} connected again")
    else:
        assert link.disconnects == []
    before = rig.count(device.device_id)
    link.publish_many([message(f"{tag}-{i}") for i in range(n)])
    wait_for(lambda: rig.count(device.device_id) == before + n, timeout=30,
             what=f"{n} readings of {device.device_id} stored")  # fmt: skip
    if not was_refused:
        assert link.disconnects == []


def test_a_device_cannot_change_accounts_through_the_control_topic(rig, settings):
    rig.start(0)
    attacker, victim = rig.device(), rig.device()
    bad = rig.link(attacker)
    good = rig.link(victim)
    offset = _log_size(settings)
    evil_password = "evil-password-0123456789"
    evil_hash = broker.hash_password(evil_password)
    attempts = [
        f"request x1\nadd device evil-{attacker.device_id[4:]} {evil_hash}",
        f"request x2\nremove {victim.device_id}",
        f"request x3\nadd device {victim.device_id} {evil_hash}",  # take over its password
        "request x4\nreload",
        f"request x5\nadd admin telemed-admin {evil_hash}",
    ]
    for body in attempts:
        wait_for(bad.client.is_connected, what="the attacker connected (again)")
        rc = bad.publish(body.encode(), topic=CONTROL_TOPIC)
        assert rc.value == NOT_AUTHORIZED, (body, rc)
    # Nothing changed: no new account, the victim keeps its login and its connection, and every
    # reading of both is stored.
    evil = DeviceLink(settings, f"evil-{attacker.device_id[4:]}", evil_password)
    assert evil.connect(retry_refused_s=0).value == NOT_AUTHORIZED
    taken = DeviceLink(settings, victim.device_id, evil_password, client_id=victim.device_id)
    assert taken.connect(retry_refused_s=0).value == NOT_AUTHORIZED
    _still_works(rig, victim, good, "v")
    _still_works(rig, attacker, bad, "a", n=5, was_refused=True)
    logged = _logged(settings, offset, f"refused publish to {CONTROL_TOPIC} for device")
    assert f"device {attacker.device_id}" in _log_from(settings, offset), logged


def test_a_device_hears_nothing_of_the_control_topic(rig, settings, db):
    from devices.provisioning import provision

    rig.start(0)
    spy_device = rig.device()
    offset = _log_size(settings)
    spy = Client(settings, spy_device.device_id, spy_device.password, spy_device.device_id)
    assert not spy.connect().is_failure
    try:
        for topic in (RESPONSE_TOPIC, CONTROL_TOPIC, "$CONTROL/#", "$CONTROL/+/v1/response"):
            assert spy.subscribe(topic).value == NOT_AUTHORIZED, topic
        # The application changes accounts meanwhile: it works, and the device hears nothing.
        new = provision(db, patient_id=rig.factory.patient(rig.factory.org()), kind="scale")
        with db.transaction():
            apply_changes(db, settings, added=[(new.device_id, _hash_of(db, new))])
        link = DeviceLink(settings, new.device_id, new.password)
        assert link.connect(retry_refused_s=0).value == 0
        link.close()
        time.sleep(0.3)
        assert spy.received == []
        assert spy.disconnects == []
    finally:
        spy.close()
    _logged(settings, offset, f"refused subscription {RESPONSE_TOPIC} for device")


def _hash_of(db, device) -> str:
    row = db.execute("SELECT password_hash FROM devices WHERE id = %s", (device.device_id,))
    return row.fetchone()["password_hash"]


def test_a_device_writes_only_its_own_topics_even_by_its_will(rig, settings, db):
    rig.start(0)
    attacker, victim = rig.device(), rig.device()
    good = rig.link(victim)
    spy = _ingest_spy(rig, "status-spy")
    try:
        assert spy.subscribe(status_topic(victim.device_id)).value == 1
        assert spy.subscribe(readings_topic(victim.device_id)).value == 1
        offset = _log_size(settings)
        forged = b'{"state": "offline", "battery": 1}'
        will = (status_topic(victim.device_id), forged, True)
        cases = [
            (readings_topic(victim.device_id), message("forged-1"), False),
            (status_topic(victim.device_id), forged, True),
            (status_topic(victim.device_id), forged, False),
            (f"telemed/v1/devices/{attacker.device_id}/readings/extra", message("forged-2"), False),
            (f"telemed/v1/devices/{attacker.device_id}x/readings", message("forged-3"), False),
            (f"telemed/v1/devices/{attacker.device_id}", message("forged-4"), False),
        ]
        for topic, payload, retain in cases:
            # Each attempt on a connection of its own, whose will (on the victim's status
            # topic) the broker would send when it closes the connection after the refusal.
            bad = Client(settings, attacker.device_id, attacker.password, attacker.device_id,
                         will=will)  # fmt: skip
            assert not bad.connect().is_failure
            rc = bad.publish(topic, payload, retain=retain)
            assert rc.value == NOT_AUTHORIZED, (topic, rc)
            bad.drop()
        # And a connection that just vanishes: its will must not be sent either.
        bad = Client(settings, attacker.device_id, attacker.password, attacker.device_id,
                     will=will)  # fmt: skip
        assert not bad.connect().is_failure
        bad.drop()
        _logged(settings, offset, f"refused publish to {status_topic(victim.device_id)} for device")
        _still_works(rig, victim, good, "v")
        time.sleep(1.0)
        assert spy.received and all(m.payload != forged for m in spy.received), [
            (m.topic, m.payload) for m in spy.received
        ]
        assert all(b"forged" not in m.payload for m in spy.received)
        status = db.execute(
            "SELECT state FROM device_status WHERE device_id = %s", (victim.device_id,)
        ).fetchone()
        assert status is None or status["state"] == "online"
        assert rig.count(attacker.device_id) == 0
        stored = db.execute(
            "SELECT count(*) AS n FROM readings WHERE message_id LIKE 'forged%%'"
        ).fetchone()
        assert stored["n"] == 0
    finally:
        spy.close()


def test_a_retained_reading_is_stored_once_and_not_kept_by_the_broker(rig, settings):
    """The contract's readings are not retained. A device that sets the flag anyway gets its
    reading stored like any other (a refusal would reach an MQTT 3.1.1 device as a plain
    PUBACK, and the reading would be lost unsaid); the broker does not keep it, so no later
    subscriber is handed it again."""
    rig.start(0)
    device = rig.device()
    link = rig.link(device)
    rc = link.publish(message("kept-1"), retain=True)
    assert rc.value == 0
    wait_for(lambda: rig.count(device.device_id) == 1, timeout=20, what="the reading stored")
    spy = _ingest_spy(rig, "retain-spy")
    try:
        assert spy.subscribe(readings_topic(device.device_id)).value == 1
        time.sleep(1.0)
        assert spy.received == [], [(m.topic, m.retain) for m in spy.received]
        # A status stays retained, as the contract says.
        assert link.publish(b'{"state": "online"}', topic=status_topic(device.device_id),
                            retain=True).value == 0  # fmt: skip
        assert spy.subscribe(status_topic(device.device_id)).value == 1
        wait_for(lambda: any(m.retain for m in spy.received), what="the retained status")
    finally:
        spy.close()
    assert rig.count(device.device_id) == 1


def test_a_retained_reading_the_broker_holds_anyway_is_never_handed_to_the_workers(rig, settings):
    """A last will is not a publish the plugin sees, so a device's retained will on its readings
    topic stays on the broker (as would a retained reading from before the plugin cleared the
    flag). Mosquitto 2.0.11 hands retained messages to shared subscriptions too: the plugin
    never lets the ingest account read one, and says so in the log. An empty retained message
    from the device deletes it."""
    worker = rig.start(0)
    device = rig.device()
    offset = _log_size(settings)
    dropper = Client(settings, device.device_id, device.password, device.device_id,
                     will=(readings_topic(device.device_id), message("will-1"), True))  # fmt: skip
    assert not dropper.connect().is_failure
    dropper.drop()
    _logged(
        settings, offset, f"not handing the retained reading on {readings_topic(device.device_id)}"
    )
    spy = _ingest_spy(rig, "will-spy")
    try:
        assert spy.subscribe(readings_topic(device.device_id)).value == 1
        time.sleep(1.0)
        assert spy.received == []
        # A worker that subscribes again (a restart) is not handed it either.
        worker.stop()
        rig.start(0)
        time.sleep(1.0)
        assert rig.count(device.device_id) == 0
        # The device deletes it; its readings flow as ever.
        link = rig.link(device)
        assert link.publish(b"", retain=True).value in (0, 0x10)
        _still_works(rig, device, link, "w", n=5)
    finally:
        spy.close()


def test_the_ingest_account_may_publish_nothing_nor_take_another_accounts_client_id(rig, settings):
    rig.start(0)
    device = rig.device()
    link = rig.link(device)
    offset = _log_size(settings)
    evil_hash = broker.hash_password("x" * 32)
    attempts = [
        (readings_topic(device.device_id), message("forged-ingest")),
        (CONTROL_TOPIC,
         f"request i1\nremove {device.device_id}\nadd device evil-ingest {evil_hash}".encode()),
        (status_topic(device.device_id), b'{"state": "offline"}'),
    ]  # fmt: skip
    for i, (topic, payload) in enumerate(attempts):
        ingest = _ingest_spy(rig, f"publisher-{i}")  # the broker closes it after a refusal
        try:
            assert ingest.publish(topic, payload).value == NOT_AUTHORIZED, topic
        finally:
            ingest.close()
    for client_id in ("telemed-admin-0", "telemed-admin-", device.device_id):
        other = Client(settings, settings.ingest_username, settings.ingest_password, client_id)
        assert other.connect().value == NOT_AUTHORIZED, client_id
    _logged(settings, offset, f"refused publish to {CONTROL_TOPIC} for ingest")
    _logged(settings, offset, f"refused client id {device.device_id} for ingest")
    assert DeviceLink(settings, "evil-ingest", "x" * 32).connect(retry_refused_s=0).value == (
        NOT_AUTHORIZED
    )
    # The device kept its connection (a takeover of its client id would have cut it).
    _still_works(rig, device, link, "d")
    assert rig.count(device.device_id) == 20


def _raw_connect(settings, client_id: bytes, username: bytes | None, password: bytes | None):
    """A CONNECT (MQTT 3.1.1) with exactly these bytes; the CONNACK's return code, or why
    there was none."""

    def field(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = field(b"MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + field(client_id)
    body += field(username) if username is not None else b""
    body += field(password) if password is not None else b""
    length, n = b"", len(body)
    while True:
        n, byte = divmod(n, 128)
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            break
    with socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=10) as s:
        s.sendall(bytes([0x10]) + length + body)
        try:
            data = s.recv(4)
        except (ConnectionError, TimeoutError) as exc:
            return f"no CONNACK: {type(exc).__name__}"
    if len(data) == 4 and data[0] == 0x20:
        return data[3]
    return f"no CONNACK: {data!r}"


def test_malformed_and_wrong_logins_are_refused_and_change_nothing(rig, settings):
    rig.start(0)
    device, other = rig.device(), rig.device()
    link = rig.link(device)
    pw = other.password.encode()
    oid = other.device_id.encode()
    offset = _log_size(settings)
    attempts = {
        "no username": (oid, None, None),
        "no username, a password": (oid, None, pw),
        "empty password": (oid, oid, b""),
        "no password": (oid, oid, None),
        "64 KiB password": (oid, oid, b"p" * 65535),  # MQTT's longest
        "64 KiB password after the right one": (oid, oid, pw + b"p" * (65535 - len(pw))),
        "65-character username": (b"d" * 65, b"d" * 65, pw),
        "username with +": (b"dev+", b"dev+", pw),
        "username with #": (b"dev#", b"dev#", pw),
        "username with /": (oid + b"/x", oid + b"/x", pw),
        "username with NUL": (oid, oid + b"\x00", pw),
        "username that is a prefix": (oid[:-1], oid[:-1], pw),
        "wrong password": (oid, oid, pw[:-1] + (b"A" if pw[-1:] != b"A" else b"B")),
        "another device's password": (oid, oid, device.password.encode()),
    }
    for name, (client_id, username, password) in attempts.items():
        answer = _raw_connect(settings, client_id, username, password)
        assert answer != 0, name  # 0 would be accepted; a refusal code or no CONNACK at all
    # A wrong password is never remembered as right: after the right one was taken, a wrong
    # one is still refused, and the right one still taken.
    assert _raw_connect(settings, oid, oid, pw) == 0
    assert _raw_connect(settings, oid, oid, pw + b"x") == 5  # 3.1.1: not authorised
    assert _raw_connect(settings, oid, oid, pw) == 0
    _logged(settings, offset, f"refused login {other.device_id} (client id {other.device_id}): "
            "wrong password")  # fmt: skip
    # The broker, the worker and the connected device carry on.
    assert rig.workers[0].alive
    _still_works(rig, device, link, "m")


def test_a_hammered_login_leaves_the_others_connected(rig, settings):
    """Many wrong logins at once for one device: none gets in, the device itself still logs
    in, and a connected device's readings keep being acknowledged and stored."""
    rig.start(0)
    target, bystander = rig.device(), rig.device()
    link = rig.link(bystander)
    tid = target.device_id.encode()
    answers: list[object] = []

    def hammer(k: int) -> None:
        for i in range(40):
            answers.append(_raw_connect(settings, tid, tid, f"guess-{k}-{i}".encode()))

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    _still_works(rig, bystander, link, "h", n=50)
    for t in threads:
        t.join(60)
    assert len(answers) == 160 and 0 not in answers
    assert _raw_connect(settings, tid, tid, target.password.encode()) == 0


def test_the_control_accounts_own_bad_input_changes_nothing(rig, settings, db):
    """What the plugin reads from the application is checked as hard: a control message with
    a NUL byte is refused whole (read as text, the lines after the NUL would vanish unsaid), and
    a journal line longer than the plugin's buffer is not read as two lines on a reload."""
    from devices.broker_control import BrokerError, send_commands

    rig.start(0)
    victim, other = rig.device(), rig.device()
    link = rig.link(victim)
    with pytest.raises(BrokerError, match="NUL byte"):
        send_commands(settings.mqtt_host, settings.mqtt_port, settings.broker_admin_password,
                      [f"add device {other.device_id} {broker.hash_password('x')}\x00",
                       f"remove {victim.device_id}"])  # fmt: skip
    again = DeviceLink(settings, other.device_id, other.password)
    assert again.connect(retry_refused_s=0).value == 0
    again.close()
    offset = _log_size(settings)
    try:
        with open(settings.broker_dir / "accounts.journal", "a") as f:
            f.write("#" + "x" * 510 + f"remove {victim.device_id}\n")
        send_commands(settings.mqtt_host, settings.mqtt_port, settings.broker_admin_password,
                      ["reload"])  # fmt: skip
        _logged(settings, offset, "longer than 511 bytes: ignored")
        _still_works(rig, victim, link, "j")
        fresh = DeviceLink(settings, victim.device_id, victim.password)
        link.close()
        assert fresh.connect(retry_refused_s=0).value == 0
        fresh.close()
    finally:
        broker.sync_broker(db, settings)
