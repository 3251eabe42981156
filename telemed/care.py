"""Who cares for a patient: the organisation holding responsibility (the baton, handed over with
a reason and kept as history) and the organisations taking part in care (care relations)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from psycopg import errors

from telemed import audit, patients
from telemed.access import Actor, require_role
from telemed.db import AsyncConn, Queries, one_row
from telemed.directory import get_organisation
from telemed.errors import Conflict, NotFound

Q = Queries("patients")  # the responsibility and care-relation queries live with the patients'


class Handover(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    organisation_id: uuid.UUID
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    since: datetime | UnsetType = UNSET


class ResponsibilityOut(msgspec.Struct, kw_only=True):
    id: int
    patient_id: uuid.UUID
    organisation_id: uuid.UUID
    organisation: str | None = None
    since: datetime
    until: datetime | None = None
    reason: str | None
    handed_over_by: uuid.UUID | None
    created_at: datetime


class CareRelationCreate(msgspec.Struct, forbid_unknown_fields=True):
    organisation_id: uuid.UUID
    relation: Literal["serving", "consulted"]


class CareRelationOut(msgspec.Struct, kw_only=True):
    id: int
    patient_id: uuid.UUID
    organisation_id: uuid.UUID
    organisation: str | None = None
    relation: str
    started_at: datetime
    ended_at: datetime | None


async def hand_over(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, data: Handover
) -> ResponsibilityOut:
    """Give the baton to another organisation: a new row; the history is kept."""
    require_role(actor, ["admin"])
    await patients.patient_or_404(conn, patient_id)
    await get_organisation(conn, data.organisation_id)
    since = None if data.since is UNSET else data.since
    try:
        async with conn.transaction():
            cur = await conn.execute(
                Q.responsible_at,
                {"patient_id": patient_id, "at": since or datetime.now().astimezone()},
            )
            current = await cur.fetchone()
            if current and current["organisation_id"] == data.organisation_id:
                raise Conflict("this organisation already holds responsibility")
            cur = await conn.execute(
                Q.insert_responsibility,
                {
                    "patient_id": patient_id,
                    "organisation_id": data.organisation_id,
                    "since": since,
                    "reason": data.reason,
                    "by": actor.user_id,
                },
            )
            row = one_row(await cur.fetchone(), "the inserted hand-over")
            await audit.record(
                conn,
                actor,
                "hand_over",
                patient_id=patient_id,
                object_type="responsibility",
                object_id=row["id"],
                detail={
                    "to": str(data.organisation_id),
                    "from": str(current["organisation_id"]) if current else None,
                },
            )
    except errors.UniqueViolation:
        raise Conflict("a hand-over at this exact time exists") from None
    return msgspec.convert(row, ResponsibilityOut)


async def responsibility_history(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID
) -> list[ResponsibilityOut]:
    rows = await patients.read_audited(
        conn, actor, patient_id, Q.responsibility_history, "responsibility"
    )
    return msgspec.convert(rows, list[ResponsibilityOut])


async def add_care_relation(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, data: CareRelationCreate
) -> CareRelationOut:
    require_role(actor, ["admin"])
    await patients.patient_or_404(conn, patient_id)
    await get_organisation(conn, data.organisation_id)
    async with conn.transaction():
        cur = await conn.execute(
            Q.insert_care_relation,
            {
                "patient_id": patient_id,
                "organisation_id": data.organisation_id,
                "relation": data.relation,
                "by": actor.user_id,
            },
        )
        row = await cur.fetchone()
        if row is None:
            raise Conflict("this relation exists already")
        await audit.record(
            conn,
            actor,
            "create",
            patient_id=patient_id,
            object_type="care_relation",
            object_id=row["id"],
            detail={"organisation_id": str(data.organisation_id), "relation": data.relation},
        )
    return msgspec.convert(row, CareRelationOut)


async def end_care_relation(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, relation_id: int
) -> CareRelationOut:
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(Q.end_care_relation, {"id": relation_id, "patient_id": patient_id})
        row = await cur.fetchone()
        if row is None:
            raise NotFound("no open care relation with this id")
        await audit.record(
            conn,
            actor,
            "end",
            patient_id=patient_id,
            object_type="care_relation",
            object_id=relation_id,
        )
    return msgspec.convert(row, CareRelationOut)


async def list_care_relations(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID
) -> list[CareRelationOut]:
    rows = await patients.read_audited(
        conn, actor, patient_id, Q.list_care_relations, "care_relation"
    )
    return msgspec.convert(rows, list[CareRelationOut])
