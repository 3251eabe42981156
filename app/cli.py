"""The `telemed` command line.

The core's commands and the scheduler are here, the domains' added by their packages'
`register` (app.wiring.commands). Every command runs with the reading hooks
registered (app.wiring.register_reading_hooks), so whatever stores readings runs the rules."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from typing import TYPE_CHECKING

from app import wiring
from telemed.logs import configure_logging
from telemed.settings import Settings, load_settings

if TYPE_CHECKING:
    from app.scheduler import Scheduler


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from telemed.db import connect_sync
    from telemed.migrate import apply_migrations

    with connect_sync(settings.owner_dsn) as conn:
        applied = apply_migrations(conn, settings.migrations_dir, cpr_keys=settings.cpr_keys)
    print(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ""))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.server import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    """Bootstrap an admin (or any user) without the API, e.g. on a new installation."""
    from telemed.db import connect_sync
    from telemed.security import check_password_strength, hash_password

    password = args.password or getpass.getpass("password: ")
    problem = check_password_strength(password)
    if problem:
        print(f"password {problem}", file=sys.stderr)
        return 2
    with connect_sync(settings.dsn) as conn:
        org = conn.execute(
            "SELECT id FROM organisations WHERE name = %s", (args.organisation,)
        ).fetchone()
        if org is None:
            org = conn.execute(
                "INSERT INTO organisations (name, kind) VALUES (%s, %s) RETURNING id",
                (args.organisation, args.organisation_kind),
            ).fetchone()
        conn.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO UPDATE "
            "SET password_hash = EXCLUDED.password_hash, active = true",
            (
                args.username,
                args.full_name or args.username,
                args.role,
                org["id"],
                hash_password(password),
            ),
        )
        conn.commit()
    print(f"user {args.username} ({args.role}) ready")
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from app.up import run

    return run(args, set(args.commands), settings)


def cmd_seed_demo(args: argparse.Namespace, settings: Settings) -> int:
    from app import demo
    from telemed.db import connect_sync

    with connect_sync(settings.dsn) as conn:
        demo.seed(conn)
    print(demo.sign_in_text(f"http://{settings.http_host}:{settings.http_port}"))
    return 0


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Check the audit log's hash chain; exit 1 naming the first row that breaks it."""
    from telemed.audit import parse_anchor, verify_chain
    from telemed.db import connect_sync

    anchor = parse_anchor(args.anchor) if args.anchor else None
    with connect_sync(settings.dsn) as conn:
        report = verify_chain(conn, anchor=anchor)
    head = f"head {report.head_seq}:{report.head_hash}"
    if report.broken is None:
        print(f"audit log: chain intact, {report.rows} rows, {head}")
        return 0
    b = report.broken
    where = f"row id {b.audit_id}" if b.audit_id is not None else "the end of the log"
    position = f" (chain position {b.chain_seq})" if b.chain_seq is not None else ""
    print(f"audit log: chain broken at {where}{position}: {b.reason}; {head}", file=sys.stderr)
    return 1


def cmd_cpr_rotate(args: argparse.Namespace, settings: Settings) -> int:
    """Re-encrypt every CPR number with the current key and rehash it with the look-up key."""
    from telemed.cpr import rotate
    from telemed.db import connect_sync

    with connect_sync(settings.owner_dsn) as conn:
        done = rotate(conn, settings.cpr_keys)
    print(f"cpr: {done['patients']} numbers now under key {settings.cpr_keys.current!r}")
    return 0


def register_scheduler(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "scheduler",
        help="run the periodic jobs: missed measurements, escalation, webhooks, retention, "
        "rollups, the sweep of leftover photo files, the rule coverage check",
        description="Run the periodic jobs (each package's, app.wiring.jobs). Any number of "
        "replicas may run; a PostgreSQL advisory lock makes one of them the leader, which alone "
        "runs the jobs.",
    )
    p.add_argument(
        "--once",
        nargs="+",
        metavar="JOB",
        help="run these jobs once now, without the leader lock, and exit (an unknown name "
        "is refused with the list of jobs)",
    )
    p.add_argument("--instance", help="this replica's name in job_runs (default: host-pid-id)")
    p.set_defaults(func=cmd_scheduler)


def cmd_scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from app.scheduler import Scheduler

    every = settings.scheduler
    scheduler = Scheduler(
        settings.dsn,
        wiring.jobs(settings),
        instance=args.instance,
        lock_retry_s=every.lock_retry_s,
        reconnect_s=every.reconnect_s,
    )
    if args.once:
        unknown = [name for name in args.once if name not in scheduler.jobs]
        if unknown:
            print(
                f"telemed scheduler: no job {', '.join(unknown)}; "
                f"the jobs are {', '.join(scheduler.jobs)}",
                file=sys.stderr,
            )
            return 2
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
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row

    failed = 0
    try:
        async with await AsyncConnection.connect(scheduler.dsn, row_factory=dict_row) as conn:
            for name in names:
                result = await scheduler.run_job(conn, name)
                failed += result is None
                print(json.dumps({"job": name, "ok": result is not None, "result": result}))
    finally:
        await scheduler.close()
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemed", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply pending database migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("create-user", help="create or reset a user directly in the database")
    p.add_argument("username")
    p.add_argument("--role", default="admin", choices=["admin", "nurse", "specialist"])
    p.add_argument("--full-name")
    p.add_argument("--organisation", default="telemed administration")
    p.add_argument("--organisation-kind", default="hospital_department")
    p.add_argument("--password", help="read from the terminal when omitted")
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("up", help="run API, ingest, scheduler (and the demo) under one supervisor")
    p.add_argument(
        "--no-demo", dest="demo", action="store_false", help="no demo data and no simulated devices"
    )
    p.add_argument("--workers", type=int, default=2, help="ingest workers (stable slots)")
    p.add_argument(
        "--retire-stranded",
        action="store_true",
        help="retire ingest slots that ran before and are beyond --workers (their sessions hold "
        "readings) once the others run, instead of refusing to start",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("audit", help="the audit log")
    audit_sub = p.add_subparsers(dest="audit_command", required=True)
    v = audit_sub.add_parser("verify", help="check the hash chain; name the first broken row")
    v.add_argument("--anchor", help="SEQ:HASH, a head printed earlier and kept elsewhere")
    v.set_defaults(func=cmd_audit_verify)

    p = sub.add_parser("cpr", help="stored CPR numbers")
    cpr_sub = p.add_subparsers(dest="cpr_command", required=True)
    r = cpr_sub.add_parser("rotate", help="re-encrypt and rehash with the current keys (owner)")
    r.set_defaults(func=cmd_cpr_rotate)

    p = sub.add_parser("seed-demo", help="create the demo organisations, users and patients")
    p.set_defaults(func=cmd_seed_demo)

    register_scheduler(sub)
    for register in wiring.commands():
        register(sub)
    parser.set_defaults(commands=sorted(sub.choices))
    return parser


def main(argv: list[str] | None = None) -> int:
    """The process's entry point: the settings are read here, once, and passed down."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        settings = load_settings()
    except ValueError as exc:  # a setting that does not parse, or a limit that switches off
        print(f"telemed: refusing to start: {exc}", file=sys.stderr, flush=True)
        return 2
    wiring.register_reading_hooks()
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
