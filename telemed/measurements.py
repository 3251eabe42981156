"""Readings a nurse enters for a patient who cannot measure alone, and readings for plots."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection

from telemed import audit, numbers, readings
from telemed.access import Actor, require_patient
from telemed.device_contract import Reading, ReadingProblem, canonical_readings
from telemed.errors import FieldProblem, Invalid, refuse_nul

MAX_FUTURE = timedelta(minutes=5)
BUCKETS = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "1w": 7 * 86400}


class NurseReadings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    measured_at: Annotated[datetime, Meta(tz=True)]
    readings: Annotated[list[Reading], Meta(min_length=1, max_length=32)]
    note: Annotated[str, Meta(max_length=1000)] | None = None


class StoredOut(msgspec.Struct, kw_only=True):
    message_id: str
    stored: int
    readings: list[dict]


class ReadingOut(msgspec.Struct, kw_only=True):
    measured_at: datetime
    metric: str
    value: float
    unit: str
    comparator: str | None
    source: str
    device_id: str | None
    entered_by: uuid.UUID | None
    entered_by_name: str | None
    received_at: datetime
    detail: dict | None = None


class BucketOut(msgspec.Struct, kw_only=True):
    bucket: datetime
    metric: str
    min: float
    avg: float
    max: float
    count: int


async def record(
    conn: AsyncConnection,
    actor: Actor,
    patient_id: uuid.UUID,
    data: NurseReadings,
    *,
    now: datetime | None = None,
) -> StoredOut:
    """All or nothing: one bad reading refuses the request, naming the field."""
    await require_patient(conn, actor, patient_id, roles=("nurse",))
    refuse_nul(data)
    now = now or datetime.now(UTC)
    if data.measured_at - now > MAX_FUTURE:
        raise Invalid(
            "measured in the future",
            [FieldProblem("measured_at", "is more than 5 minutes in the future", "in_future")],
        )
    accepted, rejected = canonical_readings(data.readings)
    if rejected:
        raise Invalid(
            "a reading is not valid", [_reading_problem(data.readings, p) for p in rejected]
        )
    message_id = f"nurse-{uuid.uuid4().hex}"
    rows = [
        readings.ReadingRow(
            measured_at=data.measured_at,
            patient_id=patient_id,
            metric=r.metric,
            value=r.value,
            unit=r.unit,
            comparator=r.comparator,
            source="nurse",
            origin=f"user:{actor.user_id}",
            entered_by=actor.user_id,
            message_id=message_id,
            detail=r.detail(data.note),
        )
        for r in accepted
    ]
    async with conn.transaction():
        stored = await readings.store(conn, rows)
        await audit.record(
            conn,
            actor,
            "create",
            patient_id=patient_id,
            object_type="reading",
            object_id=message_id,
            detail={"metrics": [r.metric for r in accepted]},
        )
    return StoredOut(
        message_id=message_id,
        stored=len(stored),
        readings=[{"metric": r.metric, "value": r.value, "unit": r.unit} for r in accepted],
    )


# What the metric catalogue's refusal says, by the stable code a page says it with.
_READING_CODES = (
    ("plausible range", "out_of_range"),
    ("whole number", "not_whole"),
    ("not an accepted unit", "wrong_unit"),
    ("unknown metric", "unknown_metric"),
    ("not a number", "not_a_number"),
    ("NaN", "not_a_number"),
    ("finite", "not_a_number"),
    ("censored", "not_a_number"),
)


def _reading_problem(sent: list[Reading], problem: ReadingProblem) -> FieldProblem:
    """A refused reading at its field, with its code and, for a value out of range, the
    metric's plausible range (telemed.numbers, the bounds the nurse's form reads by)."""
    field, _, text = problem.reason.partition(":")
    text = text.strip()
    code = next((c for key, c in _READING_CODES if key in text), "invalid")
    params = None
    metric = sent[problem.seq].type
    if field.endswith(".value") and metric in numbers.metric_codes():
        params = numbers.metric_spec(metric).params()
    return FieldProblem(field, text, code, params)


async def list_readings(
    conn: AsyncConnection,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    metric: str | None,
    start: datetime | None,
    end: datetime | None,
    bucket: Literal["1h", "6h", "1d", "1w"] | None,
    limit: int = 5000,
) -> list[ReadingOut] | list[BucketOut]:
    await require_patient(conn, actor, patient_id)
    end = end or datetime.now(UTC) + MAX_FUTURE
    start = start or end - timedelta(days=30)
    if start >= end:
        raise Invalid("empty period", [FieldProblem("from", "must be before 'to'")])
    async with conn.transaction():
        if bucket:
            rows = await readings.query_buckets(
                conn, patient_id, metric, start, end, BUCKETS[bucket]
            )
            out = msgspec.convert(rows, list[BucketOut])
        else:
            rows = await readings.query_raw(conn, patient_id, metric, start, end, limit)
            out = msgspec.convert(rows, list[ReadingOut])
        await audit.record(
            conn,
            actor,
            "read",
            patient_id=patient_id,
            object_type="reading",
            detail={"metric": metric, "bucket": bucket},
        )
    return out
