"""Sign-in, bearer tokens (expiring, revocable) and resolving a token to an Actor."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection

from telemed.access import Actor
from telemed.db import Queries
from telemed.errors import Unauthorized
from telemed.security import new_token, token_digest, verify_password

Q = Queries("access")
log = logging.getLogger("telemed.auth")


class Login(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class TokenOut(msgspec.Struct, kw_only=True):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: Me


class Me(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    username: str
    full_name: str
    role: str
    organisation_id: uuid.UUID


async def sign_in(
    conn: AsyncConnection,
    data: Login,
    *,
    ttl_s: int,
    kind: str = "bearer",
    client_addr: str | None = None,
) -> tuple[str, datetime, Me]:
    cur = await conn.execute(Q.user_for_login, {"username": data.username.lower()})
    row = await cur.fetchone()
    ok = verify_password(row["password_hash"] if row else None, data.password)
    if not ok or row is None or not row["active"]:
        log.info("sign-in refused for %s", data.username)
        raise Unauthorized("wrong username or password")
    token, digest = new_token()
    async with conn.transaction():
        cur = await conn.execute(
            Q.insert_token,
            {
                "digest": digest,
                "user_id": row["id"],
                "kind": kind,
                "ttl": ttl_s,
                "client_addr": client_addr,
            },
        )
        expires = (await cur.fetchone())["expires_at"]
    return token, expires, msgspec.convert(row, Me, from_attributes=False)


async def resolve(
    conn: AsyncConnection, token: str, *, client_addr: str | None, request_id: str | None
) -> Actor | None:
    cur = await conn.execute(Q.token_principal, {"digest": token_digest(token)})
    row = await cur.fetchone()
    if row is None:
        return None
    return Actor(
        user_id=row["user_id"],
        username=row["username"],
        full_name=row["full_name"],
        role=row["role"],
        organisation_id=row["organisation_id"],
        client_addr=client_addr,
        request_id=request_id,
    )


async def revoke(conn: AsyncConnection, token: str) -> bool:
    async with conn.transaction():
        cur = await conn.execute(Q.revoke_token, {"digest": token_digest(token)})
        return cur.rowcount > 0
