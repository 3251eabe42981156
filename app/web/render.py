"""Rendering a page: its language, texts, the signed-in user, and the headers every page sends."""

from __future__ import annotations

import functools
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Template

from app.web import i18n
from telemed import numbers
from telemed.access import Actor

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
YEAR_S = 365 * 86400

# No inline script or style anywhere: scripts and styles come from /static only. Photos shown
# before upload are blob: URLs; the scripts talk to this origin only (fetch, XHR, EventSource).
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


@functools.cache
def number_specs() -> dict:
    """What each number field of a form accepts (telemed.numbers), for the pages' reader."""
    return numbers.for_page()


def language(request: Request) -> str:
    return i18n.negotiate(
        request.query_params.get("lang"),
        request.cookies.get(i18n.COOKIE),
        request.headers.get("accept-language"),
    )


def local_time(value: datetime | None, fmt: str = "%d.%m.%Y %H:%M") -> str:
    return value.astimezone(COPENHAGEN).strftime(fmt) if value else ""


def local_date(value: date | None) -> str:
    return value.strftime("%d.%m.%Y") if value else ""


def page(
    request: Request,
    template: str,
    *,
    me: Actor | None = None,
    status: int = 200,
    script_texts: tuple[str, ...] = (),
    **context: Any,
) -> Template:
    lang = language(request)
    cookies = []
    if request.query_params.get("lang") in i18n.LANGUAGES:
        cookies.append(
            Cookie(key=i18n.COOKIE, value=lang, path="/", max_age=YEAR_S, samesite="lax")
        )
    return Template(
        template_name=template,
        context={
            "t": i18n.translator(lang),
            "lang": lang,
            "other_langs": [x for x in i18n.LANGUAGES if x != lang],
            "me": me,
            "texts": i18n.for_script(lang, ("app.", "error.", *script_texts)),
            "number_specs": number_specs(),
            "when": local_time,
            "day": local_date,
            **context,
        },
        status_code=status,
        cookies=cookies,
        headers={"cache-control": "no-store"},
    )


def security_headers(response: Response) -> Response:
    """`after_request` hook for pages and static files."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
