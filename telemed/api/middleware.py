"""Request ids and bearer-token authentication."""

from __future__ import annotations

import ipaddress
import re
import uuid

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from telemed import auth
from telemed.logs import request_id_var

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SESSION_COOKIE = "telemed_session"


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        try:
            await app(scope, receive, send)
        finally:
            request_id_var.reset(token)

    return middleware


async def send_request_id(message: Message, scope: Scope) -> None:
    """`before_send` hook: every response, errors raised outside the handlers included, carries
    the request id."""
    if message["type"] == "http.response.start":
        rid = scope.get("state", {}).get("request_id")
        if rid:
            MutableScopeHeaders.from_message(message)["x-request-id"] = rid


def client_addr(connection: ASGIConnection) -> str | None:
    """The peer's IP address, or None when the server does not know one."""
    host = connection.client.host if connection.client else None
    try:
        return str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        return None


class TokenAuthMiddleware(AbstractAuthenticationMiddleware):
    """Resolve `Authorization: Bearer <token>` (or the web pages' session cookie) to an Actor."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            token = connection.cookies.get(SESSION_COOKIE, "")
        if not token:
            raise NotAuthorizedException("sign in first: no bearer token")
        pool = connection.app.state.pool
        async with pool.connection() as conn:
            actor = await auth.resolve(
                conn,
                token.strip(),
                client_addr=client_addr(connection),
                request_id=connection.scope.get("state", {}).get("request_id"),
            )
        if actor is None:
            raise NotAuthorizedException("the token is unknown, expired or revoked")
        return AuthenticationResult(user=actor, auth=token.strip())
