"""Reading wound cases and their photos: a case with its history, a patient's wounds, a team's
queue, a photo file; each in the reader's scope and audited.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import msgspec
from psycopg import AsyncConnection

from telemed import audit
from telemed.access import Actor, require_patient, require_role
from telemed.db import Queries
from telemed.errors import (
    FieldProblem,
    Invalid,
    NotFound,
)
from wounds import observations
from wounds.photos import PHOTO_URL, PhotoOut, photo_out
from wounds.steps import TRANSITIONS
from wounds.storage import MediaStore

log = logging.getLogger("telemed.wounds")
Q = Queries("wounds", folder=Path(__file__).parent / "sql")

FORMAT_SUFFIX: Final = {"jpeg": "jpg", "png": "png", "webp": "webp", "heic": "heic"}


class WoundOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    wound_type: str
    body_location: str
    laterality: str
    location_detail: str
    onset: date | None
    created_at: datetime


class ReadBy(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    name: str
    at: datetime


class InstructionOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    case_id: uuid.UUID
    author_id: uuid.UUID
    author_name: str
    author_org_id: uuid.UUID
    author_org_name: str
    created_at: datetime
    instructions: observations.WoundInstructions
    read_by: list[ReadBy]


class EventOut(msgspec.Struct, kw_only=True):
    id: int
    at: datetime
    kind: str
    actor_id: uuid.UUID | None
    actor_name: str | None
    actor_org_id: uuid.UUID | None
    actor_org_name: str | None
    from_state: str | None
    to_state: str
    text: str | None
    instruction_id: uuid.UUID | None


class SizePoint(msgspec.Struct, kw_only=True):
    case_id: uuid.UUID
    at: datetime
    length_cm: float | None
    width_cm: float | None
    depth_cm: float | None
    area_cm2: float | None


class CaseSummary(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    submitted_at: datetime
    state: str
    urgent: bool
    observation: observations.WoundObservation
    area_cm2: float | None
    photos: list[PhotoOut]
    instructions: list[InstructionOut]


class WoundCaseOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    patient_id: uuid.UUID
    patient_pseudonym: str
    patient_name: str
    wound: WoundOut
    state: str
    urgent: bool
    observation: observations.WoundObservation
    area_cm2: float | None
    submitted_at: datetime
    submitted_by: uuid.UUID
    submitted_by_name: str
    submitted_by_org: uuid.UUID
    submitted_by_org_name: str
    routed_org_id: uuid.UUID
    routed_org_name: str
    due_at: datetime | None
    escalated_at: datetime | None
    answered_at: datetime | None
    closed_at: datetime | None
    actions: list[str]  # the steps the caller may take now
    photos: list[PhotoOut]
    instructions: list[InstructionOut]
    history: list[EventOut]
    earlier_cases: list[CaseSummary]  # the same wound's, oldest first
    size_over_time: list[SizePoint]  # every case of the wound, oldest first


class QueueItem(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    patient_id: uuid.UUID
    patient_pseudonym: str
    patient_name: str
    wound_id: uuid.UUID
    wound_type: str
    body_location: str
    laterality: str
    state: str
    urgent: bool
    submitted_at: datetime
    due_at: datetime | None
    overdue: bool
    escalated_at: datetime | None
    updated_at: datetime
    routed_org_id: uuid.UUID
    routed_org_name: str
    submitted_by_org: uuid.UUID
    submitted_by_org_name: str
    photo_count: int
    thumb_url: str | None


class PhotoFile(msgspec.Struct, frozen=True, kw_only=True):
    data: bytes
    mime: str
    download_name: str


def actions_for(actor: Actor, state: str, routed_org_id: uuid.UUID) -> list[str]:
    if actor.role == "specialist" and actor.organisation_id == routed_org_id:
        steps = ("answered", "question")
    elif actor.role == "nurse":
        steps = ("reply", "read")
    else:
        return []
    names = {
        "answered": "instructions",
        "question": "questions",
        "reply": "replies",
        "read": "read",
    }
    return [names[s] for s in steps if state in TRANSITIONS[s][0]]


def _instruction_out(row: dict[str, Any]) -> InstructionOut:
    fields = {**row["fields"], "free_text": row["text"]}
    return msgspec.convert({**row, "instructions": fields}, InstructionOut, from_attributes=False)


async def get_case(conn: AsyncConnection, actor: Actor, case_id: uuid.UUID) -> WoundCaseOut:
    """The case with its photos, instructions and history, and the same wound's earlier cases
    side by side."""
    require_role(actor, ["nurse", "specialist"])
    async with conn.transaction():
        cur = await conn.execute(Q.get_case, {"id": case_id})
        row = await cur.fetchone()
        if row is None:
            raise NotFound("wound case not found")
        await require_patient(conn, actor, row["patient_id"])
        wound = await (await conn.execute(Q.get_wound, {"id": row["wound_id"]})).fetchone()
        cases = await (await conn.execute(Q.wound_cases, {"wound_id": row["wound_id"]})).fetchall()
        position = next(i for i, c in enumerate(cases) if c["id"] == case_id)
        earlier = cases[:position]
        ids = [c["id"] for c in earlier] + [case_id]
        photos = await (await conn.execute(Q.photos_of_cases, {"case_ids": ids})).fetchall()
        instr = await (await conn.execute(Q.instructions_of_cases, {"case_ids": ids})).fetchall()
        events = await (await conn.execute(Q.events_of_case, {"case_id": case_id})).fetchall()
        await audit.record(
            conn,
            actor,
            "read",
            patient_id=row["patient_id"],
            object_type="wound_case",
            object_id=case_id,
        )
    photos_by: dict[uuid.UUID, list[PhotoOut]] = {}
    for p in photos:
        photos_by.setdefault(p["case_id"], []).append(photo_out(p))
    instr_by: dict[uuid.UUID, list[InstructionOut]] = {}
    for i in instr:
        instr_by.setdefault(i["case_id"], []).append(_instruction_out(i))
    return msgspec.convert(
        {
            **row,
            "wound": wound,
            "actions": actions_for(actor, row["state"], row["routed_org_id"]),
            "photos": photos_by.get(case_id, []),
            "instructions": instr_by.get(case_id, []),
            "history": events,
            "earlier_cases": [
                {
                    **c,
                    "photos": photos_by.get(c["id"], []),
                    "instructions": instr_by.get(c["id"], []),
                }
                for c in earlier
            ],
            "size_over_time": [{**c, "case_id": c["id"], "at": c["submitted_at"]} for c in cases],
        },
        WoundCaseOut,
        from_attributes=True,
    )


class WoundSummary(WoundOut, kw_only=True):
    case_count: int
    last_case_id: uuid.UUID | None
    last_submitted_at: datetime | None
    last_state: str | None
    last_area_cm2: float | None


async def list_wounds(
    conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
) -> list[WoundSummary]:
    """A patient's wounds with their latest case: what a nurse picks from for a new case."""
    require_role(actor, ["nurse", "specialist"])
    async with conn.transaction():
        await require_patient(conn, actor, patient_id)
        cur = await conn.execute(Q.wounds_of_patient, {"patient_id": patient_id})
        rows = await cur.fetchall()
        await audit.record(conn, actor, "list", patient_id=patient_id, object_type="wound")
    return msgspec.convert(rows, list[WoundSummary])


QUEUE_STATES: Final = {
    "open": ("submitted", "awaiting_specialist", "awaiting_nurse", "answered"),
    "all": ("submitted", "awaiting_specialist", "awaiting_nurse", "answered", "closed"),
}


async def list_queue(
    conn: AsyncConnection, actor: Actor, state: str | None = None, *, limit: int = 200
) -> list[QueueItem]:
    """Specialists: the cases routed to their team. Nurses: the cases of their patients."""
    require_role(actor, ["nurse", "specialist"])
    states = QUEUE_STATES.get(state or "open", (state,))
    relations = ["serving"] if actor.role == "nurse" else ["consulted"]
    async with conn.transaction():
        cur = await conn.execute(
            Q.queue,
            {
                "states": list(states),
                "role": actor.role,
                "org": actor.organisation_id,
                "relations": relations,
                "limit": limit,
            },
        )
        rows = await cur.fetchall()
        await audit.record_many(
            conn,
            actor,
            "list",
            list(dict.fromkeys(r["patient_id"] for r in rows)),
            object_type="wound_case",
        )
    for r in rows:
        first = r["first_photo_id"]
        r["thumb_url"] = f"{PHOTO_URL.format(id=first)}/thumb?size=240" if first else None
    return msgspec.convert(rows, list[QueueItem])


async def photo_file(
    conn: AsyncConnection,
    actor: Actor,
    store: MediaStore,
    photo_id: uuid.UUID,
    variant: str,
    size: int | None = None,
) -> PhotoFile:
    """One stored file of a photo, for someone who may see the patient; every access audited."""
    require_role(actor, ["nurse", "specialist"])
    async with conn.transaction():
        row = await (await conn.execute(Q.photo, {"id": photo_id})).fetchone()
        if row is None:
            raise NotFound("photo not found")
        await require_patient(conn, actor, row["patient_id"])
        if variant == "thumb" and size not in row["thumb_sizes"]:
            sizes = ", ".join(str(s) for s in row["thumb_sizes"])
            raise Invalid(f"size must be one of {sizes}", [FieldProblem("size", sizes)])
        await audit.record(
            conn,
            actor,
            "read",
            patient_id=row["patient_id"],
            object_type="wound_photo",
            object_id=photo_id,
            detail={"variant": variant, **({"size": size} if size else {})},
        )
    if variant == "original":
        path = store.original_path(row["original_sha256"])
        mime, name = row["mime"], f"wound-photo-{photo_id}.{FORMAT_SUFFIX[row['format']]}"
    else:
        path = (
            store.display_path(photo_id)
            if variant == "display"
            else store.thumb_path(photo_id, size or 0)
        )
        mime, name = "image/jpeg", f"wound-photo-{photo_id}-{variant}.jpg"
    try:
        data = await anyio.to_thread.run_sync(store.read, path)
    except FileNotFoundError:
        log.error("file of wound photo %s (%s) is missing", photo_id, variant)
        raise NotFound("the photo file is missing") from None
    return PhotoFile(data=data, mime=mime, download_name=name)
