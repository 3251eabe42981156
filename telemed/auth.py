"""Sign-in (throttled, telemed.throttle), bearer tokens (expiring, revocable) and resolving a
token to an Actor."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from telemed import audit, throttle
from telemed.access import SYSTEM, Actor
from telemed.db import AsyncConn, Pool, Queries, one_row
from telemed.errors import TooManyRequests, Unauthorized, Unavailable
from telemed.security import Busy, PasswordWork, new_token, token_digest

Q = Queries("access")
log = logging.getLogger("telemed.auth")


# A sign-in body (the JSON login or the page's form with its CSRF token and return path) is
# small; the route refuses anything larger before reading it.
SIGNIN_MAX_BODY = 16 * 1024


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


class SignIn(msgspec.Struct, frozen=True, kw_only=True):
    """What a sign-in needs besides the login: the app's pool and password work, its limits."""

    pool: Pool
    passwords: PasswordWork
    limits: throttle.Limits
    secret: str
    ttl_s: int


def context(state) -> SignIn:
    """The sign-in context of the running app (its lifespan made the pool and password work)."""
    settings = state.settings
    return SignIn(
        pool=state.pool,
        passwords=state.passwords,
        limits=throttle.Limits.from_settings(settings),
        secret=settings.signin_key,
        ttl_s=settings.token_ttl_s,
    )


async def sign_in(
    ctx: SignIn,
    data: Login,
    *,
    kind: str = "bearer",
    client_addr: str | None = None,
    request_id: str | None = None,
) -> tuple[str, datetime, Me]:
    """Check the limits, then the password (off the event loop), then issue a token.

    No database connection is held while the password is checked. Every path costs the same
    for a user that exists, one that does not and one that is deactivated."""
    keys = throttle.keys_for(data.username, client_addr, ctx.secret)
    async with ctx.pool.connection() as conn:
        decision = await throttle.attempt(conn, keys, ctx.limits)
        if not decision.allowed:
            raise TooManyRequests(
                f"too many failed sign-ins; try again in {decision.retry_after_s} s",
                retry_after_s=decision.retry_after_s,
                code="signin_throttled",
            )
        cur = await conn.execute(Q.user_for_login, {"username": data.username.lower()})
        row = await cur.fetchone()
    try:
        async with ctx.passwords.admitted():
            ok = await ctx.passwords.verify(row["password_hash"] if row else None, data.password)
    except Busy:
        # The attempt stays counted: a flood that keeps the server busy gains no free guesses.
        if decision.trips:
            await _record_trips(ctx, keys, decision, row, client_addr, request_id)
        raise Unavailable(
            "too many sign-ins at once; try again in a moment",
            retry_after_s=1,
            code="signin_busy",
        ) from None
    if ok and row is not None and row["active"]:
        return await _issue(ctx, keys, row, kind, client_addr)
    account = str(row["id"]) if row else keys.account_label
    log.info("sign-in refused for account %s", account)
    if decision.trips:
        await _record_trips(ctx, keys, decision, row, client_addr, request_id)
    raise Unauthorized("wrong username or password")


async def _issue(
    ctx: SignIn, keys: throttle.Keys, row: dict, kind: str, client_addr: str | None
) -> tuple[str, datetime, Me]:
    token, digest = new_token()
    async with ctx.pool.connection() as conn, conn.transaction():
        await throttle.succeeded(conn, keys)
        cur = await conn.execute(
            Q.insert_token,
            {
                "digest": digest,
                "user_id": row["id"],
                "kind": kind,
                "ttl": ctx.ttl_s,
                "client_addr": client_addr,
            },
        )
        expires = one_row(await cur.fetchone(), "the inserted token")["expires_at"]
    return token, expires, msgspec.convert(row, Me, from_attributes=False)


async def _record_trips(
    ctx: SignIn,
    keys: throttle.Keys,
    decision: throttle.Decision,
    row: dict | None,
    client_addr: str | None,
    request_id: str | None,
) -> None:
    """An audit row and a log line for each limit this failed attempt has set off."""
    actor = msgspec.structs.replace(SYSTEM, client_addr=client_addr, request_id=request_id)
    async with ctx.pool.connection() as conn, conn.transaction():
        for trip in decision.trips:
            if trip.scope == "account":
                kind, name = ("user", str(row["id"])) if row else ("username", keys.account_label)
            else:
                kind, name = "client_addr", keys.address_label
            wait = throttle.retry_after(trip.locked_for_s)
            await audit.record(
                conn,
                actor,
                "sign_in.throttled",
                object_type=kind,
                object_id=name,
                detail={"scope": trip.scope, "failures": trip.failures, "locked_for_s": wait},
            )
            log.warning(
                "sign-in limit reached for %s %s after %d failures; next attempt in %d s",
                kind,
                name,
                trip.failures,
                wait,
            )


async def resolve(
    conn: AsyncConn, token: str, *, client_addr: str | None, request_id: str | None
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


async def revoke(conn: AsyncConn, token: str) -> bool:
    async with conn.transaction():
        cur = await conn.execute(Q.revoke_token, {"digest": token_digest(token)})
        return cur.rowcount > 0
