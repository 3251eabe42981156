"""MQTT clients for the ingest worker, compared: how fast each drains a persistent session's
queue of QoS 1 messages from the real broker, acknowledging every one, and the CPU it spends.

    .venv/bin/python -m bench.mqtt_clients            # 3 rounds of 20,000 messages, ~1 minute
    .venv/bin/python -m bench.mqtt_clients --quick    # 1 round of 3,000, a smoke check

Each round publishes N COPD-kit messages once, while every client's session is offline, so
that the broker queues the same N for each; then each client in turn, in a process of its own
(paho_fast patches paho process-wide), connects and drains them. The clients:

- patched: `ingest.mqtt.Subscriber` as the worker builds it (ingest/paho_fast.py's LeanClient
  and DecodedProperties), messages handed to another thread, which acknowledges them in
  batches of what has arrived, as the worker does after its commit;
- paho: the same Subscriber on paho-mqtt's own Client and Properties (paho_fast not
  installed): paho's on_message path, the same hand-over and acknowledgement;
- aiomqtt: aiomqtt as its documentation uses it (`async for message in client.messages`). It
  has no manual acknowledgement: paho, underneath, acknowledges each message on receipt,
  before the application has it, which the worker must not do;
- aiomqtt_manual: aiomqtt with acknowledgement after receipt, each message acknowledged from
  the asyncio loop, which is possible only through its private paho client (`_client`).

Messages/s is wall time from connecting to the last acknowledgement handed to the client;
client CPU is the process's CPU time over the same span (every thread), per message; broker
CPU is Mosquitto's over the drain. After each drain the session is checked for messages left
unacknowledged (a second connection with the same client id waits a second for any). Writes
bench/results/mqtt_clients.json; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench import common
from telemed.device_contract import READINGS_FILTER
from telemed.settings import load_settings

RESULTS = common.REPO / "bench" / "results" / "mqtt_clients.json"
KINDS = ("patched", "paho", "aiomqtt", "aiomqtt_manual")
SESSION_S = 3600
RECEIVE_MAXIMUM = 15000  # the worker's: (lanes + 1) x batch size
BATCH = 5000  # the most one acknowledgement round takes, as the worker's batch


def _client_id(kind: str) -> str:
    return f"telemed-ingest-bench-{kind.replace('_', '-')}"


def _connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_S
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


# --- the clients, each run in a child process --------------------------------------------


def drain_subscriber(kind: str, count: int) -> dict:
    """patched or paho: the worker's Subscriber; the main thread stands in for the worker's
    asyncio side, acknowledging what has arrived in batches."""
    if kind == "paho":
        from ingest import paho_fast

        # The worker's Subscriber, built on paho's own Client; DecodedProperties not installed.
        paho_fast.LeanClient = mqtt.Client  # type: ignore[misc]
        paho_fast.install = lambda: False  # type: ignore[assignment]
    from ingest.mqtt import Subscriber

    inbox: queue.SimpleQueue = queue.SimpleQueue()
    fatal: list[str] = []
    subacks = threading.Semaphore(0)
    sub = Subscriber(
        load_settings(),
        client_id=_client_id(kind),
        subscriptions=[READINGS_FILTER],
        receive_maximum=RECEIVE_MAXIMUM,
        session_expiry_s=SESSION_S,
        deliver=inbox.put,
        on_fatal=fatal.append,
        on_subscribed=subacks.release,
    )
    began, cpu = time.perf_counter(), time.process_time()
    sub.start()
    acked = 0
    while acked < count:
        try:
            batch = [inbox.get(timeout=30)]
        except queue.Empty:
            raise SystemExit(f"{kind}: nothing for 30 s after {acked} messages {fatal}") from None
        while len(batch) < BATCH:
            try:
                batch.append(inbox.get_nowait())
            except queue.Empty:
                break
        sub.ack(batch)
        acked += len(batch)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    # The broker answers packets in order: once it answers a SUBSCRIBE sent after the last
    # acknowledgement, it has taken every one (a DISCONNECT right after them can lose some).
    subacks.acquire(timeout=10)  # the subscription made on connecting
    sub._client.subscribe(READINGS_FILTER, qos=1)
    if not subacks.acquire(timeout=10):
        raise SystemExit(f"{kind}: the broker did not answer after the acknowledgements")
    sub.hold()
    if kind == "paho":
        # paho's own Client has no round trip of LeanClient's (ping); the SUBACK above has
        # confirmed every acknowledgement already.
        sub._client.disconnect()
        sub._client.loop_stop()
    else:
        sub.disconnect()
    return {"received": acked, "seconds": seconds, "cpu_s": cpu}


async def drain_aiomqtt(kind: str, count: int) -> dict:
    import aiomqtt

    settings = load_settings()
    client = aiomqtt.Client(
        settings.mqtt_host,
        settings.mqtt_port,
        username=settings.ingest_username,
        password=settings.ingest_password,
        identifier=_client_id(kind),
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=_connect_properties(),
    )
    manual = kind == "aiomqtt_manual"
    paho = client._client  # private: the only way to acknowledge after receipt
    if manual:
        paho.manual_ack_set(True)
    began, cpu = time.perf_counter(), time.process_time()
    received = 0
    async with client:
        await client.subscribe(READINGS_FILTER, qos=1)
        async for message in client.messages:
            if manual:
                paho.ack(message.mid, message.qos)
            received += 1
            if received >= count:
                break
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        # Answered only after every acknowledgement sent before it (see drain_subscriber).
        await client.subscribe(READINGS_FILTER, qos=1)
    return {"received": received, "seconds": seconds, "cpu_s": cpu}


def child(kind: str, count: int) -> int:
    if kind.startswith("aiomqtt"):
        found = asyncio.run(drain_aiomqtt(kind, count))
    else:
        found = drain_subscriber(kind, count)
    print(json.dumps(found), flush=True)
    return 0


# --- the parent: sessions, publishing, the runs ------------------------------------------


class Session:
    """A short plain-paho connection under a bench client id: opens the persistent session
    (with its subscription), counts what it still holds, or ends it."""

    def __init__(self, settings, client_id: str, *, clean: bool) -> None:
        self.received = 0
        self.subscribed = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.username_pw_set(settings.ingest_username, settings.ingest_password)
        client.on_message = self._message
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.connect(
            settings.mqtt_host, settings.mqtt_port, clean_start=clean,
            properties=_connect_properties(),
        )  # fmt: skip
        client.loop_start()
        self.client = client

    def _message(self, client, userdata, msg) -> None:
        self.received += 1

    def close(self, *, end: bool = False) -> None:
        props = None
        if end:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()


def open_session(settings, client_id: str) -> None:
    """A persistent session subscribed to every device's readings, left for the broker to fill."""
    s = Session(settings, client_id, clean=True)
    s.client.subscribe(READINGS_FILTER, qos=1)
    if not s.subscribed.wait(10):
        raise SystemExit(f"{client_id}: no SUBACK")
    s.close()


def leftover(settings, client_id: str) -> int:
    """Messages the session still holds: what a new connection receives within a second."""
    s = Session(settings, client_id, clean=False)
    time.sleep(1.0)
    s.close()
    return s.received


def child_drain(module: str, env: dict[str, str], kind: str, args: list[str]) -> dict:
    """Run `python -m module --child kind args…`, which drains its session and prints what it
    found as its last line of JSON; that, with the rates every drain reports."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--child", kind, *args],
        env=env, cwd=common.REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    n = found["received"]
    return {
        **found,
        "kind": kind,
        "messages": n,
        "seconds": round(found["seconds"], 3),
        "messages_per_s": round(n / found["seconds"]),
        "client_cpu_us_per_message": round(1e6 * found["cpu_s"] / n, 1),
    }


def run_child(env: dict[str, str], kind: str, count: int) -> dict:
    before = common.cpu_seconds([])["mosquitto"]
    found = child_drain("bench.mqtt_clients", env, kind, ["--count", str(count)])
    broker = common.cpu_seconds([])["mosquitto"] - before
    keys = ("kind", "messages", "seconds", "messages_per_s", "client_cpu_us_per_message")
    return {
        **{key: found[key] for key in keys},
        "broker_cpu_us_per_message": round(1e6 * broker / found["messages"], 1),
    }


def drain_rounds(
    count: int,
    rounds: int,
    kinds: list[str],
    run: Callable[[dict[str, str], str], dict],
    order: Callable[[int], list[str]],
    devices: int,
    client_id: Callable[[str], str],
) -> dict:
    """The drain both MQTT benchmarks measure: on their own services and a fresh database, a
    persistent session per kind (`client_id(kind)`), then per round `count` kit messages
    published and queued for every session, and each kind's child (`run`) draining its session
    in `order(round)`; what each session still held afterwards is counted, and the sessions are
    ended at the close."""
    env = common.start_services()
    settings = load_settings(env)
    common.fresh_database(env["TELEMED_DSN"])
    with common.connect(env["TELEMED_DSN"]) as conn:
        pool = common.provision_pool(conn, settings, devices)
    for kind in kinds:
        Session(settings, client_id(kind), clean=False).close(end=True)  # nothing left over
        open_session(settings, client_id(kind))
    load_before = os.getloadavg()
    runs = []
    for r in range(rounds):
        job = common.PublishJob(
            host=settings.mqtt_host, port=settings.mqtt_port, devices=pool, phase=f"r{r}",
            count=count, rate=0, shape="kit", start_at=time.time(), seed=r + 1,
        )  # fmt: skip
        published = common.publish(job)
        if published.acked != count:
            raise SystemExit(f"the broker acknowledged {published.acked} of {count}")
        for kind in order(r):
            found = run(env, kind)
            found["round"] = r
            found["left_unacknowledged"] = leftover(settings, client_id(kind))
            runs.append(found)
            print(json.dumps(found), flush=True)
    for kind in kinds:
        Session(settings, client_id(kind), clean=False).close(end=True)
    return {"runs": runs, "load_before": [round(x, 2) for x in load_before]}


def measure(args: argparse.Namespace) -> dict:
    kinds = args.kinds
    return drain_rounds(
        args.count, args.rounds, kinds, lambda env, kind: run_child(env, kind, args.count),
        # each kind goes first once
        lambda r: kinds[r % len(kinds) :] + kinds[: r % len(kinds)],
        args.devices, _client_id,
    )  # fmt: skip


def summarise(runs: list[dict], kinds: list[str]) -> dict:
    """Medians per client, and ratios to the patched client's figures of the same rounds."""
    out: dict[str, dict] = {}
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        out[kind] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("messages_per_s", "client_cpu_us_per_message", "broker_cpu_us_per_message")
        }
        out[kind]["left_unacknowledged"] = sum(r["left_unacknowledged"] for r in mine)
    if "patched" in out:
        for kind in kinds:
            rates, cpus = [], []
            for r in (x for x in runs if x["kind"] == kind):
                base = next(x for x in runs if x["kind"] == "patched" and x["round"] == r["round"])
                rates.append(r["messages_per_s"] / base["messages_per_s"])
                cpus.append(r["client_cpu_us_per_message"] / base["client_cpu_us_per_message"])
            out[kind]["rate_vs_patched"] = round(statistics.median(rates), 2)
            out[kind]["client_cpu_vs_patched"] = round(statistics.median(cpus), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.mqtt_clients", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="one round of 3,000 messages")
    p.add_argument("--count", type=int, help="messages per round (default 20000; quick 3000)")
    p.add_argument("--rounds", type=int, help="rounds (default 3; quick 1)")
    p.add_argument("--devices", type=int, default=50, help="publishing devices")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--output", type=Path, help=f"default {RESULTS} (quick: not written)")
    p.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.count = args.count or (3000 if args.quick else 20000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.child:
        return child(args.child, args.count)

    found = measure(args)
    summary = summarise(found["runs"], args.kinds)
    result = {
        "summary": summary,
        **found,
        "count": args.count,
        "rounds": args.rounds,
        "versions": {d: metadata.version(d) for d in ("paho-mqtt", "aiomqtt")},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": common.git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(common.git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join(["python -m bench.mqtt_clients", *(argv or sys.argv[1:])]),
        "machine": common.machine(),
    }
    columns = ("messages_per_s", "client_cpu_us_per_message", "broker_cpu_us_per_message",
               "rate_vs_patched", "client_cpu_vs_patched", "left_unacknowledged")  # fmt: skip
    print("\nclient          messages/s  client µs/msg  broker µs/msg  rate vs patched"
          "  CPU vs patched  left")  # fmt: skip
    for kind, s in summary.items():
        a, b, c, d, e, f = (s.get(key, 0) for key in columns)
        print(f"{kind:<16}{a:>10,.0f}{b:>15.1f}{c:>15.1f}{d:>17.2f}{e:>16.2f}{f:>6}")
    output = args.output or (None if args.quick else RESULTS)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
