"""The ingest worker's inflow bound, measured: a worker whose writes are slower than the broker
delivers drains a queued backlog with and without the high-water mark (ingest.inbox.Gate), and
prints the most messages that waited at once, the peak resident memory and the rate.

    .venv/bin/python -m bench.inflow            # 3 rounds of 60,000 messages, ~1 minute
    .venv/bin/python -m bench.inflow --quick    # 1 round of 10,000, a smoke check

Each round publishes N COPD-kit messages while both sessions are offline, so that the broker
queues the same N for each; then each variant in turn, in a process of its own, connects with
the worker's Subscriber (paho_fast's LeanClient) and hands messages to two lanes' inboxes as
the worker does. Each lane takes batches of up to 5,000 (or what came within 50 ms) and stands
in for the database with a fixed pause per batch (--commit-ms, default 250 ms: at most 20,000
messages/s per lane, slower than the broker delivers), then acknowledges the batch. The variants:

- bounded: the worker's gate, reading held over the mark (--mark, default 15,000: the worker's
  default of (lanes + 1) x batch size) and let go at half of it;
- unbounded: the same with no mark (what the worker did before), so that the broker's send
  rate, which Mosquitto 2.0.11 does not hold to the Receive Maximum once acknowledgements
  come, decides what waits.

Figures per variant: messages/s (connect to the last acknowledgement), the peak count waiting
in the inboxes (seen before each read from the socket), the peak resident memory above the
memory just before connecting (VmHWM - VmRSS), and whether the session held anything after
the clean stop (it must not: the acknowledgements are applied before the DISCONNECT). Ratios
are bounded / unbounded, per round. Writes bench/results/inflow.json; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import common
from bench.mqtt_clients import child_drain, drain_rounds
from telemed.device_contract import READINGS_FILTER
from telemed.settings import load_settings

RESULTS = common.REPO / "bench" / "results" / "inflow.json"
KINDS = ("bounded", "unbounded")
SESSION_S = 3600
BATCH = 5000
LANES = 2
RECEIVE_MAXIMUM = (LANES + 1) * BATCH  # the worker's


def _client_id(kind: str) -> str:
    return f"telemed-ingest-bench-inflow-{kind}"


def _memory_kib() -> dict[str, int]:
    with open("/proc/self/status") as f:
        found = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f)
                 if k in ("VmRSS", "VmHWM")}  # fmt: skip
    return found


async def drain(kind: str, count: int, mark: int, commit_ms: float) -> dict:
    from ingest.batch import Incoming, lane_of
    from ingest.inbox import Gate, Inbox
    from ingest.mqtt import Subscriber

    loop = asyncio.get_running_loop()
    gate = Gate(mark if kind == "bounded" else None)
    inboxes: list[Inbox[Incoming]] = [Inbox(loop, gate) for _ in range(LANES)]

    def deliver(item: Incoming) -> None:
        inboxes[lane_of(item.topic, LANES)].put(item)

    fatal: list[str] = []
    sub = Subscriber(
        load_settings(),
        client_id=_client_id(kind),
        subscriptions=[READINGS_FILTER],
        receive_maximum=RECEIVE_MAXIMUM,
        session_expiry_s=SESSION_S,
        deliver=deliver,
        on_fatal=fatal.append,
        gate=gate,
    )
    base = _memory_kib()["VmRSS"]
    acked = 0
    began, cpu = time.perf_counter(), time.process_time()
    sub.start()

    async def lane(number: int) -> None:
        nonlocal acked
        while acked < count:
            batch = await inboxes[number].take(BATCH, 0.05)
            if fatal:
                raise SystemExit(f"{kind}: {fatal}")
            if batch:
                await asyncio.sleep(commit_ms / 1000)  # the database's part
                sub.ack(batch)
                acked += len(batch)
        for inbox in inboxes:
            inbox.interrupt()

    await asyncio.wait_for(asyncio.gather(*(lane(i) for i in range(LANES))), 300)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    peak = _memory_kib()["VmHWM"]
    # As the worker stops: nothing more taken, every acknowledgement applied, DISCONNECT.
    sub.hold()
    answered = await asyncio.to_thread(sub.disconnect)
    return {
        "received": acked,
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_waiting": gate.peak,
        "holds": gate.holds,
        "rss_before_kib": base,
        "rss_peak_kib": peak,
        "acks_confirmed": answered,
    }


def run_child(env: dict[str, str], kind: str, args: argparse.Namespace) -> dict:
    found = child_drain(
        "bench.inflow", env, kind,
        ["--count", str(args.count), "--mark", str(args.mark), "--commit-ms", str(args.commit_ms)],
    )  # fmt: skip
    keys = ("kind", "messages", "seconds", "messages_per_s", "client_cpu_us_per_message",
            "peak_waiting", "holds")  # fmt: skip
    return {
        **{key: found[key] for key in keys},
        "rss_growth_mib": round((found["rss_peak_kib"] - found["rss_before_kib"]) / 1024, 1),
        "acks_confirmed": found["acks_confirmed"],
    }


def measure(args: argparse.Namespace) -> dict:
    kinds = list(KINDS)
    return drain_rounds(
        args.count, args.rounds, kinds, lambda env, kind: run_child(env, kind, args),
        # each variant goes first in turn
        lambda r: kinds if r % 2 == 0 else kinds[::-1],
        args.devices, _client_id,
    )  # fmt: skip


def summarise(runs: list[dict]) -> dict:
    keys = ("messages_per_s", "client_cpu_us_per_message", "peak_waiting", "rss_growth_mib")
    out: dict[str, dict] = {}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        out[kind] = {key: statistics.median(r[key] for r in mine) for key in keys}
        out[kind]["left_unacknowledged"] = sum(r["left_unacknowledged"] for r in mine)
    ratios: dict[str, list[float]] = {key: [] for key in keys}
    for b in (r for r in runs if r["kind"] == "bounded"):
        u = next(r for r in runs if r["kind"] == "unbounded" and r["round"] == b["round"])
        for key in keys:
            if u[key]:
                ratios[key].append(b[key] / u[key])
    out["bounded_vs_unbounded"] = {k: round(statistics.median(v), 3) for k, v in ratios.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.inflow", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one round of 10,000 messages")
    p.add_argument("--count", type=int, help="messages per round (default 60000; quick 10000)")
    p.add_argument("--rounds", type=int, help="rounds (default 3; quick 1)")
    p.add_argument("--mark", type=int, default=RECEIVE_MAXIMUM, help="the bounded high-water mark")
    p.add_argument("--commit-ms", type=float, default=250.0, help="a lane's pause per batch")
    p.add_argument("--devices", type=int, default=50, help="publishing devices")
    p.add_argument("--output", type=Path, help=f"default {RESULTS} (quick: not written)")
    p.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.count = args.count or (10000 if args.quick else 60000)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if args.child:
        found = asyncio.run(drain(args.child, args.count, args.mark, args.commit_ms))
        print(json.dumps(found), flush=True)
        return 0

    found = measure(args)
    summary = summarise(found["runs"])
    result = {
        "summary": summary,
        **found,
        "count": args.count,
        "rounds": args.rounds,
        "mark": args.mark,
        "commit_ms": args.commit_ms,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": common.git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(common.git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join(["python -m bench.inflow", *(argv or sys.argv[1:])]),
        "machine": common.machine(),
    }
    print("\nvariant         messages/s  client µs/msg  peak waiting  RSS growth MiB  left")
    for kind in KINDS:
        s = summary[kind]
        print(f"{kind:<16}{s['messages_per_s']:>10,.0f}{s['client_cpu_us_per_message']:>15.1f}"
              f"{s['peak_waiting']:>14,.0f}{s['rss_growth_mib']:>16.1f}"
              f"{s['left_unacknowledged']:>6}")  # fmt: skip
    r = summary["bounded_vs_unbounded"]
    print(f"bounded/unbounded{r['messages_per_s']:>9.2f}{r['client_cpu_us_per_message']:>15.2f}"
          f"{r['peak_waiting']:>14.3f}{r['rss_growth_mib']:>16.3f}")  # fmt: skip
    output = args.output or (None if args.quick else RESULTS)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
