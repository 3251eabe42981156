"""Cross-site request forgery protection for the pages and for the API called from them.

The browser sends the session cookie with every request to the app, including one that a page
on another site makes it send. So every state-changing request that the session cookie
authenticates must also carry a CSRF token, which another site cannot read:

- pages and their form posts: Litestar's CSRF middleware (a signed token in a cookie, repeated
  in the form field `_csrf_token` or the `x-csrftoken` header);
- fetch/XHR to /api/ with the session cookie: the same double-submit check, the token sent in
  the `x-csrftoken` header (the pages read it from a <meta> tag);
- /api/ with `Authorization: Bearer ...`: no check. The token in the header is the credential,
  a browser never adds it on its own, and the auth middleware then ignores the cookie. The rule
  below mirrors the auth middleware's, so a request the cookie authenticates is always checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from litestar.config.csrf import CSRFConfig
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from app.api.middleware import SESSION_COOKIE

HEADER = "x-csrftoken"
COOKIE = "telemed_csrf"
# Nothing here changes state or is a page; no cookie needs setting on them.
UNCHECKED = ("/healthz", "/schema", "/static/", "/favicon")


def uses_bearer(headers: Mapping[str, str]) -> bool:
    """True when the auth middleware will take the Authorization header and not the cookie."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token)


def needs_check(path: str, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
    """Whether a request goes through the CSRF check (which passes safe methods through)."""
    if path.startswith(UNCHECKED):
        return False
    if path.startswith("/api/"):
        return SESSION_COOKIE in cookies and not uses_bearer(headers)
    return True


def csrf_config(*, secret: str, secure: bool) -> CSRFConfig:
    return CSRFConfig(
        secret=secret,
        cookie_name=COOKIE,
        header_name=HEADER,
        cookie_secure=secure,
        cookie_httponly=True,
        cookie_samesite="lax",
    )


def csrf_middleware(config: CSRFConfig) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware factory: Litestar's CSRF check, for the requests `needs_check` names."""

    def factory(app: ASGIApp) -> ASGIApp:
        checked = CSRFMiddleware(app=app, config=config)

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and needs_check(
                scope["path"], _headers(scope), _cookies(scope)
            ):
                await checked(scope, receive, send)
            else:
                await app(scope, receive, send)

        return middleware

    return factory


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _cookies(scope: Scope) -> dict[str, str]:
    cookies = {}
    for part in _headers(scope).get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            cookies[name] = value
    return cookies
