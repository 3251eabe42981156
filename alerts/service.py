"""Alerts as clinicians use them: the triage queue, one alert with its readings, acknowledging
and resolving, and a specialist's instructions in reply with their confirmations.

Who sees an alert: the organisation it is routed to (the holder of responsibility when it was
measured) and the patient's holder now; both may acknowledge and resolve it, and a specialist
of either may answer it with an instruction. Anyone else whose organisation may see the
patient (a serving home-nursing unit, say) can read it and confirm its instructions. Out of
scope is "not found". Every read and change is audited.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts import lifecycle
from alerts.nomogram import Suggestion
from alerts.thresholds import dose_suggestion
from telemed import audit, outbox
from telemed.access import Actor, require_patient, require_role
from telemed.db import Queries
from telemed.errors import Conflict, FieldProblem, Forbidden, Invalid, NotFound

Q = Queries("service", folder=Path(__file__).parent / "sql")
StateFilter = Literal["open", "acknowledged", "resolved", "unresolved", "all"]
_STATES: dict[str, list[str]] = {
    "open": ["open"],
    "acknowledged": ["acknowledged"],
    "resolved": ["resolved"],
    "unresolved": ["open", "acknowledged"],
    "all": ["open", "acknowledged", "resolved"],
}
_ACTIONS = {"acknowledged": "acknowledge", "resolved": "resolve"}
CLINICIANS = ("nurse", "specialist")
Note = Annotated[str, Meta(max_length=2000)]


class AlertOut(msgspec.Struct, kw_only=True):
    id: int
    patient_id: uuid.UUID
    pseudonym: str
    patient_name: str
    rule_key: str
    metric: str
    program: str
    severity: str
    state: str
    message: str
    detail: dict[str, Any]
    first_measured_at: datetime
    last_measured_at: datetime
    last_value: float | None
    count: int
    organisation_id: uuid.UUID | None
    organisation: str | None
    holder_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    severity_changed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: uuid.UUID | None
    acknowledged_by_name: str | None
    acknowledgement_note: str | None
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    resolved_by_name: str | None
    resolution_note: str | None
    escalated_at: datetime | None
    escalation_level: int


class ReadingPoint(msgspec.Struct, kw_only=True):
    measured_at: datetime
    value: float
    unit: str
    comparator: str | None
    source: str


class ConfirmationOut(msgspec.Struct, kw_only=True):
    id: int
    user_id: uuid.UUID
    user_name: str
    kind: str
    at: datetime
    note: str | None


class InstructionOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    patient_id: uuid.UUID
    alert_id: int | None
    wound_case_id: uuid.UUID | None
    author_id: uuid.UUID
    author_name: str
    author_org_id: uuid.UUID
    author_organisation: str
    created_at: datetime
    text: str
    fields: dict[str, Any]
    confirmations: list[ConfirmationOut]


class AlertDetail(AlertOut, kw_only=True):
    readings: list[ReadingPoint]
    instructions: list[InstructionOut]
    dose_suggestion: Suggestion | None = None
    dose_suggestion_note: str | None = None


class AlertAck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Note | None = None


class AlertResolve(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, Meta(min_length=1, max_length=2000)]


CopdAction = Literal["start_rescue_pack", "call_patient", "visit_today", "change_oxygen", "other"]


class AkFields(msgspec.Struct, tag="ak", tag_field="program", forbid_unknown_fields=True):
    """Anticoagulation: the new weekly warfarin dose and when to measure INR next."""

    weekly_dose_mg: Annotated[float, Meta(gt=0, le=200)] | None = None
    next_inr_date: date | None = None


class CopdFields(msgspec.Struct, tag="copd", tag_field="program", forbid_unknown_fields=True):
    """COPD: what to do now; `oxygen_l_min` with change_oxygen, `other` with other."""

    actions: Annotated[list[CopdAction], Meta(min_length=1, max_length=5)]
    oxygen_l_min: Annotated[float, Meta(ge=0, le=15)] | None = None
    other: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class InstructionCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    text: Annotated[str, Meta(min_length=1, max_length=10000)]
    fields: AkFields | CopdFields | None = None


class ConfirmationCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["read", "carried_out"]
    note: Note | None = None


_CONFIRMATIONS = msgspec.json.Decoder(list[ConfirmationOut])


def _instruction(row: dict[str, Any]) -> InstructionOut:
    return msgspec.convert(
        {**row, "confirmations": _CONFIRMATIONS.decode(row["confirmations"])}, InstructionOut
    )


def acting_orgs(alert: dict[str, Any]) -> set[uuid.UUID]:
    """The organisations that own an alert: routed to, and the patient's holder now."""
    return {org for org in (alert["organisation_id"], alert["holder_id"]) if org is not None}


async def _alert(conn: AsyncConnection, alert_id: int) -> dict[str, Any]:
    cur = await conn.execute(Q.get_alert, {"id": alert_id})
    row = await cur.fetchone()
    if row is None:
        raise NotFound("alert not found")
    return row


async def _visible_alert(
    conn: AsyncConnection, actor: Actor, alert_id: int, *, act: bool = False
) -> dict[str, Any]:
    """The alert if the actor may read it, or with `act` act on it. Out of the actor's scope is
    not found; in scope but owned by other organisations is forbidden for acting."""
    require_role(actor, CLINICIANS)
    row = await _alert(conn, alert_id)
    if actor.organisation_id in acting_orgs(row):
        return row
    await require_patient(conn, actor, row["patient_id"])
    if act:
        raise Forbidden(
            "only the organisation the alert is routed to, or the one responsible for the "
            "patient now, can act on it"
        )
    return row


async def list_alerts(
    conn: AsyncConnection,
    actor: Actor,
    *,
    state: StateFilter = "unresolved",
    severity: Literal["yellow", "red"] | None = None,
    program: Literal["copd", "ak"] | None = None,
    limit: int = 200,
) -> list[AlertOut]:
    """The triage queue of the actor's organisation: red first, then the newest measured."""
    require_role(actor, CLINICIANS)
    params = {
        "org": actor.organisation_id,
        "states": _STATES[state],
        "severity": severity,
        "program": program,
        "limit": limit,
    }
    async with conn.transaction():
        rows = await (await conn.execute(Q.triage, params)).fetchall()
        patients = list(dict.fromkeys(r["patient_id"] for r in rows))
        await audit.record_many(conn, actor, "list", patients, object_type="alert")
    return msgspec.convert(rows, list[AlertOut])


async def patient_alerts(
    conn: AsyncConnection,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    state: StateFilter = "all",
    limit: int = 200,
) -> list[AlertOut]:
    await require_patient(conn, actor, patient_id)
    params = {"patient_id": patient_id, "states": _STATES[state], "limit": limit}
    async with conn.transaction():
        rows = await (await conn.execute(Q.patient_alerts, params)).fetchall()
        await audit.record(conn, actor, "read", patient_id=patient_id, object_type="alert")
    return msgspec.convert(rows, list[AlertOut])


async def _instructions(
    conn: AsyncConnection,
    *,
    alert_id: int | None = None,
    patient_id: uuid.UUID | None = None,
    instruction_id: uuid.UUID | None = None,
    limit: int = 200,
) -> list[InstructionOut]:
    params = {"alert_id": alert_id, "patient_id": patient_id, "id": instruction_id, "limit": limit}
    cur = await conn.execute(Q.instructions, params)
    return [_instruction(row) for row in await cur.fetchall()]


async def get_alert(
    conn: AsyncConnection,
    actor: Actor,
    alert_id: int,
    *,
    current_weekly_mg: float | None = None,
) -> AlertDetail:
    """One alert with the readings of its metric around it and the instructions answering it."""
    async with conn.transaction():
        row = await _visible_alert(conn, actor, alert_id)
        cur = await conn.execute(
            Q.readings_around,
            {
                "patient_id": row["patient_id"],
                "metric": row["metric"],
                "start": row["first_measured_at"] - timedelta(days=7),
                "end": row["last_measured_at"] + timedelta(days=2),
                "limit": 1000,
            },
        )
        readings = msgspec.convert(await cur.fetchall(), list[ReadingPoint])
        instructions = await _instructions(conn, alert_id=alert_id)
        suggestion, note = None, None
        if row["metric"] == "inr" and row["last_value"] is not None:
            last = [r for r in readings if r.measured_at == row["last_measured_at"]]
            suggestion, note = await dose_suggestion(
                conn,
                row["patient_id"],
                row["last_value"],
                last[-1].comparator if last else None,
                current_weekly_mg,
            )
        await audit.record(
            conn,
            actor,
            "read",
            patient_id=row["patient_id"],
            object_type="alert",
            object_id=alert_id,
        )
    return msgspec.convert(
        {
            **row,
            "readings": readings,
            "instructions": instructions,
            "dose_suggestion": suggestion,
            "dose_suggestion_note": note,
        },
        AlertDetail,
        from_attributes=True,
    )


async def transition(
    conn: AsyncConnection,
    actor: Actor,
    alert_id: int,
    to: Literal["acknowledged", "resolved"],
    note: str | None,
) -> AlertOut:
    """A clinician of an organisation that owns the alert moves it on."""
    async with conn.transaction():
        row = await _visible_alert(conn, actor, alert_id, act=True)
        await lifecycle.change_state(conn, alert_id, to, user_id=actor.user_id, note=note)
        detail = {"from": row["state"], "note": note} if note else {"from": row["state"]}
        await audit.record(
            conn,
            actor,
            _ACTIONS[to],
            patient_id=row["patient_id"],
            object_type="alert",
            object_id=alert_id,
            detail=detail,
        )
        return msgspec.convert(await _alert(conn, alert_id), AlertOut)


async def acknowledge(
    conn: AsyncConnection, actor: Actor, alert_id: int, data: AlertAck
) -> AlertOut:
    return await transition(conn, actor, alert_id, "acknowledged", data.note)


async def resolve(
    conn: AsyncConnection, actor: Actor, alert_id: int, data: AlertResolve
) -> AlertOut:
    note = data.note.strip()
    if not note:
        raise Invalid("a note is required", [FieldProblem("note", "must not be blank")])
    return await transition(conn, actor, alert_id, "resolved", note)


def _check_fields(alert: dict[str, Any], fields: AkFields | CopdFields | None, today: date) -> None:
    problems: list[FieldProblem] = []
    if fields is not None and fields.__struct_config__.tag != alert["program"]:
        problems.append(
            FieldProblem("fields.program", f"the alert is of program {alert['program']}")
        )
    if isinstance(fields, AkFields) and fields.next_inr_date and fields.next_inr_date < today:
        problems.append(FieldProblem("fields.next_inr_date", "is in the past"))
    if isinstance(fields, CopdFields):
        if len(set(fields.actions)) != len(fields.actions):
            problems.append(FieldProblem("fields.actions", "lists an action twice"))
        if "change_oxygen" in fields.actions and fields.oxygen_l_min is None:
            problems.append(FieldProblem("fields.oxygen_l_min", "is needed with change_oxygen"))
        if "other" in fields.actions and not (fields.other and fields.other.strip()):
            problems.append(FieldProblem("fields.other", "says what, with the action other"))
    if problems:
        raise Invalid("the instruction is not valid", problems)


async def _serving(conn: AsyncConnection, patient_id: uuid.UUID) -> list[uuid.UUID]:
    cur = await conn.execute(Q.serving_orgs, {"patient_id": patient_id})
    return [r["organisation_id"] for r in await cur.fetchall()]


async def add_instruction(
    conn: AsyncConnection, actor: Actor, alert_id: int, data: InstructionCreate
) -> InstructionOut:
    """A specialist of an organisation that owns the alert answers it."""
    require_role(actor, ("specialist",))
    async with conn.transaction():
        alert = await _visible_alert(conn, actor, alert_id, act=True)
        _check_fields(alert, data.fields, date.today())
        fields = msgspec.to_builtins(data.fields) if data.fields is not None else {}
        cur = await conn.execute(
            Q.insert_instruction,
            {
                "patient_id": alert["patient_id"],
                "alert_id": alert_id,
                "author_id": actor.user_id,
                "author_org_id": actor.organisation_id,
                "text": data.text,
                "fields": Jsonb(fields),
            },
        )
        instruction_id = (await cur.fetchone())["id"]
        await outbox.enqueue(
            conn,
            "alert.instruction",
            {**lifecycle.event_payload(alert), "instruction_id": str(instruction_id)},
            organisation_ids=lifecycle.addressees(alert, await _serving(conn, alert["patient_id"])),
            patient_id=alert["patient_id"],
        )
        await audit.record(
            conn,
            actor,
            "create",
            patient_id=alert["patient_id"],
            object_type="instruction",
            object_id=instruction_id,
            detail={"alert_id": alert_id, "fields": fields},
        )
        return (await _instructions(conn, instruction_id=instruction_id))[0]


async def patient_instructions(
    conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID, *, limit: int = 200
) -> list[InstructionOut]:
    await require_patient(conn, actor, patient_id)
    async with conn.transaction():
        found = await _instructions(conn, patient_id=patient_id, limit=limit)
        await audit.record(conn, actor, "read", patient_id=patient_id, object_type="instruction")
    return found


async def confirm_instruction(
    conn: AsyncConnection, actor: Actor, instruction_id: uuid.UUID, data: ConfirmationCreate
) -> InstructionOut:
    """The nurse or patient team says it read an instruction, or carried it out."""
    require_role(actor, CLINICIANS)
    async with conn.transaction():
        found = await _instructions(conn, instruction_id=instruction_id)
        if not found:
            raise NotFound("instruction not found")
        instruction = found[0]
        alert = None
        if instruction.alert_id is not None:
            alert = await _visible_alert(conn, actor, instruction.alert_id)
        else:
            await require_patient(conn, actor, instruction.patient_id)
        cur = await conn.execute(
            Q.insert_confirmation,
            {
                "instruction_id": instruction_id,
                "user_id": actor.user_id,
                "kind": data.kind,
                "note": data.note,
            },
        )
        if await cur.fetchone() is None:
            raise Conflict(f"you have already confirmed this instruction as {data.kind}")
        if alert is not None:
            orgs = lifecycle.addressees(
                alert, [instruction.author_org_id], await _serving(conn, alert["patient_id"])
            )
            await outbox.enqueue(
                conn,
                "alert.instruction_confirmed",
                {
                    **lifecycle.event_payload(alert),
                    "instruction_id": str(instruction_id),
                    "kind": data.kind,
                    "by": str(actor.user_id),
                },
                organisation_ids=orgs,
                patient_id=alert["patient_id"],
            )
        await audit.record(
            conn,
            actor,
            "confirm",
            patient_id=instruction.patient_id,
            object_type="instruction",
            object_id=instruction_id,
            detail={"kind": data.kind},
        )
        return (await _instructions(conn, instruction_id=instruction_id))[0]
