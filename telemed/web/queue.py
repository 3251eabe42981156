"""The specialist's triage queue: open alerts and wound cases of the organisation, red first."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection

from telemed.access import Actor

# Lower comes first: red before yellow before blue; an overdue wound case ranks with red.
SEVERITY_RANK = {"red": 0, "yellow": 1, "blue": 2}


class QueueItem(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "alert" | "wound"
    id: str
    severity: str  # red | yellow | blue
    state: str
    patient_id: str
    patient_name: str
    title: str
    detail: str
    since: datetime
    due_at: datetime | None = None
    count: int = 1
    url: str


def rank(item: QueueItem) -> tuple:
    """Red first; within a colour the alert or case waiting longest first."""
    return (SEVERITY_RANK.get(item.severity, 9), item.kind != "alert", item.since, item.id)


def ordered(items: list[QueueItem]) -> list[QueueItem]:
    return sorted(items, key=rank)


async def triage(conn: AsyncConnection, actor: Actor) -> list[QueueItem]:
    return ordered([*await _alerts(conn, actor), *await _wound_cases(conn, actor)])


async def _alerts(conn: AsyncConnection, actor: Actor) -> list[QueueItem]:
    return []


async def _wound_cases(conn: AsyncConnection, actor: Actor) -> list[QueueItem]:
    return []
