"""The audit log's hash chain under concurrent writers: committed transactions per second, each
writing one audit row as the application role, from P processes at once, with the chain's
commit-time trigger on, and in the same run switched off by the owner role (the baseline).

    .venv/bin/python bench/audit_chain.py [--processes 1,4,8] [--seconds 3] [--repeats 3]
                                          [--work-ms 5]

Two kinds of transaction: `bare` (insert, commit) and `work` (insert, then --work-ms of other
work in the same transaction, then commit). The chain serialises writers only from its trigger
at commit to the end of the commit, so the `work` ratio shows whether work after the insert
queues too. Runs against the TEST services instance (.dev/test) in a fresh database, dropped
afterwards. Writes bench/results/audit_chain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from tests import services  # noqa: E402

RESULT = REPO / "bench" / "results" / "audit_chain.json"
INSERT = (
    "INSERT INTO audit_log (actor_kind, actor_id, actor_name, actor_role, action, object_type, "
    "object_id, client_addr, request_id) VALUES ('user', 'bench', 'Bench User', 'nurse', 'read', "
    "'patient', %s, '10.0.0.1', %s)"
)


def writer(dsn: str, seconds: float, work_ms: float, start_at: float) -> int:
    with psycopg.connect(dsn) as conn:
        time.sleep(max(0.0, start_at - time.time()))
        deadline, done = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            conn.execute(INSERT, (str(done), f"b-{os.getpid()}-{done}"))
            if work_ms:
                conn.execute("SELECT pg_sleep(%s)", (work_ms / 1000,))
            conn.commit()
            done += 1
    return done


def measure(dsn: str, processes: int, seconds: float, work_ms: float) -> float:
    start_at = time.time() + 1.0  # every process connected before the clock starts
    with ProcessPoolExecutor(processes) as pool:
        futures = [pool.submit(writer, dsn, seconds, work_ms, start_at) for _ in range(processes)]
        return sum(f.result() for f in futures) / seconds


def chain(owner_dsn: str, on: bool) -> None:
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(
            f"ALTER TABLE audit_log {'ENABLE' if on else 'DISABLE'} TRIGGER audit_log_chain"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,4,8")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work-ms", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    env = services.ensure_services()
    dsn = services.fresh_database(env["TELEMED_DSN"], REPO / "migrations")
    owner_dsn = services.role_dsn(dsn, "owner")
    results: dict[str, dict] = {}
    try:
        for p in [int(x) for x in args.processes.split(",")]:
            row: dict[str, dict] = {}
            for kind, work in (("bare", 0.0), ("work", args.work_ms)):
                runs: dict[bool, list[float]] = {True: [], False: []}
                for i in range(args.repeats):
                    for on in (i % 2 == 0, i % 2 != 0):
                        chain(owner_dsn, on)
                        runs[on].append(measure(dsn, p, args.seconds, work))
                on, off = statistics.median(runs[True]), statistics.median(runs[False])
                row[kind] = {"chain_tps": round(on), "no_chain_tps": round(off),
                             "ratio": round(on / off, 3)}  # fmt: skip
                print(f"{p} processes, {kind:4}: chained {on:8.0f} tx/s   without chain "
                      f"{off:8.0f} tx/s   ratio {on / off:.2f}", flush=True)  # fmt: skip
            results[str(p)] = row
        with psycopg.connect(dsn) as conn:
            from telemed.audit import verify_chain

            report = verify_chain(conn)
        # The rows written with the trigger off have no place in the chain: verify says so.
        assert report.broken is not None and "no place in the chain" in report.broken.reason
    finally:
        services.drop_database(dsn)
    out = {
        "command": " ".join(["python bench/audit_chain.py", *sys.argv[1:]]),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "loadavg_before": round(load_before, 2),
        "loadavg_after": round(os.getloadavg()[0], 2),
        "seconds": args.seconds,
        "repeats": args.repeats,
        "work_ms": args.work_ms,
        "processes": results,
    }
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
