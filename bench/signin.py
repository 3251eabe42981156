"""Sign-in under attack: a signed-in `GET /api/v1/auth/me` measured idle and while six clients
send wrong passwords, against `telemed serve` (uvicorn, the production configuration) in its own
process; and the cost of an unknown user next to a known one, and four 150 MiB sign-in bodies.

    .venv/bin/python bench/signin.py [--seconds 8] [--attackers 6] [--repo PATH]

`--repo` serves the app from another checkout of the project (its migrations too), e.g. an
older commit exported with `git archive`, to measure it the same way.

Runs against the TEST services instance (.dev/test), in a fresh database made from the
migrations and dropped afterwards. Phases, in one run:

- idle: /auth/me, one request every 20 ms, nothing else;
- attack: the same while the attackers (one process, `--attackers` connections, each sending
  its next wrong password as soon as the last is answered) try a new username every time, from
  a server whose per-address limit is lifted, so that every attempt costs a full argon2 check
  (a spread-out attack, the worst case for the CPU);
- idle again, to see that the machine did not change under the run;
- throttled: the attackers all hammer one known account, which the account limit locks at
  once: nearly every attempt is a 429 from the database, without argon2.

Writes bench/results/signin.json; the key `authme_p50_ratio_under_attack` is the attack phase's
median over the first idle phase's (target: at most 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from telemed.security import hash_password, new_token  # noqa: E402
from tests import services  # noqa: E402

RESULT = REPO / "bench" / "results" / "signin.json"
PASSWORD = "bench password 2026"
MIB = 1024 * 1024


def seed(dsn: str, known: int) -> tuple[str, list[str]]:
    """An organisation and `known` nurses with a real argon2 hash; a token of the first."""
    pw_hash = hash_password(PASSWORD)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        org = conn.execute(
            "INSERT INTO organisations (name, kind) VALUES ('Bench nursing', 'home_nursing')"
            " RETURNING id"
        ).fetchone()["id"]
        names, ids = [], []
        for i in range(known):
            name = f"bench-nurse-{i:03d}"
            ids.append(
                conn.execute(
                    "INSERT INTO users (username, full_name, role, organisation_id,"
                    " password_hash) VALUES (%s, %s, 'nurse', %s, %s) RETURNING id",
                    (name, f"Bench Nurse {i}", org, pw_hash),
                ).fetchone()["id"]
            )
            names.append(name)
        token, digest = new_token()
        conn.execute(
            "INSERT INTO auth_tokens (token_hash, user_id, expires_at)"
            " VALUES (%s, %s, now() + interval '1 day')",
            (digest, ids[0]),
        )
    return token, names


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, repo: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "app.cli", "--log-level", "WARNING", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=env, cwd=repo, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code < 500:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


# --- the attackers: a process of their own ---------------------------------------------------


def attack(base: str, clients: int, seconds: float, username: str | None, out) -> None:
    """`clients` connections sending wrong passwords back to back for `seconds`; a fresh
    username each time unless `username` is given. Puts a Counter of statuses on `out`."""

    async def run() -> Counter:
        counts: Counter = Counter()
        deadline = time.monotonic() + seconds

        async def one(n: int) -> None:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    name = username or f"guess-{n}-{i}-{secrets.token_hex(3)}"
                    r = await http.post(
                        "/api/v1/auth/token", json={"username": name, "password": "wrong!"}
                    )
                    counts[r.status_code] += 1

        await asyncio.gather(*(one(n) for n in range(clients)))
        return counts

    out.put(dict(asyncio.run(run())))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads (argon2's included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def under_attack(
    base: str, token: str, args, username: str | None, pid: int
) -> tuple[list[float], dict, float]:
    """/auth/me latencies under attack, the attack's statuses, and the server's CPU time per
    sign-in attempt (ms) over the whole attack."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=attack, args=(base, args.attackers, args.seconds + 2, username, out))
    cpu_before = cpu_seconds(pid)
    proc.start()
    time.sleep(1.5)  # the attack is under way before measuring
    latencies = measure(base, token, args.seconds)
    counts = out.get(timeout=120)
    proc.join(timeout=30)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000
    # The server's CPU over the attack also served the /auth/me requests measured meanwhile;
    # their share is small next to the attempts and is not subtracted.
    return latencies, counts, round(cpu_ms / max(1, sum(counts.values())), 2)


# --- the signed-in user ----------------------------------------------------------------------


def measure(base: str, token: str, seconds: float) -> list[float]:
    """Latencies (ms) of /auth/me, one request every 20 ms for `seconds`."""
    latencies = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, timeout=60) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            r = http.get("/api/v1/auth/me", headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"/auth/me answered {r.status_code}: {r.text[:200]}")
            time.sleep(0.02)
    return latencies


def stats(latencies: list[float]) -> dict:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(q[94], 2),
        "max_ms": round(max(latencies), 2),
    }


def unknown_vs_known(base: str, known: list[str], rounds: int) -> dict:
    """Wrong passwords for existing users and for names nobody has, alternating: both should
    cost one argon2 check."""
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in range(rounds):
            for kind, name in (("known", known[i]), ("unknown", f"nobody-{uuid.uuid4().hex[:8]}")):
                started = time.perf_counter()
                r = http.post("/api/v1/auth/token", json={"username": name, "password": "wrong!"})
                times[kind].append((time.perf_counter() - started) * 1000)
                if r.status_code != 401:
                    raise RuntimeError(f"sign-in answered {r.status_code}: {r.text[:200]}")
    known_ms, unknown_ms = statistics.median(times["known"]), statistics.median(times["unknown"])
    return {
        "rounds": rounds,
        "known_wrong_password_p50_ms": round(known_ms, 2),
        "unknown_user_p50_ms": round(unknown_ms, 2),
        "ratio_unknown_to_known": round(unknown_ms / known_ms, 3),
    }


# --- big bodies --------------------------------------------------------------------------------


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for {pid}")


def big_bodies(port: int, pid: int, clients: int = 4, size: int = 150 * MIB) -> dict:
    """`clients` sign-ins at once announcing `size` bytes each and sending until the server
    closes: what the server kept, and how much each client got to send."""
    before = rss_mib(pid)
    sent: list[int] = []
    statuses: list[int] = []

    def one() -> None:
        n = 0
        status = 0
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(
                b"POST /api/v1/auth/token HTTP/1.1\r\nHost: bench\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
            )
            chunk = b"x" * 65536
            try:
                while n < size:
                    s.sendall(chunk)
                    n += len(chunk)
            except OSError:
                pass
            try:
                head = s.recv(1024)
                status = int(head.split(b" ", 2)[1]) if head else 0
            except (OSError, IndexError, ValueError):
                status = 0
        sent.append(n)
        statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    return {
        "clients": clients,
        "announced_mib": size // MIB,
        "sent_before_refusal_mib": [round(n / MIB, 2) for n in sent],
        "statuses": statuses,
        "server_rss_mib_before": before,
        "server_rss_mib_after": rss_mib(pid),
        "server_peak_rss_mib": rss_mib(pid, "VmHWM"),
    }


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "telemed"], cwd=REPO)
    return out.stdout.decode().strip() + ("+dirty" if dirty.returncode else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8, help="length of each phase")
    parser.add_argument("--attackers", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=30, help="unknown vs known sign-ins")
    parser.add_argument("--output", type=Path, default=RESULT)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to serve")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    env_services = services.ensure_services()
    dsn = services.fresh_database(env_services["TELEMED_DSN"], args.repo / "migrations")
    server = None
    try:
        token, known = seed(dsn, args.rounds + 1)
        port = free_port()
        env = {
            **os.environ, **env_services, "TELEMED_DSN": dsn, "PYTHONPATH": str(args.repo),
            # Every attempt of the spread-out attack reaches argon2: no address limit.
            "TELEMED_SIGNIN_ADDRESS_FREE": "1000000000",
        }  # fmt: skip
        server = start_server(env, port, args.repo)
        base = f"http://127.0.0.1:{port}"
        measure(base, token, 1)  # warm-up: imports, pool, first queries
        idle = measure(base, token, args.seconds)
        attacked, attack_counts, attack_cpu = under_attack(base, token, args, None, server.pid)
        idle_again = measure(base, token, args.seconds)
        throttled, throttled_counts, throttled_cpu = under_attack(
            base, token, args, known[-1], server.pid
        )
        timing = unknown_vs_known(base, known[1:], args.rounds)
        bodies = big_bodies(port, server.pid)
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=20)
        services.drop_database(dsn)
    idle_p50 = statistics.median(idle)
    result = {
        "authme_p50_ratio_under_attack": round(statistics.median(attacked) / idle_p50, 2),
        "authme_p50_ratio_under_throttled_attack": round(
            statistics.median(throttled) / idle_p50, 2
        ),
        "authme_p50_ratio_idle_again": round(statistics.median(idle_again) / idle_p50, 2),
        "authme_p95_ratio_under_attack": round(
            stats(attacked)["p95_ms"] / stats(idle)["p95_ms"], 2
        ),
        "idle": stats(idle),
        "attack": {
            **stats(attacked),
            "attackers": args.attackers,
            "sign_in_statuses": attack_counts,
            "sign_ins_per_s": round(sum(attack_counts.values()) / (args.seconds + 2), 1),
            "server_cpu_ms_per_sign_in": attack_cpu,
            "kind": "a new username every attempt, no address limit: argon2 every time",
        },
        "idle_again": stats(idle_again),
        "throttled_attack": {
            **stats(throttled),
            "attackers": args.attackers,
            "sign_in_statuses": throttled_counts,
            "sign_ins_per_s": round(sum(throttled_counts.values()) / (args.seconds + 2), 1),
            "server_cpu_ms_per_sign_in": throttled_cpu,
            "kind": "one known account, locked by the account limit after 5 failures",
        },
        "unknown_vs_known": timing,
        "big_sign_in_bodies": bodies,
        "target": "authme_p50_ratio_under_attack <= 2",
        "server": "telemed serve (uvicorn, h11), 1 process, 1 argon2 worker, loopback",
        "services": "test instance (.dev/test), fresh database, dropped afterwards",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
        },
        "command": " ".join(["python bench/signin.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit() if args.repo == REPO else f"served from {args.repo}",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(
        f"\n/auth/me p50: idle {stats(idle)['p50_ms']} ms, under attack "
        f"{stats(attacked)['p50_ms']} ms, ratio {result['authme_p50_ratio_under_attack']}"
        " (target <= 2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
