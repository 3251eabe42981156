"""`telemed ingest`: run one ingest worker (one stable slot of the shared subscription)."""

from __future__ import annotations

import argparse
import sys

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


def cmd_ingest(args: argparse.Namespace) -> int:
    # Imported here: every `telemed` command registers this one, few run it.
    import asyncio

    from ingest.worker import options_from_env, run
    from telemed.settings import load_settings

    options = options_from_env(slot=args.slot, batch_size=args.batch_size, batch_ms=args.batch_ms)
    summary = asyncio.run(run(load_settings(), options))
    print(summary.line(), flush=True)
    if summary.error:
        print(f"telemed ingest: {summary.error}", file=sys.stderr, flush=True)
        return 2
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
