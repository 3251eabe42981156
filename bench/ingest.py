"""Ingest benchmark: the real broker and database, provisioned devices, QoS 1, alert rules on.

    .venv/bin/python -m bench.ingest            # full run, a few minutes
    .venv/bin/python -m bench.ingest --quick    # smoke check, well under a minute

Phases, each against the benchmark's own services (bench/common.py) and a fresh database:
paced 5,000 single-reading messages/s and 10,000 readings/s in COPD-kit messages (publish ->
commit and publish -> alert.raised latencies), a sustained load offered above what the paced
phases need, and drains: the consumer stopped, N messages queued by the broker for its
persistent session, then the consumer started. The drain runs for `telemed ingest`, the
minimal subscriber (bench/baseline_subscriber.py) and mq-bridge (bench/mqbridge.py), and our
figures are given as ratios. Writes bench/results/ingest.json; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench import common
from bench.common import Listener, PublishJob, PublishResult, percentile
from telemed.settings import Settings, load_settings

RESULTS = common.REPO / "bench" / "results" / "ingest.json"
VENV = common.VENV
LOGS = common.STATE / "logs"
KIT_READINGS = 7
REFERENCE_IDS = ("bench-baseline", "bench-mqbridge")
PHASES = ("paced", "sustained", "drain", "baseline", "mqbridge")


class Run:
    """One benchmark run: services, database, device pool, listener, and the consumers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = common.start_services()
        self.dsn = self.env["TELEMED_DSN"]
        self.settings: Settings = load_settings(self.env)
        common.fresh_database(self.dsn)
        with common.connect(self.dsn) as conn:
            self.devices = common.provision_pool(conn, self.settings, args.devices)
        self.listener = Listener(self.dsn)
        self.locks = LockSampler(self.dsn)
        self.alerting = self._has_table("alerts")
        LOGS.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.env["BENCH_MQTT_PASSWORD"] = self.settings.ingest_password
        # A member of the shared subscription left from an earlier run would keep its share
        # of every message queued (and never drained): start from no sessions at all.
        self.forget_sessions([*(f"telemed-ingest-{i}" for i in range(8)), *REFERENCE_IDS])

    def _has_table(self, name: str) -> bool:
        with common.connect(self.dsn) as conn:
            return conn.execute("SELECT to_regclass(%s) AS t", (name,)).fetchone()["t"] is not None

    def sql(self, query: str, params: tuple = ()) -> list[dict]:
        with common.connect(self.dsn) as conn:
            cur = conn.execute(query, params)
            rows = cur.fetchall() if cur.description else []
            conn.commit()
            return rows

    # --- consumers -------------------------------------------------------------------------

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 -- kept open for the child
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, cwd=common.REPO)
        self.procs.append(proc)
        return proc

    def start_workers(self, n: int) -> list[subprocess.Popen]:
        exe = [sys.executable, "-m", "app.cli", "ingest"]
        return [self.spawn(f"ingest-{i}", [*exe, "--slot", str(i)]) for i in range(n)]

    def stop(self, procs: list[subprocess.Popen]) -> None:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def forget_sessions(self, client_ids: list[str]) -> None:
        """End the broker's persistent sessions of these clients and drop what they queued."""
        for cid in client_ids:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, cid, protocol=MQTTProtocolVersion.MQTTv5)
            c.username_pw_set(self.settings.ingest_username, self.settings.ingest_password)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            c.connect(self.settings.mqtt_host, self.settings.mqtt_port, properties=props)
            c.loop_start()
            time.sleep(0.2)
            c.disconnect()
            c.loop_stop()

    # --- publishing ------------------------------------------------------------------------

    def publish(
        self, phase: str, count: int, rate: float, shape: str, **kw
    ) -> tuple[PublishJob, PublishResult]:
        """Publish from a child process (its own core), with payloads built before the start."""
        build_s = count * (25e-6 if shape == "kit" else 8e-6) * 2 + 2.5
        job = PublishJob(
            host=self.settings.mqtt_host,
            port=self.settings.mqtt_port,
            devices=self.devices,
            phase=phase,
            count=count,
            rate=rate,
            shape=shape,
            start_at=time.time() + build_s,
            **kw,
        )
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        child = ctx.Process(
            target=common.publish_in_child, args=(theirs, msgspec.msgpack.encode(job))
        )
        child.start()
        theirs.close()  # so that a publisher that dies ends recv_bytes with EOFError
        try:
            result = msgspec.msgpack.decode(ours.recv_bytes(), type=PublishResult)
        except EOFError:
            child.join()
            raise RuntimeError(f"{phase}: the publisher died (exit {child.exitcode})") from None
        child.join()
        if result.acked < count:
            raise RuntimeError(f"{phase}: the broker acknowledged {result.acked} of {count}")
        return job, result

    def wait_rows(self, table: str, phase: str, expected: int, timeout_s: float) -> int:
        """Wait until the listener has been quiet for a second, then count; until all are in."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.listener.commits.get(table, {})
            last = max(seen.values(), default=0.0)
            if time.time() - last > 1.0:
                got = self.count(table, phase)
                if got >= expected or time.monotonic() > deadline:
                    return got
            time.sleep(0.25)

    def count(self, table: str, phase: str) -> int:
        rows = self.sql(
            f"SELECT count(*) AS n FROM {table} WHERE message_id LIKE %s", (f"{phase}-%",)
        )
        return rows[0]["n"]

    def _inserts(self, table: str, phase: str) -> list[dict]:
        """The phase's inserting transactions: start (received_at, µs), rows, a message id."""
        return self.sql(
            f"SELECT (extract(epoch FROM received_at) * 1000000)::bigint AS rx, count(*) AS n,"
            f" min(message_id) AS mid FROM {table} WHERE message_id LIKE %s GROUP BY rx",
            (f"{phase}-%",),
        )

    def commit_groups(self, table: str, phase: str) -> list[tuple[float, int, str]]:
        """(commit seen, rows, a message id) per inserting transaction of the phase."""
        seen = self.listener.commits.get(table, {})
        rows = self._inserts(table, phase)
        return sorted((seen[r["rx"]], r["n"], r["mid"]) for r in rows if r["rx"] in seen)

    def transactions(self, table: str, phase: str) -> dict:
        """How many inserting transactions the phase took, their rows, and how long each ran
        from its start (received_at, now() of the transaction) to its commit being seen."""
        rows = self._inserts(table, phase)
        seen = self.listener.commits.get(table, {})
        took = [(seen[r["rx"]] - r["rx"] / 1e6) * 1000 for r in rows if r["rx"] in seen]
        sizes = [r["n"] for r in rows]
        return {
            "count": len(rows),
            "rows_p50": percentile(sizes, 50),
            "rows_max": max(sizes, default=None),
            "ms": {**stats(took), "max": _round(max(took, default=None))},
        }

    def latencies(self, phase: str, result: PublishResult) -> tuple[list[float], int]:
        """Publish -> commit in ms for every message of the phase; and how many had no commit."""
        sent = array("d")
        sent.frombytes(result.sent_at)
        rows = self.sql(
            "SELECT message_id, (extract(epoch FROM min(received_at)) * 1000000)::bigint AS rx"
            " FROM readings WHERE message_id LIKE %s GROUP BY message_id",
            (f"{phase}-%",),
        )
        seen = self.listener.commits.get("readings", {})
        out = [
            (seen[r["rx"]] - sent[int(r["message_id"].rsplit("-", 1)[1])]) * 1000
            for r in rows
            if r["rx"] in seen
        ]
        return out, len(sent) - len(out)

    def alert_latencies(self, result: PublishResult) -> list[float]:
        """Publish of a breaching reading -> its alert.raised outbox NOTIFY, in ms."""
        if not self.alerting:
            return []
        sent = array("d")
        sent.frombytes(result.sent_at)
        by_pair = {(pid, metric): sent[seq] for seq, pid, metric in result.breaches}
        rows = self.sql(
            "SELECT id, patient_id::text AS pid, payload FROM outbox WHERE event = 'alert.raised'"
        )
        first: dict[tuple[str, str], float] = {}
        for r in rows:
            metric = _metric_of(r["payload"])
            seen = self.listener.outbox.get(r["id"])
            if seen is not None and (r["pid"], metric) in by_pair:
                first[(r["pid"], metric)] = min(seen, first.get((r["pid"], metric), seen))
        return [(t - by_pair[k]) * 1000 for k, t in first.items()]

    def reset_alerts(self) -> None:
        if self.alerting:
            with common.connect(common.owner_dsn(self.dsn)) as conn:  # TRUNCATE: the owner's
                conn.execute("TRUNCATE alerts, outbox CASCADE")
                conn.commit()

    def close(self) -> None:
        self.stop([p for p in self.procs if p.poll() is None])
        self.listener.close()
        self.locks.close()


class LockSampler:
    """Samples what the ingest workers' database sessions do, every 10 ms: how many run a
    statement, and how many of those wait for an advisory lock (the alert rules' patient
    locks; the slots' locks are session locks taken once, never waited for). The share of
    waiting in running says how much of the lanes' database time goes to waiting for another
    transaction's patients."""

    QUERY = (
        "SELECT count(*) FILTER (WHERE state = 'active') AS active,"
        " count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock'"
        " AND wait_event = 'advisory') AS waiting"
        " FROM pg_stat_activity WHERE application_name LIKE 'telemed-ingest-%%'"
    )

    def __init__(self, dsn: str, every_s: float = 0.01) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.every_s = every_s
        self.totals = [0, 0, 0]  # samples, active, waiting
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            active, waiting = self.conn.execute(self.QUERY).fetchone()
            t = self.totals
            t[0], t[1], t[2] = t[0] + 1, t[1] + active, t[2] + waiting

    def mark(self) -> tuple[int, int, int]:
        return tuple(self.totals)  # type: ignore[return-value]

    @staticmethod
    def since(before: tuple[int, int, int], after: tuple[int, int, int]) -> dict:
        samples, active, waiting = (a - b for a, b in zip(after, before, strict=True))
        return {
            "samples": samples,
            "running_sessions_mean": round(active / samples, 2) if samples else None,
            "waiting_for_patient_locks_share": round(waiting / active, 3) if active else None,
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


def _metric_of(payload: dict) -> str | None:
    """The metric an alert event is about (alerts.lifecycle.event_payload)."""
    metric = payload.get("metric")
    return metric if isinstance(metric, str) else None


def stats(values: list[float]) -> dict[str, float | None]:
    return {"p50": _round(percentile(values, 50)), "p99": _round(percentile(values, 99))}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


# --- phases ----------------------------------------------------------------------------------


def warm_up(run: Run, table: str, phase: str) -> None:
    """One message per device, waited for: the consumer is subscribed and has seen them all."""
    n = len(run.devices)
    run.publish(phase, n, 0, "single")
    if run.wait_rows(table, phase, n, 60) < n:
        raise RuntimeError(f"{table}: the consumer stored fewer than {n} warm-up messages")


def paced(
    run: Run, phase: str, rate: float, shape: str, seconds: float, consumers: list[int]
) -> dict:
    run.reset_alerts()
    count = round(rate * seconds)
    cpu_before = common.cpu_seconds(consumers)
    locks_before = run.locks.mark()
    # About ten breaches a second, each on a (patient, metric) without an open alert.
    _job, result = run.publish(phase, count, rate, shape, breach_every=max(1, round(rate / 10)))
    got = run.wait_rows("readings", phase, result.readings, 60)
    cpu = common.cpu_seconds(consumers)
    locks = LockSampler.since(locks_before, run.locks.mark())
    # From the first send to the last commit (wait_rows waited a quiet second after it).
    busy_s = max(run.listener.commits.get("readings", {}).values(), default=0.0) - result.began
    if got < result.readings:
        raise RuntimeError(
            f"{phase}: ingest stored {got} of {result.readings} readings (logs: {LOGS})"
        )
    time.sleep(0.5)
    commit, missing = run.latencies(phase, result)
    alerts = run.alert_latencies(result)
    txns = run.transactions("readings", phase)
    return {
        "messages": count,
        "readings": result.readings,
        "readings_stored": got,
        "offered_readings_per_s": round(result.readings / seconds),
        "publish_seconds": round(result.seconds, 2),
        "commit_ms": stats(commit),
        "without_commit_time": missing,
        "breaches_sent": len(result.breaches),
        "alerts_raised": len(alerts),
        "alert_ms": stats(alerts),
        "transactions": txns,
        # Cores used from the first send to the last commit; the publisher is not counted.
        "cores_used": common.cores(cpu_before, cpu, busy_s) if busy_s > 0 else None,
        "lock_waits": locks,
        "_commit": commit,
        "_alerts": alerts,
    }


def sustained(run: Run, offered: float, seconds: float) -> dict:
    """Kit messages offered at `offered` readings/s, above what ingest keeps up with, while it
    runs: the commit rate from its first commit to its last (bounded to a minute; what is
    still queued then is dropped with the sessions, see measure_ingest)."""
    rate = offered / KIT_READINGS
    locks_before = run.locks.mark()
    _, result = run.publish("sus", round(rate * seconds), rate, "kit")
    got = run.wait_rows("readings", "sus", result.readings, 60)
    locks = LockSampler.since(locks_before, run.locks.mark())
    groups = run.commit_groups("readings", "sus")
    if len(groups) < 2:
        return {"committed_readings_per_s": None, "readings_published": result.readings}
    (first, first_rows, _), last = groups[0], groups[-1][0]
    return {
        "offered_readings_per_s": round(result.readings / seconds),
        "offered_for_s": seconds,
        "committed_readings_per_s": round((got - first_rows) / (last - first)),
        "readings_published": result.readings,
        "readings_committed": got,
        "last_commit_after_publish_s": round(last - result.began - seconds, 2),
        "lock_waits": locks,
    }


def drain(run: Run, table: str, phase: str, count: int, start, stop, profile: bool = False) -> dict:
    """Publish `count` single-reading messages while the consumer is stopped (its session
    queues them), start it, and measure the commits until all are in."""
    _job, result = run.publish(phase, count, 0, "single")
    started = time.time()
    consumers = start()
    cpu_before = common.cpu_seconds([p.pid for p in consumers])
    locks_before = run.locks.mark()
    spy = _profile(consumers[0]) if profile else None
    got = run.wait_rows(table, phase, count, 300)
    cpu = common.cpu_seconds([p.pid for p in consumers])
    locks = LockSampler.since(locks_before, run.locks.mark())
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    stop(consumers)
    groups = run.commit_groups(table, phase)
    if len(groups) < 2:
        return {"rows": got, "readings_per_s": None}
    (first, first_rows, _), last = groups[0], groups[-1][0]
    total = sum(n for _, n, _ in groups)
    return {
        "rows": got,
        "published_in_s": round(result.seconds, 2),
        "readings_per_s": round((total - first_rows) / (last - first)),
        "first_commit_after_s": round(first - started, 2),
        "all_committed_after_s": round(last - started, 2),
        "transactions": len(groups),
        # Cores each part kept busy over the drain (the machine has os.cpu_count() of them).
        "cores_used": common.cores(cpu_before, cpu, last - started),
        **({"lock_waits": locks} if table == "readings" else {}),
    }


def _profile(proc: subprocess.Popen) -> subprocess.Popen | None:
    spy = VENV / "bin" / "py-spy"
    if not spy.exists():
        return None
    out = LOGS / "ingest-profile.txt"
    cmd = [
        str(spy),
        "record",
        "--gil",
        "-p",
        str(proc.pid),
        "-r",
        "250",
        "-f",
        "raw",
        "-o",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the run ---------------------------------------------------------------------------------


def reference_cmd(run: Run, python: Path | str, module: list[str]) -> list[str]:
    s = run.settings
    return [
        str(python),
        *module,
        "--dsn",
        run.dsn,
        "--host",
        s.mqtt_host,
        "--port",
        str(s.mqtt_port),
        "--username",
        s.ingest_username,
    ]


def drain_reference(run: Run, name: str, table: str, cmd: list[str], count: int) -> dict:
    def start() -> list[subprocess.Popen]:
        return [run.spawn(name, cmd)]

    procs = start()
    warm_up(run, table, f"w{name[:3]}")
    run.stop(procs)
    result = drain(run, table, f"d{name[:3]}", count, start, run.stop)
    run.forget_sessions([f"bench-{name}"])
    return result


def measure_ingest(run: Run, args: argparse.Namespace, out: dict) -> None:
    ids = [f"telemed-ingest-{i}" for i in range(args.workers)]
    workers = run.start_workers(args.workers)
    warm_up(run, "readings", "w0")
    if "paced" in args.only:
        pids = [p.pid for p in workers]
        out["paced_5k"] = paced(run, "p5k", 5000, "single", args.seconds, pids)
        out["paced_10k"] = paced(run, "p10k", 10000 / KIT_READINGS, "kit", args.seconds, pids)
    if "sustained" in args.only:
        out["sustained"] = sustained(run, args.sustained_offer, max(3.0, args.seconds * 2 / 3))
        # Drop the phase's backlog with the sessions, then subscribe afresh.
        run.stop(workers)
        run.forget_sessions(ids)
        workers = run.start_workers(args.workers)
        warm_up(run, "readings", "w1")
    run.stop(workers)
    if "drain" in args.only:
        again = lambda: run.start_workers(args.workers)  # noqa: E731
        out["drain"] = drain(run, "readings", "d0", args.drain, again, run.stop, args.profile)
    run.forget_sessions(ids)


def measure(args: argparse.Namespace) -> dict:
    mq_python, mq_reason = (
        (None, "skipped (--no-mqbridge)") if args.no_mqbridge else common.mqbridge_python()
    )
    run = Run(args)
    out: dict = {"alert_rules": run.alerting}
    try:
        if importlib.util.find_spec("ingest.cli") is None:
            out["ingest_reason"] = "telemed ingest is not installed (no ingest.cli)"
        else:
            measure_ingest(run, args, out)
        base_cmd = reference_cmd(run, sys.executable, ["-m", "bench.baseline_subscriber"])
        if "baseline" in args.only:
            out["baseline"] = drain_reference(run, "baseline", "bench_raw", base_cmd, args.drain)
        if mq_python is not None and "mqbridge" in args.only:
            mq_cmd = reference_cmd(run, mq_python, [str(common.REPO / "bench" / "mqbridge.py")])
            try:
                out["mqbridge"] = drain_reference(run, "mqbridge", "bench_mqb", mq_cmd, args.drain)
            except RuntimeError as exc:
                mq_reason = f"mq-bridge did not run: {exc} (log: {LOGS / 'mqbridge.log'})"
    finally:
        run.close()
    out["mqbridge_reason"] = mq_reason
    if args.profile and (LOGS / "ingest-profile.txt").exists():
        out["profile"] = common.summarize_profile(LOGS / "ingest-profile.txt")
    return out


def report(args: argparse.Namespace, out: dict) -> dict:
    def rate(key: str) -> float | None:
        return (out.get(key) or {}).get("readings_per_s")

    ours, base, mqb = rate("drain"), rate("baseline"), rate("mqbridge")
    alerts: list[float] = []
    commit: dict[str, dict] = {}
    for key in ("paced_5k", "paced_10k"):
        phase = out.get(key, {})
        alerts += phase.pop("_alerts", [])
        phase.pop("_commit", None)
        commit[key] = phase.get("commit_ms", {})
    result = {
        "paced_5k_p50_ms": commit["paced_5k"].get("p50"),
        "paced_5k_p99_ms": commit["paced_5k"].get("p99"),
        "paced_10k_p50_ms": commit["paced_10k"].get("p50"),
        "paced_10k_p99_ms": commit["paced_10k"].get("p99"),
        "sustained_readings_per_s": out.get("sustained", {}).get("committed_readings_per_s"),
        "drain_readings_per_s": ours,
        "baseline_drain_readings_per_s": base,
        "drain_ratio": round(ours / base, 2) if ours and base else None,
        "mqbridge_drain_readings_per_s": mqb,
        "mqbridge_ratio": round(ours / mqb, 2) if ours and mqb else None,
        "mqbridge_reason": None if mqb else out["mqbridge_reason"],
        "alert_p50_ms": stats(alerts)["p50"],
        "alert_p99_ms": stats(alerts)["p99"],
        "alert_samples": len(alerts),
        "alert_rules_active": out["alert_rules"],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "ingest_reason": out.get("ingest_reason"),
        "git_commit": common.git("rev-parse", "HEAD"),
        "git_dirty": bool(common.git("status", "--porcelain", "--untracked-files=no")),
        "command": "python -m bench.ingest " + " ".join(sys.argv[1:]),
        "config": {
            "devices": args.devices,
            "workers": args.workers,
            "paced_seconds": args.seconds,
            "drain_messages": args.drain,
            "sustained_offer": args.sustained_offer,
        },
        "machine": common.machine(),
        "phases": {
            k: out[k]
            for k in ("paced_5k", "paced_10k", "sustained", "drain", "baseline", "mqbridge")
            if k in out
        },
    }
    if "profile" in out:
        result["profile"] = out["profile"]
    return result


def print_table(r: dict) -> None:
    rows = [
        (
            "paced 5k msg/s: publish->commit p50 / p99 ms",
            r["paced_5k_p50_ms"],
            r["paced_5k_p99_ms"],
        ),
        ("paced 10k readings/s (kits): p50 / p99 ms", r["paced_10k_p50_ms"], r["paced_10k_p99_ms"]),
        ("publish->alert.raised p50 / p99 ms", r["alert_p50_ms"], r["alert_p99_ms"]),
        ("sustained readings/s committed", r["sustained_readings_per_s"], ""),
        ("drain readings/s: telemed ingest", r["drain_readings_per_s"], ""),
        (
            "drain readings/s: minimal subscriber (ratio)",
            r["baseline_drain_readings_per_s"],
            r["drain_ratio"],
        ),
        (
            "drain readings/s: mq-bridge (ratio)",
            r["mqbridge_drain_readings_per_s"],
            r["mqbridge_ratio"],
        ),
    ]
    for label, a, b in rows:
        print(f"{label:<48} {'' if a is None else a!s:>10} {'' if b is None else b!s:>8}")
    shares = []
    for key in ("paced_5k", "paced_10k", "sustained", "drain"):
        waits = r["phases"].get(key, {}).get("lock_waits") or {}
        shares.append(f"{key} {waits.get('waiting_for_patient_locks_share')}")
    print("waiting for patient locks, share of the lanes' running time: " + ", ".join(shares))
    if r["mqbridge_reason"]:
        print(f"mq-bridge: {r['mqbridge_reason']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small counts, a smoke check")
    p.add_argument(
        "--workers", type=int, default=2, help="ingest workers on the shared subscription"
    )
    p.add_argument("--devices", type=int, help="provisioned devices (default 2000; quick 200)")
    p.add_argument("--seconds", type=float, help="length of a paced phase (default 15; quick 3)")
    p.add_argument("--drain", type=int, help="messages per drain (default 200000; quick 20000)")
    p.add_argument("--sustained-offer", type=float, default=20000, help="readings/s offered")
    p.add_argument("--profile", action="store_true", help="py-spy a worker during the drain")
    p.add_argument("--no-mqbridge", action="store_true")
    p.add_argument(
        "--only",
        default=",".join(PHASES),
        type=lambda text: set(text.split(",")),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    p.add_argument("--output", type=Path, help=f"default {RESULTS} (quick: under {LOGS})")
    args = p.parse_args(argv)
    args.devices = args.devices or (200 if args.quick else 2000)
    args.seconds = args.seconds or (3.0 if args.quick else 15.0)
    args.drain = args.drain or (20000 if args.quick else 200000)
    result = report(args, measure(args))
    print_table(result)
    output = args.output or (LOGS / "ingest-quick.json" if args.quick else RESULTS)
    output.write_text(msgspec.json.format(msgspec.json.encode(result), indent=2).decode() + "\n")
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
