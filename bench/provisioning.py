"""Provisioning benchmark: enrolling and revoking devices at fleet scale, and what a connected
device sees of it.

    .venv/bin/python -m bench.provisioning                 # 100,000 devices, a few minutes
    .venv/bin/python -m bench.provisioning --devices 5000  # a quick check

Against the benchmark's own services (bench/common.py) and a fresh database:

1. `--devices` patients, then that many devices enrolled through `provision_many` and
   `apply_changes` (what `telemed devices provision-bulk` runs) in transactions of `--chunk`:
   provisioning throughput, and the broker accounts' files.
2. A probe device, in a child process of its own, publishes QoS 1 at `--rate` messages/s and
   notes each PUBACK's delay, through four phases of `--seconds` each:
   - baseline: nothing else happens;
   - changes: devices provisioned and revoked one per transaction, as `telemed devices
     provision` / `revoke` and the admin API do (each a journal line and a control message);
   - bulk: another chunk enrolled in one transaction;
   - full sync: `sync_broker` (rewrite of the snapshot and a reload of every account), the
     operator's repair, for comparison.
3. A broker restart: how long until it accepts connections with every account loaded.

Writes bench/results/provisioning.json; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from bench import common
from bench.common import percentile
from telemed.settings import load_settings

RESULTS = common.REPO / "bench" / "results" / "provisioning.json"


def make_patients(conn, n: int) -> list[str]:
    rows = conn.execute(
        "INSERT INTO patients (pseudonym, name, date_of_birth)"
        " SELECT 'PB-' || g, 'Bench Patient ' || g, date '1950-01-01'"
        " FROM generate_series(1, %s) g RETURNING pseudonym",
        (n,),
    ).fetchall()
    conn.commit()
    return [r["pseudonym"] for r in rows]


def enrol(conn, settings, pseudonyms: list[str], chunk: int) -> tuple[list, float]:
    from devices.broker_change import apply_changes
    from devices.provisioning_bulk import NewDevice, provision_many

    made, started = [], time.monotonic()
    for i in range(0, len(pseudonyms), chunk):
        rows = [NewDevice(patient=p, kind="copd_kit") for p in pseudonyms[i : i + chunk]]
        with conn.transaction():
            batch = provision_many(conn, rows)
            apply_changes(conn, settings, added=[(d.device_id, h) for d, h in batch])
        made += [d for d, _ in batch]
    return made, time.monotonic() - started


def probe(env: dict, device_id: str, password: str, rate: float, pipe) -> None:
    """Publish QoS 1 at `rate` until told to stop; send back (sent_at, delay) pairs."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from telemed.device_contract import readings_topic

    settings = load_settings(env)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, password)
    sent: dict[int, float] = {}
    delays: list[tuple[float, float]] = []

    def on_publish(_c, _u, mid, rc, _p) -> None:
        at = sent.pop(mid, None)
        if at is not None:
            delays.append((at, time.monotonic() - at))

    client.on_publish = on_publish
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    pipe.send("ready")
    gap, next_at = 1 / rate, time.monotonic()
    topic = readings_topic(device_id)
    while not pipe.poll():
        info = client.publish(topic, b'{"probe": true}', qos=1)
        sent[info.mid] = time.monotonic()
        next_at += gap
        time.sleep(max(0.0, next_at - time.monotonic()))
    pipe.recv()
    time.sleep(1)
    # What is still unacknowledged counts with its delay so far.
    now = time.monotonic()
    delays += [(at, now - at) for at in sent.values()]
    pipe.send(delays)
    client.disconnect()
    client.loop_stop()


def phase_stats(delays: list[tuple[float, float]], start: float, end: float) -> dict:
    ms = [d * 1000 for at, d in delays if start <= at < end]
    return {
        "messages": len(ms),
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms) if ms else None,
    }


def restart_broker(env: dict, pidfile) -> float:
    """Stop the broker alone (SIGTERM; it saves), start it again; seconds until it listens."""
    script = str(common.REPO / "scripts" / "services")
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    started = time.monotonic()
    subprocess.run([script, "start"], env=env, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=5_000)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    from devices.broker import sync_broker
    from devices.broker_change import apply_changes
    from devices.provisioning import revoke
    from devices.provisioning_bulk import NewDevice, provision_many

    env = common.start_services()
    settings = load_settings(env)
    common.fresh_database(env["TELEMED_DSN"])
    conn = common.connect(env["TELEMED_DSN"])
    pseudonyms = make_patients(conn, args.devices + 2 * args.chunk + 10_000)
    pool = iter(pseudonyms[args.devices :])
    print(f"enrolling {args.devices} devices in transactions of {args.chunk} ...", flush=True)
    made, seconds = enrol(conn, settings, pseudonyms[: args.devices], args.chunk)
    bulk = {"devices": len(made), "seconds": round(seconds, 2),
            "per_second": round(len(made) / seconds, 1)}  # fmt: skip
    print(f"  {bulk}", flush=True)

    probe_dev = made[0]
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=probe, args=(env, probe_dev.device_id, probe_dev.password, args.rate, theirs)
    )
    child.start()
    assert ours.recv() == "ready"
    marks: dict[str, tuple[float, float]] = {}

    def timed(name: str, work) -> dict:
        start = time.monotonic()
        extra = work(start + args.seconds)
        marks[name] = (start, time.monotonic())
        print(f"  {name}: {extra}", flush=True)
        return extra

    def idle(until: float) -> dict:
        time.sleep(max(0.0, until - time.monotonic()))
        return {}

    def changes(until: float) -> dict:
        added = removed = 0
        victims = iter(made[1:])
        while time.monotonic() < until:
            with conn.transaction():
                [(d, h)] = provision_many(conn, [NewDevice(patient=next(pool), kind="scale")])
                apply_changes(conn, settings, added=[(d.device_id, h)])
            added += 1
            with conn.transaction():
                gone = revoke(conn, next(victims).device_id)
                apply_changes(conn, settings, removed=[gone.id])
            removed += 1
        return {"provisioned": added, "revoked": removed,
                "per_second": round((added + removed) / args.seconds, 1)}  # fmt: skip

    def one_bulk(until: float) -> dict:
        rows = [NewDevice(patient=next(pool), kind="copd_kit") for _ in range(args.chunk)]
        t = time.monotonic()
        with conn.transaction():
            batch = provision_many(conn, rows)
            apply_changes(conn, settings, added=[(d.device_id, h) for d, h in batch])
        took = time.monotonic() - t
        idle(until)
        return {"devices": len(batch), "seconds": round(took, 2)}

    def full_sync(until: float) -> dict:
        t = time.monotonic()
        result = sync_broker(conn, settings)
        took = time.monotonic() - t
        idle(until)
        return {"devices": result.devices, "seconds": round(took, 2)}

    phases = {
        "baseline": timed("baseline", idle),
        "changes": timed("changes", changes),
        "bulk": timed("bulk", one_bulk),
        "full_sync": timed("full_sync", full_sync),
    }
    ours.send("stop")
    delays = ours.recv()
    child.join(10)
    puback = {name: phase_stats(delays, *marks[name]) for name in phases}
    restart_s = restart_broker(env, settings.broker_pidfile)
    snapshot = settings.broker_dir / "accounts"
    registered = conn.execute("SELECT count(*) AS n FROM devices WHERE active").fetchone()["n"]
    conn.close()
    base_max = puback["baseline"]["max_ms"] or 1
    result = {
        "benchmark": "provisioning",
        "command": " ".join(["python -m bench.provisioning", *sys.argv[1:]]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": common.git("rev-parse", "--short", "HEAD"),
        "machine": common.machine(),
        # The output path as given, relative to the repository when inside it.
        "args": vars(args) | {"out": common.relative(args.out)},
        "registered_devices": registered,
        "snapshot_bytes": snapshot.stat().st_size,
        "enrolment": bulk,
        "phases": phases,
        "puback": puback,
        "max_delay_ratio": {k: round((v["max_ms"] or 0) / base_max, 2) for k, v in puback.items()},
        "broker_restart_s": round(restart_s, 2),
        "run": uuid.uuid4().hex[:8],
    }
    text = msgspec.json.format(msgspec.json.encode(result), indent=2).decode()
    print(text)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
