"""A specialist's instructions in reply to an alert (COPD: what to do now; AK: the new weekly
warfarin dose and the next INR date), and the carers' confirmations that they read an
instruction (an alert's or a wound case's) or carried it out. A specialist of an organisation
that owns the alert writes one; anyone who may read it confirms. Every read and change is
audited; an instruction and a confirmation on an alert are outbox events for the alert's
addressees and the patient's serving organisations.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts import access, doses, lifecycle
from alerts.access import Note, Q
from events import outbox
from telemed import audit, numbers
from telemed.access import Actor, require_patient, require_role
from telemed.errors import Conflict, FieldProblem, Invalid, NotFound, refuse_nul


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


CopdAction = Literal["start_rescue_pack", "call_patient", "visit_today", "change_oxygen", "other"]


class AkFields(msgspec.Struct, tag="ak", tag_field="program", forbid_unknown_fields=True):
    """Anticoagulation: the new weekly dose (mg of the patient's product) and when to measure
    INR next. A dose that needs a read-back (alerts.doses) is sent with `dose_confirmation`,
    the read-back the specialist confirmed; no dose is given as null."""

    weekly_dose_mg: float | msgspec.UnsetType = msgspec.UNSET
    next_inr_date: date | None = None
    dose_confirmation: doses.DoseConfirmation | None = None


class CopdFields(msgspec.Struct, tag="copd", tag_field="program", forbid_unknown_fields=True):
    """COPD: what to do now; `oxygen_l_min` with change_oxygen, `other` with other."""

    actions: Annotated[list[CopdAction], Meta(min_length=1, max_length=5)]
    oxygen_l_min: float | msgspec.UnsetType = msgspec.UNSET
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


async def find(
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


def _check_fields(
    alert: dict[str, Any], fields: AkFields | CopdFields | None, today: date
) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if fields is not None and fields.__struct_config__.tag != alert["program"]:
        problems.append(
            FieldProblem(
                "fields.program", f"the alert is of program {alert['program']}", "wrong_program"
            )
        )
    if isinstance(fields, AkFields):
        if fields.next_inr_date and fields.next_inr_date < today:
            problems.append(FieldProblem("fields.next_inr_date", "is in the past", "past_date"))
        if fields.weekly_dose_mg is msgspec.UNSET and fields.dose_confirmation is not None:
            problems.append(FieldProblem("fields.dose_confirmation", "confirms no dose", "invalid"))
        elif fields.weekly_dose_mg is not msgspec.UNSET:
            spec = numbers.SPECS["dose.weekly_mg"]
            problem = numbers.check("fields.weekly_dose_mg", fields.weekly_dose_mg, spec)
            problems += [problem] if problem else []
    if isinstance(fields, CopdFields):
        if len(set(fields.actions)) != len(fields.actions):
            problems.append(FieldProblem("fields.actions", "lists an action twice", "invalid"))
        oxygen = None if fields.oxygen_l_min is msgspec.UNSET else fields.oxygen_l_min
        if "change_oxygen" in fields.actions and oxygen is None:
            problems.append(
                FieldProblem("fields.oxygen_l_min", "is needed with change_oxygen", "required")
            )
        problem = numbers.check("fields.oxygen_l_min", oxygen, numbers.SPECS["oxygen.l_min"])
        problems += [problem] if problem else []
        if "other" in fields.actions and not (fields.other and fields.other.strip()):
            problems.append(
                FieldProblem("fields.other", "says what, with the action other", "required")
            )
    return problems


async def _dose(
    conn: AsyncConnection, patient_id: uuid.UUID, fields: AkFields
) -> tuple[dict[str, Any] | None, FieldProblem | None]:
    """The dose's read-back as recorded with the instruction, or why it may not be sent."""
    if fields.weekly_dose_mg is msgspec.UNSET:
        return None, None
    await doses.lock_patient(conn, patient_id)
    found = doses.readback(
        await doses.current_weekly_dose(conn, patient_id),
        fields.weekly_dose_mg,
        await doses.product_of(conn, patient_id),
    )
    problem = doses.check_confirmation("fields.weekly_dose_mg", found, fields.dose_confirmation)
    record = {**msgspec.to_builtins(found), "confirmed": fields.dose_confirmation is not None}
    return record, problem


def _stored_fields(fields: AkFields | CopdFields | None, dose: dict | None) -> dict[str, Any]:
    if fields is None:
        return {}
    stored = msgspec.to_builtins(fields)
    stored.pop("dose_confirmation", None)
    if dose is not None:
        stored["dose"] = dose
    return stored


async def add_instruction(
    conn: AsyncConnection, actor: Actor, alert_id: int, data: InstructionCreate
) -> InstructionOut:
    """A specialist of an organisation that owns the alert answers it."""
    require_role(actor, ("specialist",))
    refuse_nul(data)
    async with conn.transaction():
        alert = await access.visible_alert(conn, actor, alert_id, act=True)
        problems = _check_fields(alert, data.fields, date.today())
        dose = None
        if not problems and isinstance(data.fields, AkFields):
            dose, problem = await _dose(conn, alert["patient_id"], data.fields)
            problems += [problem] if problem else []
        if problems:
            raise Invalid("the instruction is not valid", problems)
        fields = _stored_fields(data.fields, dose)
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
            organisation_ids=lifecycle.addressees(
                alert, await access.serving_orgs(conn, alert["patient_id"])
            ),
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
        return (await find(conn, instruction_id=instruction_id))[0]


async def patient_instructions(
    conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID, *, limit: int = 200
) -> list[InstructionOut]:
    await require_patient(conn, actor, patient_id)
    async with conn.transaction():
        found = await find(conn, patient_id=patient_id, limit=limit)
        await audit.record(conn, actor, "read", patient_id=patient_id, object_type="instruction")
    return found


async def confirm_instruction(
    conn: AsyncConnection, actor: Actor, instruction_id: uuid.UUID, data: ConfirmationCreate
) -> InstructionOut:
    """The nurse or patient team says it read an instruction, or carried it out."""
    require_role(actor, access.CLINICIANS)
    refuse_nul(data)
    async with conn.transaction():
        found = await find(conn, instruction_id=instruction_id)
        if not found:
            raise NotFound("instruction not found")
        instruction = found[0]
        alert = None
        if instruction.alert_id is not None:
            alert = await access.visible_alert(conn, actor, instruction.alert_id)
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
                alert,
                [instruction.author_org_id],
                await access.serving_orgs(conn, alert["patient_id"]),
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
        return (await find(conn, instruction_id=instruction_id))[0]
