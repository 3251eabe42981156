"""Domain errors raised by services and mapped to HTTP in one place (app.api.errors).

Every problem carries a stable `code` (docs/errors.md lists them) beside its English message:
pages say the code in the reader's language at the field it names; clients never parse the
message text.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str
    code: str = "invalid"
    params: dict[str, Any] | None = None


class DomainError(Exception):
    status = 400
    code: str | None = None  # a stable name for the error, where clients act on it

    def __init__(self, detail: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or []
        self.headers: dict[str, str] = {}


class Invalid(DomainError):
    status = 422


class BadRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class TooLarge(DomainError):
    status = 413


class Unsupported(DomainError):
    status = 415


class TooManyRequests(DomainError):
    status = 429

    def __init__(self, detail: str, *, retry_after_s: int, code: str) -> None:
        super().__init__(detail)
        self.code = code
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


class Unavailable(DomainError):
    status = 503

    def __init__(self, detail: str, *, retry_after_s: int, code: str) -> None:
        super().__init__(detail)
        self.code = code
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}


# msgspec's validation messages, by the code they stand for (tests/test_error_codes.py holds
# each pattern against the installed msgspec, so a changed wording fails loudly).
_VALIDATION_CODES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Object missing required field"), "required"),
    (re.compile(r"^Object contains unknown field"), "unknown_field"),
    (re.compile(r"^Expected `[^`]*`, got `null`"), "null_not_allowed"),
    (re.compile(r"^Expected `int[^`]*`, got `float`"), "not_whole"),
    (re.compile(r"^Expected `(?:int|float)[^`]*`, got `(?:str|bool)`"), "not_a_number"),
    (re.compile(r"^Expected `(?:int|float)` [<>]=? "), "out_of_range"),
    (re.compile(r"^Number out of range"), "out_of_range"),
    (re.compile(r"^Expected `str` of length <="), "too_long"),
    (re.compile(r"^Expected `str` of length >="), "required"),
    (re.compile(r"^Expected `str` matching regex"), "required"),
    (re.compile(r"^Invalid enum value"), "invalid_choice"),
    (re.compile(r"^Expected `[^`]*`, got `[^`]*`"), "wrong_type"),
)


def validation_code(message: str) -> str:
    """The stable code for a msgspec validation message; `invalid` when none fits."""
    for pattern, code in _VALIDATION_CODES:
        if pattern.search(message):
            return code
    return "invalid"


def nul_problems(value: object, prefix: str = "") -> list[FieldProblem]:
    """A problem for every text in a decoded request body that holds a NUL character, which
    PostgreSQL cannot store: refused by the field's name rather than failing at the database."""
    found: list[FieldProblem] = []

    def walk(item: object, path: str) -> None:
        if isinstance(item, str):
            if "\x00" in item:
                found.append(
                    FieldProblem(path or "body", "contains a NUL character", "nul_character")
                )
        elif isinstance(item, dict):
            for key, sub in item.items():
                walk(sub, f"{path}.{key}" if path else str(key))
        elif isinstance(item, list | tuple):
            for i, sub in enumerate(item):
                walk(sub, f"{path}[{i}]")

    walk(msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value, prefix)
    return found


def refuse_nul(value: object, prefix: str = "") -> None:
    """Raise BadRequest (400, as every NUL refusal) naming each text field of `value` that
    holds a NUL character."""
    if problems := nul_problems(value, prefix):
        raise BadRequest("a text holds a NUL character", problems)
