"""What the ingest benchmark needs around the system under test: its own services instance and
database, a pool of provisioned devices, a lean MQTT publisher, and commit-time listening.

The benchmark runs its own PostgreSQL and Mosquitto (state in .dev/bench, ports 55452 and
51903), so neither the demo instance (.dev) nor the test instance (.dev/test) is touched, and a
fresh database `telemed_bench` is made from the migrations on every run.
"""

from __future__ import annotations

import math
import os
import platform
import random
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import psycopg
from psycopg.rows import dict_row

from devices.sim_model import (
    BREACHABLE,
    DeviceSpec,
    copd_breach,
    profile_for,
    readings_for,
)
from telemed.device_contract import ReadingMessage, encode_message, readings_topic

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".dev" / "bench"
SERVICES_ENV = {
    "TELEMED_STATE_DIR": str(STATE),
    "TELEMED_PG_PORT": os.environ.get("TELEMED_BENCH_PG_PORT", "55452"),
    "TELEMED_MQTT_PORT": os.environ.get("TELEMED_BENCH_MQTT_PORT", "51903"),
}
# The devices' TLS listener of the benchmark instance (scripts/services starts one).
SERVICES_ENV["TELEMED_MQTT_TLS_PORT"] = os.environ.get("TELEMED_BENCH_MQTT_TLS_PORT") or str(
    int(SERVICES_ENV["TELEMED_MQTT_PORT"]) + 1
)
DB_NAME = "telemed_bench"
VENV = REPO / "bench" / ".venv"
STRATA = ("severe", "moderate", "mild")

# Bench-only additions to the migrated schema: a statement trigger that NOTIFYs the inserting
# transaction's now() (which is every row's received_at), delivered to listeners only when
# that transaction commits; and the plain tables the two references write.
EXTRAS = """
CREATE FUNCTION bench_commit_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench_commit',
                      TG_TABLE_NAME || ' ' || (extract(epoch FROM now()) * 1000000)::bigint);
    RETURN NULL;
END $$;
CREATE TABLE bench_raw (device_id text, message_id text, measured_at timestamptz, metric text,
                        value float8, unit text, received_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_mqb (message_id text, measured_at timestamptz,
                        received_at timestamptz NOT NULL DEFAULT now());
CREATE TRIGGER bench_commit AFTER INSERT ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION bench_commit_notify();
CREATE TRIGGER bench_commit AFTER INSERT ON bench_raw
    FOR EACH STATEMENT EXECUTE FUNCTION bench_commit_notify();
CREATE TRIGGER bench_commit AFTER INSERT ON bench_mqb
    FOR EACH STATEMENT EXECUTE FUNCTION bench_commit_notify();
"""


def relative(path: str | Path) -> str:
    """`path` relative to the repository when it lies inside it (results name no checkout)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(path)


# --- services and database -------------------------------------------------------------------


def start_services() -> dict[str, str]:
    """Start (or reuse) the benchmark's services; the environment for its processes."""
    env = {**os.environ, **SERVICES_ENV}
    script = str(REPO / "scripts" / "services")
    subprocess.run([script, "start"], env=env, check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([script, "env"], env=env, check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value.strip("'\"")
    base, _, _ = env["TELEMED_DSN"].rpartition("/")
    env["TELEMED_DSN"] = f"{base}/{DB_NAME}"
    return env


def fresh_database(dsn: str) -> None:
    """Made by the superuser for the owner role, migrated as the owner (the processes under
    test use `dsn`, the application role)."""
    from telemed.migrate import apply_migrations
    from tests.services import OWNER_ROLE, role_dsn

    base, _, name = role_dsn(dsn, "superuser").rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
    with psycopg.connect(role_dsn(dsn, "owner")) as conn:
        apply_migrations(conn, REPO / "migrations")
        conn.execute(EXTRAS)
        conn.commit()


def provision_pool(conn: psycopg.Connection, settings, n: int) -> list[DeviceSpec]:
    """n COPD patients (strata mixed), each with a COPD kit provisioned the real way."""
    from devices.broker import sync_broker
    from devices.provisioning import provision

    org = conn.execute(
        "INSERT INTO organisations (name, kind, region) VALUES ('Bench Lungeklinik',"
        " 'hospital_department', 'Region Nordjylland') RETURNING id"
    ).fetchone()["id"]
    specs = []
    for i in range(n):
        stratum = STRATA[i % len(STRATA)]
        pid = conn.execute(
            "INSERT INTO patients (pseudonym, name, date_of_birth) VALUES (%s, %s, %s)"
            " RETURNING id",
            (f"B-{i:05d}", f"Bench Patient {i}", date(1950, 1, 1)),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO responsibility (patient_id, organisation_id, since, reason)"
            " VALUES (%s, %s, now() - interval '1 day', 'bench')",
            (pid, org),
        )
        conn.execute(
            "INSERT INTO enrollments (patient_id, program, stratum, start_date)"
            " VALUES (%s, 'copd', %s, current_date - 30)",
            (pid, stratum),
        )
        dev = provision(conn, patient_id=pid, kind="copd_kit")
        specs.append(
            DeviceSpec(
                device_id=dev.device_id,
                password=dev.password,
                patient_id=str(pid),
                kind="copd_kit",
                program="copd",
                stratum=stratum,
            )
        )
    conn.commit()
    sync_broker(conn, settings)
    return specs


def owner_dsn(dsn: str) -> str:
    from tests.services import role_dsn

    return role_dsn(dsn, "owner")


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, row_factory=dict_row)


# --- a lean MQTT 3.1.1 publisher -----------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    # Clean session, user name and password, keep-alive 0: the publisher sends no pings.
    body = _utf8("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 0)
    body += _utf8(client_id) + _utf8(username) + _utf8(password)
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id) + payload
    return b"\x32" + _varint(len(body)) + body


class RawLink:
    """One device's connection, sending pre-encoded QoS 1 PUBLISH packets in bulk."""

    def __init__(self, host: str, port: int, spec: DeviceSpec) -> None:
        self.spec = spec
        self.topic = readings_topic(spec.device_id).encode()
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(spec.device_id, spec.device_id, spec.password))
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"{spec.device_id}: broker refused the login ({connack!r})")
        self.next_id = 0
        self.acks = 0
        self._rest = b""

    def packet(self, payload: bytes) -> bytes:
        self.next_id = self.next_id % 65535 + 1
        return publish_packet(self.topic, self.next_id, payload)

    def read_acks(self) -> None:
        data = self._rest + self.sock.recv(65536)
        whole = len(data) - len(data) % 4
        # The broker sends only PUBACKs (4 bytes each) to this client.
        self.acks += whole // 4
        self._rest = data[whole:]


class PublishJob(msgspec.Struct, frozen=True):
    host: str
    port: int
    devices: list[DeviceSpec]
    phase: str
    count: int
    rate: float  # messages/s; 0 = as fast as the broker takes them
    shape: str  # "single" or "kit"
    start_at: float  # wall clock; measured_at of message k is start_at + k / rate
    breach_every: int = 0
    seed: int = 1


class PublishResult(msgspec.Struct):
    sent_at: bytes  # array('d') of wall-clock send times by sequence number
    breaches: list[tuple[int, str, str]]  # (seq, patient_id, metric)
    acked: int
    readings: int
    began: float  # wall clock of the first send (the pacing origin)
    seconds: float


def _messages(job: PublishJob) -> Iterator[tuple[int, bytes, int, tuple[str, str] | None]]:
    """(device index, payload, readings, breach) for every sequence number. The n-th breach
    takes the next unused (patient, metric) pair, so that each breach raises its own alert."""
    rng = random.Random(job.seed)
    profiles = [profile_for(d) for d in job.devices]
    used: set[tuple[int, str]] = set()
    step = 1 / job.rate if job.rate else 1e-4
    every = job.breach_every
    # Coprime with the pool size, so that successive breaches land on every device in turn.
    while every and math.gcd(every, len(job.devices)) != 1:
        every += 1
    for seq in range(job.count):
        i = seq % len(job.devices)
        spec, profile = job.devices[i], profiles[i]
        at = datetime.fromtimestamp(job.start_at + seq * step, UTC)
        readings = readings_for(spec, profile, at, rng, shape=job.shape, breach=False)  # type: ignore[arg-type]
        breach = None
        if every and seq % every == every // 2:
            free = [m for m in BREACHABLE if (i, m) not in used]
            if free:
                metric = free[0]
                used.add((i, metric))
                hit = copd_breach(profile, metric, rng)  # type: ignore[arg-type]
                kept = [r for r in readings if r.type != metric]
                readings = [hit] if job.shape == "single" else [*kept, hit]
                breach = (spec.patient_id or "", metric)
        msg = ReadingMessage(message_id=f"{job.phase}-{seq}", measured_at=at, readings=readings)
        yield i, encode_message(msg), len(readings), breach


def publish(job: PublishJob) -> PublishResult:
    """Publish the job's messages round-robin over its devices, paced at `rate`, and wait for
    every PUBACK. Messages are built before the clock starts."""
    links = [RawLink(job.host, job.port, d) for d in job.devices]
    plan, breaches, readings = [], [], 0
    for seq, (i, payload, n, breach) in enumerate(_messages(job)):
        plan.append((i, links[i].packet(payload)))
        readings += n
        if breach:
            breaches.append((seq, *breach))
    sent_at = array("d", bytes(8 * job.count))
    done = threading.Event()
    reader = threading.Thread(target=_read_acks, args=(links, done), daemon=True)
    reader.start()
    # Pace from the planned start, or from now if building took longer: no catch-up burst.
    origin = max(job.start_at, time.time() + 0.05)
    while time.time() < origin:
        time.sleep(min(0.01, max(0.0, origin - time.time())))
    began, k = time.time(), 0
    while k < job.count:
        now = time.time()
        due = (
            min(job.count, k + 5000)
            if not job.rate
            else min(job.count, int((now - origin) * job.rate) + 1)
        )
        if due <= k:
            time.sleep(min(0.001, (k + 1) / job.rate - (now - origin)))
            continue
        chunks: dict[int, list[bytes]] = {}
        for i, packet in plan[k:due]:
            chunks.setdefault(i, []).append(packet)
        for i, packets in chunks.items():
            links[i].sock.sendall(b"".join(packets))
        stamp = time.time()
        for j in range(k, due):
            sent_at[j] = stamp
        k = due
    seconds = time.time() - began
    deadline = time.monotonic() + 60
    while sum(link.acks for link in links) < job.count and time.monotonic() < deadline:
        time.sleep(0.01)
    done.set()
    reader.join()
    acked = sum(link.acks for link in links)
    for link in links:
        link.sock.sendall(b"\xe0\x00")  # DISCONNECT
        link.sock.close()
    return PublishResult(sent_at.tobytes(), breaches, acked, readings, began, seconds)


def _read_acks(links: list[RawLink], done: threading.Event) -> None:
    sel = selectors.DefaultSelector()
    for link in links:
        sel.register(link.sock, selectors.EVENT_READ, link)
    while not done.is_set():
        for key, _ in sel.select(timeout=0.05):
            key.data.read_acks()
    sel.close()


def publish_in_child(conn, job_bytes: bytes) -> None:
    """multiprocessing target: a publisher process, so that it has a core of its own."""
    job = msgspec.msgpack.decode(job_bytes, type=PublishJob)
    conn.send_bytes(msgspec.msgpack.encode(publish(job)))
    conn.close()


# --- commit times ------------------------------------------------------------------------------


class Listener:
    """LISTENs for the bench commit notifications and the outbox's, noting when each arrives.

    A NOTIFY reaches listeners only after its transaction commits, so the arrival time is an
    upper bound of the commit time, off by the delivery delay (well under a millisecond idle).
    """

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("LISTEN bench_commit")
        self.conn.execute("LISTEN telemed_outbox")
        self.commits: dict[str, dict[int, float]] = {}
        self.outbox: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for n in self.conn.notifies(timeout=0.2):
                seen = time.time()
                if n.channel == "telemed_outbox":
                    self.outbox.setdefault(int(n.payload), seen)
                else:
                    table, _, micros = n.payload.partition(" ")
                    self.commits.setdefault(table, {}).setdefault(int(micros), seen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


def cpu_seconds(consumers: list[int]) -> dict[str, float]:
    """CPU time used so far (user + system) by the consumers, the benchmark's PostgreSQL (the
    postmaster and its children) and its Mosquitto."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue

    def used(pids: list[int]) -> float:
        return sum((int(stats[p][11]) + int(stats[p][12])) / tick for p in pids if p in stats)

    master = int((STATE / "pg" / "postmaster.pid").read_text().split()[0])
    broker = int((STATE / "mosquitto" / "mosquitto.pid").read_text().strip())
    postgres = [master, *(p for p, f in stats.items() if int(f[1]) == master)]
    return {"consumer": used(consumers), "postgres": used(postgres), "mosquitto": used([broker])}


def cores(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """The cores each part used between two `cpu_seconds` readings `seconds` apart."""
    return {k: round((after[k] - before[k]) / seconds, 2) for k in after}


# --- profile, machine, references' venv ---------------------------------------------------


PROJECT = ("ingest/", "telemed/", "alerts/", "devices/")


def summarize_profile(path: Path, top: int = 12) -> dict:
    """py-spy's collapsed stacks in shares of the samples: by thread, by the function that was
    running (self), and by the project's functions on the stack (inclusive)."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        paho = frames[0].startswith("Thread._bootstrap")
        thread = "paho network thread" if paho else "asyncio loop (main thread)"
        threads[thread] = threads.get(thread, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            if f.rpartition("(")[2].startswith(PROJECT):
                incl[f] = incl.get(f, 0) + n
    if not total:
        return {}

    def shares(counts: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [(k, round(100 * v / total, 1)) for k, v in ranked]

    return {
        "samples": total,
        "threads_percent": shares(threads),
        "self_percent": shares(own),
        "project_inclusive_percent": shares(incl),
    }


def _frame(text: str) -> str:
    """ "Writer.commit (ingest/writer.py:138)" -> "Writer.commit (ingest/writer.py)"."""
    name, _, where = text.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})"


def mqbridge_python() -> tuple[Path | None, str | None]:
    """bench/.venv with mq-bridge (and py-spy); made on first use."""
    py = VENV / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True
            )
        probe = subprocess.run([str(py), "-c", "import mq_bridge"], capture_output=True)
        if probe.returncode != 0:
            pip = [str(py), "-m", "pip", "install", "-q", "mq-bridge==1.2.0", "py-spy"]
            subprocess.run(pip, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        return None, f"could not install mq-bridge into {VENV}: {(exc.stderr or '')[-300:]}"
    return py, None


def machine() -> dict:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "python": platform.python_version(),
        "mosquitto": mosq.strip(),
        "kernel": platform.release(),
    }


def git(*cmd: str) -> str:
    return subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=REPO).stdout.strip()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def new_id() -> str:
    return uuid.uuid4().hex[:8]
