"""Browser sessions: a row in auth_tokens of kind 'session', its id in an HttpOnly cookie."""

from __future__ import annotations

from urllib.parse import quote

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect

from app.api.middleware import SESSION_COOKIE, client_addr
from telemed import auth
from telemed.access import Actor

HOME = {"specialist": "/console", "nurse": "/nurse"}


class SignInRequired(Exception):
    """The page needs a signed-in user of one of the page's roles."""


class WrongRole(Exception):
    def __init__(self, actor: Actor) -> None:
        super().__init__(actor.role)
        self.actor = actor


def home_for(role: str) -> str:
    return HOME.get(role, "/login")


def is_secure(request: Request, secure_cookies: bool) -> bool:
    return secure_cookies or request.url.scheme == "https"


def session_cookie(token: str, *, secure: bool) -> Cookie:
    # No max-age: the cookie ends with the browser; the session row ends at its own expiry.
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def local_path(target: str | None) -> str | None:
    """`target` if it is a path on this site (never `//host` or a scheme), else None."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


async def current_actor(request: Request) -> Actor | None:
    token = request.cookies.get(SESSION_COOKIE, "").strip()
    if not token:
        return None
    async with request.app.state.pool.connection() as conn:
        return await auth.resolve(
            conn,
            token,
            client_addr=client_addr(request),
            request_id=request.scope.get("state", {}).get("request_id"),
        )


def require(*roles: str):
    """A dependency provider: the signed-in Actor of one of `roles`, for a page."""

    async def provide(request: Request) -> Actor:
        actor = await current_actor(request)
        if actor is None:
            raise SignInRequired()
        if actor.role not in roles:
            raise WrongRole(actor)
        return actor

    return provide


def to_login(request: Request, _: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/login?next={quote(target, safe='/')}"
    if request.headers.get("hx-request"):
        # An htmx fragment: let the page itself go to the sign-in form.
        return Response(b"", status_code=401, headers={"HX-Redirect": url})
    return Redirect(url)


def to_home(request: Request, exc: WrongRole) -> Response:
    return Redirect(home_for(exc.actor.role))
