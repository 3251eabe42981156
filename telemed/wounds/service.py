"""Wound cases from the nurse's upload to the specialist's answer and the nurse's confirmation.

upload:  decode and check the case → scope, wound, route (one short read transaction)
         → images.sanitize every photo in worker threads (nothing written yet)
         → files written durably (storage) → one transaction: wound, case, photos, event,
         'consulted' relation, outbox, audit → 201; on any failure the files are removed.
states:  submitted ─┬─ instructions ──► answered ── nurse reads ──► closed
awaiting_specialist ┘└ question ─► awaiting_nurse ── nurse replies ──► awaiting_specialist
         (a nurse may also reply to an answered case: a follow-up question)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import uuid
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Final

import anyio
import anyio.to_thread
import msgspec
from msgspec import Meta
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from telemed import audit, outbox
from telemed.access import SYSTEM, Actor, require_patient, require_role
from telemed.db import Queries
from telemed.errors import (
    BadRequest,
    Conflict,
    DomainError,
    FieldProblem,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unsupported,
)
from telemed.wounds import images, observations, routing
from telemed.wounds.multipart import FilePart
from telemed.wounds.storage import MediaStore, PhotoFiles, Staged

log = logging.getLogger("telemed.wounds")
Q = Queries("wounds")

SPECIALIST_TURN: Final = ("submitted", "awaiting_specialist")
# step -> (states it may start from, state it leads to)
TRANSITIONS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "question": (SPECIALIST_TURN, "awaiting_nurse"),
    "answered": (SPECIALIST_TURN, "answered"),
    "reply": (("awaiting_nurse", "answered"), "awaiting_specialist"),
    "read": (("answered",), "closed"),
}
DEFAULT_LEVELS: Final = {
    "urgent": routing.ServiceLevel(urgency="urgent", working_hours=4),
    "normal": routing.ServiceLevel(urgency="normal", working_days=1),
}
_STATUS: Final[dict[int, type[DomainError]]] = {
    400: BadRequest,
    413: TooLarge,
    415: Unsupported,
    422: Invalid,
}
_PATH = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")
Text = Annotated[str, Meta(min_length=1, max_length=4000, pattern=r"\S")]
PHOTO_URL: Final = "/api/v1/wound-photos/{id}"
FORMAT_SUFFIX: Final = {"jpeg": "jpg", "png": "png", "webp": "webp", "heic": "heic"}


class WoundCaseCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `case` part of the upload: a known wound by id, or a new wound."""

    patient_id: uuid.UUID
    observation: observations.WoundObservation
    wound_id: uuid.UUID | None = None
    wound: observations.WoundCreate | None = None
    photo_consent: bool = False  # CLINICAL.md: consent before photos go into the record


class SpecialistQuestion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    question: observations.Question


class NurseReply(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `reply` part: the nurse's answer to a question, or a follow-up question."""

    text: Text


class PhotoOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    position: int
    filename: str
    format: str
    width: int
    height: int
    taken_at: datetime | None
    display_url: str
    thumb_urls: dict[str, str]
    original_url: str
    event_id: int | None = None


class CaseCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    wound_id: uuid.UUID
    state: str
    urgent: bool
    due_at: datetime | None
    routed_org_id: uuid.UUID
    photos: list[PhotoOut]


class CaseStep(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    state: str
    due_at: datetime | None
    event_id: int
    instruction_id: uuid.UUID | None = None
    photos: list[PhotoOut] = msgspec.field(default_factory=list)


def photo_out(row: dict[str, Any]) -> PhotoOut:
    base = PHOTO_URL.format(id=row["id"])
    return PhotoOut(
        id=row["id"],
        position=row["position"],
        filename=row["filename"],
        format=row["format"],
        width=row["width"],
        height=row["height"],
        taken_at=row["taken_at"],
        display_url=f"{base}/display",
        thumb_urls={str(size): f"{base}/thumb?size={size}" for size in row["thumb_sizes"]},
        original_url=f"{base}/original",
        event_id=row.get("event_id"),
    )


_case_decoder: Final = msgspec.json.Decoder(WoundCaseCreate)
_reply_decoder: Final = msgspec.json.Decoder(NurseReply)
_limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def sanitize_threads() -> int:
    return int(os.environ.get("TELEMED_WOUND_SANITIZE_THREADS", os.cpu_count() or 2))


def _limiter() -> anyio.CapacityLimiter:
    """One bound per event loop on photos decoded at once, shared by all requests: each decode
    holds a full-size image in memory and a core busy."""
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(sanitize_threads())
    return limiter


def decode_part(decoder: msgspec.json.Decoder, raw: bytes | None, part: str) -> Any:
    """Decode a JSON part; a problem names the field inside it, e.g. `case.observation.pain`."""
    if raw is None:
        raise Invalid(f"the part {part!r} is missing", [FieldProblem(part, "required")])
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = part
        if path := _PATH.search(message):
            field = f"{part}.{path.group(1)}" if path.group(1) else part
        if named := _NAMED.search(message):
            field = f"{field}.{named.group(1)}"
        text = message.split(" - at `")[0]
        raise Invalid(f"{field}: {text}", [FieldProblem(field, text)]) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(
            f"the part {part!r} is not valid JSON: {exc}", [FieldProblem(part, "not JSON")]
        ) from None


def _problems(prefix: str, found: Iterable[observations.FieldProblem]) -> list[FieldProblem]:
    return [FieldProblem(f"{prefix}.{p.field}", p.message) for p in found]


def check_case(data: WoundCaseCreate) -> list[FieldProblem]:
    """Every rule across fields of the case, all at once."""
    problems = _problems("case.observation", observations.validate(data.observation))
    if (data.wound_id is None) == (data.wound is None):
        problems.append(
            FieldProblem("case.wound", "give either wound_id (a known wound) or wound (a new one)")
        )
    if data.wound is not None:
        problems += _problems("case.wound", observations.validate_wound(data.wound))
        if data.wound.wound_type != data.observation.wound_type:
            problems.append(
                FieldProblem("case.observation.wound_type", "differs from the new wound's type")
            )
    if not data.photo_consent:
        problems.append(
            FieldProblem("case.photo_consent", "the patient must consent to photos in the record")
        )
    return problems


async def sanitize_all(photos: list[FilePart], *, max_bytes: int) -> list[images.SanitizedPhoto]:
    """Sanitise every photo in worker threads; one error naming each bad photo, or all results."""
    results: list[images.SanitizedPhoto | images.PhotoError | None] = [None] * len(photos)
    limiter = _limiter()

    async def one(part: FilePart) -> None:
        job = functools.partial(images.sanitize, part.data, max_bytes=max_bytes)
        try:
            results[part.index] = await anyio.to_thread.run_sync(job, limiter=limiter)
        except images.PhotoError as exc:
            results[part.index] = exc

    async with anyio.create_task_group() as tg:
        for part in photos:
            tg.start_soon(one, part)
    failed = [
        (part, result)
        for part, result in zip(photos, results, strict=True)
        if isinstance(result, images.PhotoError)
    ]
    if failed:
        detail = "; ".join(f"{part.label}: {error.detail}" for part, error in failed)
        problems = [FieldProblem(part.field, f"{e.code}: {e.detail}") for part, e in failed]
        raise _STATUS.get(failed[0][1].http_status, Invalid)(detail, problems)
    return [r for r in results if isinstance(r, images.SanitizedPhoto)]


async def _store_photos(
    store: MediaStore, parts: list[FilePart], clean: list[images.SanitizedPhoto], staged: Staged
) -> list[uuid.UUID]:
    files = [
        PhotoFiles(
            photo_id=uuid.uuid4(),
            sha256=s.sha256,
            original=p.data,
            display=s.display,
            thumbnails=s.thumbnails,
        )
        for p, s in zip(parts, clean, strict=True)
    ]
    await anyio.to_thread.run_sync(store.stage, files, staged)
    return [f.photo_id for f in files]


async def _discard(conn: AsyncConnection, store: MediaStore, staged: Staged) -> None:
    """After a failed transaction: remove this request's files; keep any original that a
    committed row refers to (the same bytes sent in another case)."""
    with anyio.CancelScope(shield=True):
        try:
            cur = await conn.execute(Q.referenced_originals, {"digests": staged.created_originals})
            referenced = {r["original_sha256"] for r in await cur.fetchall()}
            await conn.rollback()
        except Exception:
            log.exception("cannot check photo references; keeping the originals")
            referenced = set(staged.created_originals)
        unreferenced = set(staged.created_originals) - referenced
        await anyio.to_thread.run_sync(
            functools.partial(store.discard, staged, unreferenced=unreferenced)
        )


async def _insert_photos(
    conn: AsyncConnection,
    actor: Actor,
    case_id: uuid.UUID,
    event_id: int,
    ids: list[uuid.UUID],
    parts: list[FilePart],
    clean: list[images.SanitizedPhoto],
    now: datetime,
) -> list[dict[str, Any]]:
    cur = await conn.execute(Q.next_position, {"case_id": case_id})
    first = (await cur.fetchone())["position"]
    rows = [
        {
            "id": pid,
            "case_id": case_id,
            "event_id": event_id,
            "position": first + i,
            "filename": part.filename,
            "original_sha256": s.sha256,
            "original_bytes": len(part.data),
            "format": s.format,
            "mime": s.mime,
            "width": s.width,
            "height": s.height,
            "display_width": s.display_width,
            "display_height": s.display_height,
            "thumb_sizes": sorted(s.thumbnails, reverse=True),
            "taken_at": s.taken_at,
            "taken_at_zone_assumed": s.taken_at_zone_assumed,
            "at": now,
            "by": actor.user_id,
        }
        for i, (pid, part, s) in enumerate(zip(ids, parts, clean, strict=True))
    ]
    async with conn.cursor() as c:
        await c.executemany(Q.insert_photo, rows)
    return rows


async def _event(
    conn: AsyncConnection,
    actor: Actor,
    case_id: uuid.UUID,
    kind: str,
    *,
    now: datetime,
    from_state: str | None,
    to_state: str,
    text: str | None = None,
    instruction_id: uuid.UUID | None = None,
    detail: dict | None = None,
) -> int:
    cur = await conn.execute(
        Q.insert_event,
        {
            "case_id": case_id,
            "at": now,
            "kind": kind,
            "actor_id": actor.user_id,
            "actor_org_id": actor.organisation_id,
            "from_state": from_state,
            "to_state": to_state,
            "text": text,
            "instruction_id": instruction_id,
            "detail": Jsonb(detail) if detail else None,
        },
    )
    return (await cur.fetchone())["id"]


def event_payload(case: dict, state: str, **extra: Any) -> dict[str, Any]:
    """What an outbox event says about a case: ids and timing, never a name or a CPR number."""
    due = case.get("due_at")
    return {
        "case_id": str(case["id"]),
        "wound_id": str(case["wound_id"]),
        "state": state,
        "urgent": case["urgent"],
        "due_at": due.isoformat() if due else None,
        "routed_org_id": str(case["routed_org_id"]),
        "submitted_by_org": str(case["submitted_by_org"]),
        **extra,
    }


async def route_case(
    conn: AsyncConnection, patient_id: uuid.UUID, wound_type: str, nurse_org: uuid.UUID | None
) -> tuple[uuid.UUID, int | None]:
    """The specialist team for the case and the rule that chose it. Without a matching rule a
    hospital department responsible for the patient takes it."""
    cur = await conn.execute(Q.patient_place, {"patient_id": patient_id})
    place_row = await cur.fetchone()
    region = place_row["region"]
    if region is None and nurse_org is not None:
        cur = await conn.execute("SELECT region FROM organisations WHERE id = %s", (nurse_org,))
        region = (await cur.fetchone() or {}).get("region")
    place = routing.PatientPlace(region=region, hospitals=frozenset(place_row["hospitals"]))
    cur = await conn.execute(Q.routing_rules)
    rules = msgspec.convert(await cur.fetchall(), list[routing.RoutingRule])
    rule = routing.choose_rule(rules, wound_type, place)
    if rule is not None:
        return rule.specialist_org_id, rule.id
    if place_row["responsible_kind"] == "hospital_department":
        return place_row["responsible_org_id"], None
    raise Conflict(
        f"no specialist team receives {wound_type} wounds for this patient"
        f" (region {region or 'unknown'}); an administrator adds a wound routing rule",
        [FieldProblem("case.observation.wound_type", "no routing rule")],
    )


async def due_time(
    conn: AsyncConnection, org: uuid.UUID, urgent: bool, received: datetime
) -> datetime:
    urgency = "urgent" if urgent else "normal"
    cur = await conn.execute(Q.service_level, {"urgency": urgency, "org": org})
    row = await cur.fetchone()
    level = msgspec.convert(row, routing.ServiceLevel) if row else DEFAULT_LEVELS[urgency]
    return routing.due_at(received, level)


async def submit_case(
    conn: AsyncConnection,
    actor: Actor,
    store: MediaStore,
    *,
    case_part: bytes | None,
    photos: list[FilePart],
    max_photo_bytes: int,
    now: datetime | None = None,
) -> CaseCreated:
    """A nurse's new case: all of it stored, or none of it."""
    require_role(actor, ["nurse"])
    data: WoundCaseCreate = decode_part(_case_decoder, case_part, "case")
    if not photos:
        raise Invalid("send at least one photo", [FieldProblem("photos", "at least one photo")])
    if problems := check_case(data):
        raise Invalid(
            f"the case is not valid: {problems[0].field}: {problems[0].message}", problems
        )
    obs = data.observation
    async with conn.transaction():
        await require_patient(conn, actor, data.patient_id, roles=("nurse",))
        if data.wound_id is not None:
            cur = await conn.execute(Q.get_wound, {"id": data.wound_id})
            wound = await cur.fetchone()
            if wound is None or wound["patient_id"] != data.patient_id:
                raise NotFound("wound not found", [FieldProblem("case.wound_id", "not found")])
        org_id, rule_id = await route_case(
            conn, data.patient_id, obs.wound_type.value, actor.organisation_id
        )
    clean = await sanitize_all(photos, max_bytes=max_photo_bytes)
    now = now or datetime.now(UTC)
    staged = Staged()
    try:
        photo_ids = await _store_photos(store, photos, clean, staged)
        async with conn.transaction():
            created = await _insert_case(conn, actor, data, org_id, rule_id, now)
            rows = await _insert_photos(
                conn, actor, created["id"], created["event_id"], photo_ids, photos, clean, now
            )
            await outbox.enqueue(
                conn,
                "wound_case.submitted",
                event_payload(created, "submitted"),
                organisation_ids=[org_id],
                patient_id=data.patient_id,
            )
    except BaseException:
        await _discard(conn, store, staged)
        raise
    return CaseCreated(
        id=created["id"],
        wound_id=created["wound_id"],
        state="submitted",
        urgent=obs.urgent,
        due_at=created["due_at"],
        routed_org_id=org_id,
        photos=[photo_out(row) for row in rows],
    )


async def _insert_case(
    conn: AsyncConnection,
    actor: Actor,
    data: WoundCaseCreate,
    org_id: uuid.UUID,
    rule_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    obs = data.observation
    wound_id = data.wound_id
    if data.wound is not None:
        cur = await conn.execute(
            Q.insert_wound,
            {
                **msgspec.to_builtins(data.wound),
                "onset": data.wound.onset,
                "patient_id": data.patient_id,
                "created_by": actor.user_id,
                "created_by_org": actor.organisation_id,
            },
        )
        wound_id = (await cur.fetchone())["id"]
        await audit.record(
            conn,
            actor,
            "create",
            patient_id=data.patient_id,
            object_type="wound",
            object_id=wound_id,
        )
    case_id = uuid.uuid4()
    due = await due_time(conn, org_id, obs.urgent, now)
    await conn.execute(
        Q.insert_case,
        {
            "id": case_id,
            "wound_id": wound_id,
            "patient_id": data.patient_id,
            "urgent": obs.urgent,
            "wound_type": obs.wound_type.value,
            "observation": Jsonb(msgspec.to_builtins(obs)),
            "length_cm": obs.length_cm,
            "width_cm": obs.width_cm,
            "depth_cm": obs.depth_cm,
            "area_cm2": observations.area_cm2(obs),
            "now": now,
            "by": actor.user_id,
            "by_org": actor.organisation_id,
            "routed_org_id": org_id,
            "routing_rule_id": rule_id,
            "due_at": due,
        },
    )
    event_id = await _event(
        conn,
        actor,
        case_id,
        "submitted",
        now=now,
        from_state=None,
        to_state="submitted",
        text=obs.nurse_question,
        detail={"photo_consent": True, "routing_rule_id": rule_id},
    )
    cur = await conn.execute(
        Q.consult, {"patient_id": data.patient_id, "organisation_id": org_id, "by": actor.user_id}
    )
    if await cur.fetchone():
        await audit.record(
            conn,
            actor,
            "consult",
            patient_id=data.patient_id,
            object_type="care_relation",
            object_id=org_id,
            detail={"reason": "wound_case", "case_id": str(case_id)},
        )
    await audit.record(
        conn,
        actor,
        "create",
        patient_id=data.patient_id,
        object_type="wound_case",
        object_id=case_id,
    )
    return {
        "id": case_id,
        "wound_id": wound_id,
        "urgent": obs.urgent,
        "due_at": due,
        "routed_org_id": org_id,
        "submitted_by_org": actor.organisation_id,
        "event_id": event_id,
    }


# --- steps of a case ----------------------------------------------------------------------


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
    event_id = await _event(
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
    now: datetime | None = None,
) -> CaseStep:
    """The nurse answers the specialist's question (or asks one about the instructions), with
    new photos if she likes; the case goes back to the specialist with a new due time."""
    require_role(actor, ["nurse"])
    data: NurseReply = decode_part(_reply_decoder, reply_part, "reply")
    async with conn.transaction():  # fail fast, before decoding photos
        next_state((await _locked_case(conn, actor, case_id, "nurse"))["state"], "reply")
    clean = await sanitize_all(photos, max_bytes=max_photo_bytes) if photos else []
    now = now or datetime.now(UTC)
    staged = Staged()
    try:
        photo_ids = await _store_photos(store, photos, clean, staged)
        async with conn.transaction():
            case = await _locked_case(conn, actor, case_id, "nurse")
            due = await due_time(conn, case["routed_org_id"], case["urgent"], now)
            to, event_id = await _take_step(
                conn, actor, case, "reply", now, due_at=due, text=data.text,
                detail={"photos": len(photo_ids)},
            )  # fmt: skip
            rows = await _insert_photos(
                conn, actor, case_id, event_id, photo_ids, photos, clean, now
            )
    except BaseException:
        await _discard(conn, store, staged)
        raise
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
            await _event(
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


# --- reading cases and photos -------------------------------------------------------------


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


# --- routing rules and service levels (admin) ---------------------------------------------

Region = Annotated[str, Meta(min_length=1, max_length=100)]
Hospital = Annotated[str, Meta(min_length=1, max_length=200)]


class RoutingRuleCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    specialist_org_id: uuid.UUID
    wound_type: observations.WoundType | None = None  # None: every type
    region: Region | None = None
    hospital: Hospital | None = None
    priority: Annotated[int, Meta(ge=0, le=10000)] = 100


class RoutingRuleOut(msgspec.Struct, kw_only=True):
    id: int
    specialist_org_id: uuid.UUID
    specialist_org: str
    wound_type: str | None
    region: str | None
    hospital: str | None
    priority: int
    created_at: datetime


class ServiceLevelSet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    urgency: routing.Urgency
    organisation_id: uuid.UUID | None = None  # None: the default for every team
    working_hours: Annotated[int, Meta(ge=1, le=80)] | None = None
    working_days: Annotated[int, Meta(ge=1, le=10)] | None = None
    day_start: time = time(8, 0)
    day_end: time = time(15, 30)


class ServiceLevelOut(msgspec.Struct, kw_only=True):
    organisation_id: uuid.UUID | None
    organisation: str | None
    urgency: str
    working_hours: int | None
    working_days: int | None
    day_start: time
    day_end: time
    updated_at: datetime


async def _specialist_org(conn: AsyncConnection, org_id: uuid.UUID, field: str) -> None:
    cur = await conn.execute("SELECT kind FROM organisations WHERE id = %s", (org_id,))
    row = await cur.fetchone()
    if row is None or row["kind"] != "hospital_department":
        raise Invalid(
            "wounds are routed to a hospital department",
            [FieldProblem(field, "not a hospital department")],
        )


async def list_rules(conn: AsyncConnection, actor: Actor) -> list[RoutingRuleOut]:
    require_role(actor, ["admin"])
    cur = await conn.execute(Q.list_routing_rules)
    return msgspec.convert(await cur.fetchall(), list[RoutingRuleOut])


async def create_rule(
    conn: AsyncConnection, actor: Actor, data: RoutingRuleCreate
) -> RoutingRuleOut:
    require_role(actor, ["admin"])
    params = {**msgspec.to_builtins(data), "specialist_org_id": data.specialist_org_id}
    try:
        async with conn.transaction():
            await _specialist_org(conn, data.specialist_org_id, "specialist_org_id")
            cur = await conn.execute(Q.insert_routing_rule, {**params, "by": actor.user_id})
            rule_id = (await cur.fetchone())["id"]
            await audit.record(
                conn,
                actor,
                "create",
                object_type="wound_routing_rule",
                object_id=rule_id,
                detail=msgspec.to_builtins(data),
            )
    except UniqueViolation:
        raise Conflict("the same rule exists") from None
    return next(r for r in await list_rules(conn, actor) if r.id == rule_id)


async def delete_rule(conn: AsyncConnection, actor: Actor, rule_id: int) -> None:
    require_role(actor, ["admin"])
    async with conn.transaction():
        cur = await conn.execute(Q.delete_routing_rule, {"id": rule_id})
        if await cur.fetchone() is None:
            raise NotFound("routing rule not found")
        await audit.record(
            conn, actor, "delete", object_type="wound_routing_rule", object_id=rule_id
        )


async def list_levels(conn: AsyncConnection, actor: Actor) -> list[ServiceLevelOut]:
    require_role(actor, ["admin", "specialist", "nurse"])
    cur = await conn.execute(Q.list_service_levels)
    return msgspec.convert(await cur.fetchall(), list[ServiceLevelOut])


async def set_level(
    conn: AsyncConnection, actor: Actor, data: ServiceLevelSet
) -> list[ServiceLevelOut]:
    require_role(actor, ["admin"])
    try:
        routing.ServiceLevel(
            urgency=data.urgency,
            working_hours=data.working_hours,
            working_days=data.working_days,
            day_start=data.day_start,
            day_end=data.day_end,
        )
    except ValueError as exc:
        raise Invalid(str(exc), [FieldProblem("working_hours", str(exc))]) from None
    async with conn.transaction():
        if data.organisation_id is not None:
            await _specialist_org(conn, data.organisation_id, "organisation_id")
        await conn.execute(
            Q.upsert_service_level, {**msgspec.structs.asdict(data), "by": actor.user_id}
        )
        await audit.record(
            conn,
            actor,
            "update",
            object_type="wound_service_level",
            object_id=data.organisation_id or "default",
            detail=msgspec.to_builtins(data),
        )
    return await list_levels(conn, actor)
