"""Events for clinicians and integrations, written in the caller's transaction.

Delivery (server-sent events to signed-in clinicians, signed webhooks per organisation) reads
this table; a NOTIFY on `telemed_outbox` wakes the deliverers when the transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

CHANNEL = "telemed_outbox"


async def enqueue(
    conn: AsyncConnection,
    event: str,
    payload: dict[str, Any],
    *,
    organisation_ids: Iterable[uuid.UUID],
    patient_id: uuid.UUID | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO outbox (event, patient_id, organisation_ids, payload) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (event, patient_id, list(dict.fromkeys(organisation_ids)), Jsonb(payload)),
    )
    return (await cur.fetchone())["id"]
