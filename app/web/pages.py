"""Sign in and out of the pages, and where each user lands."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from psycopg import AsyncConnection

from app.api.middleware import SESSION_COOKIE, client_addr
from app.web import session
from app.web.render import page
from telemed import auth
from telemed.errors import TooManyRequests, Unauthorized, Unavailable


class LoginForm(msgspec.Struct, kw_only=True):
    username: str = ""
    password: str = ""
    next: str = ""


class SignInController(Controller):
    path = "/"
    include_in_schema = False

    @get("/", name="web:root")
    async def root(self, request: Request) -> Redirect:
        actor = await session.current_actor(request)
        return Redirect(session.home_for(actor.role) if actor else "/login")

    @get("/login", name="web:login")
    async def login_form(self, request: Request, next: str = "") -> Template | Redirect:
        actor = await session.current_actor(request)
        if actor and actor.role in session.HOME:
            return Redirect(session.local_path(next) or session.home_for(actor.role))
        return page(request, "login.html", next=session.local_path(next) or "", username="")

    # Throttled with the API's sign-in (the same limits and counts); no pooled connection is
    # held while the password is checked.
    @post(
        "/login",
        name="web:sign_in",
        status_code=303,
        request_max_body_size=auth.SIGNIN_MAX_BODY,
    )
    async def sign_in(
        self,
        request: Request,
        state: State,
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response:
        target = session.local_path(data.next)
        username = data.username.strip()[:64]
        if not username or not data.password:
            return page(request, "login.html", status=400, error="login.missing", next=target)
        try:
            token, _, me = await auth.sign_in(
                auth.context(state),
                auth.Login(username=username, password=data.password[:256]),
                kind="session",
                client_addr=client_addr(request),
                request_id=request.scope.get("state", {}).get("request_id"),
            )
        except (TooManyRequests, Unavailable) as exc:
            refused = page(
                request,
                "login.html",
                status=exc.status,
                error="login.throttled" if exc.status == 429 else "login.busy",
                error_values={"seconds": exc.retry_after_s},
                next=target,
                username=username,
            )
            refused.headers.update(exc.headers)
            return refused
        except Unauthorized:
            return page(
                request,
                "login.html",
                status=401,
                error="login.failed",
                next=target,
                username=username,
            )
        response = Redirect(target or session.home_for(me.role), status_code=303)
        response.set_cookie(
            session.session_cookie(
                token, secure=session.is_secure(request, state.settings.secure_cookies)
            )
        )
        return response

    @post("/logout", name="web:sign_out", status_code=303)
    async def sign_out(self, request: Request, conn: AsyncConnection) -> Redirect:
        token = request.cookies.get(SESSION_COOKIE, "").strip()
        if token:
            await auth.revoke(conn, token)
        response = Redirect("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
