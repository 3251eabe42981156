"""Writing a batch: one transaction for its rejections, device statuses and readings (with the
alert hooks, last); retried, on a fresh connection, until it commits.

Errors are sorted by cause. The database being away (connection lost, restart, failover) is
waited out with backoff, and nothing is acknowledged meanwhile. The database refusing the
content of a message (a data error, a check or foreign key violation) is narrowed down by
writing the batch message by message; a message it still refuses is rejected with the
database's reason, so that one bad message cannot hold the stream up forever. The alert rules
(the reading hook) keep a failing rule to its patient and record it (alerts.evaluation), so a
rule never holds the stream up either; only the database being away or busy reaches here from
them. Anything else is a fault of ours: logged and retried, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import msgspec
import psycopg

from ingest.batch import (
    MAX_DEVICES,
    BatchWork,
    DeviceInfo,
    Incoming,
    build,
    by_devices,
    device_ids,
    split_topic,
    whole_rejection,
)
from telemed import readings
from telemed.db import AsyncConn, Queries, connect_async
from telemed.logs import describe_error

log = logging.getLogger("ingest.writer")
Q = Queries("ingest", folder=Path(__file__).parent / "sql")

_TRANSIENT = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.TransactionRollback,
    OSError,
)
# Refusals that follow from what a message holds. A unique violation is not among them: with
# ON CONFLICT on the readings it can only come from concurrent writers, and the next attempt
# sees the other's commit.
_CONTENT = (
    psycopg.DataError,
    psycopg.errors.CheckViolation,
    psycopg.errors.NotNullViolation,
    psycopg.errors.ForeignKeyViolation,
)
_REJECTION_TYPES = (
    "timestamptz", "text", "text", "text", "int4", "text", "bytea", "int4", "text",
)  # fmt: skip


class GiveUp(Exception):
    """Stopping, and the batch could not be committed in the time allowed."""


class DeviceCache:
    """Device id → registry entry (None: unknown), each kept for `ttl_s` seconds, so that a
    revocation takes effect on messages still queued within that time."""

    def __init__(self, ttl_s: float = 10.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, DeviceInfo | None]] = {}

    def stale(self, ids: set[str], now: float) -> list[str]:
        entries = self._entries
        return [i for i in ids if (e := entries.get(i)) is None or now - e[0] > self.ttl_s]

    def update(self, asked: Sequence[str], rows: Sequence[dict], now: float) -> None:
        found = {r["id"]: r for r in rows}
        for device_id in asked:
            row = found.get(device_id)
            info = (
                None
                if row is None
                else DeviceInfo(row["patient_id"], row["active"], row["revoked_at"])
            )
            self._entries[device_id] = (now, info)

    def get(self, device_id: str) -> DeviceInfo | None:
        entry = self._entries.get(device_id)
        return entry[1] if entry else None


class Outcome(msgspec.Struct):
    stored: int = 0
    rejected: int = 0


class Writer:
    def __init__(
        self, dsn: str, *, application_name: str, cache: DeviceCache | None = None
    ) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._conn: AsyncConn | None = None
        self.cache = cache or DeviceCache()
        self.deadline: float | None = None  # monotonic; set when stopping

    async def _connection(self) -> AsyncConn:
        if self._conn is None or self._conn.closed:
            conn = await connect_async(
                self._dsn,
                autocommit=True,
                application_name=self._application_name,
                connect_timeout=5,
            )
            # A transaction holds its patients' locks until it ends (alerts.hooks). If this
            # process dies, its session must end at once, not when it next reads from the
            # socket (a session waiting for a lock or running a statement does not); and one
            # whose client vanished without closing the socket (a host lost) ends when idle
            # in a transaction for a minute, where the worker never pauses that long.
            await conn.execute(Q.session_settings)
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _refresh_devices(self, conn: AsyncConn, ids: set[str]) -> None:
        clock = time.monotonic()
        stale = self.cache.stale(ids, clock)
        if stale:
            cur = await conn.execute(Q.devices_by_id, {"ids": stale})
            self.cache.update(stale, await cur.fetchall(), clock)

    async def commit(self, batch: Sequence[Incoming], now: datetime) -> Outcome:
        """Store the batch; returns once it is committed (or raises GiveUp when stopping). A
        batch of more than MAX_DEVICES devices is written in that many transactions, one after
        the other (each device's messages in one), so that a transaction's patient locks stay
        bounded; a part once committed is not written again."""
        if len(batch) <= MAX_DEVICES:  # no more devices than messages
            return await self._commit(batch, now)
        parts = by_devices(batch, MAX_DEVICES)
        if len(parts) == 1:
            return await self._commit(batch, now)
        total = Outcome()
        for part in parts:
            outcome = await self._commit(part, now)
            total.stored += outcome.stored
            total.rejected += outcome.rejected
        return total

    async def _commit(self, batch: Sequence[Incoming], now: datetime) -> Outcome:
        ids = device_ids(batch)
        delay = 0.1
        one_by_one = False
        while True:
            try:
                conn = await self._connection()
                await self._refresh_devices(conn, ids)
                work = build(batch, self.cache.get, now)
                if one_by_one:
                    return await self._write_each(conn, batch, work, now)
                return await self._write(conn, work)
            except _TRANSIENT as exc:
                log.warning(
                    "database unavailable (%s); %d messages kept unacknowledged, retry in %.1f s",
                    _first_line(exc),
                    len(batch),
                    delay,
                )
                await self._drop()
            except _CONTENT as exc:
                if not one_by_one:
                    log.warning("database refused a batch (%s); writing it message by message", exc)
                    one_by_one = True
                    continue
                log.exception("database refused a rejection; retrying in %.1f s", delay)
            except Exception:
                log.exception("could not store a batch; retrying in %.1f s", delay)
                await self._drop()
            if self.deadline is not None and time.monotonic() + delay > self.deadline:
                raise GiveUp
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _write(self, conn: AsyncConn, work: BatchWork) -> Outcome:
        # Rejections and statuses before the readings: the readings' alert hook locks patients
        # until commit, and nothing else should run inside that. (So no row lock is waited for
        # while holding a patient's: a status row is taken before any.)
        async with conn.transaction():
            if work.rejections:
                async with conn.cursor() as cur, cur.copy(Q.copy_rejections) as copy:
                    copy.set_types(_REJECTION_TYPES)
                    for rejection in work.rejections:
                        await copy.write_row(rejection)
            if work.statuses:
                async with conn.cursor() as cur:
                    await cur.executemany(Q.upsert_status, work.statuses)
            stored = await readings.store(conn, work.rows)
        return Outcome(len(stored), len(work.rejections))

    async def _write_each(
        self, conn: AsyncConn, batch: Sequence[Incoming], work: BatchWork, now: datetime
    ) -> Outcome:
        total = Outcome()
        for index, part in sorted(work.by_message().items()):
            try:
                outcome = await self._write(conn, part)
            except _CONTENT as exc:
                item = batch[index]
                code = f"{exc.sqlstate}: " if exc.sqlstate else ""
                reason = f"database: refused the message ({code}{_first_line(exc)})"
                device_id = split_topic(item.topic)[0]
                log.warning("%s", reason, extra={"device_id": device_id})
                # Without the content type: it may be what the database refused.
                bare = item._replace(content_type=None)
                rejection = whole_rejection(bare, device_id, reason, now)
                outcome = await self._write(conn, BatchWork([], [rejection], [], [], [index], []))
            total.stored += outcome.stored
            total.rejected += outcome.rejected
        return total


def _first_line(exc: Exception) -> str:
    return describe_error(exc)
