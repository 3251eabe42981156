"""Operational alarms: what an operator must see about the running system (a process that keeps
crashing, an ingest slot left with readings waiting). Not clinical alerts: no patient data.

Raised by the processes that notice (the supervisor, the ingest commands), listed by
`GET /api/v1/admin/alarms` and counted in `/readyz`; an alarm stays open until the condition
is gone, and a repeat of an open one counts up rather than adding a row.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

import msgspec

from telemed.access import Actor, require_role
from telemed.db import AsyncConn, Queries, SyncConn, one_row

log = logging.getLogger("telemed.alarms")
Q = Queries("alarms")

Severity = Literal["warning", "critical"]


class AlarmOut(msgspec.Struct, kw_only=True):
    id: int
    key: str
    severity: Severity
    source: str
    message: str
    raised_at: datetime
    last_seen_at: datetime
    occurrences: int
    cleared_at: datetime | None = None
    cleared_reason: str | None = None


def raise_alarm(conn: SyncConn, key: str, severity: Severity, source: str, message: str) -> int:
    """Open the alarm `key` (or count a repeat of the open one); returns its occurrences."""
    params = {"key": key, "severity": severity, "source": source, "message": message}
    with conn.transaction():
        row = one_row(conn.execute(Q.raise_alarm, params).fetchone(), "the raised alarm")
    return row["occurrences"]


def clear_alarm(conn: SyncConn, key: str, reason: str) -> bool:
    """Close the open alarm `key`, if there is one; True if one was closed."""
    with conn.transaction():
        row = conn.execute(Q.clear_alarm, {"key": key, "reason": reason}).fetchone()
    return row is not None


async def list_alarms(
    conn: AsyncConn, actor: Actor, *, include_cleared: bool = False, limit: int = 100
) -> list[AlarmOut]:
    require_role(actor, ["admin"])
    cur = await conn.execute(Q.list_alarms, {"include_cleared": include_cleared, "limit": limit})
    return msgspec.convert(await cur.fetchall(), list[AlarmOut])


async def count_open(conn: AsyncConn) -> int:
    cur = await conn.execute(Q.count_open)
    return one_row(await cur.fetchone(), "the count of open alarms")["n"]
