"""`telemed up`: run every process of the system under one supervisor, and the demo.

Each part is its own `telemed` subcommand in a child process (API, ingest workers with stable
client ids, scheduler, device simulator); a child that exits is restarted after a pause, and
Ctrl-C (or SIGTERM) stops them all. Parts that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from telemed.settings import load_settings


def _available(parser_commands: set[str], name: str) -> bool:
    return name in parser_commands


def plan(args: argparse.Namespace, commands: set[str]) -> list[tuple[str, list[str]]]:
    exe = [sys.executable, "-m", "telemed.cli"]
    parts = [("api", [*exe, "serve"])]
    if "ingest" in commands:
        parts += [(f"ingest-{i}", [*exe, "ingest", "--slot", str(i)]) for i in range(args.workers)]
    if "scheduler" in commands:
        parts.append(("scheduler", [*exe, "scheduler"]))
    if args.demo and "simulate" in commands:
        parts.append(("simulator", [*exe, "simulate", "--demo"]))
    return parts


def _wait_healthy(base: str, seconds: float) -> bool:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def run(args: argparse.Namespace, commands: set[str]) -> int:
    from telemed.db import connect_sync

    settings = load_settings()
    if args.demo:
        from telemed import demo

        with connect_sync(settings.dsn) as conn:
            demo.seed(conn)
        if "devices" in commands:
            subprocess.run([sys.executable, "-m", "telemed.cli", "devices", "demo"], check=True)
    if "devices" in commands:
        # The broker's password and ACL files come from the database (the ingest account too).
        subprocess.run([sys.executable, "-m", "telemed.cli", "devices", "sync"], check=True)
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    parts = plan(args, commands)
    for name, cmd in parts:
        children[name] = subprocess.Popen(cmd)
    if args.demo:
        from telemed import demo

        base = f"http://{settings.http_host}:{settings.http_port}"
        if _wait_healthy(base, 30):
            try:
                demo.submit_demo_wound_case(base)
            except Exception as exc:  # the demo goes on without its wound case
                print(f"telemed up: could not send the demo wound case: {exc}", flush=True)
        print(
            "\n" + demo.sign_in_text(f"http://{settings.http_host}:{settings.http_port}") + "\n",
            flush=True,
        )
    while not stopping:
        time.sleep(0.5)
        for name, cmd in parts:
            code = children[name].poll()
            if code is not None and not stopping:
                print(f"telemed up: {name} exited with {code}; restarting in 2 s", flush=True)
                time.sleep(2)
                children[name] = subprocess.Popen(cmd)
    for child in children.values():
        child.terminate()
    for name, child in children.items():
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            print(f"telemed up: {name} did not stop; killing it", flush=True)
            child.kill()
    print("telemed up: stopped", flush=True)
    return 0
