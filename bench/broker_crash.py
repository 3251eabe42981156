"""What a broker crash costs: Mosquitto 2.0.11's persistence settings against readings that
were already acknowledged, at the target rate.

    .venv/bin/python -m bench.broker_crash            # about two minutes
    .venv/bin/python -m bench.broker_crash --quick

For each setting, `--runs` times, on a broker of its own (a scratch folder, a free loopback
port, the project's persistence settings otherwise; no accounts, since only persistence is
measured):

0. `--retained` status messages are retained, one per device of a fleet: every save writes
   them too;
1. a consumer's persistent session subscribes to the readings with QoS 1 and disconnects, so
   that everything published next waits in its session, as readings do for an ingest worker
   that restarts;
2. `--messages` QoS 1 messages are published at `--rate` (5,000/s, the target of
   docs/benchmarks.md) and every PUBACK is awaited: the broker has acknowledged them all;
3. the broker is killed with SIGKILL at once, and started again on the same folder;
4. the session is resumed and its messages counted: lost = acknowledged - delivered, and the
   loss window = lost / rate.

The throughput the broker reaches with each setting (acknowledged messages per second while
publishing as fast as it acknowledges) is measured in the same run. Writes
bench/results/broker_crash.json; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench import common

RESULTS = common.REPO / "bench" / "results" / "broker_crash.json"
SETTINGS = {
    "interval_10s": "autosave_interval 10",  # the project's setting before this benchmark
    "interval_1s": "autosave_interval 1",
    "every_change": "autosave_on_changes true\nautosave_interval 1",
    "every_100_changes": "autosave_on_changes true\nautosave_interval 100",
}
TOPIC = "crash/readings"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, folder: Path, setting: str) -> None:
        self.folder, self.port = folder, free_port()
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "m.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {folder}/data/\n{setting}\n"
            "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
            f"log_dest file {folder}/mosquitto.log\n" + ("user root\n" if os.geteuid() == 0 else "")
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["/usr/sbin/mosquitto", "-c", str(self.folder / "m.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError("the broker did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def consumer(port: int, received: set[int] | None = None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="crash-consumer",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    if received is not None:
        client.on_message = lambda _c, _u, m: received.add(int(m.payload))
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    if received is None:
        client.subscribe(TOPIC, qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("no SUBACK")
    return client


def publish(port: int, n: int, rate: float | None, stall_s: float = 60.0) -> float:
    """n QoS 1 messages, paced at `rate` (None: as fast as acknowledged); seconds until the
    last PUBACK. Fails when no PUBACK arrives for `stall_s` (a slow setting is waited for as
    long as it makes progress)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="crash-publisher",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    acked = [0]
    done = threading.Event()

    def on_publish(*_a) -> None:
        acked[0] += 1
        if acked[0] == n:
            done.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    for i in range(n):
        while i - acked[0] > 2000:  # paho's packet ids must not wrap under us
            time.sleep(0.001)
        client.publish(TOPIC, str(i).encode(), qos=1)
        if rate:
            ahead = started + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    seen = -1
    while not done.wait(stall_s):
        if acked[0] == seen:
            raise RuntimeError(f"only {acked[0]} of {n} acknowledged, none for {stall_s:.0f} s")
        seen = acked[0]
    took = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    return took


def retain(port: int, n: int) -> None:
    """n retained status messages, as a fleet's devices leave them: part of every save."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="crash-fleet", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [
        client.publish(f"crash/status/dev-{i:06d}", b'{"state":"online","battery":80}', qos=1,
                       retain=True)
        for i in range(n)
    ]  # fmt: skip
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()


def crash_run(setting: str, n: int, rate: float, retained: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="telemed-crash-") as tmp:
        broker = Broker(Path(tmp), setting)
        broker.start()
        try:
            retain(broker.port, retained)
            c = consumer(broker.port)
            c.disconnect()
            c.loop_stop()
            time.sleep(0.2)
            took = publish(broker.port, n, rate)
            broker.kill()
            broker.start()
            received: set[int] = set()
            c = consumer(broker.port, received)
            last, quiet_since = -1, time.monotonic()
            while time.monotonic() - quiet_since < 2.0:
                if len(received) != last:
                    last, quiet_since = len(received), time.monotonic()
                time.sleep(0.05)
            c.disconnect()
            c.loop_stop()
        finally:
            broker.stop()
    lost = n - len(received)
    # The window in seconds of acknowledged readings, at the rate the broker acknowledged them
    # (below `rate` when a setting cannot keep up).
    achieved = min(rate, n / took)
    return {"acknowledged": n, "delivered_after_crash": len(received), "lost": lost,
            "publish_s": round(took, 3), "loss_window_s": round(lost / achieved, 3)}  # fmt: skip


def throughput(setting: str, n: int, retained: int) -> float:
    with tempfile.TemporaryDirectory(prefix="telemed-crash-") as tmp:
        broker = Broker(Path(tmp), setting)
        broker.start()
        try:
            retain(broker.port, retained)
            c = consumer(broker.port)
            c.disconnect()
            c.loop_stop()
            return n / publish(broker.port, n, None)
        finally:
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--retained",
        type=int,
        default=12_200,
        help="retained status messages in the broker (one per device; default 12,200)",
    )
    ap.add_argument("--only", nargs="+", choices=list(SETTINGS), help="these settings only")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if args.quick:
        args.messages, args.runs = 2000, 1
    results = {}
    for name, setting in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        runs = [
            crash_run(setting, args.messages, args.rate, args.retained) for _ in range(args.runs)
        ]
        rate = throughput(setting, args.messages, args.retained)
        results[name] = {
            "setting": setting.replace("\n", "; "),
            "runs": runs,
            "lost_max": max(r["lost"] for r in runs),
            "loss_window_max_s": max(r["loss_window_s"] for r in runs),
            "throughput_msg_s": round(rate),
        }
        print(f"{name}: {results[name]}", flush=True)
    base = results.get("interval_10s", {}).get("throughput_msg_s") or 1
    for r in results.values():
        r["throughput_ratio"] = round(r["throughput_msg_s"] / base, 2)
    out = {
        "benchmark": "broker_crash",
        "command": " ".join(["python -m bench.broker_crash", *sys.argv[1:]]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": common.git("rev-parse", "--short", "HEAD"),
        "machine": common.machine(),
        "broker": subprocess.run(
            ["/usr/sbin/mosquitto", "-h"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        # The output path as given, relative to the repository when inside it.
        "args": vars(args) | {"out": common.relative(args.out)},
        "settings": results,
    }
    text = msgspec.json.format(msgspec.json.encode(out), indent=2).decode()
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
