"""What the API accepts as text and dates from a client, checked in one place.

- JSON is nested at most MAX_DEPTH levels. The depth is measured on the raw bytes before the
  decoder runs, so a body of a thousand brackets never reaches the decoder's recursion.
- Text is UTF-8 without NUL characters: PostgreSQL cannot store a NUL in text, and bytes that
  are not UTF-8 (or an escaped lone surrogate) cannot be stored at all. The answer names the
  field, e.g. `readings[0].unit`, in keys as well as values.
- Dates a client sends or asks about lie between SANE_FIRST and SANE_LAST: nothing in the
  record is older, and date arithmetic near year 1 or 9999 overflows. In a body, every field
  the body's type declares a date or a datetime is checked (`date_problems`); in a query,
  every date parameter (app.api.inputs).

Each refusal is a BadRequest (400) with the field in its problems.
"""

from __future__ import annotations

import codecs
import re
from datetime import date, datetime
from functools import cache
from itertools import accumulate
from typing import Any, Final

import msgspec
from msgspec import inspect as mi

from telemed.errors import BadRequest, FieldProblem

MAX_DEPTH: Final = 32
SANE_FIRST: Final = date(1900, 1, 1)
SANE_LAST: Final = date(2199, 12, 31)
MAX_PROBLEMS: Final = 10

# A JSON string, escapes included; possessive, so a long string costs no backtracking.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# Stands in for bytes that are not UTF-8 and for escaped lone surrogates, so that the decoder
# can say in which field they were: a NUL followed by U+FFFD, both refused in text anyway.
_MARK: Final = "\x00\ufffd"
_MARK_ESCAPED: Final = "\\u0000\\ufffd"
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)"
    rb"(\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _mark_bad_bytes(error: UnicodeDecodeError) -> tuple[str, int]:
    return _MARK_ESCAPED, error.end


codecs.register_error("telemed-json-mark", _mark_bad_bytes)


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets in strings not counted)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return min(MAX_DEPTH, raw.count(b"[") + raw.count(b"{"))
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _escaped(key: str) -> str:
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in key)


def _join(path: str, key: str) -> str:
    return f"{path}.{_escaped(key)}" if path else _escaped(key)


def _bad_text(text: str) -> tuple[str, str] | None:
    """What is wrong with a text, as (message, code), or None."""
    if _MARK in text:
        return "is not valid UTF-8 text", "invalid_utf8"
    if "\x00" in text:
        return "contains a NUL character", "nul_character"
    return None


def text_problems(value: Any, path: str = "") -> list[FieldProblem]:
    """Every string (keys too) holding a NUL or a marked non-UTF-8 sequence, by field."""
    found: list[FieldProblem] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack and len(found) < MAX_PROBLEMS:
        where, item = stack.pop()
        if isinstance(item, str):
            if bad := _bad_text(item):
                found.append(FieldProblem(where or "body", *bad))
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                if bad := _bad_text(key):
                    found.append(FieldProblem(_join(where, key), f"the name {bad[0]}", bad[1]))
                stack.append((_join(where, key), inner))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", inner) for i, inner in reversed(list(enumerate(item))))
    return found


def _repaired(raw: bytes) -> bytes:
    """The body with every non-UTF-8 sequence and escaped lone surrogate replaced by the mark."""
    text = raw.decode("utf-8", errors="telemed-json-mark").encode()
    return _LONE_SURROGATE.sub(lambda m: m.group(1) + _MARK_ESCAPED.encode(), text)


def decode_json(raw: bytes, *, part: str = "", of: Any = None) -> Any:
    """The JSON text as plain values, or BadRequest naming the field (`part` prefixes it).
    With `of`, the type the value will become, its dates are checked too."""
    where = part or "body"
    if json_depth(raw) > MAX_DEPTH:
        raise BadRequest(
            f"the JSON is nested deeper than {MAX_DEPTH} levels",
            [FieldProblem(where, f"nested deeper than {MAX_DEPTH} levels", "too_deep")],
        )
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        value = _decoded_after_marking(raw, exc, where)
    problems = text_problems(value, part)
    if not problems and of is not None:
        problems = date_problems(value, of, part)
    if problems:
        first = problems[0]
        raise BadRequest(f"{first.field}: {first.message}", problems)
    return value


def _decoded_after_marking(raw: bytes, exc: msgspec.DecodeError, where: str) -> Any:
    repaired = _repaired(raw)
    if repaired != raw:
        try:
            return msgspec.json.decode(repaired)
        except msgspec.DecodeError:
            pass
    raise BadRequest(
        f"{where} is not valid JSON: {exc}", [FieldProblem(where, str(exc), "not_json")]
    ) from None


def text_problem(name: str, value: str) -> FieldProblem | None:
    """A NUL in one text value (a query parameter, a form field), or None."""
    bad = _bad_text(value)
    return FieldProblem(name, *bad) if bad else None


def date_problem(name: str, value: date | datetime) -> FieldProblem | None:
    """A date outside SANE_FIRST..SANE_LAST, or None."""
    day = value.date() if isinstance(value, datetime) else value
    if SANE_FIRST <= day <= SANE_LAST:
        return None
    return FieldProblem(
        name,
        f"must lie between {SANE_FIRST} and {SANE_LAST}",
        "date_out_of_range",
        {"min": SANE_FIRST.isoformat(), "max": SANE_LAST.isoformat()},
    )


def date_problems(value: Any, of: Any, path: str = "") -> list[FieldProblem]:
    """Every date or datetime in `value` (plain JSON values) that the type `of` declares as
    one and that lies outside SANE_FIRST..SANE_LAST, by field. Values that are no date are left
    to the decoder."""
    found: list[FieldProblem] = []
    _dates(value, _type_info(of), path, found)
    return list({p.field: p for p in found}.values())[:MAX_PROBLEMS]


@cache
def _type_info(of: Any) -> mi.Type:
    return mi.type_info(of)


def _dates(value: Any, kind: mi.Type, path: str, found: list[FieldProblem]) -> None:
    if isinstance(kind, mi.DateType | mi.DateTimeType) and isinstance(value, str):
        try:
            when = msgspec.convert(value, datetime if isinstance(kind, mi.DateTimeType) else date)
        except msgspec.ValidationError:
            return
        if problem := date_problem(path or "body", when):
            found.append(problem)
    elif isinstance(kind, mi.UnionType):
        for member in kind.types:
            _dates(value, member, path, found)
    elif isinstance(kind, mi.StructType | mi.DataclassType | mi.TypedDictType):
        if isinstance(value, dict):
            for field in kind.fields:
                name = getattr(field, "encode_name", field.name)
                if name in value:
                    _dates(value[name], field.type, _join(path, name), found)
    elif isinstance(kind, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _dates(item, kind.item_type, f"{path}[{i}]", found)
    elif isinstance(kind, mi.DictType) and isinstance(value, dict):
        for key, item in value.items():
            _dates(item, kind.value_type, _join(path, str(key)), found)
