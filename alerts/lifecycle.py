"""The life of an alert: raised by a breach, repeated, upgraded, acknowledged, resolved.

At most one alert per patient and rule is not resolved (a partial unique index). A breach of a
rule with such an alert adds to it: the count grows, the last reading moves on (by measured
time: a late reading never makes an older one the "last"), and a red breach upgrades a yellow
alert. Upgrades never go back down. Raising and upgrading write an outbox event in the same
transaction; repeats do not, so a flood of bad readings is one event.

Writers lock the open alerts they touch (in id order) before merging into them, so the merge
sees the row as it is and two ingest workers that breach the same rule at once make one alert
with both counts; a new alert is inserted with ON CONFLICT DO NOTHING, and a conflict (another
writer opened it meanwhile) is merged into on the next pass.

A breach about a stored reading (the ingest path's) is also written as a row of
`alert_readings`, so that the alert can be recomputed when readings are judged again
(alerts.ledger).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from alerts.rules import Breach, Severity
from events import outbox
from telemed.db import Queries
from telemed.errors import Conflict

Q = Queries("lifecycle", folder=Path(__file__).parent / "sql")
State = Literal["open", "acknowledged", "resolved"]
BreachItem = tuple[uuid.UUID, str, Breach]
_ATTEMPTS = 5
# Which states an alert may leave for each target state; anything else is a conflict.
TRANSITIONS: dict[str, tuple[State, ...]] = {
    "acknowledged": ("open",),
    "resolved": ("open", "acknowledged"),
}


class AlertChange(msgspec.Struct, frozen=True, kw_only=True):
    """What `upsert_breaches` did to one alert."""

    alert_id: int
    patient_id: uuid.UUID
    rule_key: str
    kind: Literal["raised", "upgraded", "repeated"]
    severity: str
    count: int
    organisation_id: uuid.UUID | None
    holder_id: uuid.UUID | None


class Incoming(msgspec.Struct, kw_only=True):
    """The breaches of one (patient, rule) in one call, folded into one change."""

    patient_id: uuid.UUID
    program: str
    rule_key: str
    metric: str
    severity: Severity
    message: str
    detail: dict[str, Any]
    message_at: datetime
    first_measured_at: datetime
    last_measured_at: datetime
    last_value: float | None
    count: int


class Existing(msgspec.Struct, kw_only=True):
    id: int
    patient_id: uuid.UUID
    rule_key: str
    severity: str
    first_measured_at: datetime
    last_measured_at: datetime
    last_value: float | None
    count: int
    message: str
    detail: dict[str, Any]


class Merged(msgspec.Struct, kw_only=True):
    id: int
    severity: str
    message: str
    detail: dict[str, Any]
    first_measured_at: datetime
    last_measured_at: datetime
    last_value: float | None
    count: int
    upgraded: bool


def _takes_message(severity: Severity, at: datetime, than: Severity, than_at: datetime) -> bool:
    return severity > than or (severity == than and at >= than_at)


def aggregate(items: Iterable[BreachItem], now: datetime) -> list[Incoming]:
    """Fold breaches per (patient, rule): the worst severity, and of the breaches at that
    severity the latest-measured gives the message; a breach without a time counts at `now`."""
    folded: dict[tuple[uuid.UUID, str], Incoming] = {}
    for patient_id, program, breach in items:
        at = breach.measured_at or now
        key = (patient_id, breach.rule_key)
        current = folded.get(key)
        if current is None:
            folded[key] = Incoming(
                patient_id=patient_id,
                program=program,
                rule_key=breach.rule_key,
                metric=breach.metric,
                severity=breach.severity,
                message=breach.message,
                detail=breach.detail,
                message_at=at,
                first_measured_at=at,
                last_measured_at=at,
                last_value=breach.value,
                count=1,
            )
            continue
        current.count += 1
        current.first_measured_at = min(current.first_measured_at, at)
        if at >= current.last_measured_at:
            current.last_measured_at, current.last_value = at, breach.value
        if _takes_message(breach.severity, at, current.severity, current.message_at):
            current.severity, current.message, current.detail = (
                breach.severity,
                breach.message,
                breach.detail,
            )
            current.message_at = at
    return list(folded.values())


def merge(old: Existing, new: Incoming) -> Merged | None:
    """The open alert after `new` is added to it; None when `new` repeats the missed slot the
    alert is already about (a sweep that finds the same slot again changes nothing)."""
    slot = new.detail.get("slot_id")
    if slot is not None and old.detail.get("slot_id") == slot:
        return None
    old_severity = Severity(old.severity)
    later = new.last_measured_at >= old.last_measured_at
    takes = _takes_message(new.severity, new.message_at, old_severity, old.last_measured_at)
    return Merged(
        id=old.id,
        severity=max(old_severity, new.severity).value,
        message=new.message if takes else old.message,
        detail=new.detail if takes else old.detail,
        first_measured_at=min(old.first_measured_at, new.first_measured_at),
        last_measured_at=max(old.last_measured_at, new.last_measured_at),
        last_value=new.last_value if later else old.last_value,
        count=old.count + new.count,
        upgraded=new.severity > old_severity,
    )


# A reading that reached the system more than this after it was measured came late; an alert
# it raised says so (docs/alerts-operations.md, "Late readings").
LATE_AFTER = timedelta(minutes=15)


def _moment(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def arrival(row: dict[str, Any]) -> dict[str, Any]:
    """When the reading an alert is about (the one its message names) was measured and
    received, whether it came late, and which clock the alert's escalation counts by: from
    when the alert reached the team (raised, or upgraded to its severity), never from when the
    reading was measured."""
    detail = row.get("detail") or {}
    measured, received = _moment(detail.get("measured_at")), _moment(detail.get("received_at"))
    delay = (received - measured) if measured and received else None
    upgraded = row.get("severity_changed_at")
    return {
        "reading_measured_at": measured,
        "reading_received_at": received,
        "arrival_delay_minutes": None if delay is None else round(delay.total_seconds() / 60, 1),
        "late": delay is not None and delay > LATE_AFTER,
        "escalation_clock": "upgraded" if upgraded else "raised",
        "escalation_counts_from": upgraded or row["created_at"],
    }


def event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """What an alert event says: ids, pseudonym, what and how bad; never a name or CPR."""
    return {
        "alert_id": row["id"],
        "patient_id": str(row["patient_id"]),
        "pseudonym": row["pseudonym"],
        "rule_key": row["rule_key"],
        "metric": row["metric"],
        "program": row["program"],
        "severity": row["severity"],
        "state": row["state"],
        "message": row["message"],
        "count": row["count"],
        "first_measured_at": row["first_measured_at"].isoformat(),
        "last_measured_at": row["last_measured_at"].isoformat(),
        "organisation_id": str(row["organisation_id"]) if row["organisation_id"] else None,
    }


def addressees(row: dict[str, Any], *more: Iterable[uuid.UUID | None]) -> list[uuid.UUID]:
    """The routed organisation and the current holder (and any more), once each."""
    found = [row.get("organisation_id"), row.get("holder_id")]
    for group in more:
        found.extend(group)
    return list(dict.fromkeys(org for org in found if org is not None))


class _Key(msgspec.Struct, frozen=True):
    patient_id: uuid.UUID
    rule_key: str


class _New(msgspec.Struct, frozen=True, kw_only=True):
    patient_id: uuid.UUID
    rule_key: str
    metric: str
    program: str
    severity: str
    message: str
    detail: dict[str, Any]
    first_measured_at: datetime
    last_measured_at: datetime
    last_value: float | None
    count: int


def _json(items: Sequence[msgspec.Struct]) -> str:
    return msgspec.json.encode(items).decode()


async def _lock(conn: AsyncConnection, pending: Sequence[Incoming]) -> dict[tuple, Existing]:
    keys = [_Key(p.patient_id, p.rule_key) for p in pending]
    cur = await conn.execute(Q.lock_open, {"keys": _json(keys)})
    rows = msgspec.convert(await cur.fetchall(), list[Existing])
    return {(r.patient_id, r.rule_key): r for r in rows}


async def _update(conn: AsyncConnection, merged: Sequence[Merged], now: datetime) -> list[dict]:
    if not merged:
        return []
    cur = await conn.execute(Q.update_open, {"merged": _json(merged), "now": now})
    return await cur.fetchall()


async def _insert(conn: AsyncConnection, new: Sequence[Incoming], now: datetime) -> list[dict]:
    if not new:
        return []
    rows = [
        _New(
            patient_id=n.patient_id,
            rule_key=n.rule_key,
            metric=n.metric,
            program=n.program,
            severity=n.severity.value,
            message=n.message,
            detail=n.detail,
            first_measured_at=n.first_measured_at,
            last_measured_at=n.last_measured_at,
            last_value=n.last_value,
            count=n.count,
        )
        for n in new
    ]
    cur = await conn.execute(Q.insert_new, {"new": _json(rows), "now": now})
    return await cur.fetchall()


async def write_events(
    conn: AsyncConnection, events: Sequence[tuple[str, dict[str, Any], list[uuid.UUID]]]
) -> None:
    """Outbox rows for alert events, (event, alert row, organisations), in one statement."""
    await outbox.enqueue_many(
        conn,
        [
            outbox.Event(kind, event_payload(row), orgs, row["patient_id"])
            for kind, row, orgs in events
        ],
    )


def _change(row: dict[str, Any], kind: Literal["raised", "upgraded", "repeated"]) -> AlertChange:
    return AlertChange(
        alert_id=row["id"],
        patient_id=row["patient_id"],
        rule_key=row["rule_key"],
        kind=kind,
        severity=row["severity"],
        count=row["count"],
        organisation_id=row["organisation_id"],
        holder_id=row["holder_id"],
    )


async def upsert_breaches(
    conn: AsyncConnection, items: Sequence[BreachItem], *, now: datetime
) -> list[AlertChange]:
    """Add breaches, (patient_id, program, breach) each, to the patients' alerts.

    Runs in the caller's transaction (or its own when there is none), writes `alert.raised` and
    `alert.upgraded` events there, and returns what changed, one entry per alert.
    """
    if not items:
        return []
    if conn.info.transaction_status == TransactionStatus.IDLE:
        async with conn.transaction():
            return await _upsert(conn, items, now)
    return await _upsert(conn, items, now)


async def _upsert(
    conn: AsyncConnection, items: Sequence[BreachItem], now: datetime
) -> list[AlertChange]:
    pending = aggregate(items, now)
    changes: list[AlertChange] = []
    events: list[tuple[str, dict[str, Any], list[uuid.UUID]]] = []
    for _ in range(_ATTEMPTS):
        existing = await _lock(conn, pending)
        merged: list[Merged] = []
        upgraded: set[int] = set()
        new: list[Incoming] = []
        for item in pending:
            old = existing.get((item.patient_id, item.rule_key))
            if old is None:
                new.append(item)
            elif (change := merge(old, item)) is not None:
                merged.append(change)
                if change.upgraded:
                    upgraded.add(change.id)
        for row in await _update(conn, merged, now):
            kind = "upgraded" if row["id"] in upgraded else "repeated"
            changes.append(_change(row, kind))
            if kind == "upgraded":
                events.append(("alert.upgraded", row, addressees(row)))
        inserted = await _insert(conn, new, now)
        for row in inserted:
            changes.append(_change(row, "raised"))
            events.append(("alert.raised", row, addressees(row)))
        opened = {(row["patient_id"], row["rule_key"]) for row in inserted}
        pending = [item for item in new if (item.patient_id, item.rule_key) not in opened]
        if not pending:
            break
    else:
        raise RuntimeError(f"alerts kept changing under {len(pending)} breaches; gave up")
    await _write_readings(conn, items, changes)
    await write_events(conn, events)
    return changes


class _AlertReading(msgspec.Struct, frozen=True, kw_only=True):
    patient_id: uuid.UUID
    rule_key: str
    origin: str
    message_id: str
    measured_at: datetime
    alert_id: int
    received_at: datetime
    severity: str
    value: float | None
    message: str
    detail: dict[str, Any]


async def _write_readings(
    conn: AsyncConnection, items: Sequence[BreachItem], changes: Sequence[AlertChange]
) -> None:
    """One `alert_readings` row per breach that is about a stored reading (alerts.ledger);
    a rule breached twice by one reading (two enrollments' rule sets) counts once, its worse."""
    alert_of = {(c.patient_id, c.rule_key): c.alert_id for c in changes}
    rows: dict[tuple, _AlertReading] = {}
    for patient_id, _, breach in items:
        ref = breach.reading
        if ref is None or breach.measured_at is None:
            continue
        key = (patient_id, breach.rule_key, ref.origin, ref.message_id, breach.measured_at)
        known = rows.get(key)
        if known is not None and Severity(known.severity) >= breach.severity:
            continue
        rows[key] = _AlertReading(
            patient_id=patient_id,
            rule_key=breach.rule_key,
            origin=ref.origin,
            message_id=ref.message_id,
            measured_at=breach.measured_at,
            alert_id=alert_of[(patient_id, breach.rule_key)],
            received_at=ref.received_at,
            severity=breach.severity.value,
            value=breach.value,
            message=breach.message,
            detail=breach.detail,
        )
    if rows:
        await conn.execute(Q.insert_readings, {"rows": _json(list(rows.values()))})


async def change_state(
    conn: AsyncConnection,
    alert_id: int,
    to: Literal["acknowledged", "resolved"],
    *,
    user_id: uuid.UUID | None,
    note: str | None,
) -> dict[str, Any]:
    """Move an alert on (open → acknowledged → resolved, or open → resolved) and write the
    `alert.acknowledged` / `alert.resolved` event; Conflict when the alert is not in a state it
    may leave for `to`. Guarded in the UPDATE, so of two clinicians acting at once one wins."""
    cur = await conn.execute(
        Q.transition,
        {"id": alert_id, "to": to, "from": list(TRANSITIONS[to]), "user_id": user_id, "note": note},
    )
    changed = await cur.fetchone()
    if changed is None:
        cur = await conn.execute("SELECT state FROM alerts WHERE id = %s", (alert_id,))
        found = await cur.fetchone()
        state = found["state"] if found else "gone"
        raise Conflict(f"the alert is {state} and cannot become {to}")
    await outbox.enqueue(
        conn,
        f"alert.{to}",
        {**event_payload(changed), "by": str(user_id) if user_id else None},
        organisation_ids=addressees(changed),
        patient_id=changed["patient_id"],
    )
    return changed
