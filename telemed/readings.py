"""Storing readings (from devices and nurses) and reading them back for plots.

`store` is the one way readings enter the database: binary COPY into a temporary table, then
one INSERT … ON CONFLICT DO NOTHING into the hypertable, so that a redelivered message stores
nothing twice; the rows really inserted are handed to the reading hooks, inside the same
transaction.

The hooks are how the alert rules run on every stored reading without the core knowing about
alerts: each process that stores readings registers them at start (app.wiring, for the API and
the ingest workers). Storing readings with no hook registered would store them with no alert
evaluation and say nothing, so `store` refuses instead (NoReadingHook), naming the missing wiring.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg.rows import args_row
from psycopg.types.json import Jsonb

from telemed.db import Queries

Q = Queries("readings")

COLUMNS = (
    "measured_at",
    "patient_id",
    "metric",
    "value",
    "unit",
    "comparator",
    "source",
    "origin",
    "device_id",
    "entered_by",
    "message_id",
    "detail",
)
_COPY_TYPES = (
    "timestamptz",
    "uuid",
    "text",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "uuid",
    "text",
    "jsonb",
)


class ReadingRow(msgspec.Struct, frozen=True, kw_only=True):
    measured_at: datetime
    patient_id: uuid.UUID
    metric: str
    value: float
    unit: str
    source: str  # 'device' or 'nurse'
    origin: str  # device id, or 'user:<uuid>'
    message_id: str
    comparator: str | None = None
    device_id: str | None = None
    entered_by: uuid.UUID | None = None
    detail: dict[str, Any] | None = None

    def as_tuple(self) -> tuple:
        return (
            self.measured_at,
            self.patient_id,
            self.metric,
            self.value,
            self.unit,
            self.comparator,
            self.source,
            self.origin,
            self.device_id,
            self.entered_by,
            self.message_id,
            Jsonb(self.detail) if self.detail is not None else None,
        )


class StoredReading(msgspec.Struct, frozen=True):
    """A reading that this transaction inserted (not a duplicate); the fields in the order of
    insert_from_staging's RETURNING, which builds them from its row tuples."""

    measured_at: datetime
    received_at: datetime
    patient_id: uuid.UUID
    metric: str
    value: float
    unit: str
    comparator: str | None
    source: str
    origin: str
    message_id: str


class UnknownReference(psycopg.errors.ForeignKeyViolation):
    """A reading names a patient, device or user that does not exist (or a device of another
    patient); the batch is refused as a foreign key would refuse it (SQLSTATE 23503)."""


def _reference_problem(row: dict) -> str:
    if row["no_patient"]:
        return f"patient {row['patient_id']} does not exist"
    if row["no_device"]:
        return f"device {row['device_id']} does not exist"
    if row["other_patient"]:
        return f"device {row['device_id']} belongs to another patient than {row['patient_id']}"
    return f"user {row['entered_by']} does not exist"


Hook = Callable[[AsyncConnection, list[StoredReading]], Awaitable[None]]

# name -> hook, in the order registered; filled by each process at start (app.wiring).
_hooks: dict[str, Hook] = {}


class NoReadingHook(RuntimeError):
    """Readings were to be stored in a process that registered no reading hook."""


def register_hook(name: str, hook: Hook) -> None:
    """Run `hook` on the readings each `store` inserts; a second hook of the same name replaces
    the first."""
    _hooks[name] = hook


def unregister_hook(name: str) -> None:
    _hooks.pop(name, None)


def reading_hooks() -> tuple[Hook, ...]:
    return tuple(_hooks.values())


def require_hooks() -> None:
    """Refuse, naming the missing wiring, when no reading hook is registered."""
    if not _hooks:
        raise NoReadingHook(
            "no reading hook is registered in this process, so readings would be stored with no "
            "alert evaluation: a process that stores readings must register the alerts hook at "
            "start (app.wiring.register_reading_hooks, which `telemed` and create_app call)"
        )


async def _ensure_staging(conn: AsyncConnection) -> None:
    # One temporary table per connection, emptied at each commit.
    await conn.execute(Q.create_staging)


async def store(
    conn: AsyncConnection, rows: Sequence[ReadingRow], *, run_hooks: bool = True
) -> list[StoredReading]:
    """Insert readings once each, inside the caller's transaction; return those inserted.

    `run_hooks=False` stores without the hooks; only for loading history that was judged
    already (tests and benchmarks). Otherwise NoReadingHook when no hook is registered."""
    if run_hooks:
        require_hooks()
    if not rows:
        return []
    await _ensure_staging(conn)
    async with conn.cursor() as cur:
        async with cur.copy(Q.copy_staging) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                await copy.write_row(row.as_tuple())
        await cur.execute(Q.unknown_references)
        if bad := await cur.fetchall():
            await cur.execute("DELETE FROM readings_staging")
            problems = "; ".join(
                f"reading {r['origin']}/{r['message_id']}/{r['metric']}: {_reference_problem(r)}"
                for r in bad
            )
            raise UnknownReference(f"refers to what does not exist: {problems}")
        async with conn.cursor(row_factory=args_row(StoredReading)) as returning:
            await returning.execute(Q.insert_from_staging)
            stored = await returning.fetchall()
        await cur.execute("DELETE FROM readings_staging")
    if run_hooks and stored:
        for hook in reading_hooks():
            await hook(conn, stored)
    return stored


async def query_raw(
    conn: AsyncConnection,
    patient_id: uuid.UUID,
    metric: str | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[dict]:
    cur = await conn.execute(
        Q.raw,
        {"patient_id": patient_id, "metric": metric, "start": start, "end": end, "limit": limit},
    )
    return await cur.fetchall()


async def query_buckets(
    conn: AsyncConnection,
    patient_id: uuid.UUID,
    metric: str | None,
    start: datetime,
    end: datetime,
    bucket_s: int,
) -> list[dict]:
    cur = await conn.execute(
        Q.buckets,
        {
            "patient_id": patient_id,
            "metric": metric,
            "start": start,
            "end": end,
            "bucket_s": bucket_s,
        },
    )
    return await cur.fetchall()
