"""Helpers for the alert tests: readings stored through the real store (and so the hook), and
the alerts and events they leave."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from telemed import readings
from telemed.readings import ReadingRow

T = TypeVar("T")

UNITS = {
    "spo2": "%",
    "pulse": "/min",
    "resp_rate": "/min",
    "fev1": "L",
    "pef": "L/min",
    "weight": "kg",
    "temperature": "Cel",
    "cat": "{score}",
    "mrc": "{score}",
    "inr": "{INR}",
}


def now() -> datetime:
    return datetime.now(UTC)


def ago(**delta: float) -> datetime:
    return now() - timedelta(**delta)


def row(
    patient: uuid.UUID,
    metric: str,
    value: float,
    at: datetime,
    entered_by: uuid.UUID,
    *,
    comparator: str | None = None,
    message_id: str | None = None,
) -> ReadingRow:
    """A reading as a nurse would enter it (the store needs a performer or a device)."""
    return ReadingRow(
        measured_at=at,
        patient_id=patient,
        metric=metric,
        value=value,
        unit=UNITS[metric],
        comparator=comparator,
        source="nurse",
        origin=f"user:{entered_by}",
        entered_by=entered_by,
        message_id=message_id or f"t-{uuid.uuid4().hex}",
    )


async def connect(dsn: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(dsn, row_factory=dict_row)


def with_conn(dsn: str, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` in one transaction on a fresh async connection."""

    async def go() -> T:
        conn = await connect(dsn)
        async with conn, conn.transaction():
            return await work(conn)

    return asyncio.run(go())


def store(dsn: str, rows: Sequence[ReadingRow], *, hooks: bool = True) -> list:
    """Store readings in one transaction, running the reading hooks (the alert rules)."""
    return with_conn(dsn, lambda conn: readings.store(conn, rows, run_hooks=hooks))


def alerts_of(db: psycopg.Connection, patient: uuid.UUID) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT * FROM alerts WHERE patient_id = %s ORDER BY id", (patient,)
    ).fetchall()


def alert_by_rule(db: psycopg.Connection, patient: uuid.UUID, rule_key: str) -> dict | None:
    found = [a for a in alerts_of(db, patient) if a["rule_key"] == rule_key]
    assert len(found) <= 1 or all(a["state"] == "resolved" for a in found[:-1])
    return found[-1] if found else None


def events_of(db: psycopg.Connection, patient: uuid.UUID) -> list[dict[str, Any]]:
    return db.execute(
        "SELECT event, organisation_ids, payload FROM outbox "
        "WHERE patient_id = %s AND event LIKE 'alert.%%' ORDER BY id",
        (patient,),
    ).fetchall()


def hand_over(db: psycopg.Connection, patient: uuid.UUID, org: uuid.UUID, since: datetime) -> None:
    db.execute(
        "INSERT INTO responsibility (patient_id, organisation_id, since, reason) "
        "VALUES (%s, %s, %s, 'test hand-over')",
        (patient, org, since),
    )


def enroll(
    db: psycopg.Connection, patient: uuid.UUID, program: str, stratum: str, days_ago: int = 60
) -> None:
    """Replace the patient's running enrollments with one in `program`."""
    db.execute(
        "UPDATE enrollments SET end_date = greatest(start_date, current_date - %s - 1) "
        "WHERE patient_id = %s AND end_date IS NULL",
        (days_ago, patient),
    )
    db.execute(
        "INSERT INTO enrollments (patient_id, program, stratum, start_date) "
        "VALUES (%s, %s, %s, current_date - %s)",
        (patient, program, stratum, days_ago),
    )
