"""Commands of the alerts package: `telemed scheduler` and `telemed rules coverage`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import TYPE_CHECKING

from telemed.settings import load_settings

if TYPE_CHECKING:
    from alerts.scheduler import Scheduler


# The scheduler's job names (alerts.scheduler.JOBS and WEBHOOKS), here so that building the
# command line imports nothing heavy.
JOB_NAMES = (
    "missed_measurements",
    "escalations",
    "daily_rollups",
    "retention",
    "media_sweep",
    "rule_coverage",
    "webhooks",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scheduler",
        help="run the periodic jobs: missed measurements, escalation, webhooks, retention, "
        "rollups, the sweep of leftover photo files, the rule coverage check",
        description="Run the periodic jobs. Any number of replicas may run; a PostgreSQL "
        "advisory lock makes one of them the leader, which alone runs the jobs.",
    )
    p.add_argument(
        "--once",
        nargs="+",
        choices=JOB_NAMES,
        metavar="JOB",
        help=f"run these jobs once now, without the leader lock, and exit ({', '.join(JOB_NAMES)})",
    )
    p.add_argument("--instance", help="this replica's name in job_runs (default: host-pid-id)")
    p.set_defaults(func=cmd_scheduler)

    rules = subparsers.add_parser("rules", help="the alert rules of the programs")
    commands = rules.add_subparsers(dest="rules_command", required=True)
    p = commands.add_parser(
        "coverage",
        help="list every program and stratum the catalogue accepts with the rules it gets; "
        "exit 1 if any has none (needs no database)",
    )
    p.set_defaults(func=cmd_rules_coverage)


def cmd_rules_coverage(args: argparse.Namespace) -> int:
    """One line per program and stratum: `program stratum: rule, rule, ...`, or `NO RULES`
    with the reason; the exit status is 1 when any accepted stratum is not covered."""
    from alerts.rule_coverage import coverage

    lines = coverage()
    for line in lines:
        if line.problem is None:
            print(f"{line.program} {line.stratum}: {', '.join(line.rules)}")
        else:
            print(f"{line.program} {line.stratum}: NO RULES: {line.problem}")
    uncovered = sum(line.problem is not None for line in lines)
    if uncovered:
        print(f"{uncovered} of {len(lines)} accepted strata have no rules", file=sys.stderr)
        return 1
    print(f"all {len(lines)} accepted strata have rules", file=sys.stderr)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from alerts.scheduler import Scheduler

    settings = load_settings()
    scheduler = Scheduler(settings.dsn, instance=args.instance, media_dir=settings.media_dir)
    if args.once:
        return asyncio.run(_once(scheduler, args.once))
    return asyncio.run(_forever(scheduler))


async def _forever(scheduler: Scheduler) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await scheduler.run(stop)
    print(
        f"scheduler {scheduler.instance} stopped: {scheduler.job_runs} job runs, "
        f"leader for {scheduler.leader_s:.0f} s",
        flush=True,
    )
    return 0


async def _once(scheduler: Scheduler, names: list[str]) -> int:
    import httpx
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    from alerts.scheduler import WEBHOOKS

    failed = 0
    async with (
        await AsyncConnection.connect(scheduler.dsn, row_factory=dict_row) as conn,
        httpx.AsyncClient() as client,
    ):
        for name in names:
            if name == WEBHOOKS:
                result = await scheduler.deliver(conn, client)
            else:
                result = await scheduler.run_job(conn, name)
            failed += result is None
            print(json.dumps({"job": name, "ok": result is not None, "result": result}))
    return 1 if failed else 0
