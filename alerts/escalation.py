"""Escalation of alerts nobody acknowledged in time.

Policy (data in `alert_deadlines`, per program and severity):
- an open alert escalates first `ack_within` after it reached its current severity (created, or
  upgraded from yellow to red: the red deadline counts from the upgrade);
- then again every `repeat_every` after its last escalation, while still open;
- until `escalation_level` reaches the severity's `max_level` (red 3, yellow 1 by default);
  the level counts every escalation of the alert, so a yellow escalated once and then upgraded
  to red goes on at level 2;
- acknowledging (or resolving) stops it: only alerts in state `open` escalate.
Level n goes n steps along the chain of `organisation_settings.escalation_organisation_id`
from the organisation the alert is routed to (stopping at the chain's end); the routed
organisation hears of every escalation too. A missed sweep catches up one level per sweep, so
a scheduler that was down does not fire every level at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection

from alerts.lifecycle import arrival
from events import outbox
from telemed import audit
from telemed.access import SYSTEM, Actor, require_role
from telemed.errors import FieldProblem, Invalid, NotFound

Program = Literal["copd", "ak"]
SeverityName = Literal["yellow", "red"]


class Deadline(msgspec.Struct, frozen=True, kw_only=True):
    ack_within: timedelta
    repeat_every: timedelta
    max_level: int


class AlertClock(msgspec.Struct, frozen=True, kw_only=True):
    """What escalation needs to know of an alert."""

    state: str
    created_at: datetime
    severity_changed_at: datetime | None
    escalated_at: datetime | None
    escalation_level: int


def next_escalation_at(alert: AlertClock, deadline: Deadline) -> datetime | None:
    """When the alert escalates next, or None if it never will (acknowledged, or at the cap)."""
    if alert.state != "open" or alert.escalation_level >= deadline.max_level:
        return None
    since = alert.severity_changed_at or alert.created_at
    if alert.escalated_at is None or alert.escalated_at < since:
        return since + deadline.ack_within
    return alert.escalated_at + deadline.repeat_every


def is_due(alert: AlertClock, deadline: Deadline, now: datetime) -> bool:
    at = next_escalation_at(alert, deadline)
    return at is not None and at <= now


def escalation_target(
    routed: uuid.UUID, chain: dict[uuid.UUID, uuid.UUID], level: int
) -> uuid.UUID | None:
    """The organisation `level` steps along the chain from `routed`; the last one reached if
    the chain is shorter; None if `routed` has no escalation target at all."""
    current, seen = routed, {routed}
    for _ in range(level):
        following = chain.get(current)
        if following is None or following in seen:
            break
        current = following
        seen.add(current)
    return None if current == routed else current


_CANDIDATES = """
SELECT a.id, a.patient_id, a.program, a.severity, a.state, a.rule_key, a.metric, a.message,
       a.detail, a.organisation_id, a.created_at, a.severity_changed_at, a.escalated_at,
       a.escalation_level, d.ack_within, d.repeat_every, d.max_level, p.pseudonym
FROM alerts a
JOIN alert_deadlines d ON d.program = a.program AND d.severity = a.severity
JOIN patients p ON p.id = a.patient_id
WHERE a.state = 'open'
  AND a.escalation_level < d.max_level
  AND coalesce(a.severity_changed_at, a.created_at) + d.ack_within <= %(now)s
ORDER BY a.id
"""

_ESCALATE = """
UPDATE alerts SET escalated_at = %(now)s, escalation_level = escalation_level + 1,
                  updated_at = %(now)s
WHERE id = %(id)s AND state = 'open' AND escalation_level = %(level)s
RETURNING escalation_level
"""


class Escalation(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: int
    patient_id: uuid.UUID
    level: int
    routed_organisation_id: uuid.UUID
    target_organisation_id: uuid.UUID | None
    outbox_id: int


async def _chain(conn: AsyncConnection) -> dict[uuid.UUID, uuid.UUID]:
    cur = await conn.execute(
        "SELECT organisation_id, escalation_organisation_id FROM organisation_settings "
        "WHERE escalation_organisation_id IS NOT NULL"
    )
    return {r["organisation_id"]: r["escalation_organisation_id"] for r in await cur.fetchall()}


async def escalate_due(conn: AsyncConnection, *, now: datetime) -> list[Escalation]:
    """Escalate every open alert whose deadline passed by `now`: one level each, each in its own
    transaction, guarded so an alert acknowledged meanwhile is left alone."""
    async with conn.transaction():
        rows = await (await conn.execute(_CANDIDATES, {"now": now})).fetchall()
        chain = await _chain(conn)
    done: list[Escalation] = []
    for row in rows:
        clock = msgspec.convert(row, AlertClock, from_attributes=False)
        if not is_due(clock, msgspec.convert(row, Deadline), now):
            continue
        async with conn.transaction():
            cur = await conn.execute(
                _ESCALATE, {"now": now, "id": row["id"], "level": row["escalation_level"]}
            )
            updated = await cur.fetchone()
            if updated is None:
                continue
            done.append(await _announce(conn, row, updated["escalation_level"], chain, now))
    return done


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


async def _announce(
    conn: AsyncConnection,
    row: dict[str, Any],
    level: int,
    chain: dict[uuid.UUID, uuid.UUID],
    now: datetime,
) -> Escalation:
    routed = row["organisation_id"]
    target = escalation_target(routed, chain, level)
    clock = arrival(row)
    since = clock["escalation_counts_from"]
    payload = {
        "alert_id": row["id"],
        "patient_id": str(row["patient_id"]),
        "pseudonym": row["pseudonym"],
        "program": row["program"],
        "rule_key": row["rule_key"],
        "metric": row["metric"],
        "severity": row["severity"],
        "message": row["message"],
        "level": level,
        "routed_organisation_id": str(routed),
        "target_organisation_id": str(target) if target else None,
        "unacknowledged_since": since.isoformat(),
        "escalated_at": now.isoformat(),
        # The deadline counts from when the alert reached the team (raised or upgraded), not
        # from when its reading was measured; a late reading's times say how late it came.
        "clock": clock["escalation_clock"],
        "counts_from": since.isoformat(),
        "measured_at": _iso(clock["reading_measured_at"]),
        "received_at": _iso(clock["reading_received_at"]),
        "late": clock["late"],
    }
    orgs = [target, routed] if target else [routed]
    if target:
        # The team the alert escalates to must be able to open the patient it is told about.
        await conn.execute(
            "INSERT INTO care_relations (patient_id, organisation_id, relation) "
            "VALUES (%s, %s, 'consulted') "
            "ON CONFLICT (patient_id, organisation_id, relation) WHERE ended_at IS NULL "
            "DO NOTHING",
            (row["patient_id"], target),
        )
    outbox_id = await outbox.enqueue(
        conn, "alert.escalated", payload, organisation_ids=orgs, patient_id=row["patient_id"]
    )
    await audit.record(
        conn,
        SYSTEM,
        "escalate",
        patient_id=row["patient_id"],
        object_type="alert",
        object_id=row["id"],
        detail={"level": level, "target_organisation_id": payload["target_organisation_id"]},
    )
    return Escalation(
        alert_id=row["id"],
        patient_id=row["patient_id"],
        level=level,
        routed_organisation_id=routed,
        target_organisation_id=target,
        outbox_id=outbox_id,
    )


# Administration: deadlines per program and severity, escalation targets per organisation.

# At least a minute: the escalation job runs once a minute by default, and a smaller number
# (5e-324) would become a zero interval that the table refuses.
Minutes = Annotated[float, Meta(ge=1, le=14 * 24 * 60)]


class DeadlineOut(msgspec.Struct, kw_only=True):
    program: Program
    severity: SeverityName
    ack_within_minutes: float
    repeat_every_minutes: float
    max_level: int
    updated_at: datetime
    updated_by: uuid.UUID | None


class DeadlineUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    ack_within_minutes: Minutes
    repeat_every_minutes: Minutes | None = None
    max_level: Annotated[int, Meta(ge=0, le=20)] = 3


class EscalationSettingOut(msgspec.Struct, kw_only=True):
    organisation_id: uuid.UUID
    escalation_organisation_id: uuid.UUID | None
    updated_at: datetime | None
    updated_by: uuid.UUID | None


class EscalationSettingUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    escalation_organisation_id: uuid.UUID | None


_DEADLINE_COLUMNS = (
    "program, severity, extract(epoch FROM ack_within) / 60 AS ack_within_minutes, "
    "extract(epoch FROM repeat_every) / 60 AS repeat_every_minutes, max_level, updated_at, "
    "updated_by"
)


async def list_deadlines(conn: AsyncConnection, actor: Actor) -> list[DeadlineOut]:
    require_role(actor, ["admin", "nurse", "specialist"])
    async with conn.transaction():
        cur = await conn.execute(
            f"SELECT {_DEADLINE_COLUMNS} FROM alert_deadlines ORDER BY program, severity DESC"
        )
        rows = await cur.fetchall()
    return msgspec.convert(rows, list[DeadlineOut], strict=False)


async def set_deadline(
    conn: AsyncConnection,
    actor: Actor,
    program: Program,
    severity: SeverityName,
    data: DeadlineUpdate,
) -> DeadlineOut:
    require_role(actor, ["admin"])
    repeat = data.repeat_every_minutes or data.ack_within_minutes
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO alert_deadlines (program, severity, ack_within, repeat_every, max_level,"
            " updated_by) VALUES (%(program)s, %(severity)s, make_interval(secs => %(ack)s * 60),"
            " make_interval(secs => %(repeat)s * 60), %(max_level)s, %(by)s)"
            " ON CONFLICT (program, severity) DO UPDATE SET ack_within = EXCLUDED.ack_within,"
            " repeat_every = EXCLUDED.repeat_every, max_level = EXCLUDED.max_level,"
            f" updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_DEADLINE_COLUMNS}",
            {
                "program": program,
                "severity": severity,
                "ack": data.ack_within_minutes,
                "repeat": repeat,
                "max_level": data.max_level,
                "by": actor.user_id,
            },
        )
        row = await cur.fetchone()
        await audit.record(
            conn,
            actor,
            "update",
            object_type="alert_deadline",
            object_id=f"{program}:{severity}",
            detail={
                "ack_within_minutes": data.ack_within_minutes,
                "repeat_every_minutes": repeat,
                "max_level": data.max_level,
            },
        )
    return msgspec.convert(row, DeadlineOut, strict=False)


async def _require_org(conn: AsyncConnection, org: uuid.UUID, field: str | None = None) -> None:
    cur = await conn.execute("SELECT 1 FROM organisations WHERE id = %s", (org,))
    if await cur.fetchone() is None:
        if field:
            raise Invalid("unknown organisation", [FieldProblem(field, "no such organisation")])
        raise NotFound("organisation not found")


async def get_escalation_setting(
    conn: AsyncConnection, actor: Actor, organisation_id: uuid.UUID
) -> EscalationSettingOut:
    require_role(actor, ["admin"])
    async with conn.transaction():
        await _require_org(conn, organisation_id)
        cur = await conn.execute(
            "SELECT escalation_organisation_id, updated_at, updated_by "
            "FROM organisation_settings WHERE organisation_id = %s",
            (organisation_id,),
        )
        row = await cur.fetchone() or {
            "escalation_organisation_id": None,
            "updated_at": None,
            "updated_by": None,
        }
    return EscalationSettingOut(organisation_id=organisation_id, **row)


async def set_escalation_setting(
    conn: AsyncConnection, actor: Actor, organisation_id: uuid.UUID, data: EscalationSettingUpdate
) -> EscalationSettingOut:
    require_role(actor, ["admin"])
    target = data.escalation_organisation_id
    if target == organisation_id:
        raise Invalid(
            "an organisation cannot escalate to itself",
            [FieldProblem("escalation_organisation_id", "same as the organisation")],
        )
    async with conn.transaction():
        await _require_org(conn, organisation_id)
        if target is not None:
            await _require_org(conn, target, "escalation_organisation_id")
        cur = await conn.execute(
            "INSERT INTO organisation_settings (organisation_id, escalation_organisation_id, "
            " updated_by) VALUES (%s, %s, %s) ON CONFLICT (organisation_id) DO UPDATE SET "
            " escalation_organisation_id = EXCLUDED.escalation_organisation_id, "
            " updated_by = EXCLUDED.updated_by, updated_at = now() "
            "RETURNING escalation_organisation_id, updated_at, updated_by",
            (organisation_id, target, actor.user_id),
        )
        row = await cur.fetchone()
        await audit.record(
            conn,
            actor,
            "update",
            object_type="organisation_settings",
            object_id=organisation_id,
            detail={"escalation_organisation_id": str(target) if target else None},
        )
    return EscalationSettingOut(organisation_id=organisation_id, **row)
