"""The audit log: one row for every read or change of a patient's data.

Callers write the row on the same connection and inside the same transaction as the change it
records, so a change is never stored without its audit row (and vice versa).
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.types.json import Jsonb

from telemed.access import Actor
from telemed.db import Queries

Q = Queries("access")


def _row(
    actor: Actor,
    action: str,
    patient_id: uuid.UUID | None,
    object_type: str | None,
    object_id: Any,
    detail: dict | None,
) -> dict[str, Any]:
    return {
        "actor_kind": actor.kind,
        "actor_id": str(actor.user_id) if actor.user_id else actor.username,
        "actor_name": actor.full_name,
        "actor_role": actor.role,
        "actor_org_id": actor.organisation_id,
        "action": action,
        "patient_id": patient_id,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "client_addr": actor.client_addr,
        "request_id": actor.request_id,
        "detail": Jsonb(detail) if detail else None,
    }


async def record(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    *,
    patient_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    detail: dict | None = None,
) -> None:
    await conn.execute(
        Q.insert_audit, _row(actor, action, patient_id, object_type, object_id, detail)
    )


async def record_many(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    patient_ids: list[uuid.UUID],
    *,
    object_type: str | None = None,
) -> None:
    if not patient_ids:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            Q.insert_audit,
            [_row(actor, action, pid, object_type, pid, None) for pid in patient_ids],
        )


def record_sync(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    patient_id: uuid.UUID | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    detail: dict | None = None,
) -> None:
    conn.execute(Q.insert_audit, _row(actor, action, patient_id, object_type, object_id, detail))
