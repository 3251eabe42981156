"""Request ids, header limits, the client behind trusted proxies, transport security headers,
and bearer-token authentication."""

from __future__ import annotations

import ipaddress
import json
import re
import uuid

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.api.forwarded import Proxies
from telemed import auth
from telemed.logs import request_id_var
from telemed.settings import Settings

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


def _json_refusal(status: int, code: str, detail: str, scope: Scope) -> tuple[dict, dict]:
    body = {"status": status, "detail": detail, "code": code}
    rid = scope.get("state", {}).get("request_id")
    if rid:
        body["request_id"] = rid
    raw = json.dumps(body).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": raw}


def header_limits(settings: Settings):
    """At most `max_headers` headers of at most `max_header_bytes` together, else 431 in the
    API's error shape. The server refuses a header block larger than that before it reaches the
    app (`telemed serve`, app/server.py); this also counts them, under any server."""
    most, most_bytes = settings.max_headers, settings.max_header_bytes

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            headers = scope.get("headers") or []
            if scope["type"] == "http" and (
                len(headers) > most or sum(len(k) + len(v) + 4 for k, v in headers) > most_bytes
            ):
                detail = f"at most {most} request headers of {most_bytes} bytes together"
                for message in _json_refusal(431, "headers_too_large", detail, scope):
                    await send(message)
                return
            await app(scope, receive, send)

        return middleware

    return factory


def forwarded_client(settings: Settings):
    """Behind trusted proxies (TELEMED_TRUSTED_PROXIES), the client's address and scheme come
    from the forwarded headers, for everything downstream: audit rows, sign-in limits, tokens,
    Secure cookies and HSTS. From any other peer those headers are ignored."""
    proxies = Proxies(settings.trusted_proxies, header=settings.proxy_headers)

    def factory(app: ASGIApp) -> ASGIApp:
        if not proxies:
            return app

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                peer = scope.get("client")
                address, scheme = proxies.resolve(peer[0] if peer else None, scope["headers"])
                if address is not None:
                    scope["client"] = (address, 0)
                if scheme is not None:
                    scope["scheme"] = scheme if scope["type"] == "http" else _WS[scheme]
            await app(scope, receive, send)

        return middleware

    return factory


_WS = {"http": "ws", "https": "wss"}


def transport_security(settings: Settings):
    """`before_send` hook: over TLS (directly, or as a trusted proxy reports it) every response
    carries HSTS and every cookie is Secure, whatever set it (session, CSRF, language)."""
    hsts = f"max-age={settings.hsts_max_age_s}".encode() if settings.hsts_max_age_s > 0 else None

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope.get("scheme") not in ("https", "wss"):
            return
        headers = []
        for name, value in message.get("headers") or []:
            if name.lower() == b"set-cookie" and b"secure" not in _cookie_attributes(value):
                value = value + b"; Secure"
            headers.append((name, value))
        if hsts:
            headers.append((b"strict-transport-security", hsts))
        message["headers"] = headers

    return hook


def _cookie_attributes(value: bytes) -> set[bytes]:
    return {part.strip().split(b"=", 1)[0].lower() for part in value.split(b";")[1:]}


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
