"""The worker's MQTT side: one paho 2.x client (MQTT v5) on its own network thread.

A persistent session (clean start off, a Session Expiry Interval) under a stable client id per
slot, so that the broker keeps the messages of a worker that is down for its return; manual
acknowledgement, so that a message is acknowledged only after its readings are committed;
a Receive Maximum above the batch size, so that one batch is received while the previous one
is written. What bounds the messages in hand is the `Gate` (ingest.inbox): the broker does not
keep to the Receive Maximum. Callbacks only hand over; a refused login or subscription is fatal
and says so, network errors are retried by paho with backoff.

Leaving: closing the connection right after the last acknowledgements lost many of them on
Mosquitto 2.0.11 (1,553 - 2,921 of 3,000 came again on a connection made at once; committed
messages came again after a worker's stop, tests/test_ingest_flow.py): a close with the
broker's stream still unread in our socket sends a TCP reset, and what the broker had not yet
read is gone. So `disconnect` sends a PINGREQ after the last acknowledgement and waits for its
PINGRESP before the DISCONNECT: the broker answers a client's packets in order, so by then it
has applied every acknowledgement, whatever happens to the connection afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest import paho_fast
from ingest.batch import Incoming
from ingest.inbox import Gate
from telemed.device_contract import Payload
from telemed.settings import Settings

log = logging.getLogger("ingest.mqtt")

# CONNACK reason codes that retrying cannot fix: bad user name or password, not authorised,
# banned, bad authentication method.
_REFUSED_LOGIN = {0x86, 0x87, 0x8A, 0x8C}
_TAKEN_OVER = 0x8E  # DISCONNECT: another connection with this client id took the session


class Subscriber:
    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str,
        subscriptions: Sequence[str],
        receive_maximum: int,
        session_expiry_s: int,
        deliver: Callable[[Incoming], None],
        on_fatal: Callable[[str], object],
        on_subscribed: Callable[[], object] | None = None,
        gate: Gate | None = None,
    ) -> None:
        self._settings = settings
        self.client_id = client_id
        self._subscriptions = list(subscriptions)
        self._deliver = deliver
        self._on_fatal = on_fatal
        self._on_subscribed = on_subscribed
        self.generation = 0
        self.session_present = False
        self._unsubacks: dict[int, list[ReasonCode]] = {}
        self.fatal: str | None = None
        self._stopping = False
        self._leaving = False
        self.unread = 0  # messages that arrived while leaving: not acknowledged, delivered again
        # Without a bound, reading is held only when stopping.
        self.gate = gate if gate is not None else Gate(None)
        paho_fast.install()
        client = paho_fast.LeanClient(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        client.lean_deliver = self._publish
        client.gate = self.gate
        client.username_pw_set(settings.ingest_username, settings.ingest_password)
        client.manual_ack_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._connected
        client.on_subscribe = self._subscribed
        client.on_unsubscribe = self._unsubscribed
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        self._client = client
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        props.ReceiveMaximum = receive_maximum
        self._connect_props = props

    def start(self) -> None:
        self._client.connect_async(
            self._settings.mqtt_host,
            self._settings.mqtt_port,
            keepalive=self._settings.ingest.keepalive_s,
            clean_start=False,
            properties=self._connect_props,
        )
        self._client.loop_start()

    # --- paho's thread ----------------------------------------------------------------------

    def _publish(
        self, mid: int, qos: int, topic: str, payload: Payload, properties: Properties | None
    ) -> None:
        try:
            content_type = getattr(properties, "ContentType", None)
            if content_type is not None:
                # Goes to a text column: no NUL, and a sane length.
                content_type = content_type.replace("\x00", "")[:200]
            self._deliver(Incoming(mid, qos, topic, payload, content_type, self.generation))
        except Exception:
            # Unacknowledged, so the broker redelivers it after a reconnect: nothing is lost.
            log.exception("could not take a message: %r", bytes(payload[:200]))

    def _unread(
        self, mid: int, qos: int, topic: str, payload: Payload, properties: Properties | None
    ) -> None:
        self.unread += 1

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        # What paho delivers itself (paho_fast.LeanClient passes it on): the same hand-over.
        if self._leaving:
            self.unread += 1
            return
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # Mosquitto refuses such topics; kept unacknowledged
            log.error("a message on a topic that is not UTF-8: %r", msg._topic[:120])
            return
        self._publish(msg.mid, msg.qos, topic, msg.payload, msg.properties)

    def _connected(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            if reason.value in _REFUSED_LOGIN:
                self._fail(
                    f"the broker refused the login of {self._settings.ingest_username!r}: "
                    f"{reason} (check TELEMED_INGEST_USERNAME/TELEMED_INGEST_PASSWORD and run "
                    "`telemed devices sync` to write the broker's password file)"
                )
            else:
                log.warning("connection refused by the broker: %s; retrying", reason)
            return
        self.session_present = bool(flags.session_present)
        self.generation += 1
        log.info(
            "connected as %s (session %s)",
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        if self._subscriptions:
            client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self._subscriptions])

    def _subscribed(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        pairs = zip(self._subscriptions, reasons, strict=False)
        refused = [(t, r) for t, r in pairs if r.is_failure]
        if refused:
            text = ", ".join(f"{t} ({r})" for t, r in refused)
            self._fail(
                f"the broker refused the subscription {text}: the ACL must let "
                f"{self._settings.ingest_username!r} read the device topics"
            )
            return
        log.info("subscribed to %s", ", ".join(self._subscriptions))
        if self._on_subscribed is not None:
            self._on_subscribed()

    def _unsubscribed(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._unsubacks[mid] = reasons

    def _disconnected(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.value == _TAKEN_OVER:
            # Two processes on one slot (the slot lock should have refused the second), or
            # another account using this client id: each connect throws the other off.
            log.error("another connection took over the session of %s; reconnecting",
                      self.client_id)  # fmt: skip
        elif not self._stopping and self.fatal is None:
            log.warning("disconnected from the broker: %s; reconnecting", reason)

    def _fail(self, text: str) -> None:
        self.fatal = text
        self._stopping = True
        self._client.disconnect()
        self._on_fatal(text)

    # --- the asyncio side ---------------------------------------------------------------------

    def ack(self, batch: Sequence[Incoming]) -> None:
        """Acknowledge the messages of a committed batch that came on the current connection.
        The others were redelivered (with the session) or lost with it; either way their mids
        mean nothing on this connection."""
        generation = self.generation
        ack = self._client.ack
        for item in batch:
            if item.qos and item.generation == generation:
                ack(item.mid, item.qos)
        self.gate.nudge()  # paho's thread, if it waits while reading is held: write them

    def unsubscribe(self, topics: Sequence[str]) -> int:
        """Send UNSUBSCRIBE (after every acknowledgement sent before); `unsubacked(mid)` gives
        the broker's answer once it came."""
        rc, mid = self._client.unsubscribe(list(topics))
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionError(f"could not send UNSUBSCRIBE: {mqtt.error_string(rc)}")
        self.gate.nudge()
        return mid

    def unsubacked(self, mid: int) -> list[ReasonCode] | None:
        return self._unsubacks.pop(mid, None)

    def hold(self) -> None:
        """Take no more messages from the broker: reading stops (what the broker sends waits in
        the socket), while acknowledgements are still written. Returns at once."""
        self._stopping = True
        self.gate.hold_for_good()

    def disconnect(self, timeout_s: float = 10.0, *, end_session: bool = False) -> bool:
        """After `hold` and the last `ack`: see that the broker has applied every
        acknowledgement (a PINGREQ after them, answered in order), then DISCONNECT; the session
        stays for its expiry interval, or ends with `end_session` (Session Expiry Interval 0:
        the broker deletes its subscriptions and anything still queued). Whatever arrives
        meanwhile is read and not handed over: unacknowledged, it is delivered again. False
        when the broker did not answer in time (then acknowledgements sent last may not have
        been applied: their messages come again, and are stored once)."""
        self._stopping = self._leaving = True
        client = self._client
        client.lean_deliver = self._unread
        self.gate.let_go()  # the PINGRESP comes after what the broker sent meanwhile
        deadline = time.monotonic() + timeout_s
        answered = self._round_trip(deadline)
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        client.disconnect(properties=props)
        # paho's thread writes the DISCONNECT, closes the socket and ends.
        while client.socket() is not None and time.monotonic() < deadline:
            time.sleep(0.005)
        client.loop_stop()
        if self.unread:
            log.info("%d messages arrived while leaving; the broker delivers them again",
                     self.unread)  # fmt: skip
        return answered

    def _round_trip(self, deadline: float) -> bool:
        client = self._client
        generation = self.generation
        if not client.is_connected():
            return False
        number = client.ping()
        while number is not None and time.monotonic() < deadline:
            if client.pings_answered >= number:
                return True
            if self.generation != generation or not client.is_connected():
                break
            time.sleep(0.002)
        log.warning(
            "the broker did not answer before the DISCONNECT: acknowledgements sent last may "
            "not be applied, and their messages come again (stored once)"
        )
        return False

    def close(self) -> None:
        self._stopping = True
        self._client.loop_stop()
        self._client.disconnect()
