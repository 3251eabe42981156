"""Health for orchestrators and monitoring (docs/deployment.md, "Health endpoints").

- `/livez` — liveness: the process answers. No database or broker call, so a slow dependency
  never gets a healthy API process restarted.
- `/readyz` — readiness: this process can do its work. A monitor in the background checks the
  database and the broker every `interval_s`, each with its own timeout; the endpoint answers
  at once from the latest results. A dependency makes the process unready only once it has not
  answered for its grace period, so a check that merely took long (a broker pausing for a
  reload, a reconnect storm) does not take the API out of service.
- `/healthz` — kept for compatibility: checks both now, each within 2 s, 503 if either fails.
  A slow broker makes it answer 503; use it for dashboards, not as a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator

import msgspec
from litestar import Litestar, Response, get
from litestar.datastructures import State

from telemed.settings import ReadinessSettings, Settings

log = logging.getLogger("telemed.health")

# An MQTT 3.1.1 CONNECT without credentials; a live broker answers CONNACK (here: refused, 5).
_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 0, 0, 0])


class Check(msgspec.Struct):
    ok: bool
    ms: float
    detail: str | None = None


class Health(msgspec.Struct):
    status: str
    database: Check
    broker: Check


class Dependency(msgspec.Struct):
    ready: bool
    ok: bool | None  # the latest check; None before the first
    ms: float | None
    detail: str | None
    last_ok_s_ago: float | None
    grace_s: float


class Readiness(msgspec.Struct):
    status: str
    database: Dependency
    broker: Dependency
    # Open operational alarms (GET /api/v1/admin/alarms lists them); they do not make this
    # process unready: they are about other processes.
    alarms: int | None


class _Probe:
    """One dependency's latest check and when it last answered."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.last: Check | None = None
        self.last_ok_at: float | None = None

    def record(self, check: Check) -> None:
        if check.ok:
            self.last_ok_at = time.monotonic()
        elif self.last is None or self.last.ok:
            log.warning("readiness: check failed (%s after %.0f ms)", check.detail, check.ms)
        self.last = check

    def view(self, now: float) -> Dependency:
        ago = None if self.last_ok_at is None else round(now - self.last_ok_at, 1)
        ready = ago is not None and ago <= self.grace_s
        last = self.last
        return Dependency(ready, last and last.ok, last and last.ms, last and last.detail, ago,
                          self.grace_s)  # fmt: skip


class Monitor:
    def __init__(self, config: ReadinessSettings, settings: Settings, pool: object) -> None:
        self.config = config
        self.settings = settings
        self.pool = pool
        self.database = _Probe(config.database_grace_s)
        self.broker = _Probe(config.broker_grace_s)
        self.alarms: int | None = None

    async def run(self) -> None:
        while True:
            try:
                db, broker = await asyncio.gather(self._database(), check_broker(
                    self.settings, self.config.broker_timeout_s))  # fmt: skip
                self.database.record(db)
                self.broker.record(broker)
            except Exception:  # the monitor must go on; readiness then ages out loudly
                log.exception("readiness: the checks failed unexpectedly")
            await asyncio.sleep(self.config.interval_s)

    async def _database(self) -> Check:
        from telemed.alarms import count_open

        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.database_timeout_s):
                async with self.pool.connection() as conn:  # type: ignore[attr-defined]
                    self.alarms = await count_open(conn)
            return Check(True, _ms(start), "answers")
        except Exception as exc:
            return Check(False, _ms(start), type(exc).__name__)

    def report(self) -> Readiness:
        now = time.monotonic()
        db, broker = self.database.view(now), self.broker.view(now)
        status = "ready" if db.ready and broker.ready else "not ready"
        return Readiness(status, db, broker, self.alarms)


@contextlib.asynccontextmanager
async def readiness_lifespan(app: Litestar) -> AsyncGenerator[None, None]:
    """The readiness monitor, for as long as the app runs (after the pool's lifespan)."""
    settings = app.state.settings
    monitor = Monitor(settings.readiness, settings, app.state.pool)
    app.state.readiness = monitor
    task = asyncio.create_task(monitor.run(), name="readiness monitor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def check_database(state: State, timeout_s: float = 2.0) -> Check:
    start = time.perf_counter()
    try:
        async with state.pool.connection(timeout=timeout_s) as conn:
            cur = await conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            )
            row = await cur.fetchone()
        detail = f"timescaledb {row['extversion']}" if row else "timescaledb missing"
        return Check(row is not None, _ms(start), detail)
    except Exception as exc:
        return Check(False, _ms(start), type(exc).__name__)


async def check_broker(settings: Settings, timeout_s: float = 2.0) -> Check:
    """An MQTT CONNECT answered by a CONNACK within `timeout_s` (connect and answer together)."""
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(settings.mqtt_host, settings.mqtt_port)
            try:
                writer.write(_CONNECT)
                await writer.drain()
                ack = await reader.readexactly(4)
            finally:
                writer.close()
        ok = ack[0] == 0x20
        return Check(ok, _ms(start), "mqtt answers" if ok else "unexpected answer")
    except Exception as exc:
        return Check(False, _ms(start), type(exc).__name__)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


@get(
    "/livez",
    operation_id="liveness",
    summary="Liveness: the process answers (no database or broker call)",
    exclude_from_auth=True,
    tags=["health"],
)
async def livez() -> dict[str, str]:
    return {"status": "alive"}


@get(
    "/readyz",
    operation_id="readiness",
    summary="Readiness: database and broker answered within their grace periods",
    exclude_from_auth=True,
    tags=["health"],
)
async def readyz(state: State) -> Response[Readiness]:
    monitor: Monitor | None = state.get("readiness")
    if monitor is None:  # an app built without the monitor's lifespan cannot know
        return Response(Readiness("not ready", *_unknown(), None), status_code=503)
    report = monitor.report()
    return Response(report, status_code=200 if report.status == "ready" else 503)


def _unknown() -> tuple[Dependency, Dependency]:
    empty = Dependency(False, None, None, "not monitored", None, 0.0)
    return empty, empty


@get(
    "/healthz",
    operation_id="health",
    summary="Database and broker checked now, 2 s each (compatibility; not for probes)",
    exclude_from_auth=True,
    tags=["health"],
)
async def healthz(state: State) -> Response[Health]:
    db, broker = await asyncio.gather(check_database(state), check_broker(state.settings))
    ok = db.ok and broker.ok
    return Response(Health("ok" if ok else "degraded", db, broker), status_code=200 if ok else 503)


ROUTES = [livez, readyz, healthz]
