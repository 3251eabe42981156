"""Process supervision for `telemed up`: children that die with the supervisor, restarts with
exponential backoff, an operational alarm for a part that keeps crashing, and a lock so that
one database has one supervisor.

- Children get PR_SET_PDEATHSIG (Linux): when the supervisor dies, even by kill -9, the kernel
  sends each child SIGTERM, on which every part stops gracefully (an ingest worker finishes and
  acknowledges the batch in hand). A child started just as the supervisor died exits at once.
- A child that exits is restarted after 1, 2, 4 … seconds, at most 60, counting exits in a row
  that came less than 60 s after a start; a child that ran longer starts the count again. At the
  third quick exit in a row an error line is logged and an operational alarm raised (listed by
  `GET /api/v1/admin/alarms` and in `/readyz`); once the part has run 60 s the alarm is cleared.
- The supervisor holds a PostgreSQL session advisory lock on its own connection: a second
  `telemed up` against the same database is refused, whichever host it runs on.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg

from telemed import alarms
from telemed.db import KEEPALIVE, Queries, SyncConn, connect_sync, one_row
from telemed.settings import SupervisorSettings

log = logging.getLogger("telemed.up")
Q = Queries("named_locks")

PR_SET_PDEATHSIG = 1
SUPERVISOR_LOCK = "telemed up"
DATABASE_AWAY = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


class Refused(Exception):
    """`telemed up` will not start; the text says why and what to do."""


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive SIGTERM when this process dies."""
    if not sys.platform.startswith("linux"):
        log.warning("children will not stop by themselves if the supervisor is killed (not Linux)")
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the supervisor died before the line above took effect
            os._exit(126)

    return preexec


def spawn(cmd: Sequence[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(cmd), preexec_fn=die_with_parent())


def run_once(cmd: Sequence[str]) -> None:
    """A short step (a sync, a seed) that must not outlive the supervisor either."""
    subprocess.run(list(cmd), check=True, preexec_fn=die_with_parent())


@dataclass(frozen=True)
class Backoff:
    """When to restart a part that exited: pure, so that it is tested without processes."""

    min_s: float = 1.0
    max_s: float = 60.0
    stable_s: float = 60.0
    alarm_after: int = 3

    @classmethod
    def from_settings(cls, settings: SupervisorSettings) -> Backoff:
        return cls(
            min_s=settings.restart_min_s, max_s=settings.restart_max_s, stable_s=settings.stable_s
        )

    def quick_exits(self, previous: int, ran_s: float) -> int:
        """Exits in a row that came soon after a start, counting this one."""
        return previous + 1 if ran_s < self.stable_s else 1

    def delay(self, quick_exits: int) -> float:
        return min(self.min_s * 2 ** max(quick_exits - 1, 0), self.max_s)


@dataclass
class Child:
    name: str
    cmd: list[str]
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_exits: int = 0
    restart_at: float | None = None
    alarmed: bool = False
    exits: list[int] = field(default_factory=list)

    @property
    def alarm_key(self) -> str:
        return f"telemed up: {self.name} crashing"

    def start(self) -> None:
        self.proc = spawn(self.cmd)
        self.started = time.monotonic()
        self.restart_at = None


class Alarms:
    """Raise and clear operational alarms, each on a short connection of its own; a database
    that is away costs the row, never the error line."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.source = f"telemed up on {socket.gethostname()} (pid {os.getpid()})"

    def raise_(self, key: str, severity: alarms.Severity, message: str) -> None:
        try:
            with connect_sync(self.dsn, autocommit=True, connect_timeout=5) as conn:
                alarms.raise_alarm(conn, key, severity, self.source, message)
        except DATABASE_AWAY as exc:
            log.error("could not record the alarm %r (%s)", key, type(exc).__name__)

    def clear(self, key: str, reason: str) -> None:
        try:
            with connect_sync(self.dsn, autocommit=True, connect_timeout=5) as conn:
                alarms.clear_alarm(conn, key, reason)
        except DATABASE_AWAY as exc:
            log.warning("could not clear the alarm %r (%s)", key, type(exc).__name__)


class Supervisor:
    def __init__(self, children: list[Child], backoff: Backoff, alarms: Alarms) -> None:
        self.children = children
        self.backoff = backoff
        self.alarms = alarms

    def start_all(self) -> None:
        for child in self.children:
            child.start()

    def add(self, child: Child) -> None:
        self.children.append(child)
        child.start()

    def tick(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                continue
            code = child.proc.poll()
            if code is None:
                if child.alarmed and now - child.started >= self.backoff.stable_s:
                    child.alarmed = False
                    log.info("%s has run for %.0f s; its crash alarm is cleared", child.name,
                             now - child.started)  # fmt: skip
                    self.alarms.clear(child.alarm_key, "ran steadily again")
                continue
            if child.restart_at is None:
                self._exited(child, code, now)
            elif now >= child.restart_at:
                log.info("starting %s again", child.name)
                child.start()

    def _exited(self, child: Child, code: int, now: float) -> None:
        child.exits.append(code)
        ran = now - child.started
        if not child.restart:
            child.proc = None
            if code == 0:
                log.info("%s done", child.name)
            else:
                text = f"{child.name} failed with exit status {code}"
                log.error("%s", text)
                self.alarms.raise_(f"telemed up: {child.name} failed", "critical", text)
            return
        child.quick_exits = self.backoff.quick_exits(child.quick_exits, ran)
        delay = self.backoff.delay(child.quick_exits)
        child.restart_at = now + delay
        text = (
            f"{child.name} exited with status {code} after {ran:.1f} s; restarting in {delay:.0f} s"
        )
        if child.quick_exits < self.backoff.alarm_after:
            log.warning("%s", text)
            return
        child.alarmed = True
        text = (
            f"{child.name} keeps crashing: {child.quick_exits} exits in a row, each within "
            f"{self.backoff.stable_s:.0f} s of its start, the last with status {code}; next "
            f"restart in {delay:.0f} s"
        )
        log.error("%s", text)
        self.alarms.raise_(child.alarm_key, "critical", text)

    def stop_all(self, timeout_s: float = 15.0) -> None:
        running = [
            (c, c.proc) for c in self.children if c.proc is not None and c.proc.poll() is None
        ]
        for _, proc in running:
            proc.terminate()
        for child, proc in running:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.error("%s did not stop within %.0f s; killing it", child.name, timeout_s)
                proc.kill()
                proc.wait()


class SupervisorLock:
    """One `telemed up` per database: a session advisory lock on a connection of its own."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.name = f"telemed up pid {os.getpid()} on {socket.gethostname()}"[:63]
        self._conn: SyncConn | None = None
        self._checked = 0.0

    def take(self) -> None:
        conn = self._connect()
        tried = one_row(conn.execute(Q.try_lock, {"name": SUPERVISOR_LOCK}).fetchone(), "try_lock")
        if not tried["taken"]:
            row = conn.execute(Q.holder, {"name": SUPERVISOR_LOCK}).fetchone()
            conn.close()
            self._conn = None
            who = (
                f"{row['application_name']}, database session since "
                f"{row['backend_start']:%Y-%m-%d %H:%M:%S %Z}"
                if row
                else "it has just stopped; try again"
            )
            raise Refused(
                f"another `telemed up` is running against this database ({who}); stop it "
                "first: two would run every ingest slot and the API twice"
            )

    def _connect(self) -> SyncConn:
        self._conn = connect_sync(
            self.dsn, autocommit=True, application_name=self.name, connect_timeout=5, **KEEPALIVE
        )
        return self._conn

    def check(self, every_s: float = 5.0) -> None:
        """Now and then: is the lock's connection alive? After losing it, take the lock again
        (Refused if another supervisor took it meanwhile); while the database is away, wait."""
        if time.monotonic() - self._checked < every_s:
            return
        self._checked = time.monotonic()
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT 1")
                return
        except DATABASE_AWAY:
            log.warning("lost the database connection holding the supervisor's lock")
        try:
            self.take()
            log.info("the supervisor's lock is taken again")
        except DATABASE_AWAY:
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*DATABASE_AWAY):
                self._conn.close()
            self._conn = None
