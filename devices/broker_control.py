"""The application's control connection to the broker's telemed_auth plugin.

Changes to the broker's accounts travel as one QoS 1 message to `$CONTROL/telemed-auth/v1`
(devices/broker_plugin/control.c), one command per line after `request <id>`; the plugin
applies the batch, or none of it, and answers `<id> ok <accounts>` or `<id> error <why>` to this
connection's client id. A batch costs the broker a hash-table update per line, whatever the
number of registered devices.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("devices.broker")

CONTROL_TOPIC = "$CONTROL/telemed-auth/v1"
RESPONSE_TOPIC = "$CONTROL/telemed-auth/v1/response"
ADMIN_USERNAME = "telemed-admin"
ADMIN_CLIENT_PREFIX = "telemed-admin-"
# Lines per control message: each `add` line is about 150 bytes, and the broker refuses
# messages over message_size_limit (1 MiB).
BATCH_LINES = 2000


class BrokerError(RuntimeError):
    """The broker answered a control message with an error, or not at all."""


class BrokerDown(BrokerError):
    """Nothing listens on the broker's port."""


class AdminRefused(BrokerError):
    """The broker refused the admin login (it does not know the account yet)."""


def send_commands(
    host: str, port: int, password: str, lines: Sequence[str], *, timeout_s: float = 15.0
) -> list[str]:
    """Send `lines` in batches of BATCH_LINES; the plugin's answer to each batch."""
    request = secrets.token_hex(8)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=ADMIN_CLIENT_PREFIX + request,
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(ADMIN_USERNAME, password)
    connack: list[ReasonCode] = []
    connected = threading.Event()
    answers: dict[str, str] = {}
    answered = threading.Condition()

    def on_connect(_c, _u, _f, rc: ReasonCode, _p) -> None:
        connack.append(rc)
        connected.set()

    def on_message(_c, _u, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != RESPONSE_TOPIC:
            return
        rid, _, text = msg.payload.decode(errors="replace").partition(" ")
        with answered:
            answers[rid] = text
            answered.notify_all()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise BrokerDown(f"no broker on {host}:{port} ({exc})") from None
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise BrokerError(f"the broker on {host}:{port} did not answer the login")
        if connack[0].is_failure:
            raise AdminRefused(f"the broker refused the admin login: {connack[0]}")
        results = []
        for start in range(0, max(len(lines), 1), BATCH_LINES):
            rid = f"{request}-{start}"
            body = "\n".join([f"request {rid}", *lines[start : start + BATCH_LINES]])
            client.publish(CONTROL_TOPIC, body.encode(), qos=1)

            def arrived(rid: str = rid) -> bool:
                return rid in answers

            with answered:
                if not answered.wait_for(arrived, timeout_s):
                    raise BrokerError("the broker did not answer a control message")
                text = answers.pop(rid)
            if not text.startswith("ok"):
                raise BrokerError(f"the broker refused a control message: {text}")
            results.append(text)
        return results
    finally:
        client.disconnect()
        client.loop_stop()


def signal_reload(pidfile: Path) -> bool:
    """SIGHUP the broker of `pidfile` (it rereads the account files); False when not running.
    Only for a broker that does not know the admin account yet: on SIGHUP Mosquitto checks every
    connected client's login again."""
    try:
        pid = int(pidfile.read_text().strip())
        # A stale pid file must not make us signal some other process.
        if Path("/proc").is_dir() and "mosquitto" not in Path(f"/proc/{pid}/comm").read_text():
            raise ProcessLookupError(pid)
        os.kill(pid, signal.SIGHUP)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        log.warning("broker not running (pid file %s); it reads the files when it starts", pidfile)
        return False
    return True
