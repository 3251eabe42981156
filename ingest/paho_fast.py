"""Cheaper paho-mqtt 2.x receiving, for the worker's one hot path: a QoS 0/1 MQTT v5 PUBLISH.

Two parts for speed, both measured on the ingest benchmark and both leaving the wire format to
paho's own code (property unpacking and validation), and two for the worker's inflow (reading
held, a round trip):

- `DecodedProperties`. paho builds its property tables anew in every `Properties` object and,
  before each decode, deletes all 27 possible properties one by one (`hasattr` and
  `str.replace` on each name). Every MQTT v5 PUBLISH it receives makes one, which is close to
  half of its receive time: 70–86 µs of CPU per received and acknowledged message with paho's
  class, 44–46 µs with this one. This subclass shares tables built once and finds names in dicts.
- `LeanClient`. paho's `_handle_publish` wraps every message in an `MQTTMessage` (with an
  `MQTTMessageInfo` and its condition variable), formats a debug log line's arguments, decodes
  the topic twice and matches it against the per-topic callbacks under two mutexes before it
  reaches `on_message`. With `lean_deliver` set, a QoS 0 or 1 PUBLISH on MQTT v5 goes straight
  to it instead, as (mid, qos, topic, payload, properties). Anything else, and any packet this
  parse does not take (a malformed one, a topic that is not UTF-8), goes paho's way, so paho's
  errors stay paho's. The worker acknowledges by hand, so no PUBACK is sent here.

  paho also reads one packet per wake-up of its network loop (`loop_read` ignores its
  `max_packets`), each with a `recv` for the first byte, one per byte of the length and one for
  the rest: a `select` and three or four system calls per message. `LeanClient` reads the
  socket 64 KiB at a time into a buffer that `_sock_recv` serves from, and `loop_read` handles
  packets until both the buffer and the socket are empty, so that the loop's next `select`
  never waits while a received packet is still in the buffer. The Receive Maximum does not
  bound one call (Mosquitto 2.0.11 exceeds it once acknowledgements come, and may send all it
  holds for the session): the `gate` does.
- **Reading held** (`gate`, an `ingest.inbox.Gate`). Before each 64 KiB read the client asks
  the gate, and while it is full leaves the socket alone: the broker's further messages wait in
  the socket's buffers and then in the broker (TCP back-pressure), so the worker holds at most
  the gate's bound and one read's worth more. Meanwhile `loop_read` waits for room, still
  writing acknowledgements as they are queued, and wakes at least once a second for paho's
  keep-alive. The broker's PINGRESP waits behind the messages not read, so while reading is
  held no answer is awaited (`loop_misc`): paho's keep-alive still sends a PINGREQ once every
  interval (nothing is received meanwhile), which the broker reads and counts as the client
  being alive, and the client does not give the connection up for the missing answer. A dead
  broker host still shows as a failed write; a hung broker process is noticed only once
  reading goes on.
- **A round trip** (`ping`, `pings_answered`): a PINGREQ whose PINGRESP says that the broker
  has read and handled every packet sent before it, in order.

These replace or override paho's private code, so this module is written for one paho-mqtt
release, `WRITTEN_FOR`, pinned exactly in pyproject.toml and requirements.lock
(tests/test_pins.py). With any other installed, importing it fails and says so, and the
worker does not start: a private method that changed would otherwise be overridden blindly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

WRITTEN_FOR = "2.2.0"
if paho.mqtt.__version__ != WRITTEN_FOR:
    raise ImportError(
        f"ingest/paho_fast.py overrides private code of paho-mqtt {WRITTEN_FOR}, but paho-mqtt "
        f"{paho.mqtt.__version__} is installed: install the pinned version (requirements.lock)"
    )

import paho.mqtt._packet as _packet  # noqa: E402 (checked first: paho 2.1 has no _packet)

_TABLES = Properties(PacketTypes.PUBLISH)
_PRIVATE = frozenset(("packetType", "types", "names", "properties"))
_IDENT_BY_NAME = {name.replace(" ", ""): ident for name, ident in _TABLES.names.items()}


class DecodedProperties(Properties):
    def __init__(self, packetType: int) -> None:
        state = self.__dict__
        state["packetType"] = packetType
        state["types"] = _TABLES.types
        state["names"] = _TABLES.names
        state["properties"] = _TABLES.properties

    def clear(self) -> None:
        state = self.__dict__
        for name in [n for n in state if n not in _PRIVATE]:
            del state[name]

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT_BY_NAME.get(compressedName, -1)


def install() -> bool:
    """Let paho's packet decoder use `DecodedProperties`; idempotent. False (nothing changed)
    when something else has replaced paho's class already."""
    if _packet.Properties is DecodedProperties:
        return True
    if _packet.Properties is not Properties:
        return False
    _packet.Properties = DecodedProperties  # type: ignore[misc]  # replacing paho's class: the pin
    return True


def parse_publish(
    header: int, packet: bytes | bytearray
) -> tuple[int, int, bytes | bytearray, Properties, bytes | bytearray] | None:
    """An MQTT v5 PUBLISH after its fixed header, as paho's `decode_publish` reads it:
    (qos, mid, topic, properties, payload); None when the packet is short (paho's own decoder
    then says how)."""
    qos = (header & 0x06) >> 1
    if len(packet) < 2:
        return None
    end = 2 + int.from_bytes(packet[:2], "big")
    topic = packet[2:end]
    mid = 0
    if qos:
        if len(packet) < end + 2:
            return None
        mid = int.from_bytes(packet[end : end + 2], "big")
        end += 2
    if len(packet) <= end:  # not even the properties' length
        return None
    properties = DecodedProperties(PacketTypes.PUBLISH)
    _, used = properties.unpack(packet[end:])
    return qos, mid, topic, properties, packet[end + used :]


Deliver = Callable[[int, int, str, bytes | bytearray, Properties], None]


class Gate(Protocol):
    """What the client asks before reading (ingest.inbox.Gate)."""

    held: bool

    def full(self) -> bool: ...

    def wait(self, timeout: float) -> bool: ...


_READ_SIZE = 65536
HELD_WAKE_S = 1.0  # while reading is held: the longest wait between keep-alive checks
_BLOCKED_WAKE_S = 0.05  # ... when the acknowledgements cannot be written at once


class LeanClient(mqtt.Client):
    lean_deliver: Deliver | None = None
    gate: Gate | None = None
    _rbuf: bytes = b""
    _rpos: int = 0
    _rsock: object = None
    pings_sent = 0
    pings_answered = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing buffered is of it
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        if self._rpos >= len(self._rbuf):
            gate = self.gate
            # Held only once connected: the CONNACK is always read.
            if gate is not None and gate.full() and self.is_connected():
                raise BlockingIOError  # what paho takes for "nothing to read now"
            data = super()._sock_recv(_READ_SIZE)  # BlockingIOError when there is nothing
            if not data:
                return data  # the broker closed the connection
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        chunk = self._rbuf[self._rpos : end]
        self._rpos = end
        return chunk

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        gate = self.gate
        if gate is not None and gate.held:
            rc = self._wait_for_room(gate)
            if rc is not None:
                return rc
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _wait_for_room(self, gate: Gate) -> MQTTErrorCode | None:
        """Reading is held: write what is queued (acknowledgements) and wait for room, for up to
        HELD_WAKE_S. None once reading may go on, else what `loop_read` returns."""
        deadline = time.monotonic() + HELD_WAKE_S
        while self._sock is not None and self.is_connected():
            if self.want_write():
                rc = self.loop_write()
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return rc
            left = deadline - time.monotonic()
            if left <= 0:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            if gate.wait(min(left, _BLOCKED_WAKE_S) if self.want_write() else left):
                return None
        return None  # not connected: nothing is held then

    def loop_misc(self) -> MQTTErrorCode:
        gate = self.gate
        if gate is not None and gate.held:
            # The PINGRESP waits behind what is not read: none is awaited while reading is
            # held (paho would otherwise close the connection a keep-alive after its PINGREQ);
            # paho's keep-alive still sends a PINGREQ each interval, which the broker reads.
            self._ping_t = 0.0
        return super().loop_misc()

    # --- the round trip -------------------------------------------------------------------

    _ping_lock = threading.Lock()

    def ping(self) -> int | None:
        """Send a PINGREQ (from any thread); its number on this connection, answered once
        `pings_answered` reaches it. None when it could not be queued."""
        with self._ping_lock:
            rc = super()._send_pingreq()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return None
            self.pings_sent += 1
            return self.pings_sent

    def _send_pingreq(self) -> MQTTErrorCode:  # paho's keep-alive, counted alike
        with self._ping_lock:
            rc = super()._send_pingreq()
            if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                self.pings_sent += 1
            return rc

    def _handle_pingresp(self) -> MQTTErrorCode:
        rc = super()._handle_pingresp()
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.pings_answered += 1
        return rc

    def _handle_connack(self) -> MQTTErrorCode:
        with self._ping_lock:  # a new connection: the pings of the old one are not answered
            self.pings_sent = self.pings_answered = 0
        return super()._handle_connack()

    def _handle_publish(self) -> MQTTErrorCode:
        deliver = self.lean_deliver
        header = self._in_packet["command"]
        if deliver is None or header & 0x06 > 0x02 or self._protocol != MQTTProtocolVersion.MQTTv5:
            return super()._handle_publish()
        try:
            parsed = parse_publish(header, self._in_packet["packet"])
            if parsed is None:
                return super()._handle_publish()
            qos, mid, raw_topic, properties, payload = parsed
            topic = raw_topic.decode("utf-8")
        except Exception:
            return super()._handle_publish()
        deliver(mid, qos, topic, payload, properties)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
