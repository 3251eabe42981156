"""Events for clinicians and integrations, written in the caller's transaction.

This module is the one writer of `outbox` rows: one event (`enqueue`, which returns its id) or
many in one statement (`enqueue_many`, in the order given), both through the same SQL
(events/sql/outbox.sql). Delivery (server-sent events to signed-in clinicians, signed webhooks
per organisation) reads the table; a NOTIFY on `telemed_outbox` wakes the deliverers when the
transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from psycopg import AsyncConnection

from telemed.db import Queries

CHANNEL = "telemed_outbox"
Q = Queries("outbox", folder=Path(__file__).parent / "sql")


class Event(msgspec.Struct, frozen=True):
    """One event to write: its name, the organisations that hear of it, the patient it names."""

    event: str
    payload: dict[str, Any]
    organisation_ids: Iterable[uuid.UUID]
    patient_id: uuid.UUID | None = None


class _Row(msgspec.Struct, frozen=True):
    n: int
    event: str
    patient_id: uuid.UUID | None
    organisation_ids: list[uuid.UUID]
    payload: dict[str, Any]


async def enqueue(
    conn: AsyncConnection,
    event: str,
    payload: dict[str, Any],
    *,
    organisation_ids: Iterable[uuid.UUID],
    patient_id: uuid.UUID | None = None,
) -> int:
    """Write one event; its outbox id."""
    cur = await _insert(conn, [Event(event, payload, organisation_ids, patient_id)])
    return (await cur.fetchone())["id"]


async def enqueue_many(conn: AsyncConnection, events: Sequence[Event]) -> None:
    """Write events in one statement, their ids ascending in the order given."""
    if events:
        await _insert(conn, events)


async def _insert(conn: AsyncConnection, events: Sequence[Event]):
    rows = [
        # Each organisation once, in the order named.
        _Row(n, e.event, e.patient_id, list(dict.fromkeys(e.organisation_ids)), e.payload)
        for n, e in enumerate(events)
    ]
    return await conn.execute(Q.insert, {"events": msgspec.json.encode(rows).decode()})
