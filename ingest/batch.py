"""From a batch of MQTT messages to what one transaction writes: reading rows, rejections and
device statuses. Pure: the device registry comes in as a mapping, the time as an argument.

Policy (docs/device-protocol.md, "What is rejected, and why"): a message that cannot be used is
rejected whole with its raw bytes; a bad reading in a usable message is rejected alone, with
its index, and the good ones are stored. Either way the message is acknowledged afterwards.
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec

from telemed.device_contract import (
    TOPIC_PREFIX,
    ParsedMessage,
    PayloadError,
    decode_status,
    is_device_id,
    parse_message,
)
from telemed.readings import ReadingRow

log = logging.getLogger("ingest.batch")

# The broker's message_size_limit: nothing bigger can arrive, so raw bytes are kept whole.
MAX_RAW_BYTES = 1 << 20
# The most devices whose messages one transaction writes. A device is one patient's, and the
# alert rules take an advisory lock per patient of a transaction (alerts.hooks.lock_patients),
# held until commit in PostgreSQL's shared lock table (max_locks_per_transaction ×
# max_connections entries for all sessions): lanes × workers × this must stay well inside it.
MAX_DEVICES = 1024
_PREFIX = TOPIC_PREFIX + "/"
_json = msgspec.json.Encoder()


class Incoming(NamedTuple):
    """One MQTT message as paho's thread hands it over (a tuple: built once per message)."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    content_type: str | None
    generation: int  # which connection delivered it; an ack only makes sense on that one


class DeviceInfo(msgspec.Struct, frozen=True):
    patient_id: uuid.UUID
    active: bool
    revoked_at: datetime | None = None


# rejected_messages columns, in COPY order.
Rejection = tuple[
    datetime, str, str | None, str | None, int | None, str, bytes | None, int, str | None
]
# device_status columns: device_id, state, battery, firmware, at.
Status = tuple[str, str, float | None, str | None, datetime]


class BatchWork(msgspec.Struct):
    rows: list[ReadingRow]
    rejections: list[Rejection]
    statuses: list[Status]
    # For each row/rejection/status, the index of its message in the batch, so that a batch
    # the database refuses can be retried message by message.
    row_msg: list[int]
    rejection_msg: list[int]
    status_msg: list[int]

    @classmethod
    def empty(cls) -> BatchWork:
        return cls([], [], [], [], [], [])

    def by_message(self) -> dict[int, BatchWork]:
        """The same work, one part per message that has any."""
        parts: dict[int, BatchWork] = {}
        for row, index in zip(self.rows, self.row_msg, strict=True):
            part = parts.setdefault(index, BatchWork.empty())
            part.rows.append(row)
            part.row_msg.append(index)
        for rejection, index in zip(self.rejections, self.rejection_msg, strict=True):
            part = parts.setdefault(index, BatchWork.empty())
            part.rejections.append(rejection)
            part.rejection_msg.append(index)
        for status, index in zip(self.statuses, self.status_msg, strict=True):
            part = parts.setdefault(index, BatchWork.empty())
            part.statuses.append(status)
            part.status_msg.append(index)
        return parts


def split_topic(topic: str) -> tuple[str | None, str | None]:
    """(device id, 'readings' | 'status') of a device topic; (None, None) for anything else."""
    found = _topics.get(topic)
    if found is None:
        if len(_topics) >= _TOPIC_MEMO:
            _topics.clear()
        found = _topics[topic] = _split_topic(topic)
    return found


# Each device has two topics, seen over and over: remember the answers (a bounded memo).
_TOPIC_MEMO = 200_000
_topics: dict[str, tuple[str | None, str | None]] = {}


def _split_topic(topic: str) -> tuple[str | None, str | None]:
    if not topic.startswith(_PREFIX):
        return None, None
    device_id, _, leaf = topic[len(_PREFIX) :].partition("/")
    if leaf not in ("readings", "status") or not is_device_id(device_id):
        return None, None
    return device_id, leaf


def lane_of(topic: str, lanes: int) -> int:
    """The lane (0 … lanes - 1) that writes a topic's messages: the same for every message of a
    device, and the same in every worker (a CRC of the device id, not Python's salted hash),
    so that the lanes of a worker never write one device at the same time and lane k of one
    worker only shares devices with lane k of another. Other topics go to lane 0."""
    code = _lane_codes.get(topic)
    if code is None:
        device_id, _ = split_topic(topic)
        code = zlib.crc32(device_id.encode()) if device_id is not None else 0
        if len(_lane_codes) >= _TOPIC_MEMO:
            _lane_codes.clear()
        _lane_codes[topic] = code
    return code % lanes


_lane_codes: dict[str, int] = {}


def by_devices(batch: Sequence[Incoming], max_devices: int = MAX_DEVICES) -> list[list[Incoming]]:
    """The batch in parts of messages of at most `max_devices` devices each, every message of a
    device in the same part, in the batch's order. Messages on other topics (rejected whole)
    count for no device."""
    parts: list[list[Incoming]] = [[]]
    part_of: dict[str, int] = {}
    in_last = 0
    for item in batch:
        device_id, _ = split_topic(item.topic)
        if device_id is None:
            parts[-1].append(item)
            continue
        index = part_of.get(device_id)
        if index is None:
            if in_last == max_devices:
                parts.append([])
                in_last = 0
            index = part_of[device_id] = len(parts) - 1
            in_last += 1
        parts[index].append(item)
    return parts


def device_ids(batch: Sequence[Incoming]) -> set[str]:
    ids = set()
    for item in batch:
        device_id, _ = split_topic(item.topic)
        if device_id is not None:
            ids.add(device_id)
    return ids


def whole_rejection(item: Incoming, device_id: str | None, reason: str, now: datetime) -> Rejection:
    payload = item.payload
    return (
        now,
        item.topic,
        device_id,
        None,
        None,
        reason,
        payload[:MAX_RAW_BYTES],
        len(payload),
        item.content_type,
    )


def build(
    batch: Sequence[Incoming], lookup: Callable[[str], DeviceInfo | None], now: datetime
) -> BatchWork:
    """`lookup` gives a device's registry entry, None for an unknown device."""
    work = BatchWork.empty()
    for index, item in enumerate(batch):
        try:
            _add(work, index, item, lookup, now)
        except Exception as exc:  # a bug must not stop ingest; the message is kept
            log.exception("could not handle a message: %r", item.payload[:200])
            reason = f"internal: {type(exc).__name__} while validating: {str(exc)[:200]}"
            work.rejections.append(whole_rejection(item, split_topic(item.topic)[0], reason, now))
            work.rejection_msg.append(index)
    return work


def _add(
    work: BatchWork,
    index: int,
    item: Incoming,
    lookup: Callable[[str], DeviceInfo | None],
    now: datetime,
) -> None:
    device_id, leaf = split_topic(item.topic)
    reason: str | None = None
    device = lookup(device_id) if device_id is not None else None
    if device_id is None:
        reason = f"topic: {item.topic[:120]!r} is not a device readings or status topic"
    elif device is None:
        reason = f"device: {device_id} is not registered"
    elif not device.active:
        when = f" at {device.revoked_at.isoformat()}" if device.revoked_at else ""
        reason = f"device: {device_id} was revoked{when}"
    if reason is not None or device is None or device_id is None:
        work.rejections.append(whole_rejection(item, device_id, reason or "device: unknown", now))
        work.rejection_msg.append(index)
        return
    if leaf == "status":
        _add_status(work, index, item, device_id, now)
        return
    try:
        parsed = parse_message(item.payload, now=now, content_type=item.content_type)
    except PayloadError as exc:
        work.rejections.append(whole_rejection(item, device_id, exc.reason, now))
        work.rejection_msg.append(index)
        return
    _add_readings(work, index, item, device_id, device.patient_id, parsed, now)


def _add_readings(
    work: BatchWork,
    index: int,
    item: Incoming,
    device_id: str,
    patient_id: uuid.UUID,
    parsed: ParsedMessage,
    now: datetime,
) -> None:
    for r in parsed.accepted:
        work.rows.append(
            ReadingRow(
                measured_at=parsed.measured_at,
                patient_id=patient_id,
                metric=r.metric,
                value=r.value,
                unit=r.unit,
                comparator=r.comparator,
                source="device",
                origin=device_id,
                device_id=device_id,
                message_id=parsed.message_id,
                detail=r.detail(),
            )
        )
        work.row_msg.append(index)
    for problem in parsed.rejected:
        # msgspec writes NaN and Infinity as null; the reason says which it was.
        reading = _json.encode(problem.reading)
        work.rejections.append(
            (
                now,
                item.topic,
                device_id,
                parsed.message_id,
                problem.seq,
                problem.reason,
                reading,
                len(item.payload),
                item.content_type,
            )
        )
        work.rejection_msg.append(index)


def _add_status(work: BatchWork, index: int, item: Incoming, device_id: str, now: datetime) -> None:
    try:
        status = decode_status(item.payload, content_type=item.content_type)
    except PayloadError as exc:
        work.rejections.append(whole_rejection(item, device_id, exc.reason, now))
        work.rejection_msg.append(index)
        return
    firmware = status.firmware.replace("\x00", "") if status.firmware is not None else None
    work.statuses.append((device_id, status.state, status.battery, firmware, now))
    work.status_msg.append(index)
