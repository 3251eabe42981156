"""The one place that builds the Litestar application: its own controllers (sign-in, admin,
patients, readings, alarms, health), the pages, and the domains' routers (app.wiring)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig

from app import web, wiring
from app.api import health, openapi
from app.api.admin import AdminController
from app.api.alarms import AlarmController
from app.api.auth import AuthController
from app.api.deps import DEPENDENCIES
from app.api.errors import EXCEPTION_HANDLERS
from app.api.inputs import ApiRequest, check_input
from app.api.middleware import (
    TokenAuthMiddleware,
    forwarded_client,
    header_limits,
    request_id_middleware,
    send_request_id,
    transport_security,
)
from app.api.patients import PatientController
from app.api.readings import ReadingController
from telemed.db import check_application_role, create_pool
from telemed.security import PasswordWork
from telemed.settings import Settings

log = logging.getLogger("telemed.app")

# Paths that need no sign-in: health, the OpenAPI document, sign-in itself, and the pages'
# static files and login form (the pages check their own session).
PUBLIC = [
    "^/healthz",
    "^/livez$",
    "^/readyz$",
    "^/schema",
    "^/api/v1/auth/token$",
    "^/static/",
    "^/$",
    "^/login",
    "^/favicon",
    *web.PUBLIC,
]


def create_app(settings: Settings) -> Litestar:
    # The API stores readings (a nurse's entries): the alert rules must run on them.
    wiring.register_reading_hooks()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = create_pool(settings.dsn, min_size=settings.pool_min, max_size=settings.pool_max)
        await pool.open(wait=True, timeout=30)
        app.state.pool = pool
        app.state.passwords = PasswordWork(settings.hash_workers, settings.hash_queue)
        try:
            await check_application_role(pool)
            yield
        finally:
            app.state.passwords.close()
            await pool.close()

    if not settings.signin_key:
        raise ValueError("TELEMED_SIGNIN_KEY is empty: sign-in limits need a key")
    auth_mw = DefineMiddleware(TokenAuthMiddleware, exclude=PUBLIC)
    return Litestar(
        route_handlers=[
            *health.ROUTES,
            AuthController,
            AdminController,
            AlarmController,
            ReadingController,
            PatientController,
            *wiring.routers(settings),
            *web.routers(),
        ],
        dependencies=DEPENDENCIES,
        middleware=[
            request_id_middleware,
            header_limits(settings),
            forwarded_client(settings),
            web.csrf(settings),
            auth_mw,
        ],
        template_config=web.template_config(),
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[send_request_id, transport_security(settings)],
        request_class=ApiRequest,
        before_request=check_input,
        lifespan=[lifespan, health.readiness_lifespan],
        openapi_config=OpenAPIConfig(
            title="telemed",
            version="1.0.0",
            path="/schema",
            description=openapi.DESCRIPTION,
            render_plugins=openapi.render_plugins(),
        ),
        plugins=[openapi.TimeOfDaySchema()],
        state=State({"settings": settings}),
        # Small for every JSON endpoint; sign-in is smaller still and the photo uploads set
        # their own, larger, limits on their routes.
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,
    )
