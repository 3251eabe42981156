"""Sign in, who am I, sign out."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from psycopg import AsyncConnection

from app.api.middleware import client_addr
from telemed import auth
from telemed.access import Actor


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    # No pooled connection as a dependency here: sign_in takes one only around its queries,
    # never while the password is checked.
    @post(
        "/token",
        operation_id="signIn",
        summary="Sign in and get a bearer token",
        description=(
            "Throttled per account and per client address: after a few failures every further"
            " attempt (the right password too) gets 429 with Retry-After, doubling the wait."
        ),
        exclude_from_auth=True,
        status_code=200,
        request_max_body_size=auth.SIGNIN_MAX_BODY,
    )
    async def token(self, request: Request, state: State, data: auth.Login) -> auth.TokenOut:
        token, expires, me = await auth.sign_in(
            auth.context(state),
            data,
            client_addr=client_addr(request),
            request_id=request.scope.get("state", {}).get("request_id"),
        )
        return auth.TokenOut(token=token, expires_at=expires, user=me)

    @get("/me", operation_id="me", summary="The signed-in user")
    async def me(self, actor: Actor) -> auth.Me:
        return auth.Me(
            id=actor.user_id,
            username=actor.username,
            full_name=actor.full_name,
            role=actor.role,
            organisation_id=actor.organisation_id,
        )

    @post(
        "/revoke",
        operation_id="signOut",
        summary="Revoke the token used for this request",
        status_code=204,
    )
    async def revoke(self, request: Request, conn: AsyncConnection) -> None:
        await auth.revoke(conn, request.auth)
