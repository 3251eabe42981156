"""Operational alarms for admins: what the running system reports about itself."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from psycopg import AsyncConnection

from telemed import alarms
from telemed.access import Actor


class AlarmController(Controller):
    path = "/api/v1/admin/alarms"
    tags = ["admin"]

    @get("/", operation_id="listAlarms", summary="Operational alarms, open ones first")
    async def list_alarms(
        self,
        conn: AsyncConnection,
        actor: Actor,
        include_cleared: bool = False,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> list[alarms.AlarmOut]:
        return await alarms.list_alarms(conn, actor, include_cleared=include_cleared, limit=limit)
