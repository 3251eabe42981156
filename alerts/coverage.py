"""Missed-measurement alerts that late readings contradict.

A kit out of coverage measures on time and sends its backlog days later. The sweep that found
the slot empty raised its no-data alert rightly; once readings measured in time for the slot
are stored, the alert says something the chart contradicts. Each sweep therefore looks at the
slots of open missed-measurement alerts: a slot with a reading measured in its window (after
the previous slot's deadline, at or before its own) is marked covered, with that reading. An
alert whose every slot is covered is resolved by the system, with a note saying which reading
covered which slot, when it was measured and when it arrived; one covered in part stays open,
its message saying how many of its slots were covered and by what. A reading measured after a
slot's deadline does not cover it: that slot was really missed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts.checks import _local, _name, _show
from alerts.lifecycle import addressees, change_state, write_events
from alerts.rules import MissedRule
from alerts.schedule import slot_window

_UNCOVERED = """
SELECT s.patient_id, s.rule_key, s.slot_id, s.alert_id
FROM missed_slots s
JOIN alerts a ON a.id = s.alert_id
WHERE s.covered_at IS NULL AND a.state <> 'resolved'
ORDER BY s.alert_id, s.slot_id
"""

# The earliest reading measured in each slot's window.
_COVERING = """
SELECT k.i, r.measured_at, r.received_at, r.value, r.comparator
FROM json_to_recordset(%(slots)s::json)
     AS k (i int, patient_id uuid, metric text, since timestamptz, until timestamptz)
CROSS JOIN LATERAL (
    SELECT measured_at, received_at, value, comparator FROM readings r
    WHERE r.patient_id = k.patient_id AND r.metric = k.metric
      AND r.measured_at > k.since AND r.measured_at <= k.until
    ORDER BY r.measured_at LIMIT 1
) r
"""

_MARK = """
UPDATE missed_slots s SET covered_at = %(now)s, covered_by = c.covered_by
FROM json_to_recordset(%(rows)s::json)
     AS c (patient_id uuid, rule_key text, slot_id text, covered_by jsonb)
WHERE s.patient_id = c.patient_id AND s.rule_key = c.rule_key AND s.slot_id = c.slot_id
"""

_SLOTS_OF = """
SELECT s.alert_id, s.slot_id, s.covered_by, a.message, a.detail
FROM missed_slots s
JOIN alerts a ON a.id = s.alert_id
WHERE s.alert_id = ANY(%(ids)s)
ORDER BY s.alert_id, s.slot_id
FOR UPDATE OF a
"""

_PARTLY = """
WITH changed AS (
    UPDATE alerts SET message = %(message)s, detail = %(detail)s, updated_at = %(now)s
    WHERE id = %(id)s AND state <> 'resolved'
    RETURNING *
)
SELECT c.*, p.pseudonym, h.organisation_id AS holder_id
FROM changed c
JOIN patients p ON p.id = c.patient_id
LEFT JOIN LATERAL holder_at(c.patient_id, %(now)s) h ON true
"""


class Watched(msgspec.Struct, frozen=True):
    """A missed-measurement rule of an enrolled patient, and when its schedule starts."""

    patient_id: uuid.UUID
    rule: MissedRule
    enrolled_at: datetime


def _iso(at: datetime) -> str:
    return at.isoformat()


async def cover(conn: AsyncConnection, watched: Sequence[Watched], *, now: datetime) -> int:
    """Mark the slots late readings covered and close or annotate their alerts; how many
    slots were covered. One transaction."""
    rules = {(w.patient_id, w.rule.key): w for w in watched}
    async with conn.transaction():
        slots = await (await conn.execute(_UNCOVERED)).fetchall()
        wanted: list[dict[str, Any]] = []
        windows: dict[int, tuple[Watched, datetime]] = {}
        for i, s in enumerate(slots):
            w = rules.get((s["patient_id"], s["rule_key"]))
            if w is None:  # no longer enrolled: its alerts stay as they are
                continue
            window = slot_window(w.rule.schedule, w.enrolled_at, date.fromisoformat(s["slot_id"]))
            if window is None:
                continue
            since, until = window
            windows[i] = (w, until)
            wanted.append(
                {"i": i, "patient_id": s["patient_id"], "metric": w.rule.metric,
                 "since": since, "until": until}
            )  # fmt: skip
        if not wanted:
            return 0
        cur = await conn.execute(_COVERING, {"slots": msgspec.json.encode(wanted).decode()})
        found = await cur.fetchall()
        if not found:
            return 0
        marks = []
        for r in found:
            s = slots[r["i"]]
            w, deadline = windows[r["i"]]
            due = deadline - timedelta(hours=w.rule.schedule.grace_hours)
            covered_by = {
                "slot_id": s["slot_id"],
                "due_at": _iso(due),
                "deadline": _iso(deadline),
                "metric": w.rule.metric,
                "value": r["value"],
                "comparator": r["comparator"],
                "measured_at": _iso(r["measured_at"]),
                "received_at": _iso(r["received_at"]),
            }
            marks.append({**s, "covered_by": covered_by})
        await conn.execute(_MARK, {"rows": msgspec.json.encode(marks).decode(), "now": now})
        touched = sorted({m["alert_id"] for m in marks})
        rows = await (await conn.execute(_SLOTS_OF, {"ids": touched})).fetchall()
        by_alert: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            by_alert.setdefault(row["alert_id"], []).append(row)
        events = []
        for alert_id, alert_slots in by_alert.items():
            event = await _settle(conn, alert_id, alert_slots, now)
            if event is not None:
                events.append(event)
        await write_events(conn, events)
    return len(found)


def _said(c: dict[str, Any]) -> str:
    value = f"{c.get('comparator') or ''}{_show(c['metric'], c['value'])}"
    return (
        f"{_name(c['metric'])} {value} measured {_local(datetime.fromisoformat(c['measured_at']))}"
        f", received {_local(datetime.fromisoformat(c['received_at']))}"
    )


async def _settle(
    conn: AsyncConnection, alert_id: int, slots: list[dict[str, Any]], now: datetime
) -> tuple[str, dict[str, Any], list[uuid.UUID]] | None:
    covered = [s["covered_by"] for s in slots if s["covered_by"] is not None]
    detail = dict(slots[0]["detail"])
    missed_message = detail.get("missed_message", slots[0]["message"])
    detail.update(covered=covered, missed_message=missed_message)
    if len(covered) == len(slots):
        await conn.execute("UPDATE alerts SET detail = %s WHERE id = %s", (Jsonb(detail), alert_id))
        parts = [
            f"slot due {_local(datetime.fromisoformat(c['due_at']))}: {_said(c)}" for c in covered
        ]
        note = "Covered by readings that arrived late: " + "; ".join(parts) + "."
        await change_state(conn, alert_id, "resolved", user_id=None, note=note[:2000])
        return None  # change_state wrote alert.resolved
    message = (
        f"{missed_message}; {len(covered)} of {len(slots)} missed slots covered by readings "
        f"that arrived late ({'; '.join(_said(c) for c in covered)})"
    )
    cur = await conn.execute(
        _PARTLY, {"id": alert_id, "message": message, "detail": Jsonb(detail), "now": now}
    )
    row = await cur.fetchone()
    return None if row is None else ("alert.updated", row, addressees(row))
