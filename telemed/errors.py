"""Domain errors raised by services and mapped to HTTP in one place (telemed.api.errors)."""

from __future__ import annotations

import msgspec


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


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
