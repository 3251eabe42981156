"""Wound cases: the nurse's upload, from the request's parts to the committed case.

The steps after it are in wounds.steps, an upload's photos in wounds.photos,
reading cases and photos in wounds.views, routing rules and service levels in
wounds.admin.

upload:  decode and check the case → scope, wound, route (one short read transaction)
         → images.sanitize every photo in worker threads (photos; nothing written yet)
         → one transaction: the media locks, files written durably (storage), wound, case,
         photos, event, 'consulted' relation, outbox, audit → 201; on any failure the files
         are removed (photos.written, media.discard).
states:  submitted ─┬─ instructions ──► answered ── nurse reads ──► closed
awaiting_specialist ┘└ question ─► awaiting_nurse ── nurse replies ──► awaiting_specialist
         (a nurse may also reply to an answered case: a follow-up question)
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from events import outbox
from telemed import audit, inputs
from telemed.access import Actor, require_patient, require_role
from telemed.db import Queries
from telemed.errors import (
    BadRequest,
    Conflict,
    FieldProblem,
    Invalid,
    NotFound,
    refuse_nul,
    validation_code,
)
from wounds import observation_numbers, observations, routing
from wounds.multipart import FilePart
from wounds.photos import PhotoOut, insert_photos, photo_out, sanitize_all, written
from wounds.storage import MediaStore

log = logging.getLogger("telemed.wounds")
Q = Queries("wounds", folder=Path(__file__).parent / "sql")

DEFAULT_LEVELS: Final = {
    "urgent": routing.ServiceLevel(urgency="urgent", working_hours=4),
    "normal": routing.ServiceLevel(urgency="normal", working_days=1),
}
_PATH = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


class WoundCaseCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The `case` part of the upload: a known wound by id, or a new wound."""

    patient_id: uuid.UUID
    observation: observations.WoundObservation
    wound_id: uuid.UUID | None = None
    wound: observations.WoundCreate | None = None
    photo_consent: bool = False  # CLINICAL.md: consent before photos go into the record


class CaseCreated(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    wound_id: uuid.UUID
    state: str
    urgent: bool
    due_at: datetime | None
    routed_org_id: uuid.UUID
    photos: list[PhotoOut]


_case_decoder: Final = msgspec.json.Decoder(WoundCaseCreate)


def decode_part(decoder: msgspec.json.Decoder, raw: bytes | None, part: str) -> Any:
    """Decode a JSON part; a problem names the field inside it, e.g. `case.observation.pain`,
    with its stable code (and, for a number, the bounds the form shows)."""
    if raw is None:
        raise Invalid(f"the part {part!r} is missing", [FieldProblem(part, "required", "required")])
    inputs.decode_json(raw, part=part, of=decoder.type)  # depth, UTF-8, NUL, dates, by field
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
        spec = observation_numbers.number_spec(field)
        params = spec.params() if spec is not None else None
        problem = FieldProblem(field, text, validation_code(text), params)
        raise Invalid(f"{field}: {text}", [problem]) from None
    except msgspec.DecodeError:
        raise BadRequest(
            f"the part {part!r} is not valid JSON", [FieldProblem(part, "not JSON", "not_json")]
        ) from None


def _problems(prefix: str, found: Iterable[observations.FieldProblem]) -> list[FieldProblem]:
    return [FieldProblem(f"{prefix}.{p.field}", p.message, p.rule) for p in found]


def check_case(data: WoundCaseCreate, raw: bytes | None = None) -> list[FieldProblem]:
    """Every rule across fields of the case, all at once; with the raw part, a number sent as
    null is refused too (a form that could not read a number must not send "not measured")."""
    problems = _problems("case.observation", observation_numbers.null_numbers(raw or b"{}"))
    problems += _problems("case.observation", observations.validate(data.observation))
    if (data.wound_id is None) == (data.wound is None):
        problems.append(
            FieldProblem(
                "case.wound",
                "give either wound_id (a known wound) or wound (a new one)",
                "wound_choice",
            )
        )
    if data.wound is not None:
        problems += _problems("case.wound", observations.validate_wound(data.wound))
        if data.wound.wound_type != data.observation.wound_type:
            problems.append(
                FieldProblem(
                    "case.observation.wound_type",
                    "differs from the new wound's type",
                    "type_differs",
                )
            )
    if not data.photo_consent:
        problems.append(
            FieldProblem(
                "case.photo_consent",
                "the patient must consent to photos in the record",
                "consent_required",
            )
        )
    return problems


async def case_event(
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
        [FieldProblem("case.observation.wound_type", "no routing rule", "no_route")],
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
    sanitize_threads: int,
    now: datetime | None = None,
) -> CaseCreated:
    """A nurse's new case: all of it stored, or none of it."""
    require_role(actor, ["nurse"])
    data: WoundCaseCreate = decode_part(_case_decoder, case_part, "case")
    refuse_nul(data, "case")
    if not photos:
        raise Invalid(
            "send at least one photo", [FieldProblem("photos", "at least one photo", "required")]
        )
    if problems := check_case(data, case_part):
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
                raise NotFound(
                    "wound not found", [FieldProblem("case.wound_id", "not found", "not_found")]
                )
        org_id, rule_id = await route_case(
            conn, data.patient_id, obs.wound_type.value, actor.organisation_id
        )
    clean = await sanitize_all(photos, max_bytes=max_photo_bytes, threads=sanitize_threads)
    now = now or datetime.now(UTC)
    async with written(conn, store, photos, clean) as photo_ids:
        created = await _insert_case(conn, actor, data, org_id, rule_id, now)
        rows = await insert_photos(
            conn, actor, created["id"], created["event_id"], photo_ids, photos, clean, now
        )
        await outbox.enqueue(
            conn,
            "wound_case.submitted",
            event_payload(created, "submitted"),
            organisation_ids=[org_id],
            patient_id=data.patient_id,
        )
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
    event_id = await case_event(
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
