"""`telemed up`: run every process of the system under one supervisor, and the demo.

Each part is its own `telemed` subcommand in a child process (API, ingest workers with stable
client ids, scheduler, device simulator). Before starting anything the supervisor refuses, with
exit status 3 and a message saying what to do, when another `telemed up` runs against the same
database, when the API's port is taken, when an ingest slot it would run is already running
elsewhere, and when a slot that ran before is no longer among those it runs (its MQTT session
keeps collecting that slot's share of the readings): `--retire-stranded` retires such slots once
the others run. Children die with the supervisor; one that exits is restarted with backoff and
raises an alarm when it keeps crashing (app.supervise). Ctrl-C or SIGTERM stops them all.
Parts that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import socket
import subprocess
import sys
import time

from app.supervise import Alarms, Backoff, Child, Refused, Supervisor, SupervisorLock, run_once
from telemed.settings import Settings

log = logging.getLogger("telemed.up")
EXIT_REFUSED = 3
EXE = [sys.executable, "-m", "app.cli"]


def plan(args: argparse.Namespace, commands: set[str]) -> list[Child]:
    parts = [Child("api", [*EXE, "serve"])]
    if "ingest" in commands:
        parts += [Child(f"ingest-{i}", [*EXE, "ingest", "--slot", str(i)])
                  for i in range(args.workers)]  # fmt: skip
    if "scheduler" in commands:
        parts.append(Child("scheduler", [*EXE, "scheduler"]))
    if args.demo and "simulate" in commands:
        parts.append(Child("simulator", [*EXE, "simulate", "--demo"]))
    return parts


def check_port(settings: Settings) -> None:
    """Refuse now rather than let the API crash on start: is its address free?"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((settings.http_host, settings.http_port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise Refused(
                f"the API's address {settings.http_host}:{settings.http_port} is in use by "
                "another process (another `telemed serve`, or another program); stop it or set "
                "TELEMED_HTTP_PORT"
            ) from None


def check_slots(workers: int, retire_stranded: bool, prefix: str) -> list[int]:
    """Refuse slots that run elsewhere and slots left behind; return those to retire."""
    done = subprocess.run([*EXE, "ingest", "slots", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if "rror" in ln] or ["no message"]
        last = lines[-1].strip()
        raise Refused(f"could not list the ingest slots (are the migrations applied?): {last}")
    out = done.stdout
    rows = [r for r in json.loads(out) if r["client_prefix"] == prefix]
    running = [r for r in rows if r["state"] == "running" and r["slot"] < workers]
    if running:
        who = "; ".join(f"slot {r['slot']} ({r['client_id']}) by pid {r['pid']} on {r['host']}"
                        for r in running)  # fmt: skip
        raise Refused(f"ingest slots already running: {who}. Stop them first: a slot runs in "
                      "one process only")  # fmt: skip
    stranded = sorted(r["slot"] for r in rows if r["state"] == "stopped" and r["slot"] >= workers)
    if stranded and not retire_stranded:
        listed = ", ".join(str(n) for n in stranded)
        raise Refused(
            f"ingest slot(s) {listed} ran before but are not among the {workers} this would "
            "run; their MQTT sessions still receive their share of the readings, which would "
            "wait there unseen. Either run `telemed up --workers "
            f"{max(stranded) + 1}`, or retire them: `telemed up --workers {workers} "
            "--retire-stranded` (or `telemed ingest retire-slot N` for each, with the others "
            "running)"
        )
    return stranded


def prepare(args: argparse.Namespace, commands: set[str], settings: Settings) -> list[int]:
    check_port(settings)
    stranded = (
        check_slots(args.workers, args.retire_stranded, settings.ingest.client_prefix)
        if "ingest" in commands
        else []
    )
    if args.demo:
        from app import demo
        from telemed.db import connect_sync

        with connect_sync(settings.dsn) as conn:
            demo.seed(conn)
        if "devices" in commands:
            run_once([*EXE, "devices", "demo"])
    if "devices" in commands:
        # The broker's password and ACL files come from the database (the ingest account too).
        run_once([*EXE, "devices", "sync"])
    return stranded


def _wait_ready(base: str, seconds: float) -> bool:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _demo_extras(settings: Settings) -> None:
    from app import demo

    base = f"http://{settings.http_host}:{settings.http_port}"
    if _wait_ready(base, 30):
        try:
            demo.submit_demo_wound_case(base)
        except Exception as exc:  # the demo goes on without its wound case
            log.warning("could not send the demo wound case: %s", exc)
    print("\n" + demo.sign_in_text(base) + "\n", flush=True)


def run(args: argparse.Namespace, commands: set[str], settings: Settings) -> int:
    lock = SupervisorLock(settings.dsn)
    try:
        lock.take()
        stranded = prepare(args, commands, settings)
    except Refused as exc:
        lock.release()
        print(f"telemed up: {exc}", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    supervisor = Supervisor(
        plan(args, commands), Backoff.from_settings(settings.up), Alarms(settings.dsn)
    )
    supervisor.start_all()
    for slot in stranded:
        # Once the remaining workers subscribed (retire-slot waits for them).
        cmd = [*EXE, "ingest", "retire-slot", str(slot), "--wait", "120"]
        supervisor.add(Child(f"retire-slot-{slot}", cmd, restart=False))
    if args.demo:
        _demo_extras(settings)
    code = 0
    try:
        while not stopping:
            time.sleep(0.2)
            supervisor.tick()
            lock.check()
    except Refused as exc:
        log.error("%s; stopping everything", exc)
        code = EXIT_REFUSED
    supervisor.stop_all()
    lock.release()
    print("telemed up: stopped", flush=True)
    return code
