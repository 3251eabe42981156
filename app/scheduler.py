"""`telemed scheduler`: the periodic jobs, run by one leader among any number of replicas.

Leadership is a session-level PostgreSQL advisory lock held on a dedicated connection. The
replica that gets it starts apscheduler; the others retry every `lock_retry_s`. If the lock
connection is lost the server releases the lock, so the leader stops scheduling at once, lets
the jobs in hand finish (every job is safe to run twice) and competes again after reconnecting.

The same connection LISTENs on the outbox channel: each event wakes webhook delivery, so a
webhook fires within moments of the commit; a poll every `webhook_poll_s` picks up retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from alerts import jobs, rule_coverage
from events import webhooks
from events.outbox import CHANNEL

log = logging.getLogger("telemed.scheduler")

LOCK_KEY = 0x7E1E_5C4E  # pg_advisory_lock key of the scheduler leader, one per database
_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}
WEBHOOKS = "webhooks"
JOBS = (
    "missed_measurements",
    "escalations",
    "daily_rollups",
    "retention",
    "media_sweep",
    "rule_coverage",
)


class Intervals(msgspec.Struct, frozen=True, kw_only=True):
    missed_measurements_s: float = 300.0
    escalations_s: float = 60.0
    daily_rollups_s: float = 900.0
    retention_s: float = 86400.0
    media_sweep_s: float = 86400.0
    rule_coverage_s: float = 300.0
    webhook_poll_s: float = 5.0
    lock_retry_s: float = 5.0
    reconnect_s: float = 2.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Intervals:
        """TELEMED_SCHEDULER_<FIELD> in seconds, e.g. TELEMED_SCHEDULER_ESCALATIONS_S=30."""
        e = os.environ if env is None else env
        values = {}
        for name in cls.__struct_fields__:
            raw = e.get(f"TELEMED_SCHEDULER_{name.upper()}")
            if raw:
                values[name] = float(raw)
        return cls(**values)


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _configure(conn: AsyncConnection) -> None:
    conn.row_factory = dict_row  # type: ignore[assignment]


class Scheduler:
    def __init__(
        self,
        dsn: str,
        *,
        instance: str | None = None,
        intervals: Intervals | None = None,
        clock: Callable[[], datetime] = _utcnow,
        lock_key: int = LOCK_KEY,
        media_dir: Path | None = None,
    ) -> None:
        self.dsn = dsn
        self.media_dir = media_dir  # the wound photos' folder, for the sweep of leftovers
        self.instance = instance or jobs.new_instance_name()
        self.intervals = intervals or Intervals.from_env()
        self.clock = clock
        self.lock_key = lock_key
        self.leading = False
        self.job_runs = 0
        self.leader_s = 0.0
        self._inflight: set[asyncio.Task[Any]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Compete for leadership and run the jobs while leader, until `stop` is set."""
        while not stop.is_set():
            try:
                async with await AsyncConnection.connect(
                    self.dsn,
                    autocommit=True,
                    application_name="telemed-scheduler-lock",
                    **_KEEPALIVE,
                ) as lock_conn:
                    if await self._acquire(lock_conn, stop):
                        await self._lead(lock_conn, stop)
                        with contextlib.suppress(psycopg.Error):
                            await lock_conn.execute(
                                "SELECT pg_advisory_unlock(%s)", (self.lock_key,)
                            )
            except (psycopg.OperationalError, OSError, TimeoutError) as exc:
                log.warning("scheduler %s lost the database: %s", self.instance, exc)
                await _sleep(stop, self.intervals.reconnect_s)

    async def _acquire(self, conn: AsyncConnection, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key,))
            if (await cur.fetchone())[0]:
                log.info("scheduler %s is the leader", self.instance)
                return True
            await _sleep(stop, self.intervals.lock_retry_s)
        return False

    async def _lead(self, lock_conn: AsyncConnection, stop: asyncio.Event) -> None:
        started = time.monotonic()
        pool = AsyncConnectionPool(
            self.dsn,
            min_size=1,
            max_size=4,
            open=False,
            configure=_configure,
            kwargs={"application_name": "telemed-scheduler", **_KEEPALIVE},
        )
        await pool.open(wait=True, timeout=30)
        client = httpx.AsyncClient()
        sched = AsyncIOScheduler(timezone=UTC)
        wake = asyncio.Event()
        wake.set()
        deliverer = asyncio.create_task(self._deliver_forever(pool, client, wake))
        try:
            for name in JOBS:
                sched.add_job(
                    self._job,
                    "interval",
                    args=[name, pool],
                    id=name,
                    name=name,
                    seconds=getattr(self.intervals, f"{name}_s"),
                    next_run_time=self.clock(),
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=None,
                )
            sched.start()
            self.leading = True
            await lock_conn.execute(f"LISTEN {CHANNEL}")
            await self._watch(lock_conn, stop, wake)
        finally:
            self.leading = False
            sched.pause()
            deliverer.cancel()
            await _settle([deliverer, *self._inflight], timeout=30)
            sched.shutdown(wait=False)
            await client.aclose()
            await pool.close()
            self.leader_s += time.monotonic() - started
            log.info("scheduler %s stopped leading", self.instance)

    async def _watch(self, conn: AsyncConnection, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Wake delivery on each outbox event and every poll interval; check the connection
        (and so the lock) every second."""
        polled = time.monotonic()
        while not stop.is_set():
            async for _ in conn.notifies(timeout=1.0, stop_after=1):
                wake.set()
            if time.monotonic() - polled >= self.intervals.webhook_poll_s:
                wake.set()
                polled = time.monotonic()
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)

    async def _job(self, name: str, pool: AsyncConnectionPool) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with pool.connection() as conn:
                await self.run_job(conn, name)
        finally:
            self._inflight.discard(task)  # type: ignore[arg-type]

    async def run_job(self, conn: AsyncConnection, name: str) -> dict[str, Any] | None:
        now = self.clock()
        work = await self._work(conn, name, now)
        self.job_runs += 1
        return await jobs.record_run(conn, name, self.instance, work, now=now)

    async def _work(
        self, conn: AsyncConnection, name: str, now: datetime
    ) -> Callable[[], Awaitable[dict[str, Any]]]:
        if name == "missed_measurements":
            return lambda: jobs.missed_measurements(conn, now=now)
        if name == "escalations":
            return lambda: jobs.escalations(conn, now=now)
        if name == "retention":
            return lambda: jobs.retention(conn, now=now)
        if name == "media_sweep":
            return lambda: jobs.media_sweep(conn, now=now, media_dir=self.media_dir)
        if name == "rule_coverage":
            return lambda: rule_coverage.check_rule_coverage(conn, now=now)
        if name == "daily_rollups":
            last = await jobs.last_success(conn, name)
            # an hour's overlap: a reading stamped before the last run may commit after it
            since = last - timedelta(hours=1) if last else None
            return lambda: jobs.daily_rollups(conn, now=now, received_since=since)
        raise ValueError(f"unknown job {name!r}; known: {', '.join((*JOBS, WEBHOOKS))}")

    async def deliver(self, conn: AsyncConnection, client: httpx.AsyncClient) -> dict[str, Any]:
        now = self.clock()

        async def work() -> dict[str, Any]:
            fanned = await webhooks.fan_out(conn, now=now)
            stats = await webhooks.deliver_due(conn, client, now=now)
            return {"fanned_out": fanned, **msgspec.structs.asdict(stats)}

        def worth_a_row(result: dict[str, Any]) -> bool:
            return bool(result.get("fanned_out") or result.get("attempted"))

        result = await jobs.record_run(
            conn, WEBHOOKS, self.instance, work, now=now, keep=worth_a_row
        )
        return result or {}

    async def _deliver_forever(
        self, pool: AsyncConnectionPool, client: httpx.AsyncClient, wake: asyncio.Event
    ) -> None:
        while True:
            await wake.wait()
            wake.clear()
            try:
                async with pool.connection() as conn:
                    result = await self.deliver(conn, client)
            except (psycopg.Error, OSError) as exc:
                log.warning("webhook delivery: %s", exc)
                await asyncio.sleep(self.intervals.reconnect_s)
                continue
            if result.get("attempted", 0) >= 50:
                wake.set()  # a full batch: there may be more due


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _settle(tasks: list[asyncio.Task[Any]], *, timeout: float) -> None:
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*late, return_exceptions=True)
