"""`telemed scheduler`: the periodic jobs, run by one leader among any number of replicas.

The jobs are the packages' own (telemed.jobs.Job, listed by app.wiring.jobs). Leadership is a
session-level PostgreSQL advisory lock held on a dedicated connection. The replica that gets it
starts apscheduler; the others retry every `lock_retry_s`. If the lock connection is lost the
server releases the lock, so the leader stops scheduling at once, lets the jobs in hand finish
(every job is safe to run twice) and competes again after reconnecting.

The same connection LISTENs on the channels of the jobs that are woken (webhook delivery, on the
outbox's): each NOTIFY runs such a job at once, so a webhook fires within moments of the commit;
its interval is then a poll that picks up retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]  # apscheduler 3 ships no type hints
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from telemed.db import KEEPALIVE, AsyncConn, Pool, connect_async, create_pool, one_row
from telemed.jobs import Job

log = logging.getLogger("telemed.scheduler")

LOCK_KEY = 0x7E1E_5C4E  # pg_advisory_lock key of the scheduler leader, one per database


def _utcnow() -> datetime:
    return datetime.now(UTC)


class UnknownJob(ValueError):
    pass


class Scheduler:
    def __init__(
        self,
        dsn: str,
        jobs: Sequence[Job],
        *,
        instance: str | None = None,
        lock_retry_s: float = 5.0,
        reconnect_s: float = 2.0,
        clock: Callable[[], datetime] = _utcnow,
        lock_key: int = LOCK_KEY,
    ) -> None:
        self.dsn = dsn
        self.jobs = {job.name: job for job in jobs}
        if len(self.jobs) != len(jobs):
            raise ValueError("two jobs of one name")
        self.instance = instance or new_instance_name()
        self.lock_retry_s = lock_retry_s
        self.reconnect_s = reconnect_s
        self.clock = clock
        self.lock_key = lock_key
        self.leading = False
        self.job_runs = 0
        self.leader_s = 0.0
        self._inflight: set[asyncio.Task[Any]] = set()

    @property
    def interval_jobs(self) -> list[str]:
        return [name for name, job in self.jobs.items() if job.wake_on is None]

    async def run(self, stop: asyncio.Event) -> None:
        """Compete for leadership and run the jobs while leader, until `stop` is set."""
        while not stop.is_set():
            try:
                async with await connect_async(
                    self.dsn,
                    autocommit=True,
                    application_name="telemed-scheduler-lock",
                    **KEEPALIVE,
                ) as lock_conn:
                    if await self._acquire(lock_conn, stop):
                        await self._lead(lock_conn, stop)
                        with contextlib.suppress(psycopg.Error):
                            await lock_conn.execute(
                                "SELECT pg_advisory_unlock(%s)", (self.lock_key,)
                            )
            except (psycopg.OperationalError, OSError, TimeoutError) as exc:
                log.warning("scheduler %s lost the database: %s", self.instance, exc)
                await _sleep(stop, self.reconnect_s)

    async def _acquire(self, conn: AsyncConn, stop: asyncio.Event) -> bool:
        while not stop.is_set():
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS taken", (self.lock_key,))
            if one_row(await cur.fetchone(), "pg_try_advisory_lock")["taken"]:
                log.info("scheduler %s is the leader", self.instance)
                return True
            await _sleep(stop, self.lock_retry_s)
        return False

    async def _lead(self, lock_conn: AsyncConn, stop: asyncio.Event) -> None:
        started = time.monotonic()
        pool = create_pool(
            self.dsn, min_size=1, max_size=4, application_name="telemed-scheduler", **KEEPALIVE
        )
        await pool.open(wait=True, timeout=30)
        sched = AsyncIOScheduler(timezone=UTC)
        woken = {name: asyncio.Event() for name, job in self.jobs.items() if job.wake_on}
        for wake in woken.values():
            wake.set()
        runners = [asyncio.create_task(self._woken(pool, n, w)) for n, w in woken.items()]
        try:
            for name in self.interval_jobs:
                sched.add_job(
                    self._job,
                    "interval",
                    args=[name, pool],
                    id=name,
                    name=name,
                    seconds=self.jobs[name].every_s,
                    next_run_time=self.clock(),
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=None,
                )
            sched.start()
            self.leading = True
            for channel in sorted({c for job in self.jobs.values() if (c := job.wake_on)}):
                await lock_conn.execute(f"LISTEN {channel}")
            await self._watch(lock_conn, stop, woken)
        finally:
            self.leading = False
            sched.pause()
            for runner in runners:
                runner.cancel()
            await _settle([*runners, *self._inflight], timeout=30)
            sched.shutdown(wait=False)
            await self.close()
            await pool.close()
            self.leader_s += time.monotonic() - started
            log.info("scheduler %s stopped leading", self.instance)

    async def _watch(
        self, conn: AsyncConn, stop: asyncio.Event, woken: dict[str, asyncio.Event]
    ) -> None:
        """Wake each woken job on a NOTIFY of its channel and every interval; check the
        connection (and so the lock) every second."""
        polled = dict.fromkeys(woken, time.monotonic())
        while not stop.is_set():
            async for n in conn.notifies(timeout=1.0, stop_after=1):
                for name, wake in woken.items():
                    if self.jobs[name].wake_on == n.channel:
                        wake.set()
            for name, wake in woken.items():
                if time.monotonic() - polled[name] >= self.jobs[name].every_s:
                    wake.set()
                    polled[name] = time.monotonic()
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)

    async def _job(self, name: str, pool: Pool) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with pool.connection() as conn:
                await self.run_job(conn, name)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _woken(self, pool: Pool, name: str, wake: asyncio.Event) -> None:
        again = self.jobs[name].again
        while True:
            await wake.wait()
            wake.clear()
            try:
                async with pool.connection() as conn:
                    result = await self.run_job(conn, name)
            except (psycopg.Error, OSError) as exc:
                log.warning("%s: %s", name, exc)
                await asyncio.sleep(self.reconnect_s)
                continue
            if again is not None and again(result or {}):
                wake.set()  # a full batch: there may be more due

    async def run_job(self, conn: AsyncConn, name: str) -> dict[str, Any] | None:
        """Run one job now and record the run; None when it failed (recorded and logged)."""
        job = self.jobs.get(name)
        if job is None:
            raise UnknownJob(f"unknown job {name!r}; known: {', '.join(self.jobs)}")
        now = self.clock()
        if job.wake_on is None:
            self.job_runs += 1
        return await record_run(
            conn, name, self.instance, lambda: job.run(conn, now), now=now, keep=job.worth_a_row
        )

    async def close(self) -> None:
        """Let the jobs release what they hold (an HTTP client)."""
        for job in self.jobs.values():
            if job.close is not None:
                await job.close()


async def record_run(
    conn: AsyncConn,
    job: str,
    instance: str,
    work: Callable[[], Awaitable[dict[str, Any]]],
    *,
    now: datetime,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any] | None:
    """Run `work` and record it in `job_runs` (unless `keep` says the result is not worth a
    row); a failure is recorded and logged, never raised, so the schedule goes on."""
    try:
        result, error = await work(), None
    except Exception as exc:
        log.exception("job %s failed", job)
        if conn.info.transaction_status != TransactionStatus.IDLE:
            await conn.rollback()
        result, error = None, f"{type(exc).__name__}: {exc}"
    if error is None and keep is not None and not keep(result or {}):
        return result
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO job_runs (job, instance, started_at, finished_at, ok, result, error) "
            "VALUES (%s, %s, %s, clock_timestamp(), %s, %s, %s)",
            (job, instance, now, error is None, Jsonb(result) if result else None, error),
        )
    return result


def new_instance_name() -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


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
