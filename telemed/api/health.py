"""Liveness of the parts the API depends on: the database and the MQTT broker."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import Response, get
from litestar.datastructures import State

from telemed.settings import Settings

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


async def check_database(state: State) -> Check:
    start = time.perf_counter()
    try:
        async with state.pool.connection(timeout=2) as conn:
            cur = await conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            )
            row = await cur.fetchone()
        detail = f"timescaledb {row['extversion']}" if row else "timescaledb missing"
        return Check(row is not None, _ms(start), detail)
    except Exception as exc:
        return Check(False, _ms(start), type(exc).__name__)


async def check_broker(settings: Settings) -> Check:
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(settings.mqtt_host, settings.mqtt_port), 2
        )
        try:
            writer.write(_CONNECT)
            await writer.drain()
            ack = await asyncio.wait_for(reader.readexactly(4), 2)
        finally:
            writer.close()
        ok = ack[0] == 0x20
        return Check(ok, _ms(start), "mqtt answers" if ok else "unexpected answer")
    except Exception as exc:
        return Check(False, _ms(start), type(exc).__name__)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


@get(
    "/healthz",
    operation_id="health",
    summary="Database and broker liveness",
    exclude_from_auth=True,
    tags=["health"],
)
async def healthz(state: State) -> Response[Health]:
    db, broker = await asyncio.gather(check_database(state), check_broker(state.settings))
    ok = db.ok and broker.ok
    return Response(Health("ok" if ok else "degraded", db, broker), status_code=200 if ok else 503)
