"""The alerts' scheduler jobs (telemed.jobs.Job): missed measurements, escalation of alerts
nobody acknowledged, the check that every enrolment has rules, and the pruning of remembered
missed slots. Each takes a connection and `now` and is safe to run twice: a slot raises one
alert, an escalation is guarded by its level.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

import msgspec
from psycopg import AsyncConnection

from alerts import coverage, escalation, rule_coverage
from alerts.checks import check_missed
from alerts.defaults import Override
from alerts.hooks import patient_rules, program_defaults
from alerts.lifecycle import upsert_breaches
from alerts.rules import Breach, MissedRule
from alerts.schedule import LOCAL_TZ
from telemed.jobs import Job
from telemed.settings import Settings

log = logging.getLogger("telemed.jobs")

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
           FROM overrides_in_force(e.patient_id) o
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


def jobs(settings: Settings) -> list[Job]:
    every = settings.scheduler
    return [
        Job("missed_measurements", every.missed_measurements_s, _missed),
        Job("escalations", every.escalations_s, escalations),
        Job("rule_coverage", every.rule_coverage_s, _rule_coverage),
        Job("alerts_retention", every.retention_s, retention),
    ]


async def _missed(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    return await missed_measurements(conn, now=now)


async def _rule_coverage(conn: AsyncConnection, now: datetime) -> dict[str, Any]:
    return await rule_coverage.check_rule_coverage(conn, now=now)


async def escalations(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    done = await escalation.escalate_due(conn, now=now)
    return {"alerts": len(done)}


async def retention(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    """Forget missed slots raised long ago (their alerts stay)."""
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM missed_slots WHERE raised_at < %s",
            (now - timedelta(days=MISSED_SLOTS_KEEP_DAYS),),
        )
    return {"missed_slots_pruned": cur.rowcount}
