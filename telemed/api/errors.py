"""One place that turns errors into the JSON the API promises: status, detail, problems. The
body is an `ErrorBody`, the same Struct the OpenAPI document describes (telemed.api.openapi)."""

from __future__ import annotations

import logging
import re

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from telemed.api.inputs import query_name
from telemed.errors import DomainError

log = logging.getLogger("telemed.api")
_PATH = re.compile(r"at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One thing wrong with the request, by field: `readings[0].unit`, `case.observation.pain`,
    a query parameter's name, or `body` for the body as a whole."""

    field: str
    message: str
    source: str | msgspec.UnsetType = msgspec.UNSET  # body, query, path, header or cookie


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error the API answers with, whatever its status."""

    status: int
    detail: str
    problems: list[Problem] | msgspec.UnsetType = msgspec.UNSET
    request_id: str | msgspec.UnsetType = msgspec.UNSET


def _body(
    request: Request, status: int, detail: str, problems: list[dict] | None = None
) -> ErrorBody:
    rid = request.scope.get("state", {}).get("request_id")
    return ErrorBody(
        status=status,
        detail=detail,
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


def domain_error(request: Request, exc: DomainError) -> Response:
    problems = [{"field": p.field, "message": p.message} for p in exc.problems]
    return Response(_body(request, exc.status, exc.detail, problems), status_code=exc.status)


def validation_error(request: Request, exc: ValidationException) -> Response:
    problems = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            message = str(item.get("message", ""))
            source = item.get("source")
            field = field_of(message, item.get("key"))
            if source == "query":
                field = query_name(request, field)
            problems.append({"field": field, "message": message, "source": source or "body"})
    detail = "the request is not valid" + (
        f": {problems[0]['field']}: {problems[0]['message']}" if problems else f": {exc.detail}"
    )
    return Response(_body(request, 400, detail, problems), status_code=400)


def http_error(request: Request, exc: HTTPException) -> Response:
    headers = getattr(exc, "headers", None)
    return Response(
        _body(request, exc.status_code, exc.detail), status_code=exc.status_code, headers=headers
    )


def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(
        _body(request, 500, "internal error; it has been logged"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS = {
    DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: internal_error,
}
