"""Readings of one patient: nurse entry and the plot/series read."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, get, post
from litestar.params import Parameter, QueryParameter
from psycopg import AsyncConnection

from telemed import measurements
from telemed.access import Actor


class ReadingController(Controller):
    path = "/api/v1/patients/{patient_id:uuid}/readings"
    tags = ["readings"]

    @post(
        "/",
        operation_id="enterReadings",
        summary="A nurse records measurements she took for the patient",
    )
    async def enter(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        data: measurements.NurseReadings,
    ) -> measurements.StoredOut:
        return await measurements.record(conn, actor, patient_id, data)

    @get(
        "/",
        operation_id="listReadings",
        summary="Raw readings, or min/avg/max/count per time bucket for plots",
    )
    async def list(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        metric: str | None = None,
        start: Annotated[datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[datetime | None, QueryParameter(name="to")] = None,
        bucket: Literal["1h", "6h", "1d", "1w"] | None = None,
        limit: Annotated[int, Parameter(ge=1, le=20000)] = 5000,
    ) -> list[measurements.ReadingOut] | list[measurements.BucketOut]:
        return await measurements.list_readings(
            conn, actor, patient_id, metric=metric, start=start, end=end, bucket=bucket, limit=limit
        )
