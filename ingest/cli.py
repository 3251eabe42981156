"""`telemed ingest`: run one ingest worker (one stable slot of the shared subscription)."""

from __future__ import annotations

import argparse
import sys

from telemed.settings import Settings

MAX_RECEIVE = 65535  # MQTT's limit for Receive Maximum


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _batch_size(text: str) -> int:
    value = _positive(text)
    if value > MAX_RECEIVE // 2:
        raise argparse.ArgumentTypeError(f"at most {MAX_RECEIVE // 2}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _refuse_without_hooks(command: str) -> bool:
    """A worker stores readings: with no reading hook registered it would store them with no
    alert evaluation, so it refuses to start (telemed.readings.require_hooks)."""
    from telemed.readings import NoReadingHook, require_hooks

    try:
        require_hooks()
    except NoReadingHook as exc:
        print(f"{command}: refusing to start: {exc}", file=sys.stderr, flush=True)
        return True
    return False


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: every `telemed` command registers this one, few run it.
    import asyncio

    from ingest.worker import options_from_settings, run

    if _refuse_without_hooks("telemed ingest"):
        return 2

    options = options_from_settings(
        settings.ingest, slot=args.slot, batch_size=args.batch_size, batch_ms=args.batch_ms
    )
    summary = asyncio.run(run(settings, options))
    print(summary.line(), flush=True)
    if summary.error:
        print(f"telemed ingest: {summary.error}", file=sys.stderr, flush=True)
        return summary.exit_code or 2
    return 0


def cmd_retire_slot(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from ingest.retire import retire
    from ingest.worker import options_from_settings

    if _refuse_without_hooks("telemed ingest retire-slot"):
        return 2

    options = options_from_settings(
        settings.ingest, slot=args.retire_slot, batch_size=args.batch_size, batch_ms=50
    )
    summary = asyncio.run(retire(settings, options, wait_s=args.wait))
    if summary.error:
        print(f"telemed ingest retire-slot: {summary.line()}", file=sys.stderr, flush=True)
        return summary.exit_code or 2
    print(summary.line(), flush=True)
    return 0


def cmd_slots(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    import msgspec

    from ingest.slots import connect, list_slots

    group = None if args.all_groups else settings.ingest.group

    async def fetch() -> list:
        conn = await connect(settings.dsn, "telemed ingest slots")
        try:
            return await list_slots(conn, group)
        finally:
            await conn.close()

    rows = asyncio.run(fetch())
    if args.json:
        out = [{**msgspec.to_builtins(r), "state": r.state} for r in rows]
        print(msgspec.json.encode(out).decode(), flush=True)
        return 0
    print(f"{'slot':>4}  {'client id':<28} {'group':<10} {'state':<8} {'host':<16} pid  since")
    for r in rows:
        since = r.retired_at or (r.started_at if r.running else r.stopped_at or r.started_at)
        print(f"{r.slot:>4}  {r.client_id:<28} {r.share_group:<10} {r.state:<8} "
              f"{r.host:<16} {r.pid}  {since:%Y-%m-%d %H:%M:%S}")  # fmt: skip
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ingest",
        help="consume device readings from MQTT into the database",
        description="One ingest worker. Run slots 0..N-1 under a supervisor that restarts a "
        "slot that exits: a slot's MQTT session keeps its share of the stream while it is down.",
    )
    p.add_argument(
        "--slot",
        type=_non_negative,
        default=0,
        help="worker number; the MQTT client id is telemed-ingest-<slot> (default 0)",
    )
    p.add_argument(
        "--batch-size",
        type=_batch_size,
        default=5000,
        help="most messages per transaction (default 5000)",
    )
    p.add_argument(
        "--batch-ms",
        type=_non_negative,
        default=50,
        help="longest wait for a batch to fill, in milliseconds (default 50)",
    )
    p.set_defaults(func=cmd_ingest)
    actions = p.add_subparsers(dest="ingest_action", metavar="{retire-slot,slots}")
    r = actions.add_parser(
        "retire-slot",
        help="hand over what waits in a slot's MQTT session, then end the session",
        description="Shrink the group for good: with the slot's worker stopped and another "
        "worker of the group running, store what waits in the slot's persistent session (the "
        "normal write path, exactly once) and end the session, so that the broker assigns the "
        "slot nothing more. Exit status 3 when the slot is running or no other worker is.",
    )
    r.add_argument("retire_slot", metavar="N", type=_non_negative, help="the slot to retire")
    r.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for another worker of the group to run and subscribe (default 0)",
    )
    r.set_defaults(func=cmd_retire_slot)
    s = actions.add_parser(
        "slots", help="list the ingest slots that ran: running, stopped or retired"
    )
    s.add_argument("--json", action="store_true", help="one JSON array")
    s.add_argument("--all-groups", action="store_true", help="not only TELEMED_INGEST_GROUP's")
    s.set_defaults(func=cmd_slots)
