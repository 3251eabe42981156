"""The device message contract: MQTT topics, payload Structs, decoding and validation.

A home device publishes a `ReadingMessage` (JSON or msgpack) to its own readings topic with
QoS 1. `parse_message` turns the bytes into canonical readings; a reading that breaks a rule is
set aside with a reason and the rest of the message still counts. See docs/device-protocol.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Protocol, TypeVar

import msgspec

from telemed.catalogue.metrics import (
    CAT_ITEM_MAX,
    CAT_ITEMS,
    METRICS,
    Metric,
    MetricError,
    UnknownMetric,
    canonical_value,
    fmt_number,
)

TOPIC_PREFIX = "telemed/v1/devices"
READINGS_FILTER = f"{TOPIC_PREFIX}/+/readings"
STATUS_FILTER = f"{TOPIC_PREFIX}/+/status"
SHARED_READINGS_SUBSCRIPTION = f"$share/ingest/{READINGS_FILTER}"

# A device id is also its MQTT username and a topic level: no '/', '+', '#' or spaces.
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MESSAGE_ID_RULE = "must be 1–64 characters from A–Z a–z 0–9 . _ : -"
MAX_READINGS = 32
MAX_BYTES = 65536

Format = Literal["json", "msgpack"]

MessageId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+\Z")
]


class Reading(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    # Text only for a censored INR meter value such as "<0.8" or ">8.0".
    value: float | str
    unit: str
    items: list[int] | None = None


class ReadingMessage(msgspec.Struct, frozen=True):
    message_id: MessageId
    measured_at: Annotated[datetime, msgspec.Meta(tz=True)]
    readings: Annotated[list[Reading], msgspec.Meta(min_length=1, max_length=MAX_READINGS)]


class StatusMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    state: Literal["online", "offline"]
    battery: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    firmware: Annotated[str, msgspec.Meta(max_length=64)] | None = None


class CanonicalReading(msgspec.Struct, frozen=True):
    seq: int
    metric: str
    value: float
    unit: str
    comparator: Literal["<", ">"] | None = None
    items: tuple[int, ...] | None = None
    original_value: float | str | None = None
    original_unit: str | None = None

    def detail(self, note: str | None = None) -> dict[str, Any] | None:
        """The stored reading's `detail`, one shape whoever sent it: the questionnaire's answers
        (`items`), what was sent when the unit was converted (`original_value`,
        `original_unit`; docs/device-protocol.md), a nurse's `note`; None when there is none."""
        detail: dict[str, Any] = {}
        if self.items is not None:
            detail["items"] = list(self.items)
        if self.original_unit is not None:
            detail["original_value"] = self.original_value
            detail["original_unit"] = self.original_unit
        if note:
            detail["note"] = note
        return detail or None


class ReadingProblem(msgspec.Struct, frozen=True):
    seq: int
    reading: Reading
    reason: str


class ParsedMessage(msgspec.Struct, frozen=True):
    message_id: str
    measured_at: datetime
    accepted: list[CanonicalReading]
    rejected: list[ReadingProblem]


class PayloadError(ValueError):
    """The whole message is unusable; `reason` names the field path and the rule."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _ReadingRule(MetricError):
    def __init__(self, field: str, text: str) -> None:
        super().__init__(text)
        self.field = field


# --- topics -------------------------------------------------------------------------------


def is_device_id(device_id: str) -> bool:
    return _DEVICE_ID.fullmatch(device_id) is not None


def _device_topic(device_id: str, leaf: str) -> str:
    if not is_device_id(device_id):
        raise ValueError(f"not a valid device id: {device_id!r}")
    return f"{TOPIC_PREFIX}/{device_id}/{leaf}"


def readings_topic(device_id: str) -> str:
    return _device_topic(device_id, "readings")


def status_topic(device_id: str) -> str:
    return _device_topic(device_id, "status")


def device_id_from_topic(topic: str) -> str | None:
    """The device id of a readings topic; None for any other topic."""
    head, tail = f"{TOPIC_PREFIX}/", "/readings"
    if not (topic.startswith(head) and topic.endswith(tail)):
        return None
    device_id = topic[len(head) : -len(tail)]
    return device_id if is_device_id(device_id) else None


# --- decoding -----------------------------------------------------------------------------

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Decoder(Protocol[_T_co]):
    def decode(self, buf: bytes, /) -> _T_co: ...


_READING_DECODERS: dict[str, _Decoder[ReadingMessage]] = {
    "json": msgspec.json.Decoder(ReadingMessage),
    "msgpack": msgspec.msgpack.Decoder(ReadingMessage),
}
_STATUS_DECODERS: dict[str, _Decoder[StatusMessage]] = {
    "json": msgspec.json.Decoder(StatusMessage),
    "msgpack": msgspec.msgpack.Decoder(StatusMessage),
}
_ENCODERS = {"json": msgspec.json.Encoder(), "msgpack": msgspec.msgpack.Encoder()}
_FORMAT_NAMES = {"json": "JSON", "msgpack": "msgpack"}
_MSGPACK_TYPES = {"application/msgpack", "application/x-msgpack", "application/vnd.msgpack"}
_MSGPACK_MAP_MARKERS = frozenset((*range(0x80, 0x90), 0xDE, 0xDF))
_ERROR_AT = re.compile(r"(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")


def payload_format(payload: bytes, content_type: str | None = None) -> Format | None:
    """The format of a payload, or None when neither declared nor recognisable.

    The MQTT v5 content type decides when it names JSON or msgpack. Otherwise a JSON object
    starts with '{' after optional whitespace and a msgpack message with a map marker.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _MSGPACK_TYPES:
        return "msgpack"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if payload.lstrip(b" \t\r\n")[:1] == b"{":
        return "json"
    if payload[:1] and payload[0] in _MSGPACK_MAP_MARKERS:
        return "msgpack"
    return None


def decode(payload: bytes, *, content_type: str | None = None) -> ReadingMessage:
    """Decode a readings payload into its Struct; raises PayloadError. No size limit here."""
    return _decode(_READING_DECODERS, payload, content_type)


def decode_status(payload: bytes, *, content_type: str | None = None) -> StatusMessage:
    return _decode(_STATUS_DECODERS, payload, content_type)


def _decode(decoders: Mapping[str, _Decoder[_T]], payload: bytes, content_type: str | None) -> _T:
    if not payload:
        raise PayloadError("payload: empty")
    fmt = payload_format(payload, content_type)
    try:
        # An unrecognisable payload is read as JSON, whose errors say more about text.
        return decoders[fmt or "json"].decode(payload)
    except msgspec.ValidationError as exc:
        raise PayloadError(_validation_reason(str(exc))) from None
    except msgspec.DecodeError as exc:
        what = f"not valid {_FORMAT_NAMES[fmt]}" if fmt else "neither JSON nor msgpack"
        raise PayloadError(f"payload: {what} ({exc})") from None
    except RecursionError:
        raise PayloadError("payload: nested too deeply") from None


def _validation_reason(error: str) -> str:
    """msgspec's "Expected `str`, got `int` - at `$.readings[0].unit`" in our phrasing."""
    match = _ERROR_AT.fullmatch(error)
    text, path = (match["text"], (match["path"] or "").lstrip(".")) if match else (error, "")
    if missing := _MISSING.fullmatch(text):
        path = f"{path}.{missing['field']}" if path else missing["field"]
        text = "required field is missing"
    elif "timezone component" in text:
        text = "timestamp has no UTC offset"
    elif path == "message_id" and "got" not in text:
        text = _MESSAGE_ID_RULE
    else:
        text = text.replace("`", "")
        text = text[:1].lower() + text[1:]
    return f"{path or 'payload'}: {text}"


def encode_message(msg: ReadingMessage, fmt: Format = "json") -> bytes:
    return _ENCODERS[fmt].encode(msg)


def encode_status(msg: StatusMessage, fmt: Format = "json") -> bytes:
    return _ENCODERS[fmt].encode(msg)


# The last will a device registers on connect, published retained on its status topic.
OFFLINE_PAYLOAD = encode_status(StatusMessage(state="offline"))


# --- validation ---------------------------------------------------------------------------


def parse_message(
    payload: bytes,
    *,
    now: datetime,
    content_type: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_future: timedelta = timedelta(minutes=5),
) -> ParsedMessage:
    """Decode and validate one readings message.

    Raises PayloadError when the message as a whole is unusable. Otherwise every reading is
    either accepted in its canonical unit or rejected with a reason; late readings are fine.
    """
    if now.utcoffset() is None:
        raise ValueError("now must carry a UTC offset")
    if len(payload) > max_bytes:
        raise PayloadError(f"payload: {len(payload)} bytes is over the limit of {max_bytes} bytes")
    msg = decode(payload, content_type=content_type)
    ahead = msg.measured_at - now
    if ahead > max_future:
        raise PayloadError(
            f"measured_at: {msg.measured_at.isoformat()} is {_fmt_duration(ahead)} in the future"
            f" (limit {_fmt_duration(max_future)})"
        )
    accepted, rejected = canonical_readings(msg.readings)
    return ParsedMessage(
        message_id=msg.message_id, measured_at=msg.measured_at, accepted=accepted, rejected=rejected
    )


def canonical_readings(
    readings: Sequence[Reading],
) -> tuple[list[CanonicalReading], list[ReadingProblem]]:
    """Each reading either in its canonical unit or rejected with a reason naming its field;
    used for device messages and for readings a nurse enters."""
    accepted: list[CanonicalReading] = []
    rejected: list[ReadingProblem] = []
    first_at: dict[str, int] = {}
    for seq, reading in enumerate(readings):
        try:
            accepted.append(_canonical(seq, reading, first_at))
        except MetricError as exc:
            reason = f"readings[{seq}].{exc.field}: {exc}"
            rejected.append(ReadingProblem(seq=seq, reading=reading, reason=reason))
    return accepted, rejected


def _canonical(seq: int, reading: Reading, first_at: dict[str, int]) -> CanonicalReading:
    metric = METRICS.get(reading.type)
    if metric is None:
        raise UnknownMetric(reading.type)
    # One value per metric and message, because the stored key is (device, message_id, metric,
    # measured_at); the first occurrence claims the metric whether or not it is valid.
    first = first_at.setdefault(metric.code, seq)
    if first != seq:
        raise _ReadingRule(
            "type",
            f"{metric.code} appears more than once in the message (first at readings[{first}])",
        )
    if reading.items is not None and metric.code != "cat":
        raise _ReadingRule("items", f"only cat readings carry items, not {metric.code}")
    comparator: Literal["<", ">"] | None = None
    if isinstance(reading.value, str):
        comparator, number = _censored(metric, reading.value)
    else:
        number = reading.value
    value = canonical_value(metric, number, reading.unit)
    items = None if reading.items is None else _cat_items(reading.items, value)
    converted = reading.unit != metric.unit
    return CanonicalReading(
        seq=seq,
        metric=metric.code,
        value=value,
        unit=metric.unit,
        comparator=comparator,
        items=items,
        original_value=reading.value if converted else None,
        original_unit=reading.unit if converted else None,
    )


# A point-of-care INR meter reports beyond its measuring range as "<0.8" or ">8.0" (CLINICAL.md,
# Anticoagulation): stored as the comparator plus the limit, never rejected.
_CENSORED = re.compile(r"\s*(?P<op>[<>])\s*(?P<limit>[0-9]{1,3}(?:\.[0-9]{1,3})?)\s*")


def _censored(metric: Metric, text: str) -> tuple[Literal["<", ">"], float]:
    shown = repr(text if len(text) <= 40 else text[:40] + "…")
    if metric.code != "inr":
        raise _ReadingRule(
            "value", f"text {shown} is not a number (only inr takes text, as '<0.8' or '>8.0')"
        )
    match = _CENSORED.fullmatch(text)
    if match is None:
        raise _ReadingRule(
            "value", f"{shown} is not a censored INR value ('<' or '>' and a limit, as '<0.8')"
        )
    op: Literal["<", ">"] = "<" if match["op"] == "<" else ">"
    return op, float(match["limit"])


def _cat_items(items: list[int], value: float) -> tuple[int, ...]:
    # CAT: 8 questions answered 0-5, the score is their sum (CLINICAL.md, Metrics).
    if len(items) != CAT_ITEMS:
        raise _ReadingRule("items", f"cat has {CAT_ITEMS} answers, got {len(items)}")
    for i, answer in enumerate(items):
        if not 0 <= answer <= CAT_ITEM_MAX:
            shown = str(answer) if abs(answer) < 10**12 else "a huge number"
            raise _ReadingRule(f"items[{i}]", f"answer {shown} is outside 0–{CAT_ITEM_MAX}")
    total = sum(items)
    if total != value:
        raise _ReadingRule("items", f"answers sum to {total} but value is {fmt_number(value)}")
    return tuple(items)


def _fmt_duration(td: timedelta) -> str:
    seconds = math.ceil(td.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"
