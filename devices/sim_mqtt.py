"""A simulated device's own MQTT connection (paho-mqtt 2.x, MQTT v5).

Each device logs in with its own id and password, registers the last will `{"state":
"offline"}` (QoS 1, retained) on its status topic, publishes `online` retained on connecting,
and sends readings with QoS 1; the broker's PUBACKs are counted. Going offline drops the
connection with reason "disconnect with will message", so the broker announces it as a lost
device would be announced.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.sim_model import DeviceSpec, Outgoing
from telemed.device_contract import (
    OFFLINE_PAYLOAD,
    StatusMessage,
    encode_status,
    readings_topic,
    status_topic,
)

log = logging.getLogger("devices.simulator")


class Tls(msgspec.Struct, frozen=True, kw_only=True):
    """A device's TLS files: the CA that signed the broker's certificate, and the device's own
    certificate and key (the broker's TLS listener refuses a client without one that chains to
    its devices' CA)."""

    cafile: Path
    certfile: Path
    keyfile: Path


# CONNACK reason codes after which retrying with the same credentials is pointless.
_REFUSED = {0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C}
_WILL_DISCONNECT = 0x04


class DeviceLink:
    def __init__(
        self,
        spec: DeviceSpec,
        host: str,
        port: int,
        *,
        battery: float = 80.0,
        firmware: str = "sim-1.0",
        keepalive: int = 30,
        on_ack: Callable[[DeviceLink, int], None] | None = None,
        tls: Tls | None = None,
    ) -> None:
        self.spec = spec
        self.host, self.port, self.keepalive = host, port, keepalive
        self.battery, self.firmware = battery, firmware
        self.on_ack = on_ack
        self.connected = threading.Event()
        # Set once the first login has been answered, either way.
        self.settled = threading.Event()
        self.refused: str | None = None
        self.sent = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._unacked: set[int] = set()
        # PUBACKs that arrived before publish() had recorded the packet id.
        self._early: set[int] = set()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=spec.device_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.username_pw_set(spec.device_id, spec.password)
        if tls is not None:
            # Verifies the broker's chain and name, and presents the device's certificate.
            client.tls_set(
                ca_certs=str(tls.cafile),
                certfile=str(tls.certfile),
                keyfile=str(tls.keyfile),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.will_set(status_topic(spec.device_id), OFFLINE_PAYLOAD, qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    # paho calls these on its network thread: keep them short and never raise.
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p) -> None:
        if rc.is_failure:
            if rc.value in _REFUSED:
                self.refused = str(rc)
                log.error(
                    "broker refused the login: %s", rc, extra={"device_id": self.spec.device_id}
                )
                client.disconnect()
                self.settled.set()
            return
        status = StatusMessage(state="online", battery=round(self.battery), firmware=self.firmware)
        client.publish(status_topic(self.spec.device_id), encode_status(status), qos=1, retain=True)
        self.connected.set()
        self.settled.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p) -> None:
        self.connected.clear()
        if rc.is_failure:
            log.warning("connection lost: %s", rc, extra={"device_id": self.spec.device_id})

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p) -> None:
        if rc.is_failure:
            log.warning(
                "broker did not accept message: %s", rc, extra={"device_id": self.spec.device_id}
            )
            return
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self.acked += 1
            else:
                self._early.add(mid)
                return
        if self.on_ack is not None:
            self.on_ack(self, mid)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, self.keepalive, clean_start=True)
        self.client.loop_start()

    def publish(self, out: Outgoing) -> int:
        """Queue one readings message with QoS 1; returns its packet id."""
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = out.content_type
        info = self.client.publish(
            readings_topic(self.spec.device_id), out.payload, qos=1, properties=props
        )
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"{self.spec.device_id}: publish failed ({info.rc.name})")
        with self._lock:
            self.sent += 1
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked += 1
                early = True
            else:
                self._unacked.add(info.mid)
                early = False
        if early and self.on_ack is not None:
            self.on_ack(self, info.mid)
        return info.mid

    @property
    def pending(self) -> int:
        with self._lock:
            return self.sent - self.acked

    def drop(self) -> None:
        """Lose the connection as a device out of coverage does: the broker sends the will."""
        reason = ReasonCode(PacketTypes.DISCONNECT, identifier=_WILL_DISCONNECT)
        self.client.disconnect(reasoncode=reason)
        self.client.loop_stop()
        self.connected.clear()

    def reconnect(self) -> None:
        self.start()

    def stop(self) -> None:
        """Say `offline` (retained) and leave cleanly."""
        if self.connected.is_set():
            info = self.client.publish(
                status_topic(self.spec.device_id), OFFLINE_PAYLOAD, qos=1, retain=True
            )
            info.wait_for_publish(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()
