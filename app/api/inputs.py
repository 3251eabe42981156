"""Where the checks of telemed.inputs meet the HTTP layer: every JSON body the handlers receive
is decoded by `ApiRequest.json`, and every query string and URL-encoded form (the pages' posts)
passes `check_input` before the handler's parameters are parsed. Multipart uploads are read by
their own handlers as a stream (wounds.multipart), whose JSON parts go through
telemed.inputs there."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler

from telemed import inputs
from telemed.errors import FieldProblem


class ApiRequest(Request):
    """A request whose JSON body is depth-checked before decoding, whose text is UTF-8 without
    NUL characters, and whose dates lie in the sane window (telemed.inputs)."""

    async def json(self) -> Any:
        return inputs.decode_json(await self.body() or b"null", of=_body_type(self.route_handler))


@cache
def _body_type(handler: Any) -> Any:
    """The type a handler's `data` becomes, whose date fields telemed.inputs checks."""
    if not isinstance(handler, HTTPRouteHandler):
        return None
    field = handler.parsed_fn_signature.parameters.get("data")
    return field.annotation if field is not None else None


@cache
def _date_params(
    handler: HTTPRouteHandler, in_path: frozenset[str]
) -> tuple[tuple[str, type[date]], ...]:
    """(query name, date or datetime) of each date parameter the handler takes."""
    found = []
    for name, field in handler.parsed_fn_signature.parameters.items():
        if name in in_path or not field.has_inner_subclass_of(date):
            continue
        kwarg = field.kwarg_definition
        if getattr(kwarg, "header", None) or getattr(kwarg, "cookie", None):
            continue
        found.append(
            (_alias(name, kwarg), datetime if field.has_inner_subclass_of(datetime) else date)
        )
    return tuple(found)


def _alias(name: str, kwarg: Any) -> str:
    return getattr(kwarg, "query", None) or getattr(kwarg, "name", None) or name


def query_name(request: Request, name: str) -> str:
    """The name a query parameter has in the URL (`from`), for the handler's argument (`start`)."""
    handler = request.scope.get("route_handler")
    if not isinstance(handler, HTTPRouteHandler):
        return name
    field = handler.parsed_fn_signature.parameters.get(name)
    return _alias(name, field.kwarg_definition) if field is not None else name


def _refuse(problems: list[FieldProblem], source: str) -> None:
    if problems:
        raise ValidationException(
            f"{problems[0].field}: {problems[0].message}",
            extra=[
                {"key": p.field, "message": p.message, "code": p.code, "source": source}
                for p in problems
            ],
        )


def _text_problems(items: list[tuple[str, Any]]) -> list[FieldProblem]:
    return [
        p
        for key, value in items
        if isinstance(value, str) and (p := inputs.text_problem(key, value))
    ]


async def check_input(request: Request) -> None:
    """`before_request`: no NUL in any query value or URL-encoded form field, and every date
    parameter within SANE_FIRST..SANE_LAST. A value that is no date at all is left to the
    parameter's parser."""
    params = request.query_params
    _refuse(_text_problems(params.multi_items()), "query")
    if request.content_type[0] == RequestEncodingType.URL_ENCODED:
        _refuse(_text_problems((await request.form()).multi_items()), "body")
    handler = request.route_handler
    if not isinstance(handler, HTTPRouteHandler):
        return
    problems = []
    for alias, kind in _date_params(handler, frozenset(request.path_params)):
        for raw in params.getall(alias, []):
            try:
                value = msgspec.convert(raw, kind)
            except msgspec.ValidationError:
                continue
            if problem := inputs.date_problem(alias, value):
                problems.append(problem)
    _refuse(problems, "query")
