"""Steps of a wound case after its upload: the specialist answers or asks, the nurse replies or
confirms she has read the answer; an overdue case is escalated.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from events import outbox
from telemed import audit
from telemed.access import SYSTEM, Actor, require_patient, require_role
from telemed.db import Queries
from telemed.errors import (
    Conflict,
    Forbidden,
    NotFound,
    refuse_nul,
)
from wounds import observations
from wounds.cases import case_event, decode_part, due_time, event_payload
from wounds.multipart import FilePart
from wounds.photos import PhotoOut, insert_photos, photo_out, sanitize_all, written
from wounds.storage import MediaStore

log = logging.getLogger("telemed.wounds")
Q = Queries("wounds", folder=Path(__file__).parent / "sql")

SPECIALIST_TURN: Final = ("submitted", "awaiting_specialist")
# step -> (states it may start from, state it leads to)
TRANSITIONS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "question": (SPECIALIST_TURN, "awaiting_nurse"),
    "answered": (SPECIALIST_TURN, "answered"),
    "reply": (("awaiting_nurse", "answered"), "awaiting_specialist"),
    "read": (("answered",), "closed"),
}
Text = Annotated[str, Meta(min_length=1, max_length=4000, pattern=r"\S")]


class SpecialistQuestion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    question: observations.Question


class NurseReply(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `reply` part: the nurse's answer to a question, or a follow-up question."""

    text: Text


_reply_decoder: Final = msgspec.json.Decoder(NurseReply)


class CaseStep(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    state: str
    due_at: datetime | None
    event_id: int
    instruction_id: uuid.UUID | None = None
    photos: list[PhotoOut] = msgspec.field(default_factory=list)


async def _locked_case(
    conn: AsyncConnection, actor: Actor, case_id: uuid.UUID, role: str
) -> dict[str, Any]:
    cur = await conn.execute(Q.case_for_update, {"id": case_id})
    case = await cur.fetchone()
    if case is None:
        raise NotFound("wound case not found")
    await require_patient(conn, actor, case["patient_id"], roles=(role,))
    if role == "specialist" and actor.organisation_id != case["routed_org_id"]:
        raise Forbidden("this case is routed to another specialist team")
    return case


def next_state(state: str, step: str) -> str:
    allowed, to = TRANSITIONS[step]
    if state not in allowed:
        raise Conflict(
            f"the case is {state}; '{step}' is possible only when it is {' or '.join(allowed)}"
        )
    return to


# step -> the outbox event, and which organisation of the case hears of it
STEP_EVENTS: Final = {
    "question": ("wound_case.question", "submitted_by_org"),
    "answered": ("wound_case.answered", "submitted_by_org"),
    "reply": ("wound_case.replied", "routed_org_id"),
    "read": ("wound_case.read", "routed_org_id"),
}


async def _take_step(
    conn: AsyncConnection,
    actor: Actor,
    case: dict[str, Any],
    step: str,
    now: datetime,
    *,
    due_at: datetime | None = None,
    text: str | None = None,
    instruction_id: uuid.UUID | None = None,
    detail: dict | None = None,
) -> tuple[str, int]:
    """Move a locked case on: new state, history event, outbox event and audit row."""
    to = next_state(case["state"], step)
    await conn.execute(
        Q.set_state,
        {"id": case["id"], "state": to, "due_at": due_at, "now": now,
         "reset_escalation": step == "reply"},
    )  # fmt: skip
    event_id = await case_event(
        conn, actor, case["id"], step, now=now, from_state=case["state"], to_state=to,
        text=text, instruction_id=instruction_id, detail=detail,
    )  # fmt: skip
    event, recipient = STEP_EVENTS[step]
    extra: dict[str, Any] = {"event_id": event_id}
    if instruction_id is not None:
        extra["instruction_id"] = str(instruction_id)
    await outbox.enqueue(
        conn,
        event,
        event_payload({**case, "due_at": due_at}, to, **extra),
        organisation_ids=[case[recipient]],
        patient_id=case["patient_id"],
    )
    await audit.record(
        conn, actor, "update", patient_id=case["patient_id"], object_type="wound_case",
        object_id=case["id"], detail={"step": step},
    )  # fmt: skip
    return to, event_id


async def answer(
    conn: AsyncConnection,
    actor: Actor,
    case_id: uuid.UUID,
    data: observations.WoundInstructions,
    *,
    now: datetime | None = None,
) -> CaseStep:
    """The routed team's instructions: a row in `instructions`, and the case is answered."""
    require_role(actor, ["specialist"])
    refuse_nul(data)
    now = now or datetime.now(UTC)
    async with conn.transaction():
        case = await _locked_case(conn, actor, case_id, "specialist")
        next_state(case["state"], "answered")
        fields = msgspec.to_builtins(data)
        text = fields.pop("free_text", "")
        cur = await conn.execute(
            Q.insert_instruction,
            {"patient_id": case["patient_id"], "case_id": case_id, "author_id": actor.user_id,
             "author_org_id": actor.organisation_id, "at": now, "text": text,
             "fields": Jsonb(fields)},
        )  # fmt: skip
        instruction_id = (await cur.fetchone())["id"]
        to, event_id = await _take_step(
            conn, actor, case, "answered", now, instruction_id=instruction_id
        )
        await audit.record(
            conn, actor, "create", patient_id=case["patient_id"], object_type="instruction",
            object_id=instruction_id, detail={"wound_case_id": str(case_id)},
        )  # fmt: skip
    return CaseStep(
        id=case_id, state=to, due_at=None, event_id=event_id, instruction_id=instruction_id
    )


async def ask(
    conn: AsyncConnection,
    actor: Actor,
    case_id: uuid.UUID,
    data: SpecialistQuestion,
    *,
    now: datetime | None = None,
) -> CaseStep:
    """The routed team asks the nurse before answering; the clock stops until she replies."""
    require_role(actor, ["specialist"])
    refuse_nul(data)
    now = now or datetime.now(UTC)
    async with conn.transaction():
        case = await _locked_case(conn, actor, case_id, "specialist")
        to, event_id = await _take_step(conn, actor, case, "question", now, text=data.question)
    return CaseStep(id=case_id, state=to, due_at=None, event_id=event_id)


async def reply(
    conn: AsyncConnection,
    actor: Actor,
    store: MediaStore,
    case_id: uuid.UUID,
    *,
    reply_part: bytes | None,
    photos: list[FilePart],
    max_photo_bytes: int,
    sanitize_threads: int,
    now: datetime | None = None,
) -> CaseStep:
    """The nurse answers the specialist's question (or asks one about the instructions), with
    new photos if she likes; the case goes back to the specialist with a new due time."""
    require_role(actor, ["nurse"])
    data: NurseReply = decode_part(_reply_decoder, reply_part, "reply")
    refuse_nul(data, "reply")
    async with conn.transaction():  # fail fast, before decoding photos
        next_state((await _locked_case(conn, actor, case_id, "nurse"))["state"], "reply")
    clean = (
        await sanitize_all(photos, max_bytes=max_photo_bytes, threads=sanitize_threads)
        if photos
        else []
    )
    now = now or datetime.now(UTC)
    async with written(conn, store, photos, clean) as photo_ids:
        case = await _locked_case(conn, actor, case_id, "nurse")
        due = await due_time(conn, case["routed_org_id"], case["urgent"], now)
        to, event_id = await _take_step(
            conn, actor, case, "reply", now, due_at=due, text=data.text,
            detail={"photos": len(photo_ids)},
        )  # fmt: skip
        rows = await insert_photos(conn, actor, case_id, event_id, photo_ids, photos, clean, now)
    return CaseStep(
        id=case_id, state=to, due_at=due, event_id=event_id, photos=[photo_out(r) for r in rows]
    )


async def confirm_read(
    conn: AsyncConnection, actor: Actor, case_id: uuid.UUID, *, now: datetime | None = None
) -> CaseStep:
    """The nurse confirms she read the instructions; the case is closed."""
    require_role(actor, ["nurse"])
    now = now or datetime.now(UTC)
    async with conn.transaction():
        case = await _locked_case(conn, actor, case_id, "nurse")
        next_state(case["state"], "read")
        cur = await conn.execute(Q.latest_instruction, {"case_id": case_id})
        instruction_id = (await cur.fetchone())["id"]
        await conn.execute(
            Q.confirm_read, {"instruction_id": instruction_id, "user_id": actor.user_id, "at": now}
        )
        to, event_id = await _take_step(
            conn, actor, case, "read", now, instruction_id=instruction_id
        )
        await audit.record(
            conn, actor, "confirm", patient_id=case["patient_id"], object_type="instruction",
            object_id=instruction_id, detail={"kind": "read", "wound_case_id": str(case_id)},
        )  # fmt: skip
    return CaseStep(
        id=case_id, state=to, due_at=None, event_id=event_id, instruction_id=instruction_id
    )


async def escalate_overdue(conn: AsyncConnection, *, now: datetime) -> int:
    """Mark every case whose answer is overdue as escalated, once per wait for the specialist,
    and tell the routed team and the nurse's organisation. Returns how many were escalated."""
    async with conn.transaction():
        cur = await conn.execute(Q.escalate_overdue, {"now": now})
        cases = await cur.fetchall()
        for case in cases:
            late = now - case["due_at"]
            await case_event(
                conn,
                SYSTEM,
                case["id"],
                "escalated",
                now=now,
                from_state=case["state"],
                to_state=case["state"],
                detail={"overdue_s": int(late.total_seconds())},
            )
            await outbox.enqueue(
                conn,
                "wound_case.escalated",
                event_payload(case, case["state"], overdue_s=int(late.total_seconds())),
                organisation_ids=[case["routed_org_id"], case["submitted_by_org"]],
                patient_id=case["patient_id"],
            )
            await audit.record(
                conn,
                SYSTEM,
                "escalate",
                patient_id=case["patient_id"],
                object_type="wound_case",
                object_id=case["id"],
            )
    if cases:
        log.info("escalated %d overdue wound cases", len(cases))
    return len(cases)
