"""What each alert is made of, reading by reading (`alert_readings`, migration 0046), and what
happens to alerts when readings already judged are judged again.

`alerts.lifecycle.upsert_breaches` writes one row per breaching reading. When a batch holds a
reading measured before readings already judged (it came late, or another ingest worker
committed the later ones first), alerts.evaluation judges those later readings again with it in
their history and hands the decisions here. Compared with the rows:

- a breach where there was none is added to the rule's alert like any breach (a new alert if
  the rule has none open; a higher severity than a breach already counted in a resolved alert
  opens a new one too, since a clinician closed the old one knowing less);
- a breach whose severity (or sentence) changed updates its row;
- a breach that is no longer one loses its row.

An alert whose rows changed is then recomputed from them, as if its readings had arrived in
measured order: count, first and last reading, severity, and the sentence of its worst and
latest breach. A rise to red re-opens it as any upgrade does (`alert.upgraded`); a change
otherwise says `alert.updated`; an alert left without readings is resolved by the system with
a note saying they were withdrawn (`alert.resolved`). Resolved alerts are history and are not
changed. An alert raised before migration 0046 has fewer rows than its count: only its count
moves, and its severity only up.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from alerts.lifecycle import BreachItem, addressees, update_alerts, write_events
from alerts.rules import Breach, Severity
from telemed.db import AsyncConn, Queries

Q = Queries("ledger", folder=Path(__file__).parent / "sql")

Key = tuple[uuid.UUID, str, str, str, datetime]


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """A rule's decision on a reading judged again: its breach, or None."""

    patient_id: uuid.UUID
    program: str
    rule_key: str
    origin: str
    message_id: str
    measured_at: datetime
    breach: Breach | None

    @property
    def key(self) -> Key:
        return (self.patient_id, self.rule_key, self.origin, self.message_id, self.measured_at)


class _Ref(msgspec.Struct, frozen=True, kw_only=True):
    patient_id: uuid.UUID
    rule_key: str
    origin: str
    message_id: str
    measured_at: datetime


class _Update(_Ref, frozen=True, kw_only=True):
    severity: str
    value: float | None
    message: str
    detail: dict[str, Any]


class Revision(msgspec.Struct):
    deletes: list[_Ref] = []
    updates: list[_Update] = []

    def __bool__(self) -> bool:
        return bool(self.deletes or self.updates)


def _json(items: Any) -> str:
    return msgspec.json.encode(items).decode()


def _ref(d: Decision) -> _Ref:
    return _Ref(
        patient_id=d.patient_id,
        rule_key=d.rule_key,
        origin=d.origin,
        message_id=d.message_id,
        measured_at=d.measured_at,
    )


async def reconcile(
    conn: AsyncConn, decisions: Sequence[Decision]
) -> tuple[list[BreachItem], Revision]:
    """The breaches to add (as `upsert_breaches` items) and the rows to change."""
    if not decisions:
        return [], Revision()
    cur = await conn.execute(Q.old_decisions, {"keys": _json([_ref(d) for d in decisions])})
    old = {
        (r["patient_id"], r["rule_key"], r["origin"], r["message_id"], r["measured_at"]): r
        for r in await cur.fetchall()
    }
    additions: list[BreachItem] = []
    revision = Revision([], [])
    for d in decisions:
        was = old.get(d.key)
        now = d.breach
        if was is None:
            if now is not None:
                additions.append((d.patient_id, d.program, now))
        elif was["state"] == "resolved":
            if now is not None and now.severity > Severity(was["severity"]):
                additions.append((d.patient_id, d.program, now))
        elif now is None:
            revision.deletes.append(_ref(d))
        elif (now.severity.value, now.message) != (was["severity"], was["message"]):
            revision.updates.append(
                _Update(
                    **msgspec.structs.asdict(_ref(d)),
                    severity=now.severity.value,
                    value=now.value,
                    message=now.message,
                    detail=now.detail,
                )
            )
    return additions, revision


_WITHDRAWN = (
    "Resolved by the system: the readings that raised it were withdrawn. Readings measured "
    "before them arrived later (late, or committed by another ingest worker first), and judged "
    "with those the readings no longer breach this rule."
)


async def revise(conn: AsyncConn, revision: Revision, *, now: datetime) -> None:
    """Apply the row changes and recompute the alerts they touch (see the module docstring)."""
    if not revision:
        return
    cur = await conn.execute(
        Q.apply_revision,
        {"deletes": _json(revision.deletes), "updates": _json(revision.updates)},
    )
    removed: dict[int, int] = {}
    for r in await cur.fetchall():
        removed[r["alert_id"]] = removed.get(r["alert_id"], 0) + r["removed"]
    touched = [{"id": alert_id, "removed": n} for alert_id, n in sorted(removed.items())]
    cur = await conn.execute(Q.summary, {"alerts": _json(touched)})
    rows = [_recomputed(r) for r in await cur.fetchall()]
    if not rows:
        return
    events = []
    for row in await update_alerts(conn, _json(rows), now):
        if row["state"] == "resolved":
            events.append(("alert.resolved", row, addressees(row)))
        elif any(r["id"] == row["id"] and r["upgraded"] for r in rows):
            events.append(("alert.upgraded", row, addressees(row)))
        else:
            events.append(("alert.updated", row, addressees(row)))
    await write_events(conn, events)


def _recomputed(r: dict[str, Any]) -> dict[str, Any]:
    count = r["count"] - r["removed"]
    old = Severity(r["severity"])
    base = {
        "id": r["id"],
        "severity": r["severity"],
        "message": r["message"],
        "detail": r["detail"],
        "first_measured_at": r["first_measured_at"],
        "last_measured_at": r["last_measured_at"],
        "last_value": r["last_value"],
        "count": count,
        "upgraded": False,
        "resolve": False,
        "note": None,
    }
    if count <= 0:
        return {**base, "count": r["count"], "resolve": True, "note": _WITHDRAWN}
    worst = Severity.RED if r["rank"] == 2 else Severity.YELLOW
    if r["n"] != count:  # raised before the rows were kept: only the count, severity up only
        severity = max(old, worst) if r["n"] else old
        return {**base, "severity": severity.value, "upgraded": severity > old}
    return {
        **base,
        "severity": worst.value,
        "message": r["led_message"],
        "detail": r["led_detail"],
        "first_measured_at": r["first"],
        "last_measured_at": r["last"],
        "last_value": r["led_last_value"],
        "upgraded": worst > old,
    }
