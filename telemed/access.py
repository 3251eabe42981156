"""Who is asking, and what they may see.

- a nurse sees patients her organisation is responsible for or serves;
- a specialist sees patients his organisation is responsible for or is consulted on;
- an admin manages organisations, users, patients, enrollments and hand-overs, but reads no
  clinical data.
Out of scope answers "not found", so that a request never reveals that a patient exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Literal

import msgspec

from telemed.db import AsyncConn, Queries
from telemed.errors import Forbidden, NotFound

Role = Literal["nurse", "specialist", "admin"]
Q = Queries("access")

# Which relations of an organisation to a patient open the patient's data to each clinical role.
CLINICAL_RELATIONS: dict[str, tuple[str, ...]] = {
    "nurse": ("responsible", "serving"),
    "specialist": ("responsible", "consulted"),
}


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """A signed-in user (or the system) acting in one request."""

    user_id: uuid.UUID | None
    username: str
    full_name: str
    role: Role | Literal["system"]
    organisation_id: uuid.UUID | None
    client_addr: str | None = None
    request_id: str | None = None

    @property
    def kind(self) -> str:
        return "system" if self.role == "system" else "user"


SYSTEM = Actor(
    user_id=None, username="system", full_name="telemed", role="system", organisation_id=None
)


def require_role(actor: Actor, roles: Iterable[str]) -> None:
    allowed = tuple(roles)
    if actor.role not in allowed:
        raise Forbidden(f"this action needs the role {' or '.join(allowed)}")


async def patient_relations(conn: AsyncConn, actor: Actor, patient_id: uuid.UUID) -> set[str]:
    if actor.organisation_id is None:
        return set()
    cur = await conn.execute(
        Q.patient_relations, {"patient_id": patient_id, "org": actor.organisation_id}
    )
    return {row["relation"] for row in await cur.fetchall()}


async def require_patient(
    conn: AsyncConn,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    roles: Iterable[str] = ("nurse", "specialist"),
) -> set[str]:
    """Check that the actor may see this patient's clinical data; return the relations.

    Wrong role → 403; patient missing or outside the actor's scope → 404 (the same answer).
    """
    require_role(actor, roles)
    if actor.role == "admin":
        cur = await conn.execute("SELECT 1 FROM patients WHERE id = %s", (patient_id,))
        if await cur.fetchone() is None:
            raise NotFound("patient not found")
        return {"admin"}
    relations = await patient_relations(conn, actor, patient_id)
    if not relations.intersection(CLINICAL_RELATIONS.get(actor.role, ())):
        raise NotFound("patient not found")
    return relations


async def patients_in_scope(conn: AsyncConn, actor: Actor) -> list[dict]:
    relations = list(CLINICAL_RELATIONS.get(actor.role, ()))
    cur = await conn.execute(
        Q.patients_in_scope, {"org": actor.organisation_id, "relations": relations}
    )
    return await cur.fetchall()
