"""The scheduler's jobs as data, and the core's own jobs: daily rollups of readings and the
retention of readings and job runs.

A `Job` is a name, how often it runs and what it does given a connection and `now`. Each package
lists its own (`jobs(settings)` in telemed.jobs, alerts.jobs, wounds.jobs, events.jobs) and the
app hands them to the scheduler (app.wiring.jobs, app.scheduler), which runs each on one
leader among its replicas and records every run in `job_runs`. Each job takes `now`, so tests
run it on any clock, and each is safe to run twice: a rollup is an upsert and a dropped chunk
stays dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from telemed.settings import Settings

log = logging.getLogger("telemed.jobs")

Work = Callable[[AsyncConnection, datetime], Awaitable[dict[str, Any]]]

# Danish patient records are kept at least 10 years after the last entry
# (journalføringsbekendtgørelsen §15); readings are part of the record, so no configuration
# keeps them for less.
READINGS_FLOOR_YEARS = 10
LOG_KEEP_DAYS = 30


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float
    run: Work
    # A NOTIFY channel that runs the job at once, besides every `every_s`.
    wake_on: str | None = None
    # Whether a run's result is worth a `job_runs` row (default: every run is recorded).
    worth_a_row: Callable[[dict[str, Any]], bool] | None = None
    # Whether to run again at once, e.g. after a full batch.
    again: Callable[[dict[str, Any]], bool] | None = None
    # Called when the scheduler stops running the job (it may run again later).
    close: Callable[[], Awaitable[None]] | None = None


def jobs(settings: Settings) -> list[Job]:
    every = settings.scheduler
    years = settings.retention_readings_years

    async def keep_readings(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
        return await retention(conn, now=now, years=readings_keep_years(years))

    return [
        Job("daily_rollups", every.daily_rollups_s, rollups_since_last_run),
        Job("retention", every.retention_s, keep_readings),
    ]


def readings_keep_years(wanted: int) -> int:
    """The years of readings to keep: as configured, never below the floor (said loudly)."""
    if wanted < READINGS_FLOOR_YEARS:
        log.warning(
            "TELEMED_RETENTION_READINGS_YEARS=%s is below the floor; keeping %s years",
            wanted,
            READINGS_FLOOR_YEARS,
        )
    return max(wanted, READINGS_FLOOR_YEARS)


async def retention(
    conn: AsyncConnection, *, now: datetime, years: int | None = None, log_days: int | None = None
) -> dict[str, Any]:
    """Drop reading chunks entirely older than the retention period (never below the floor),
    and prune the job runs older than `log_days`."""
    years = max(READINGS_FLOOR_YEARS, years if years is not None else READINGS_FLOOR_YEARS)
    log_cutoff = now - timedelta(days=log_days or LOG_KEEP_DAYS)
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT drop_reading_chunks(%s::timestamptz - make_interval(years => %s)) AS chunk",
            (now, years),
        )
        dropped = [r["chunk"] for r in await cur.fetchall()]
        cur = await conn.execute("DELETE FROM job_runs WHERE started_at < %s", (log_cutoff,))
        runs = cur.rowcount
    if dropped:
        log.info("retention dropped %s reading chunks older than %s years", len(dropped), years)
    return {"chunks_dropped": len(dropped), "keep_years": years, "job_runs_pruned": runs}


_ROLLUP = """
WITH touched AS (
    SELECT DISTINCT patient_id, metric,
           time_bucket('1 day', measured_at, 'Europe/Copenhagen') AS bucket
    FROM readings
    WHERE measured_at >= %(measured_since)s AND received_at >= %(received_since)s
), days AS (
    SELECT patient_id, metric, bucket,
           ((bucket AT TIME ZONE 'Europe/Copenhagen') + interval '1 day')
               AT TIME ZONE 'Europe/Copenhagen' AS next_bucket
    FROM touched
)
INSERT INTO daily_rollups AS d (day, patient_id, metric, min, avg, max, count, updated_at)
SELECT (days.bucket AT TIME ZONE 'Europe/Copenhagen')::date, days.patient_id, days.metric,
       min(r.value), avg(r.value), max(r.value), count(*), %(now)s
FROM days
JOIN readings r ON r.patient_id = days.patient_id AND r.metric = days.metric
 AND r.measured_at >= days.bucket AND r.measured_at < days.next_bucket
GROUP BY days.bucket, days.patient_id, days.metric
ON CONFLICT (patient_id, metric, day) DO UPDATE
SET min = EXCLUDED.min, avg = EXCLUDED.avg, max = EXCLUDED.max, count = EXCLUDED.count,
    updated_at = EXCLUDED.updated_at
"""


async def timescale_features(conn: AsyncConnection) -> dict[str, Any]:
    """What this TimescaleDB offers: the Apache-licensed edition has no continuous aggregates,
    compression or retention policies, so nothing here assumes them."""
    cur = await conn.execute(
        "SELECT extversion, current_setting('timescaledb.license', true) AS license "
        "FROM pg_extension WHERE extname = 'timescaledb'"
    )
    row = await cur.fetchone() or {"extversion": None, "license": None}
    return {
        "version": row["extversion"],
        "license": row["license"],
        "continuous_aggregates": row["license"] == "timescale",
    }


async def daily_rollups(
    conn: AsyncConnection,
    *,
    now: datetime,
    received_since: datetime | None = None,
    max_days: int = 60,
) -> dict[str, Any]:
    """Recompute min, mean, max and count per patient, metric and local day for every day that
    got a reading since `received_since` (late readings included, up to `max_days` back)."""
    since = received_since or now - timedelta(days=3)
    async with conn.transaction():
        features = await timescale_features(conn)
        cur = await conn.execute(
            _ROLLUP,
            {
                "now": now,
                "received_since": since,
                "measured_since": now - timedelta(days=max_days),
            },
        )
    return {"rows": cur.rowcount, "continuous_aggregates": features["continuous_aggregates"]}


async def rollups_since_last_run(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    last = await last_success(conn, "daily_rollups")
    # An hour's overlap: a reading stamped before the last run may commit after it.
    since = last - timedelta(hours=1) if last else None
    return await daily_rollups(conn, now=now, received_since=since)


async def last_success(conn: AsyncConnection, job: str) -> datetime | None:
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT max(started_at) AS at FROM job_runs WHERE job = %s AND ok", (job,)
        )
        return (await cur.fetchone())["at"]
