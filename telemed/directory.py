"""Organisations and users (managed by admins)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from psycopg import errors

from telemed import audit
from telemed.access import Actor, require_role
from telemed.db import AsyncConn, Queries, one_row
from telemed.errors import Conflict, FieldProblem, Invalid, NotFound
from telemed.security import check_password_strength, hash_password

Q = Queries("directory")

OrgKind = Literal["hospital_department", "home_nursing", "gp_practice"]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Username = Annotated[str, Meta(pattern=r"^[a-z0-9._-]{3,64}$")]


class OrganisationCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    kind: OrgKind
    region: Annotated[str, Meta(max_length=100)] | None = None
    hospital: Annotated[str, Meta(max_length=200)] | None = None
    specialty: Annotated[str, Meta(max_length=100)] | None = None


class OrganisationOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    kind: OrgKind
    region: str | None
    hospital: str | None
    specialty: str | None
    created_at: datetime


class UserCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: Username
    full_name: Name
    role: Literal["nurse", "specialist", "admin"]
    organisation_id: uuid.UUID
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class UserOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    username: str
    full_name: str
    role: str
    organisation_id: uuid.UUID
    active: bool
    created_at: datetime


async def create_organisation(
    conn: AsyncConn, actor: Actor, data: OrganisationCreate
) -> OrganisationOut:
    require_role(actor, ["admin"])
    try:
        async with conn.transaction():
            cur = await conn.execute(Q.insert_organisation, msgspec.structs.asdict(data))
            row = one_row(await cur.fetchone(), "the inserted organisation")
            await audit.record(
                conn, actor, "create", object_type="organisation", object_id=row["id"]
            )
    except errors.UniqueViolation:
        raise Conflict("an organisation with this name exists") from None
    return msgspec.convert(row, OrganisationOut)


async def list_organisations(conn: AsyncConn, actor: Actor) -> list[OrganisationOut]:
    require_role(actor, ["admin", "nurse", "specialist"])
    cur = await conn.execute(Q.list_organisations)
    return msgspec.convert(await cur.fetchall(), list[OrganisationOut])


async def get_organisation(conn: AsyncConn, org_id: uuid.UUID) -> OrganisationOut:
    cur = await conn.execute(Q.get_organisation, {"id": org_id})
    row = await cur.fetchone()
    if row is None:
        raise NotFound("organisation not found")
    return msgspec.convert(row, OrganisationOut)


async def create_user(conn: AsyncConn, actor: Actor, data: UserCreate) -> UserOut:
    require_role(actor, ["admin"])
    problem = check_password_strength(data.password)
    if problem:
        raise Invalid("password too weak", [FieldProblem("password", problem)])
    await get_organisation(conn, data.organisation_id)
    params = msgspec.structs.asdict(data)
    # argon2 off the event loop (a thread of the default executor; admins create users rarely).
    params["password_hash"] = await asyncio.to_thread(hash_password, params.pop("password"))
    try:
        async with conn.transaction():
            cur = await conn.execute(Q.insert_user, params)
            row = one_row(await cur.fetchone(), "the inserted user")
            await audit.record(conn, actor, "create", object_type="user", object_id=row["id"])
    except errors.UniqueViolation:
        raise Conflict("this username is taken", [FieldProblem("username", "taken")]) from None
    return msgspec.convert(row, UserOut)


async def list_users(
    conn: AsyncConn, actor: Actor, organisation_id: uuid.UUID | None = None
) -> list[UserOut]:
    require_role(actor, ["admin"])
    cur = await conn.execute(Q.list_users, {"organisation_id": organisation_id})
    return msgspec.convert(await cur.fetchall(), list[UserOut])


async def set_user_active(
    conn: AsyncConn, actor: Actor, user_id: uuid.UUID, active: bool
) -> UserOut:
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(Q.set_user_active, {"id": user_id, "active": active})
        row = await cur.fetchone()
        if row is None:
            raise NotFound("user not found")
        if not active:
            await conn.execute(
                "UPDATE auth_tokens SET revoked_at = now() "
                "WHERE user_id = %s AND revoked_at IS NULL",
                (user_id,),
            )
        await audit.record(
            conn,
            actor,
            "activate" if active else "deactivate",
            object_type="user",
            object_id=user_id,
        )
    return msgspec.convert(row, UserOut)
