"""Reading back the device messages the ingest workers rejected (they write `rejected_messages`),
for the devices admin API and command line."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import msgspec
from psycopg import AsyncConnection, Connection

from telemed.db import Queries

Q = Queries("rejections", folder=Path(__file__).parent / "sql")


class RejectionOut(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    patient_id: uuid.UUID | None
    message_id: str | None
    reading_index: int | None
    reason: str
    payload_size: int
    content_type: str | None
    # The first 256 bytes as text (undecodable bytes replaced), enough to see what arrived.
    raw_preview: str | None


def _out(row: dict) -> RejectionOut:
    head = row.pop("raw_head")
    preview = None if head is None else bytes(head).decode("utf-8", "replace")
    return RejectionOut(**row, raw_preview=preview)


def list_rejections(
    conn: Connection, *, device_id: str | None = None, limit: int = 100
) -> list[RejectionOut]:
    rows = conn.execute(Q.recent_rejections, {"device_id": device_id, "limit": limit}).fetchall()
    return [_out(r) for r in rows]


async def list_rejections_async(
    conn: AsyncConnection, *, device_id: str | None = None, limit: int = 100
) -> list[RejectionOut]:
    cur = await conn.execute(Q.recent_rejections, {"device_id": device_id, "limit": limit})
    return [_out(r) for r in await cur.fetchall()]
