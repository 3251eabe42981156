"""The second speed reference: mq-bridge (Rust core, PyPI `mq-bridge`) routing MQTT to
PostgreSQL with COPY, configured as the comparison asks: queue_capacity 5000, batch_size 5000.

It runs in its own venv (bench/.venv, made by bench/ingest.py), so it imports nothing of the
project. mq-bridge's COPY mode binds top-level JSON fields only (`${payload:field}`, no casts,
no nested arrays), so it stores one row per message — (message_id, measured_at) — in
bench_mqb, and acknowledges each batch after its COPY (its default, delayed_ack false).
Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading

from mq_bridge import Route

TABLE = "bench_mqb"
INSERT = (
    f"INSERT INTO {TABLE} (message_id, measured_at)"
    " VALUES (${payload:message_id}, ${payload:measured_at})"
)


def route_config(args: argparse.Namespace) -> dict:
    return {
        "input": {
            "mqtt": {
                "url": f"tcp://{args.host}:{args.port}",
                "topic": args.topic,
                "username": args.username,
                "password": args.password,
                "client_id": args.client_id,
                "qos": 1,
                "protocol": "v5",
                "clean_session": False,
                "session_expiry_interval": 3600,
                "queue_capacity": args.queue_capacity,
            }
        },
        "output": {
            "sqlx": {"url": args.dsn, "table": TABLE, "bulk_copy": True, "insert_query": INSERT}
        },
        "batch_size": args.batch_size,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("--dsn", "--host", "--username"):
        p.add_argument(name, required=True)
    # From the environment, so that it does not show in the process list.
    p.add_argument("--password", default=os.environ.get("BENCH_MQTT_PASSWORD"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--topic", default="telemed/v1/devices/+/readings")
    p.add_argument("--client-id", default="bench-mqbridge")
    p.add_argument("--queue-capacity", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--print-config", action="store_true")
    args = p.parse_args()
    config = route_config(args)
    if args.print_config:
        shown = json.loads(json.dumps(config))
        shown["input"]["mqtt"]["password"] = "***"
        print(json.dumps(shown, indent=2))
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    route = Route.from_config(config)
    route.start()
    print("mq-bridge route running", flush=True)
    stop.wait()
    route.stop()
    route.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
