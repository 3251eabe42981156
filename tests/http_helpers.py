"""The API as production runs it: `telemed serve` (uvicorn) in its own process, and HTTP clients
that connect from a chosen loopback address (127.0.0.0/8 is all loopback on Linux), so that
tests can play several client addresses and a proxy."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from telemed.settings import REPO_ROOT


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Served:
    base: str
    host: str
    port: int
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def telemed_serve(
    dsn: str, log_dir: Path, *, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[Served]:
    """`telemed serve` on a free port with `env` added to this process's environment."""
    port = free_port(host)
    log = log_dir / f"serve-{port}.log"
    full = {**os.environ, "TELEMED_DSN": dsn, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", host, "--port", str(port)],
            env=full,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://{host}:{port}", host, port, proc, log)
    try:
        _wait_listening(served)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(served: Served, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise RuntimeError(f"telemed serve exited: {served.log_text()[-2000:]}")
        try:
            with socket.create_connection((served.host, served.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"telemed serve did not start: {served.log_text()[-2000:]}")


def client_from(address: str, **kwargs) -> httpx.Client:
    """An HTTP client whose connections come from `address` (a loopback address)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), **kwargs)


def async_client_from(address: str, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), **kwargs)


def raw_request(host: str, port: int, head: bytes, body: bytes = b"", *, timeout: float = 10):
    """Send `head` (and `body`) on a socket and read until the server closes or `timeout`.
    Returns (status, headers dict, body bytes); status 0 when nothing came back."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        # The server may answer and close before it has read everything.
        with contextlib.suppress(OSError):
            s.sendall(head + body)
        return read_response(s, timeout=timeout)


def read_response(s: socket.socket, *, timeout: float = 10):
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, rest = data.partition(b"\r\n\r\n")
            headers = _headers(head)
            length = int(headers.get("content-length", "-1"))
            if length >= 0 and len(rest) >= length:
                break
    if not data:
        return 0, {}, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, _headers(head), rest


def _headers(head: bytes) -> dict[str, str]:
    out = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        out[name.strip().lower()] = value.strip()
    return out
