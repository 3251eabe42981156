"""The web pages: the specialist console and the nurse's phone page, served by the API's app.

`app.asgi.create_app` plugs them in with `routers()`, `template_config()`, `PUBLIC` (the
pages check their own session and redirect to the sign-in form) and `csrf(settings)`.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar import Request, Response, Router
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ASGIApp

from app.web import csrf as _csrf
from app.web import session
from app.web.console import ConsoleController
from app.web.nurse import NurseController
from app.web.pages import SignInController
from app.web.render import page, security_headers
from telemed.errors import DomainError
from telemed.resources import package_dir
from telemed.settings import Settings

HERE = package_dir("app", "web")
PUBLIC = ["^/console(/|$)", "^/nurse(/|$)", "^/logout$"]


def template_config() -> TemplateConfig:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


def _error_page(request: Request, exc: DomainError) -> Response:
    # Out of scope is "not found" everywhere, so a page never tells that a patient exists.
    key = {404: "app.not_found", 403: "app.forbidden"}.get(exc.status)
    return page(request, "error.html", status=exc.status, key=key, detail=exc.detail)


def routers() -> list:
    pages = Router(
        path="/",
        route_handlers=[SignInController, ConsoleController, NurseController],
        after_request=security_headers,
        exception_handlers={
            session.SignInRequired: session.to_login,
            session.WrongRole: session.to_home,
            DomainError: _error_page,
        },
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/static",
        directories=[HERE / "static"],
        after_request=security_headers,
        name="web:static",
    )
    return [pages, static]


def csrf(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    """The CSRF middleware for the pages and the cookie-authenticated API calls."""
    config = _csrf.csrf_config(secret=settings.web_secret, secure=settings.secure_cookies)
    return _csrf.csrf_middleware(config)


__all__ = ["PUBLIC", "csrf", "routers", "template_config"]
