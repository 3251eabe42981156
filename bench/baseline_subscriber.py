"""The speed reference for ingest: a minimal paho subscriber that decodes each message and
binary-COPYs one raw row per reading into a plain table (bench_raw).

It acknowledges on receipt (paho's automatic ack, before the write), validates nothing, looks
up no device, deduplicates nothing and evaluates no rule: what ingest does beyond this is the
price of correctness. Run: .venv/bin/python -m bench.baseline_subscriber --dsn ... (see
bench/ingest.py, which drives it).
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import threading
import time

import msgspec
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from telemed.device_contract import READINGS_FILTER, ReadingMessage

DECODER = msgspec.json.Decoder(ReadingMessage)
COPY = (
    "COPY bench_raw (device_id, message_id, measured_at, metric, value, unit)"
    " FROM STDIN (FORMAT BINARY)"
)
TYPES = ("text", "text", "timestamptz", "text", "float8", "text")


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("--dsn", "--host", "--username"):
        p.add_argument(name, required=True)
    # From the environment, so that it does not show in the process list.
    p.add_argument("--password", default=os.environ.get("BENCH_MQTT_PASSWORD"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--client-id", default="bench-baseline")
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--batch-ms", type=float, default=50)
    args = p.parse_args()

    inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, args.client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(args.username, args.password)
    client.on_connect = lambda c, *_: c.subscribe(READINGS_FILTER, qos=1)
    client.on_message = lambda _c, _u, msg: inbox.put(msg)
    session = Properties(PacketTypes.CONNECT)
    session.SessionExpiryInterval = 3600
    client.connect(args.host, args.port, clean_start=False, properties=session)
    client.loop_start()

    with psycopg.connect(args.dsn, autocommit=True) as conn:
        while True:
            try:
                batch = [inbox.get(timeout=0.2)]
            except queue.Empty:
                if stop.is_set():
                    break
                continue
            deadline = time.monotonic() + args.batch_ms / 1000
            while len(batch) < args.batch:
                try:
                    batch.append(inbox.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            write(conn, batch)
    client.disconnect()
    client.loop_stop()
    return 0


def write(conn: psycopg.Connection, batch: list[mqtt.MQTTMessage]) -> None:
    with conn.transaction(), conn.cursor() as cur, cur.copy(COPY) as copy:
        copy.set_types(TYPES)
        for msg in batch:
            device_id = msg.topic.split("/")[3]
            m = DECODER.decode(msg.payload)
            for r in m.readings:
                copy.write_row((device_id, m.message_id, m.measured_at, r.type, r.value, r.unit))


if __name__ == "__main__":
    raise SystemExit(main())
