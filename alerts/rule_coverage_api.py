"""The admin's list of running enrolments whose alert rules cannot be built as configured
(alerts.rule_coverage): the same check the scheduler's `rule_coverage` job alerts on, live."""

from __future__ import annotations

from datetime import UTC, datetime

from litestar import Controller, get

from alerts.rule_coverage import Unwatched, find_unwatched
from telemed import audit
from telemed.access import Actor, require_role
from telemed.db import AsyncConn


class RuleCoverageController(Controller):
    path = "/api/v1/admin/rule-coverage"
    tags = ["admin"]

    @get(
        "/",
        operation_id="listUnwatchedEnrollments",
        summary="Running enrolments whose alert rules cannot be built, and why",
    )
    async def list_unwatched(self, conn: AsyncConn, actor: Actor) -> list[Unwatched]:
        require_role(actor, ["admin"])
        async with conn.transaction():
            _, found = await find_unwatched(conn, now=datetime.now(UTC))
            await audit.record_many(
                conn, actor, "list", [u.patient_id for u in found], object_type="rule_coverage"
            )
        return found
