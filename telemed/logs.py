"""Structured JSON log lines carrying the request id, and what keeps personal data out of them.

No CPR number, password, username as typed or clinical free text belongs in a log line. Two
things hold that for every logger of the process, ours and the libraries':

- `describe_db_error` is the one text a database error becomes in a log: its class, SQLSTATE
  and the names of the constraint, table, column and type, never the server's DETAIL ("Key
  (x)=(...) already exists", "Failing row contains (...)"), context, statement or parameters,
  nor the message of a data exception (class 22), which quotes the value it refused;
- every log record is scrubbed when it is made (a record factory, installed on import): a
  database error among its arguments becomes `describe_db_error`, a traceback is rendered with
  the same rule for each exception in it, and a number shaped like a CPR number is masked.
  Handlers, formatters and pytest's caplog see only the scrubbed record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import psycopg

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# DDMMYY, an optional dash or space, four digits; a day 01-31 and a month 01-12, so that an
# epoch second or a count is left alone.
_CPR_LIKE = re.compile(
    r"(?<![0-9])(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2])[0-9]{2}[- ]?[0-9]{4}(?![0-9])"
)
CPR_MASK = "[cpr?]"
_MAX_TEXT = 500


def mask_cpr(text: str) -> str:
    return _CPR_LIKE.sub(CPR_MASK, text)


def describe_db_error(exc: psycopg.Error) -> str:
    """What a log may say of a database error."""
    diag = exc.diag
    code = diag.sqlstate
    text = type(exc).__name__ + (f" ({code})" if code else "")
    names = [
        f"{what} {name}"
        for what, name in (
            ("constraint", diag.constraint_name),
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("type", diag.datatype_name),
        )
        if name
    ]
    if names:
        text += ": " + ", ".join(names)
    # A server error's first line, unless it is a data exception; a client-side error's first
    # line (psycopg's own words: a connection failure, a NUL in a string).
    if code is None or not code.startswith("22"):
        primary = diag.message_primary if code else (str(exc).strip().splitlines() or [""])[0]
        if primary:
            text += f": {primary}"
    return mask_cpr(text)[:_MAX_TEXT]


def describe_error(exc: BaseException) -> str:
    """One line for any exception, with the rule of `describe_db_error` for database errors."""
    if isinstance(exc, psycopg.Error):
        return describe_db_error(exc)
    return mask_cpr(str(exc))[:_MAX_TEXT]


def format_exception(exc: BaseException) -> str:
    """A traceback as the standard library prints it, but each exception's message by
    `describe_error` (source lines and frames only, never local values)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        cause = current.__cause__
        current = (
            cause
            if cause is not None
            else (None if current.__suppress_context__ else current.__context__)
        )
    parts: list[str] = []
    for index, item in enumerate(reversed(chain)):
        if index:
            parts.append("\nwhich led to:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_list(traceback.extract_tb(item.__traceback__)))
        name = type(item).__qualname__
        module = type(item).__module__
        parts.append(f"{name if module == 'builtins' else f'{module}.{name}'}: ")
        parts.append(describe_error(item) + "\n")
        for sub in getattr(item, "exceptions", None) or ():
            if isinstance(sub, BaseException):
                parts.append("  | " + format_exception(sub).replace("\n", "\n  | ") + "\n")
    return "".join(parts).rstrip("\n")


def scrub_record(record: logging.LogRecord) -> None:
    """Make a record safe to hand to any handler (see the module's docstring)."""
    args, msg = record.args, record.msg
    replaced = False
    if isinstance(msg, psycopg.Error):
        msg, replaced = describe_db_error(msg), True
    if isinstance(args, Mapping) and any(isinstance(v, psycopg.Error) for v in args.values()):
        args, replaced = {k: _safe_arg(v) for k, v in args.items()}, True
    elif isinstance(args, tuple) and any(isinstance(v, psycopg.Error) for v in args):
        args, replaced = tuple(_safe_arg(v) for v in args), True
    try:
        text = str(msg) % args if args else str(msg)
    except Exception:  # a bad format: the handler reports it as it always does
        text = None
    if text is not None:
        masked = mask_cpr(text)
        if replaced or masked != text:
            record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = format_exception(record.exc_info[1])


def _safe_arg(value: object) -> object:
    return describe_db_error(value) if isinstance(value, psycopg.Error) else value


class _ScrubbingFactory:
    """The record factory: the one before it, then `scrub_record`. Marked, so that importing
    this module again does not wrap it twice."""

    telemed_scrubs = True

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self._inner = inner

    def __call__(self, *args: object, **kwargs: object) -> logging.LogRecord:
        record = self._inner(*args, **kwargs)
        scrub_record(record)
        return record


_factory = logging.getLogRecordFactory()
if not getattr(_factory, "telemed_scrubs", False):
    logging.setLogRecordFactory(_ScrubbingFactory(_factory))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            line["request_id"] = rid
        for key in ("message_id", "device_id", "patient", "count"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
