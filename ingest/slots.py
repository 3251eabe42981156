"""Ingest slots: a lock per MQTT client id, so that no two processes ever run one slot, and a
registry of the slots that ran, so that a slot nobody runs any more is noticed (its persistent
session keeps receiving its share of the readings until it is retired).

The lock is a PostgreSQL session advisory lock on the client id, taken on a connection of its
own before the worker connects to the broker, and held while it runs. PostgreSQL releases it
when that connection ends, so a killed worker frees its slot at once (a dead host: when the
server's TCP keepalive gives up on the connection). While the database is away the worker
keeps running; once it is back the lock is taken again, and if another process took the slot
meanwhile, this one stops (exit status 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from datetime import datetime
from pathlib import Path

import msgspec
import psycopg

from telemed.db import KEEPALIVE, AsyncConn, Queries, connect_async

log = logging.getLogger("ingest.slots")
Q = Queries("slots", folder=Path(__file__).parent / "sql")
LOCKS = Queries("named_locks")

LOCK_PREFIX = "telemed ingest slot "
EXIT_SLOT_TAKEN = 3  # exit status of a worker (or retire-slot) refused a slot that is taken
DATABASE_AWAY = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


class SlotTaken(Exception):
    """Another process holds the slot's lock; the text says who."""


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    client_prefix: str
    share_group: str
    slot: int

    @property
    def lock_name(self) -> str:
        return LOCK_PREFIX + self.client_id


class SlotRow(msgspec.Struct, kw_only=True):
    client_id: str
    client_prefix: str
    share_group: str
    slot: int
    host: str
    pid: int
    started_at: datetime
    subscribed_at: datetime | None
    stopped_at: datetime | None
    retired_at: datetime | None
    retired_messages: int | None
    running: bool

    @property
    def state(self) -> str:
        if self.running:
            return "running"
        return "retired" if self.retired_at is not None else "stopped"

    @property
    def member(self) -> bool:
        """Running, and subscribed since it started: a member of its share group now (its
        subscription lives in its persistent session even while it reconnects)."""
        return self.running and self.retired_at is None and self.subscribed_at is not None


async def connect(dsn: str, application_name: str) -> AsyncConn:
    # Keepalives, so that a connection to a vanished server is noticed within a minute.
    return await connect_async(
        dsn, autocommit=True, application_name=application_name[:63], connect_timeout=5,
        **KEEPALIVE,
    )  # fmt: skip


async def describe_holder(conn: AsyncConn, slot: Slot) -> str:
    cur = await conn.execute(LOCKS.holder, {"name": slot.lock_name})
    row = await cur.fetchone()
    if row is None:
        return f"slot {slot.slot} ({slot.client_id}) is free"
    return (
        f"slot {slot.slot} ({slot.client_id}) is already running: held by "
        f"{row['application_name']!r}, database session "
        f"{row['backend_pid']} from {row['client_addr'] or 'local socket'} since "
        f"{row['backend_start']:%Y-%m-%d %H:%M:%S %Z}"
    )


async def list_slots(conn: AsyncConn, share_group: str | None = None) -> list[SlotRow]:
    cur = await conn.execute(Q.list_slots, {"lock_prefix": LOCK_PREFIX, "share_group": share_group})
    return msgspec.convert(await cur.fetchall(), list[SlotRow])


async def live_members(conn: AsyncConn, slot: Slot) -> list[SlotRow]:
    """The other slots of `slot`'s share group that run and are subscribed right now."""
    rows = await list_slots(conn, slot.share_group)
    return [r for r in rows if r.member and r.client_id != slot.client_id]


class SlotLock:
    """One slot's lock, on a connection of its own, held while this process runs the slot."""

    def __init__(self, dsn: str, slot: Slot, *, check_every_s: float = 5.0) -> None:
        self.dsn = dsn
        self.slot = slot
        self.check_every_s = check_every_s
        self._conn: AsyncConn | None = None
        self.pid = os.getpid()
        self.host = socket.gethostname()

    def _params(self) -> dict[str, object]:
        s = self.slot
        return {"client_id": s.client_id, "client_prefix": s.client_prefix,
                "share_group": s.share_group, "slot": s.slot, "host": self.host,
                "pid": self.pid}  # fmt: skip

    async def take(self, *, register: bool, stop: asyncio.Event | None = None) -> None:
        """Take the lock, waiting for the database while it is away (until `stop`), never for
        the lock: raises SlotTaken at once when another process holds it."""
        delay = 0.5
        while True:
            try:
                await self._take(register)
                return
            except DATABASE_AWAY as exc:
                await self._drop()
                if stop is not None and stop.is_set():
                    raise
                log.warning("database unavailable (%s); waiting to take slot %d's lock",
                            str(exc).strip().splitlines()[0][:200] if str(exc) else exc,
                            self.slot.slot)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    @property
    def conn(self) -> AsyncConn | None:
        """The connection holding the lock (None until taken)."""
        return self._conn

    @property
    def application_name(self) -> str:
        return f"{self.slot.client_id} lock pid {self.pid} on {self.host}"[:63]

    async def _take(self, register: bool) -> AsyncConn:
        """Connect and take the slot's lock; the connection holding it."""
        conn = self._conn = await connect(self.dsn, self.application_name)
        taken = await self._try_lock(conn)
        if not taken and await self._end_own_stale_session(conn):
            taken = await self._try_lock(conn)
        if not taken:
            text = await describe_holder(conn, self.slot)
            await self._drop()
            raise SlotTaken(text)
        if register:
            await conn.execute(Q.register_start, self._params())
        return conn

    async def _try_lock(self, conn: AsyncConn) -> bool:
        cur = await conn.execute(LOCKS.try_lock, {"name": self.slot.lock_name})
        row = await cur.fetchone()
        return bool(row and row["taken"])

    async def _end_own_stale_session(self, conn: AsyncConn) -> bool:
        """After a lost connection, the server may not have noticed yet that our old session
        is gone (it still holds the lock): end it, as it is ours."""
        cur = await conn.execute(LOCKS.holder, {"name": self.slot.lock_name})
        row = await cur.fetchone()
        if row is None or row["application_name"] != self.application_name:
            return False
        log.warning("ending this process's stale database session %d holding slot %d's lock",
                    row["backend_pid"], self.slot.slot)  # fmt: skip
        await conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row["backend_pid"],))
        return True

    async def keep(self, stop: asyncio.Event, subscribed: asyncio.Event) -> None:
        """Until `stop`: record each subscription the broker confirms, and check the lock's
        connection; after losing it, take the lock again (SlotTaken if another process has it
        by then)."""
        pending = False
        delay = 0.5
        while not stop.is_set():
            await _first(stop, subscribed, self.check_every_s if self._conn else delay)
            if subscribed.is_set():
                subscribed.clear()
                pending = True
            if stop.is_set():
                break
            try:
                conn = self._conn
                if conn is None or conn.closed:
                    conn = await self._take(register=False)
                    log.info("slot %d's lock taken again", self.slot.slot)
                if pending:
                    await conn.execute(Q.mark_subscribed, self._params())
                    pending = False
                else:
                    await conn.execute("SELECT 1")
                delay = 0.5
            except DATABASE_AWAY as exc:
                if self._conn is not None:
                    log.warning("lost the database connection holding slot %d's lock (%s)",
                                self.slot.slot, type(exc).__name__)  # fmt: skip
                await self._drop()
                delay = min(delay * 2, 5.0)

    async def mark_retired(self, messages: int) -> None:
        assert self._conn is not None
        await self._conn.execute(Q.mark_retired, {**self._params(), "messages": messages})

    async def release(self, *, stopped: bool) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(*DATABASE_AWAY):
            if stopped:
                await self._conn.execute(Q.mark_stopped, self._params())
            await self._conn.execute(LOCKS.unlock, {"name": self.slot.lock_name})
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


async def _first(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    """Wait until either event is set, or `timeout` seconds."""
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
