"""How long the reading hook takes for an ingest batch: 5,000 readings over 500 COPD patients who
each have 30 days of history (twice a day, five metrics: 150,000 readings). Runs with
TELEMED_ALERTS_BENCH=1 and prints the figures:

    TELEMED_ALERTS_BENCH=1 .venv/bin/pytest tests/test_alerts_bench.py -q -s

Two batch shapes: one session of ten readings per patient (nine COPD metrics, SpO2 measured
twice), and two sessions of five metrics per patient. About a tenth of the readings breach.
Besides the wall time it prints the CPU time of this process and of its PostgreSQL backend per
batch (Linux /proc), which other load on a shared machine does not inflate.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest

from alerts import hooks
from telemed import readings
from tests.alert_helpers import connect, row

pytestmark = pytest.mark.skipif(
    not os.environ.get("TELEMED_ALERTS_BENCH"), reason="set TELEMED_ALERTS_BENCH=1 to measure"
)

PATIENTS = 500
HISTORY_DAYS = 30
NORMAL = {
    "spo2": (93, 98),
    "pulse": (60, 90),
    "pef": (300, 380),
    "weight": (70, 71),
    "temperature": (36.4, 37.2),
    "resp_rate": (14, 20),
    "fev1": (1.1, 1.3),
    "cat": (10, 14),
    "mrc": (2, 3),
}
ABNORMAL = {
    "spo2": 86,
    "pulse": 125,
    "pef": 200,
    "weight": 74,
    "temperature": 38.9,
    "resp_rate": 32,
    "fev1": 0.7,
    "cat": 20,
    "mrc": 5,
}
HISTORY_METRICS = ("spo2", "pulse", "pef", "weight", "temperature")
SESSION = ("spo2", "spo2", "pulse", "pef", "weight", "temperature", "resp_rate", "fev1", "cat")


def value(rng: random.Random, metric: str, abnormal: float) -> float:
    if rng.random() < abnormal:
        return ABNORMAL[metric]
    lo, hi = NORMAL[metric]
    return round(rng.uniform(lo, hi), 1) if metric != "mrc" else rng.choice((2, 3))


def test_hook_time_for_a_5000_reading_batch(db, db_dsn, factory):
    rng = random.Random(5000)
    org = factory.org("hospital_department")
    nurse = factory.user("nurse", org).id
    patients = [factory.patient(org, program="copd", stratum="severe") for _ in range(PATIENTS)]
    now = datetime.now(UTC)
    history = [
        row(p, metric, value(rng, metric, 0.0), now - timedelta(days=d, hours=h), nurse)
        for p in patients
        for d in range(1, HISTORY_DAYS + 1)
        for h in (2, 9)
        for metric in HISTORY_METRICS
    ]

    def one_session(minutes: float) -> list:
        at = now - timedelta(minutes=minutes)
        return [
            row(p, m, value(rng, m, 0.1), at + timedelta(seconds=i), nurse)
            for p in patients
            for i, m in enumerate((*SESSION, "mrc"))
        ]

    def two_sessions(minutes: float) -> list:
        return [
            row(p, m, value(rng, m, 0.1), now - timedelta(minutes=minutes + s), nurse)
            for p in patients
            for s in (0, 1)
            for m in HISTORY_METRICS
        ]

    async def run() -> list[tuple[str, float, int, int]]:
        conn = await connect(db_dsn)
        async with conn:
            await conn.set_autocommit(True)
            async with conn.transaction():
                await readings.store(conn, history, run_hooks=False)
            await conn.execute("VACUUM ANALYZE readings")
            backend = (await (await conn.execute("SELECT pg_backend_pid() AS p")).fetchone())["p"]
            figures = []
            for i, (shape, make) in enumerate(
                [("one session", one_session), ("two sessions", two_sessions)] * 3
            ):
                async with conn.transaction():
                    batch = make(100 - 5 * i)
                    stored = await readings.store(conn, batch, run_hooks=False)
                    before = await _count(conn)
                    cpu = time.process_time(), _backend_cpu(backend)
                    started = time.perf_counter()
                    await hooks.after_readings(conn, stored)
                    took = time.perf_counter() - started
                    used.append((time.process_time() - cpu[0], _backend_cpu(backend) - cpu[1]))
                    figures.append((shape, took, len(stored), await _count(conn) - before))
            return figures

    used: list[tuple[float, float]] = []
    figures = asyncio.run(run())
    print(f"\nhistory: {len(history)} readings over {PATIENTS} patients")
    for shape, took, n, new in figures:
        rate = n / took
        print(f"{shape}: {n} readings in {took * 1000:.0f} ms ({rate:,.0f}/s), {new} new alerts")
    for shape in ("one session", "two sessions"):
        median = statistics.median(t for s, t, _, _ in figures if s == shape)
        print(f"median, {shape}: {median * 1000:.0f} ms per 5,000-reading batch")
    # CPU time, which other work on the machine does not inflate as it does the wall time.
    python, postgres = (statistics.median(u[k] for u in used) * 1000 for k in (0, 1))
    print(f"median CPU per batch: {python:.0f} ms in this process, {postgres:.0f} ms in PostgreSQL")
    assert all(n == 5000 for _, _, n, _ in figures)


def _backend_cpu(pid: int) -> float:
    """CPU seconds of a PostgreSQL backend on this machine (the test server runs here)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _count(conn) -> int:
    return (await (await conn.execute("SELECT count(*) AS n FROM alerts")).fetchone())["n"]
