"""Routing rules and service levels of wound cases, kept by administrators."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation

from telemed import audit
from telemed.access import Actor, require_role
from telemed.db import Queries
from telemed.errors import (
    Conflict,
    FieldProblem,
    Invalid,
    NotFound,
)
from wounds import observations, routing

Q = Queries("wounds", folder=Path(__file__).parent / "sql")

Region = Annotated[str, Meta(min_length=1, max_length=100)]
Hospital = Annotated[str, Meta(min_length=1, max_length=200)]


class RoutingRuleCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    specialist_org_id: uuid.UUID
    wound_type: observations.WoundType | None = None  # None: every type
    region: Region | None = None
    hospital: Hospital | None = None
    priority: Annotated[int, Meta(ge=0, le=10000)] = 100


class RoutingRuleOut(msgspec.Struct, kw_only=True):
    id: int
    specialist_org_id: uuid.UUID
    specialist_org: str
    wound_type: str | None
    region: str | None
    hospital: str | None
    priority: int
    created_at: datetime


class ServiceLevelSet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    urgency: routing.Urgency
    organisation_id: uuid.UUID | None = None  # None: the default for every team
    working_hours: Annotated[int, Meta(ge=1, le=80)] | None = None
    working_days: Annotated[int, Meta(ge=1, le=10)] | None = None
    day_start: time = time(8, 0)
    day_end: time = time(15, 30)


class ServiceLevelOut(msgspec.Struct, kw_only=True):
    organisation_id: uuid.UUID | None
    organisation: str | None
    urgency: str
    working_hours: int | None
    working_days: int | None
    day_start: time
    day_end: time
    updated_at: datetime


async def _specialist_org(conn: AsyncConnection, org_id: uuid.UUID, field: str) -> None:
    cur = await conn.execute("SELECT kind FROM organisations WHERE id = %s", (org_id,))
    row = await cur.fetchone()
    if row is None or row["kind"] != "hospital_department":
        raise Invalid(
            "wounds are routed to a hospital department",
            [FieldProblem(field, "not a hospital department")],
        )


async def list_rules(conn: AsyncConnection, actor: Actor) -> list[RoutingRuleOut]:
    require_role(actor, ["admin"])
    cur = await conn.execute(Q.list_routing_rules)
    return msgspec.convert(await cur.fetchall(), list[RoutingRuleOut])


async def create_rule(
    conn: AsyncConnection, actor: Actor, data: RoutingRuleCreate
) -> RoutingRuleOut:
    require_role(actor, ["admin"])
    params = {**msgspec.to_builtins(data), "specialist_org_id": data.specialist_org_id}
    try:
        async with conn.transaction():
            await _specialist_org(conn, data.specialist_org_id, "specialist_org_id")
            cur = await conn.execute(Q.insert_routing_rule, {**params, "by": actor.user_id})
            rule_id = (await cur.fetchone())["id"]
            await audit.record(
                conn,
                actor,
                "create",
                object_type="wound_routing_rule",
                object_id=rule_id,
                detail=msgspec.to_builtins(data),
            )
    except UniqueViolation:
        raise Conflict("the same rule exists") from None
    return next(r for r in await list_rules(conn, actor) if r.id == rule_id)


async def delete_rule(conn: AsyncConnection, actor: Actor, rule_id: int) -> None:
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(Q.delete_routing_rule, {"id": rule_id})
        if await cur.fetchone() is None:
            raise NotFound("routing rule not found")
        await audit.record(
            conn, actor, "delete", object_type="wound_routing_rule", object_id=rule_id
        )


async def list_levels(conn: AsyncConnection, actor: Actor) -> list[ServiceLevelOut]:
    require_role(actor, ["admin", "specialist", "nurse"])
    cur = await conn.execute(Q.list_service_levels)
    return msgspec.convert(await cur.fetchall(), list[ServiceLevelOut])


async def set_level(
    conn: AsyncConnection, actor: Actor, data: ServiceLevelSet
) -> list[ServiceLevelOut]:
    require_role(actor, ["admin"])
    try:
        routing.ServiceLevel(
            urgency=data.urgency,
            working_hours=data.working_hours,
            working_days=data.working_days,
            day_start=data.day_start,
            day_end=data.day_end,
        )
    except ValueError as exc:
        raise Invalid(str(exc), [FieldProblem("working_hours", str(exc))]) from None
    async with conn.transaction():
        if data.organisation_id is not None:
            await _specialist_org(conn, data.organisation_id, "organisation_id")
        await conn.execute(
            Q.upsert_service_level, {**msgspec.structs.asdict(data), "by": actor.user_id}
        )
        await audit.record(
            conn,
            actor,
            "update",
            object_type="wound_service_level",
            object_id=data.organisation_id or "default",
            detail=msgspec.to_builtins(data),
        )
    return await list_levels(conn, actor)
