"""Who may see and act on an alert: the organisation it is routed to (the holder of
responsibility when it was measured) and the patient's holder now own it; anyone else whose
organisation may see the patient can read it. Out of scope is "not found"."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

from msgspec import Meta

from telemed.access import Actor, require_patient, require_role
from telemed.db import AsyncConn, Queries
from telemed.errors import Forbidden, NotFound

Q = Queries("service", folder=Path(__file__).parent / "sql")
CLINICIANS = ("nurse", "specialist")
Note = Annotated[str, Meta(max_length=2000)]  # a clinician's note on an alert or an instruction


def acting_orgs(alert: dict[str, Any]) -> set[uuid.UUID]:
    """The organisations that own an alert: routed to, and the patient's holder now."""
    return {org for org in (alert["organisation_id"], alert["holder_id"]) if org is not None}


async def alert_row(conn: AsyncConn, alert_id: int) -> dict[str, Any]:
    cur = await conn.execute(Q.get_alert, {"id": alert_id})
    row = await cur.fetchone()
    if row is None:
        raise NotFound("alert not found")
    return row


async def visible_alert(
    conn: AsyncConn, actor: Actor, alert_id: int, *, act: bool = False
) -> dict[str, Any]:
    """The alert if the actor may read it, or with `act` act on it. Out of the actor's scope is
    not found; in scope but owned by other organisations is forbidden for acting."""
    require_role(actor, CLINICIANS)
    row = await alert_row(conn, alert_id)
    if actor.organisation_id in acting_orgs(row):
        return row
    await require_patient(conn, actor, row["patient_id"])
    if act:
        raise Forbidden(
            "only the organisation the alert is routed to, or the one responsible for the "
            "patient now, can act on it"
        )
    return row


async def serving_orgs(conn: AsyncConn, patient_id: uuid.UUID) -> list[uuid.UUID]:
    cur = await conn.execute(Q.serving_orgs, {"patient_id": patient_id})
    return [r["organisation_id"] for r in await cur.fetchall()]
