"""One place that turns errors into the JSON the API promises: status, detail, problems."""

from __future__ import annotations

import logging
import re

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from telemed.errors import DomainError

log = logging.getLogger("telemed.api")
_PATH = re.compile(r"at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def _body(
    request: Request,
    status: int,
    detail: str,
    problems: list[dict] | None = None,
    code: str | None = None,
) -> dict:
    body: dict = {"status": status, "detail": detail}
    if code:
        body["code"] = code
    if problems:
        body["problems"] = problems
    rid = request.scope.get("state", {}).get("request_id")
    if rid:
        body["request_id"] = rid
    return body


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
            [{"field": "body", "message": f"at most {limit} bytes"}],
            "body_too_large",
        ),
        status_code=413,
        # The rest of the body is not read: the connection cannot carry another request.
        headers={"Connection": "close"},
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
    RequestEntityTooLarge: body_too_large,
    HTTPException: http_error,
    Exception: internal_error,
}
