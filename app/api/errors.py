"""One place that turns errors into the JSON the API promises: status, detail, problems. The
body is an `ErrorBody`, the same Struct the OpenAPI document describes (app.api.openapi)."""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.api.inputs import query_name
from telemed.errors import DomainError, validation_code

log = logging.getLogger("telemed.api")
_PATH = re.compile(r"at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One thing wrong with the request, by field: `readings[0].unit`, `case.observation.pain`,
    a query parameter's name, or `body` for the body as a whole; `code` is stable
    (docs/errors.md), `params` holds what a page needs to say it (bounds, unit, read-back)."""

    field: str
    message: str
    code: str = "invalid"
    params: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    source: str | msgspec.UnsetType = msgspec.UNSET  # body, query, path, header or cookie


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error the API answers with, whatever its status. `code` names the error as a whole
    where a client acts on it (`signin_throttled`, `body_too_large`)."""

    status: int
    detail: str
    code: str | msgspec.UnsetType = msgspec.UNSET
    problems: list[Problem] | msgspec.UnsetType = msgspec.UNSET
    request_id: str | msgspec.UnsetType = msgspec.UNSET


def _body(
    request: Request,
    status: int,
    detail: str,
    problems: list[dict] | None = None,
    code: str | None = None,
) -> ErrorBody:
    rid = request.scope.get("state", {}).get("request_id")
    return ErrorBody(
        status=status,
        detail=detail,
        code=code or msgspec.UNSET,
        problems=msgspec.convert(problems, list[Problem]) if problems else msgspec.UNSET,
        request_id=rid or msgspec.UNSET,
    )


def field_of(message: str, key: object) -> str:
    """The field a validation message names. Litestar gives the path in `key` ('data' for the
    body itself); msgspec names a missing or unknown field only in the message text."""
    base = "" if key in (None, "", "data", "body") else str(key)
    path = _PATH.search(message)
    if path and not base:
        base = path.group(1)
    for pattern in (_MISSING, _UNKNOWN):
        m = pattern.search(message)
        if m:
            return f"{base}.{m.group(1)}" if base else m.group(1)
    return base or "body"


def _problem(field: str, message: str, code: str, params: dict | None) -> dict:
    problem = {"field": field, "message": message, "code": code}
    if params:
        problem["params"] = params
    return problem


def domain_error(request: Request, exc: DomainError) -> Response:
    problems = [_problem(p.field, p.message, p.code, p.params) for p in exc.problems]
    return Response(
        _body(request, exc.status, exc.detail, problems, exc.code),
        status_code=exc.status,
        headers=exc.headers or None,
    )


def validation_error(request: Request, exc: ValidationException) -> Response:
    problems = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            message = str(item.get("message", ""))
            source = item.get("source")
            field = field_of(message, item.get("key"))
            if source == "query":
                field = query_name(request, field)
            code = item.get("code") or validation_code(message)
            problem = _problem(field, message, code, None)
            problems.append({**problem, "source": source or "body"})
    detail = "the request is not valid" + (
        f": {problems[0]['field']}: {problems[0]['message']}" if problems else f": {exc.detail}"
    )
    return Response(_body(request, 400, detail, problems), status_code=400)


# Refusals that Litestar raises itself, with the code a page says them by.
_HTTP_CODES = {413: ("body", "too_large"), 415: ("content-type", "unsupported_format")}


def http_error(request: Request, exc: HTTPException) -> Response:
    headers = getattr(exc, "headers", None)
    known = _HTTP_CODES.get(exc.status_code)
    problems = [_problem(known[0], exc.detail, known[1], None)] if known else None
    return Response(
        _body(request, exc.status_code, exc.detail, problems),
        status_code=exc.status_code,
        headers=headers,
    )


def _nul_refused(exc: Exception) -> bool:
    """A NUL character that reached the database: PostgreSQL stores none, in text or jsonb."""
    if isinstance(exc, psycopg.errors.UntranslatableCharacter):
        return True
    return isinstance(exc, psycopg.DataError) and "NUL (0x00)" in str(exc)


def body_too_large(request: Request, exc: RequestEntityTooLarge) -> Response:
    """Litestar's own limit (per route: small for sign-in and JSON, the uploads' own elsewhere),
    which refuses an announced Content-Length before reading and a streamed body at the limit."""
    limit = request.route_handler.resolve_request_max_body_size()
    detail = "the request body is too large" + (f"; at most {limit} bytes here" if limit else "")
    return Response(
        _body(
            request,
            413,
            detail,
            [_problem("body", f"at most {limit} bytes", "too_large", {"max_bytes": limit})],
            "body_too_large",
        ),
        status_code=413,
        # The rest of the body is not read: the connection cannot carry another request.
        headers={"Connection": "close"},
    )


def internal_error(request: Request, exc: Exception) -> Response:
    # Services refuse a NUL by the field's name (telemed.errors.refuse_nul); one that gets past
    # them is still the request's fault, said with its code rather than as a server error.
    if _nul_refused(exc):
        log.info("a NUL character reached the database on %s %s", request.method, request.url.path)
        problems = [_problem("body", "a text holds a NUL character", "nul_character", None)]
        detail = "a text holds a NUL character, which cannot be stored"
        return Response(_body(request, 400, detail, problems), status_code=400)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        _body(request, 500, "internal error; it has been logged"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS = {
    DomainError: domain_error,
    ValidationException: validation_error,
    RequestEntityTooLarge: body_too_large,
    HTTPException: http_error,
    Exception: internal_error,
}
