"""`telemed up` as a real process tree against a database of its own and the test broker.

Each installation gets a fresh database (so its scheduler touches nobody else's rows), its own
API port, and its own shared-subscription group and client id prefix on the shared test broker.
`telemed up` rewrites the broker's password and ACL files from its database; teardown writes
them back from the session's database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg.rows import dict_row

from devices.broker import sync_broker
from devices.provisioning import ProvisionedDevice, provision
from telemed.settings import REPO_ROOT, Settings
from tests import services
from tests.conftest import Factory, free_port
from tests.mqtt_helpers import DeviceLink, forget_sessions, wait_for


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and int(stat[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # state, ppid, …


class Up:
    """`python -m app.cli up --no-demo …`, its output collected line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", "--no-demo", *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def count(self, text: str) -> int:
        return sum(text in line for _, line in self.lines)

    def when(self, text: str) -> list[float]:
        return [t for t, line in self.lines if text in line]

    def output(self, last: int = 60) -> str:
        return "\n".join(line for _, line in self.lines[-last:])

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        time.sleep(0.2)  # the reader's last lines
        return code

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)


class Installation:
    def __init__(self, settings: Settings, service_env: dict[str, str], dsn: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.dsn = dsn
        self.port = free_port()
        self.prefix = f"test-ingest-up{tag}"
        self.settings = settings
        self.env = {
            **os.environ,
            **service_env,
            "TELEMED_DSN": dsn,
            "TELEMED_HTTP_PORT": str(self.port),
            "TELEMED_MEDIA_DIR": str(settings.media_dir),
            "TELEMED_INGEST_USERNAME": settings.ingest_username,
            "TELEMED_INGEST_PASSWORD": settings.ingest_password,
            "TELEMED_INGEST_GROUP": f"test-up-{tag}",
            "TELEMED_INGEST_CLIENT_PREFIX": self.prefix,
            "TELEMED_INGEST_SESSION_EXPIRY_S": "600",
            "TELEMED_INGEST_DEVICE_CACHE_S": "0.2",
        }
        self.db = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        self.factory = Factory(self.db)
        self.ups: list[Up] = []
        self.links: list[DeviceLink] = []
        self.slots_used = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self, *args: str, env: dict[str, str] | None = None) -> Up:
        up = Up({**self.env, **(env or {})}, *args)
        self.ups.append(up)
        if "--workers" in args:
            self.slots_used = max(self.slots_used, int(args[args.index("--workers") + 1]))
        return up

    def device(self) -> ProvisionedDevice:
        org = self.factory.org("hospital_department")
        patient = self.factory.patient(org, program="copd")
        device = provision(self.db, patient_id=patient, kind="copd_kit")
        sync_broker(self.db, self.settings)
        return device

    def link(self, device: ProvisionedDevice) -> DeviceLink:
        link = DeviceLink(self.settings, device.device_id, device.password)
        self.links.append(link)
        assert not link.connect().is_failure
        return link

    def message_ids(self, device_id: str) -> list[str]:
        rows = self.db.execute(
            "SELECT message_id FROM readings WHERE device_id = %s", (device_id,)
        ).fetchall()
        return sorted(r["message_id"] for r in rows)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_running(self, up: Up, workers: int, timeout: float = 90) -> None:
        wait_for(lambda: (up.count("subscribed to") >= workers and self.ready())
                 or up.proc.poll() is not None, timeout=timeout,
                 what=f"{workers} workers and the API")  # fmt: skip
        assert up.proc.poll() is None, up.output()

    def close(self) -> None:
        for link in self.links:
            link.close()
        for up in self.ups:
            if up.proc.poll() is None:
                try:
                    up.stop(timeout=40)
                except subprocess.TimeoutExpired:
                    up.proc.kill()
        self.db.close()
        forget_sessions(self.settings, [f"{self.prefix}-{n}" for n in range(self.slots_used + 1)])


@contextmanager
def installation(
    settings: Settings, service_env: dict[str, str], main_db: psycopg.Connection
) -> Iterator[Installation]:
    dsn = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
    inst = Installation(settings, service_env, dsn)
    try:
        yield inst
    finally:
        try:
            inst.close()
        finally:
            sync_broker(main_db, settings)  # the broker's files as the other tests expect them
            services.drop_database(dsn)


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until none of `pids` runs; those still running at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]
