"""The scheduler's jobs. Each takes a connection and `now`, so tests run them on any clock, and
each is safe to run twice: a slot raises one alert, an escalation is guarded by its level, a
delivery by its row, a rollup is an upsert and a dropped chunk stays dropped.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from alerts import coverage, escalation
from alerts.checks import check_missed
from alerts.defaults import Override
from alerts.hooks import patient_rules, program_defaults
from alerts.lifecycle import upsert_breaches
from alerts.rules import Breach, MissedRule
from alerts.schedule import LOCAL_TZ

log = logging.getLogger("telemed.jobs")

# Danish patient records are kept at least 10 years after the last entry
# (journalføringsbekendtgørelsen §15); readings are part of the record, so no configuration
# keeps them for less.
READINGS_FLOOR_YEARS = 10
LOG_KEEP_DAYS = 30
MISSED_SLOTS_KEEP_DAYS = 400

_OVERRIDES = msgspec.json.Decoder(list[Override])


def enrolled_at(start_date: date, created_at: datetime) -> datetime:
    """When the schedule starts: local midnight of the start day, or the moment of enrolling if
    that was on the start day itself (no slot due before the patient was enrolled)."""
    midnight = datetime.combine(start_date, time(0), tzinfo=LOCAL_TZ)
    return (
        max(midnight, created_at)
        if created_at.astimezone(LOCAL_TZ).date() == start_date
        else midnight
    )


_ENROLLED = """
SELECT e.patient_id, e.program, e.stratum, e.start_date, e.created_at,
       coalesce((
           SELECT json_agg(json_build_object(
                      'rule_key', o.rule_key, 'field', o.field, 'value', o.value,
                      'set_by', o.set_by, 'set_at', o.set_at, 'reason', o.reason))
           FROM (SELECT DISTINCT ON (rule_key, field) * FROM threshold_overrides
                 WHERE patient_id = e.patient_id
                 ORDER BY rule_key, field, set_at DESC, id DESC) o
           WHERE NOT o.reset
       ), '[]')::text AS overrides
FROM enrollments e
WHERE e.start_date <= %(today)s AND (e.end_date IS NULL OR e.end_date >= %(today)s)
ORDER BY e.patient_id, e.program
"""

_LAST_MEASURED = """
SELECT k.patient_id, k.metric,
       (SELECT r.measured_at FROM readings r
        WHERE r.patient_id = k.patient_id AND r.metric = k.metric AND r.measured_at <= %(now)s
        ORDER BY r.measured_at DESC LIMIT 1) AS last
FROM unnest(%(patient_ids)s::uuid[], %(metrics)s::text[]) AS k (patient_id, metric)
"""


async def missed_measurements(conn: AsyncConnection, *, now: datetime) -> dict[str, int]:
    """Raise a no-data alert for each newly missed slot of each enrolled patient's schedules.

    `missed_slots` remembers the slots raised, so a slot raises once even after its alert was
    resolved; a second missed slot adds to the open alert (the count), as any repeat does.
    First, slots that readings which arrived late were measured in time for are marked covered,
    and their alerts closed or annotated (alerts.coverage).
    """
    today = now.astimezone(LOCAL_TZ).date()
    async with conn.transaction():
        enrolled = await (await conn.execute(_ENROLLED, {"today": today})).fetchall()
        checks: list[tuple[dict[str, Any], MissedRule]] = []
        for row in enrolled:
            defaults = program_defaults(row["program"], row["stratum"])
            if defaults is None:
                continue
            overrides = _OVERRIDES.decode(row["overrides"])
            for rule in patient_rules(defaults, overrides, row["patient_id"]):
                if isinstance(rule, MissedRule):
                    checks.append((row, rule))
        cur = await conn.execute(
            _LAST_MEASURED,
            {
                "now": now,
                "patient_ids": [row["patient_id"] for row, _ in checks],
                "metrics": [rule.metric for _, rule in checks],
            },
        )
        last = {(r["patient_id"], r["metric"]): r["last"] for r in await cur.fetchall()}
    starts = [enrolled_at(row["start_date"], row["created_at"]) for row, _ in checks]
    watched = [
        coverage.Watched(row["patient_id"], rule, start)
        for (row, rule), start in zip(checks, starts, strict=True)
    ]
    covered = await coverage.cover(conn, watched, now=now)
    raised = 0
    for (row, rule), start in zip(checks, starts, strict=True):
        breach = check_missed(rule, last.get((row["patient_id"], rule.metric)), start, now)
        if breach is not None and await _raise_slot(conn, row, breach, now):
            raised += 1
    return {"checked": len(checks), "raised": raised, "covered": covered}


async def _raise_slot(
    conn: AsyncConnection, row: dict[str, Any], breach: Breach, now: datetime
) -> bool:
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO missed_slots (patient_id, rule_key, slot_id, raised_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING slot_id",
            (row["patient_id"], breach.rule_key, breach.detail["slot_id"], now),
        )
        if await cur.fetchone() is None:
            return False
        changes = await upsert_breaches(
            conn, [(row["patient_id"], row["program"], breach)], now=now
        )
        if changes:
            await conn.execute(
                "UPDATE missed_slots SET alert_id = %s "
                "WHERE patient_id = %s AND rule_key = %s AND slot_id = %s",
                (changes[0].alert_id, row["patient_id"], breach.rule_key, breach.detail["slot_id"]),
            )
    return True


WoundEscalation = Callable[..., Awaitable[int]]


def wound_escalation() -> WoundEscalation | None:
    """`wounds.steps.escalate_overdue` when this installation has it."""
    try:
        from wounds import steps
    except ImportError:
        return None
    return getattr(steps, "escalate_overdue", None)


async def escalations(conn: AsyncConnection, *, now: datetime) -> dict[str, int]:
    done = await escalation.escalate_due(conn, now=now)
    result = {"alerts": len(done)}
    overdue = wound_escalation()
    if overdue is not None:
        result["wound_cases"] = await overdue(conn, now=now)
    return result


async def media_sweep(
    conn: AsyncConnection, *, now: datetime, media_dir: Path | None
) -> dict[str, Any]:
    """Set aside the wound photo files a crash left without a row, and prune what was set aside
    long ago (wounds.media.sweep)."""
    if media_dir is None:
        return {"skipped": "no media folder given"}
    from wounds import media
    from wounds.storage import MediaStore

    grace_h = float(os.environ.get("TELEMED_MEDIA_SWEEP_GRACE_H", media.GRACE_S / 3600))
    keep = int(os.environ.get("TELEMED_MEDIA_ORPHANS_KEEP_DAYS", media.ORPHANS_KEEP_DAYS))
    store = MediaStore(media_dir)
    return await media.sweep(
        conn, store, grace_s=grace_h * 3600, keep_days=keep, now=now.timestamp()
    )


def readings_keep_years(env: dict[str, str] | None = None) -> int:
    e = os.environ if env is None else env
    wanted = int(e.get("TELEMED_RETENTION_READINGS_YEARS", str(READINGS_FLOOR_YEARS)))
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
    and prune the delivery log, job runs, remembered slots and old outbox events (those no
    webhook delivery still refers to: a pending delivery keeps its event)."""
    years = max(READINGS_FLOOR_YEARS, years if years is not None else readings_keep_years())
    log_days = max(log_days or LOG_KEEP_DAYS, 8)  # must outlive the webhook fan-out window
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT drop_reading_chunks(%s::timestamptz - make_interval(years => %s)) AS chunk",
            (now, years),
        )
        dropped = [r["chunk"] for r in await cur.fetchall()]
        log_cutoff = now - timedelta(days=log_days)
        cur = await conn.execute(
            "DELETE FROM webhook_deliveries WHERE coalesce(delivered_at, failed_at) < %s",
            (log_cutoff,),
        )
        deliveries = cur.rowcount
        cur = await conn.execute("DELETE FROM job_runs WHERE started_at < %s", (log_cutoff,))
        runs = cur.rowcount
        cur = await conn.execute(
            "DELETE FROM missed_slots WHERE raised_at < %s",
            (now - timedelta(days=MISSED_SLOTS_KEEP_DAYS),),
        )
        slots = cur.rowcount
        # The events themselves: what they told of stays in the alerts and wound cases.
        cur = await conn.execute(
            "DELETE FROM outbox o WHERE o.created_at < %s AND NOT EXISTS "
            "(SELECT 1 FROM webhook_deliveries d WHERE d.outbox_id = o.id)",
            (log_cutoff,),
        )
        events = cur.rowcount
    if dropped:
        log.info("retention dropped %s reading chunks older than %s years", len(dropped), years)
    return {
        "chunks_dropped": len(dropped),
        "keep_years": years,
        "deliveries_pruned": deliveries,
        "job_runs_pruned": runs,
        "missed_slots_pruned": slots,
        "outbox_events_pruned": events,
    }


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


async def last_success(conn: AsyncConnection, job: str) -> datetime | None:
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT max(started_at) AS at FROM job_runs WHERE job = %s AND ok", (job,)
        )
        return (await cur.fetchone())["at"]


async def record_run(
    conn: AsyncConnection,
    job: str,
    instance: str,
    work: Callable[[], Awaitable[dict[str, Any]]],
    *,
    now: datetime,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any] | None:
    """Run `work` and record it in `job_runs` (unless `keep` says the result is not worth a
    row); a failure is recorded and logged, never raised, so the schedule goes on."""
    try:
        result, error = await work(), None
    except Exception as exc:
        log.exception("job %s failed", job)
        if conn.info.transaction_status != TransactionStatus.IDLE:
            await conn.rollback()
        result, error = None, f"{type(exc).__name__}: {exc}"
    if error is None and keep is not None and not keep(result or {}):
        return result
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO job_runs (job, instance, started_at, finished_at, ok, result, error) "
            "VALUES (%s, %s, %s, clock_timestamp(), %s, %s, %s)",
            (job, instance, now, error is None, Jsonb(result) if result else None, error),
        )
    return result


def new_instance_name() -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
