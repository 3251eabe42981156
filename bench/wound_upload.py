"""Wound-photo upload through the real HTTP server: a 12-megapixel phone JPEG (about 4 MB with
EXIF and GPS) per case, sent by real HTTP clients to uvicorn in its own process; then the
server's peak memory for one upload of that JPEG and of a transparent 7000 x 7000 PNG.

    .venv/bin/python bench/wound_upload.py [--uploads 60] [--clients 2,4] [--per-client 12]
    .venv/bin/python bench/wound_upload.py --memory-only   # the memory phase alone

Runs against the TEST services instance (.dev/test, PostgreSQL on 55442), in a fresh database
made from the migrations and dropped afterwards, with its own media folder in a temporary
directory: the demo instance (.dev) is never touched. Every upload carries different bytes (a
counter in a JPEG comment segment), so each stores its own 4 MB original, as real uploads do.
Writes bench/results/wound_upload.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from PIL import Image  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from telemed.security import new_token  # noqa: E402
from tests import photos, services  # noqa: E402
from wounds.images import sanitize  # noqa: E402

RESULT = REPO / "bench" / "results" / "wound_upload.json"
BOUNDARY = "telemed-bench-boundary"


def make_app():
    """uvicorn's factory: the app as `telemed serve` builds it."""
    from app.asgi import create_app
    from telemed.settings import load_settings

    return create_app(load_settings())


def seed(dsn: str) -> tuple[str, str]:
    """A home-nursing unit, a wound clinic with a routing rule, a nurse, a patient; the nurse's
    token and the patient's id."""
    region = "Region Bench"
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:

        def org(kind: str, name: str) -> uuid.UUID:
            return conn.execute(
                "INSERT INTO organisations (name, kind, region, hospital) VALUES (%s, %s, %s, %s)"
                " RETURNING id",
                (name, kind, region, "Bench Hospital"),
            ).fetchone()["id"]

        nursing, clinic = org("home_nursing", "Bench nursing"), org("hospital_department", "Clinic")
        conn.execute(
            "INSERT INTO wound_routing_rules (region, specialist_org_id) VALUES (%s, %s)",
            (region, clinic),
        )
        nurse = conn.execute(
            "INSERT INTO users (username, full_name, role, organisation_id, password_hash)"
            " VALUES ('bench-nurse', 'Bench Nurse', 'nurse', %s, 'x') RETURNING id",
            (nursing,),
        ).fetchone()["id"]
        token, digest = new_token()
        conn.execute(
            "INSERT INTO auth_tokens (token_hash, user_id, expires_at)"
            " VALUES (%s, %s, now() + interval '1 day')",
            (digest, nurse),
        )
        patient = conn.execute(
            "INSERT INTO patients (pseudonym, name, date_of_birth, region)"
            " VALUES ('P-BENCH', 'Bench Patient', %s, %s) RETURNING id",
            (date(1944, 4, 4), region),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO responsibility (patient_id, organisation_id, since)"
            " VALUES (%s, %s, now() - interval '1 day')",
            (patient, nursing),
        )
    return token, str(patient)


def case_part(patient: str) -> bytes:
    return json.dumps(
        {
            "patient_id": patient,
            "photo_consent": True,
            "wound": {"wound_type": "pressure_ulcer", "body_location": "sacrum",
                      "laterality": "midline"},
            "observation": {"wound_type": "pressure_ulcer", "pressure_category": "category_2",
                            "length_cm": 3.5, "width_cm": 2.0, "pain": 2},
        }
    ).encode()  # fmt: skip


def unique_photo(photo: bytes, n: int) -> bytes:
    """The same picture with a counter in a COM segment: different bytes, same decode work."""
    text = f"bench upload {n}".encode()
    return photo[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + photo[2:]


def body(case: bytes, photo: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="case"\r\n'
        "Content-Type: application/json\r\n\r\n"
    ).encode()
    part = (
        f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="photos"; '
        'filename="IMG_0001.JPG"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()
    return head + case + part + photo + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int) -> dict[str, float]:
    """The process's resident memory now and its peak since the last reset, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def reset_peak(pid: int) -> None:
    """Start the process's peak resident memory (VmHWM) afresh from what it holds now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def memory_phase(pid: int, uploader: Uploader, png: bytes, settle_s: float = 2.0) -> dict:
    """Peak RSS of the server for one upload of each photo, and what it keeps afterwards."""
    time.sleep(settle_s)
    idle = memory_mib(pid)["VmRSS"]
    found: dict[str, float] = {"rss_mib_idle": idle}
    for name, photo in (("jpeg_12mp", uploader.photo), ("png_7000_alpha", png)):
        reset_peak(pid)
        started = time.perf_counter()
        uploader.upload(photo, "image/png" if photo is png else "image/jpeg")
        found[f"{name}_upload_ms"] = round((time.perf_counter() - started) * 1000, 1)
        found[f"peak_rss_mib_{name}"] = memory_mib(pid)["VmHWM"]
        time.sleep(settle_s)
        found[f"rss_mib_after_{name}"] = memory_mib(pid)["VmRSS"]
    found["ratio_png_peak_to_idle"] = round(found["peak_rss_mib_png_7000_alpha"] / idle, 2)
    return found


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "uvicorn", "wound_upload:make_app", "--factory",
        "--app-dir", str(REPO / "bench"), "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=REPO)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


class Uploader:
    def __init__(self, base: str, token: str, case: bytes, photo: bytes) -> None:
        self.base, self.case, self.photo = base, case, photo
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        }
        self.counter = 0
        self.lock = threading.Lock()

    def next_body(self) -> bytes:
        with self.lock:
            self.counter += 1
            n = self.counter
        return body(self.case, unique_photo(self.photo, n))

    def upload(self, photo: bytes, content_type: str) -> None:
        """One upload of exactly these bytes, which must be accepted."""
        payload = body(self.case, photo).replace(
            b"Content-Type: image/jpeg", f"Content-Type: {content_type}".encode(), 1
        )
        with self.lock:
            self.counter += 1
        r = httpx.post(
            f"{self.base}/api/v1/wound-cases", content=payload, headers=self.headers, timeout=120
        )
        if r.status_code != 201:
            raise RuntimeError(f"the upload failed: {r.status_code} {r.text[:200]}")

    def run(
        self, clients: int, per_client: int, between: Callable[[], None] | None = None
    ) -> tuple[list[float], float]:
        """Latencies (ms) of clients x per_client uploads, and the wall time (s). `between` runs
        after each upload, outside the timing and the wall time."""
        latencies: list[float] = []
        errors: list[str] = []
        pauses: list[float] = []

        def client() -> None:
            with httpx.Client(base_url=self.base, timeout=60) as http:
                for _ in range(per_client):
                    payload = self.next_body()
                    started = time.perf_counter()
                    r = http.post("/api/v1/wound-cases", content=payload, headers=self.headers)
                    elapsed = (time.perf_counter() - started) * 1000
                    if r.status_code != 201:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    latencies.append(elapsed)
                    if between is not None:
                        paused = time.perf_counter()
                        between()
                        pauses.append(time.perf_counter() - paused)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started - sum(pauses)
        if errors:
            raise RuntimeError(f"{len(errors)} uploads failed: {errors[0]}")
        return latencies, wall


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    return {
        "uploads": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "max_ms": round(max(latencies), 1),
        "uploads_per_s": round(len(latencies) / wall, 2),
    }


def timed(work: Callable[[], object], wall: list[float], cpu: list[float]) -> Callable[[], None]:
    def run() -> None:
        started, cpu_started = time.perf_counter(), time.thread_time()
        work()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)

    return run


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def pillow_only(photo: bytes) -> None:
    """What Pillow alone needs for this photo: open, decode fully, save as JPEG."""
    out = io.BytesIO()
    Image.open(io.BytesIO(photo)).save(out, "JPEG", quality=85)


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "telemed"], cwd=REPO)
    return out.stdout.decode().strip() + ("+dirty" if dirty.returncode else "")


def command() -> str:
    return " ".join(["python bench/wound_upload.py", *sys.argv[1:]])


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def load(before: float) -> dict[str, float]:
    return {"load_before": round(before, 2), "load_after": round(os.getloadavg()[0], 2)}


def timing_phases(args: argparse.Namespace, pid: int, uploader: Uploader, photo: bytes) -> tuple:
    """Sequential uploads with Pillow alone and sanitize alone timed between them, then
    concurrent clients."""
    # Pillow alone and sanitize alone run between the sequential uploads, while the server
    # is idle, so that the ratio compares like with like on a machine that may be busy.
    pillow_ms: list[float] = []
    pillow_cpu: list[float] = []
    sanitize_ms: list[float] = []
    sanitize_cpu: list[float] = []
    alone = [
        timed(lambda: pillow_only(photo), pillow_ms, pillow_cpu),
        timed(lambda: sanitize(photo), sanitize_ms, sanitize_cpu),
    ]

    def between() -> None:
        for work in alone:
            work()

    # The machine may be shared: CPU time per upload (the server process's, all threads)
    # does not grow with other load the way latency does.
    cpu_before = cpu_seconds(pid)
    sequential = summary(*uploader.run(1, args.uploads, between))
    server_cpu = (cpu_seconds(pid) - cpu_before) * 1000 / args.uploads
    concurrent = {
        str(n): summary(*uploader.run(n, args.per_client))
        for n in (int(c) for c in args.clients.split(","))
    }
    return sequential, concurrent, pillow_ms, pillow_cpu, sanitize_ms, sanitize_cpu, server_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=60, help="sequential uploads measured")
    parser.add_argument("--clients", default="2,4", help="concurrent client counts")
    parser.add_argument("--per-client", type=int, default=12)
    parser.add_argument("--output", type=Path, default=RESULT)
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the memory phase; the other keys of the results file are kept as they are",
    )
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    photo = photos.phone_jpeg_12mp()
    png = photos.transparent_png(7000)
    width, height = Image.open(io.BytesIO(photo)).size
    env_services = services.ensure_services()
    dsn = services.fresh_database(env_services["TELEMED_DSN"], REPO / "migrations")
    media = Path(tempfile.mkdtemp(prefix="telemed-bench-media-"))
    server = None
    try:
        token, patient = seed(dsn)
        port = free_port()
        env = {
            **os.environ, **env_services, "TELEMED_DSN": dsn, "TELEMED_MEDIA_DIR": str(media),
            "TELEMED_HTTP_PORT": str(port), "PYTHONPATH": str(REPO),
        }  # fmt: skip
        server = start_server(env, port)
        uploader = Uploader(f"http://127.0.0.1:{port}", token, case_part(patient), photo)
        uploader.run(1, 3)  # warm-up: imports, pool, page cache
        if args.memory_only:
            memory = memory_phase(server.pid, uploader, png)
        else:
            timings = timing_phases(args, server.pid, uploader, photo)
            memory = memory_phase(server.pid, uploader, png)
        with psycopg.connect(dsn) as conn:
            stored = conn.execute("SELECT count(*) FROM wound_photos").fetchone()[0]
        expected = uploader.counter
        if stored != expected:
            raise RuntimeError(f"{stored} photos stored, {expected} uploaded")
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
        services.drop_database(dsn)
        subprocess.run(["rm", "-rf", str(media)], check=False)

    memory["png"] = {"bytes": len(png), "width": 7000, "height": 7000, "mode": "RGBA"}
    if args.memory_only:
        result = {**json.loads(args.output.read_text()), **memory}
        result["memory_measured"] = {
            "command": command(),
            "date": now(),
            "commit": commit(),
            "load": load(load_before),
        }
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(memory, indent=2))
        return 0
    sequential, concurrent, pillow_ms, pillow_cpu, sanitize_ms, sanitize_cpu, server_cpu = timings
    result = {
        **{k: sequential[k] for k in ("p50_ms", "p95_ms", "uploads_per_s")},
        **memory,
        "pillow_only_ms": median(pillow_ms),
        "ratio_p50_to_pillow": round(sequential["p50_ms"] / statistics.median(pillow_ms), 2),
        "sanitize_ms": median(sanitize_ms),
        "cpu": {
            "server_ms_per_upload": round(server_cpu, 1),
            "pillow_only_ms": median(pillow_cpu),
            "sanitize_ms": median(sanitize_cpu),
            "ratio_server_to_pillow": round(server_cpu / statistics.median(pillow_cpu), 2),
        },
        "sequential": sequential,
        "concurrent": concurrent,
        "photo": {"bytes": len(photo), "width": width, "height": height, "format": "jpeg"},
        "target": "p95 < 400 ms per single-photo case, sequential",
        "server": "uvicorn, 1 process, app.asgi:create_app + wound controllers, loopback",
        "services": "test instance (.dev/test), fresh database, dropped afterwards",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **load(load_before),
        },
        "command": command(),
        "date": now(),
        "commit": commit(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
