"""How many unacknowledged messages Mosquitto 2.0.11 sends a consumer: docs/ingest.md says what
bounds the ingest worker's memory, and this test holds the broker to what that says.

An MQTT v5 client announces a Receive Maximum; the broker should never have more
unacknowledged QoS 1 messages out to it than that. Mosquitto 2.0.11 keeps it only until the
client acknowledges: each PUBACK then moves up to Receive Maximum messages from the session's
queue into flight (src/database.c, db__message_delete_outgoing counts the messages ahead of the
acknowledged one instead of those in flight; 2.0.13 fixed it, "inflight quota management"). So
once a worker acknowledges, the broker may send it everything its session holds.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.broker import sync_broker
from devices.provisioning import provision
from telemed.device_contract import readings_topic
from tests.mqtt_helpers import DeviceLink, forget_sessions, message

RECEIVE_MAXIMUM = 10
MESSAGES = 300


class Consumer:
    """The ingest account's login with a Receive Maximum and acknowledgements by hand."""

    def __init__(self, settings, client_id: str, topic: str) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)  # fmt: skip
        self.client.username_pw_set(settings.ingest_username, settings.ingest_password)
        self.received: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        props.SessionExpiryInterval = 300
        self.client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=True,
                            properties=props)  # fmt: skip
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10)

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.received.append(msg)

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def ack(self, upto: int, start: int = 0) -> None:
        with self.lock:
            batch = self.received[start:upto]
        for msg in batch:
            self.client.ack(msg.mid, msg.qos)

    def settled(self, quiet_s: float = 1.0) -> int:
        """The number received once nothing more arrives for `quiet_s`."""
        last, since = -1, time.monotonic()
        while time.monotonic() - since < quiet_s:
            n = self.count()
            if n != last:
                last, since = n, time.monotonic()
            time.sleep(0.05)
        return last

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_installed_broker_is_the_one_measured():
    first = subprocess.run(["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True)
    version = first.stdout.splitlines()[0]
    if version != "mosquitto version 2.0.11":
        pytest.fail(f"{version}: measure the Receive Maximum again (this module) and correct "
                    "docs/ingest.md, 'MQTT session'")  # fmt: skip


def test_mosquitto_exceeds_a_receive_maximum_once_the_consumer_acknowledges(db, settings, factory):
    sync_broker(db, settings)
    device = provision(db, patient_id=factory.patient(factory.org()), kind="copd_kit")
    sync_broker(db, settings)
    client_id = f"test-flow-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(settings, client_id, readings_topic(device.device_id))
    link = DeviceLink(settings, device.device_id, device.password)
    try:
        assert link.connect().value == 0
        link.publish_many([message(f"f-{i}") for i in range(MESSAGES)])
        # Nothing acknowledged: the broker keeps to the Receive Maximum.
        assert consumer.settled() == RECEIVE_MAXIMUM
        # The first ten acknowledged: far more than ten come, all unacknowledged at once.
        consumer.ack(RECEIVE_MAXIMUM)
        out = consumer.settled() - RECEIVE_MAXIMUM
        assert out > RECEIVE_MAXIMUM, out
        assert out == RECEIVE_MAXIMUM * RECEIVE_MAXIMUM, out  # 10 per PUBACK, as measured
        # Acknowledging as they come, every message arrives, each once: nothing is lost by it.
        done = RECEIVE_MAXIMUM
        deadline = time.monotonic() + 30
        while done < MESSAGES and time.monotonic() < deadline:
            n = consumer.count()
            consumer.ack(n, done)
            done = n
            time.sleep(0.05)
        consumer.ack(consumer.settled())
        ids = [msg.payload for msg in consumer.received]
        assert len(ids) == len(set(ids)) == MESSAGES
    finally:
        link.close()
        consumer.close()
        forget_sessions(settings, [client_id])
