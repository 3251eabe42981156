"""The scheduler: of two replicas only the leader runs the jobs, each once; the other takes over
when the leader stops; an outbox event wakes webhook delivery at once; the command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import msgspec
import psycopg
import pytest

from app import wiring
from app.scheduler import Scheduler
from telemed.settings import SchedulerSettings, Settings
from tests import test_alerts_notify_support as support
from tests.test_alerts_notify_support import Receiver, run_async

own_db = support.own_db
own_dsn = support.own_dsn
own_factory = support.own_factory
own_settings = support.own_settings
receiver = support.receiver

# Every job runs when a replica becomes leader, then not again within the test.
SLOW = SchedulerSettings(
    missed_measurements_s=3600,
    escalations_s=3600,
    wound_escalations_s=3600,
    daily_rollups_s=3600,
    retention_s=3600,
    webhook_poll_s=3600,
    lock_retry_s=0.1,
    reconnect_s=0.1,
)


def slow_scheduler(settings: Settings, instance: str) -> Scheduler:
    """A replica as `telemed scheduler` makes it (app.wiring's jobs), on the slow intervals."""
    slow = msgspec.structs.replace(settings, scheduler=SLOW)
    return Scheduler(
        settings.dsn,
        wiring.jobs(slow),
        instance=instance,
        lock_retry_s=SLOW.lock_retry_s,
        reconnect_s=SLOW.reconnect_s,
    )


@pytest.fixture(scope="module")
def jobs(own_settings: Settings) -> list[str]:
    """The jobs a leader runs on its intervals (webhook delivery runs when woken, recorded only
    when it had work)."""
    return slow_scheduler(own_settings, "names").interval_jobs


def runs(db: psycopg.Connection, instances: list[str]) -> dict[tuple[str, str], int]:
    rows = db.execute(
        "SELECT job, instance, count(*) AS n FROM job_runs WHERE instance = ANY(%s) "
        "GROUP BY job, instance",
        (instances,),
    ).fetchall()
    return {(r["job"], r["instance"]): r["n"] for r in rows}


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


def test_each_package_brings_its_jobs(jobs: list[str]) -> None:
    assert sorted(jobs) == sorted([
        "daily_rollups", "retention",  # the core's readings
        "missed_measurements", "escalations", "rule_coverage", "alerts_retention",
        "wound_escalations", "media_sweep",
        "events_retention",
    ])  # fmt: skip


def test_two_schedulers_run_each_job_once_and_the_other_takes_over(
    own_settings: Settings, own_db: psycopg.Connection, jobs: list[str]
) -> None:
    names = ["replica-a", "replica-b"]

    async def go() -> None:
        replicas = [slow_scheduler(own_settings, n) for n in names]
        stops = [asyncio.Event(), asyncio.Event()]
        tasks = [asyncio.create_task(r.run(s)) for r, s in zip(replicas, stops, strict=True)]
        await until(lambda: len(runs(own_db, names)) == len(jobs))
        await asyncio.sleep(1.0)  # time for a second leader to misbehave
        first = runs(own_db, names)
        assert sorted(job for job, _ in first) == sorted(jobs)
        assert set(first.values()) == {1}
        (leader_name,) = {instance for _, instance in first}
        leader = names.index(leader_name)
        assert replicas[leader].leading and not replicas[1 - leader].leading

        stops[leader].set()
        await tasks[leader]
        follower = names[1 - leader]
        await until(lambda: sum(1 for _, i in runs(own_db, names) if i == follower) == len(jobs))
        assert replicas[1 - leader].leading
        await asyncio.sleep(0.5)
        after = runs(own_db, names)
        assert set(after.values()) == {1} and len(after) == 2 * len(jobs)
        stops[1 - leader].set()
        await tasks[1 - leader]

    run_async(go())


def test_an_outbox_event_wakes_webhook_delivery(
    own_settings: Settings, own_db: psycopg.Connection, own_factory, receiver: Receiver
) -> None:
    loopback = msgspec.structs.replace(
        own_settings.webhooks, allowed_hosts=frozenset({"127.0.0.1"})
    )
    settings = msgspec.structs.replace(own_settings, webhooks=loopback)
    org = own_factory.org()
    own_db.execute(
        "INSERT INTO webhooks (organisation_id, url, secret, start_after) "
        "VALUES (%s, %s, %s, (SELECT coalesce(max(id), 0) FROM outbox))",
        (org, receiver.url, "k" * 40),
    )

    async def go() -> None:
        scheduler = slow_scheduler(settings, "wake")
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        await until(lambda: scheduler.leading)
        await until(lambda: ("retention", "wake") in runs(own_db, ["wake"]))
        await asyncio.sleep(0.3)
        assert receiver.received == []
        sent = time.monotonic()
        event = support.enqueue(own_db, "alert.raised", {"alert_id": 1}, [org])
        await until(lambda: len(receiver.received) == 1, timeout=5)
        assert time.monotonic() - sent < 3  # the poll is an hour: only the NOTIFY woke it
        assert receiver.received[0].json["id"] == event
        stop.set()
        await task

    run_async(go())


def _command(dsn: str, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "TELEMED_DSN": dsn,
        **{
            f"TELEMED_SCHEDULER_{name.upper()}": str(v)
            for name, v in msgspec.structs.asdict(SLOW).items()
        },
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "scheduler", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_scheduler_processes_run_each_job_once(
    own_dsn: str, own_db: psycopg.Connection, jobs: list[str]
) -> None:
    names = ["process-1", "process-2"]
    procs = [_command(own_dsn, "--instance", name) for name in names]
    try:
        deadline = time.monotonic() + 30
        while len(runs(own_db, names)) < len(jobs) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        counts = runs(own_db, names)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=30) for p in procs]
    assert sorted(job for job, _ in counts) == sorted(jobs), outputs
    assert set(counts.values()) == {1} and len({i for _, i in counts}) == 1
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert all("stopped:" in out for out, _ in outputs)


def test_once_runs_the_named_jobs_and_reports_them(own_dsn: str) -> None:
    p = _command(own_dsn, "--once", "retention", "webhooks", "--instance", "ops")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    reports = [json.loads(line) for line in out.strip().splitlines()]
    assert [r["job"] for r in reports] == ["retention", "webhooks"]
    assert all(r["ok"] for r in reports)
    assert reports[0]["result"]["keep_years"] == 10


def test_once_refuses_a_job_that_does_not_exist(own_dsn: str) -> None:
    p = _command(own_dsn, "--once", "retention", "no_such_job")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and out == ""
    assert "no job no_such_job" in err and "media_sweep" in err and "webhooks" in err


def test_the_leader_takes_the_lock_again_after_losing_its_connection(
    own_settings: Settings, own_db: psycopg.Connection, jobs: list[str]
) -> None:

    async def go() -> None:
        scheduler = slow_scheduler(own_settings, "phoenix")
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        await until(lambda: len(runs(own_db, ["phoenix"])) == len(jobs))
        killed = own_db.execute(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
            "WHERE application_name = 'telemed-scheduler-lock' AND datname = current_database()"
        ).fetchone()
        assert killed["n"] == 1
        await until(lambda: set(runs(own_db, ["phoenix"]).values()) == {2})
        assert scheduler.leading
        stop.set()
        await task

    run_async(go())
