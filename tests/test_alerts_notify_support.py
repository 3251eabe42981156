"""Fixtures shared by the notification, escalation and scheduler tests (no tests here).

Sweeps and deliverers act on the whole database, so these tests get a database of their own:
jobs never touch other tests' patients, and other tests' rows never show up in the counts here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import msgspec
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from telemed.settings import REPO_ROOT, Settings
from tests import services
from tests.conftest import Factory, free_port

T = TypeVar("T")


def run_async(coro: Coroutine[object, object, T]) -> T:
    """asyncio.run, in a thread of its own when this thread already runs a loop (Playwright's
    sync API leaves one running for the browser tests of the same session)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def own_dsn(service_env: dict[str, str]) -> Iterator[str]:
    for attempt in range(20):
        try:
            dsn = services.fresh_database(service_env["TELEMED_DSN"], REPO_ROOT / "migrations")
            break
        except psycopg.errors.ObjectInUse:
            # TimescaleDB's background-worker scheduler visits the template now and then, and
            # CREATE DATABASE ... TEMPLATE refuses while it is connected.
            if attempt == 19:
                raise
            time.sleep(0.5)
    yield dsn
    services.drop_database(dsn)


@pytest.fixture
def own_db(own_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(own_dsn, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def own_factory(own_db: psycopg.Connection) -> Factory:
    return Factory(own_db)


@pytest.fixture(scope="module")
def own_settings(service_env: dict[str, str], own_dsn: str, tmp_path_factory) -> Settings:
    return services.test_settings(service_env, own_dsn, tmp_path_factory.mktemp("own"))


@pytest.fixture(scope="module")
def events_settings(own_settings: Settings) -> Settings:
    """The events server's settings: webhooks may go to the test receiver on loopback."""
    webhooks = msgspec.structs.replace(
        own_settings.webhooks, allowed_hosts=frozenset({"127.0.0.1"})
    )
    return msgspec.structs.replace(own_settings, webhooks=webhooks)


@pytest.fixture(scope="module")
def events_app(events_settings: Settings):
    from app.asgi import create_app

    return create_app(events_settings)


@contextmanager
def stream_settings(app, **changes: float) -> Iterator[None]:
    """The event stream's settings of a running app changed for a while (the handler reads
    them from the app's state at each request)."""
    settings = app.state.settings
    events = msgspec.structs.replace(settings.events, **changes)
    app.state.settings = msgspec.structs.replace(settings, events=events)
    try:
        yield
    finally:
        app.state.settings = settings


@pytest.fixture(scope="module")
def events_server(events_app) -> Iterator[str]:
    import uvicorn

    port = free_port()
    app = events_app
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    server.force_exit = True
    thread.join(timeout=10)


def enqueue(
    conn: psycopg.Connection,
    event: str,
    payload: dict,
    orgs: list[uuid.UUID],
    patient_id: uuid.UUID | None = None,
) -> int:
    row = conn.execute(
        "INSERT INTO outbox (event, patient_id, organisation_ids, payload) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (event, patient_id, orgs, Jsonb(payload)),
    ).fetchone()
    return row["id"]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP receiver on a loopback port answering with scripted statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self) -> int:
        return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.answer()
            state.received.append(Received({k: v for k, v in self.headers.items()}, body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
