"""Alerts as clinicians use them: the triage queue, one alert with its readings and the
instructions answering it, acknowledging and resolving.

Who sees an alert (alerts.access): the organisation it is routed to (the holder of
responsibility when it was measured) and the patient's holder now; both may acknowledge and
resolve it, and a specialist of either may answer it with an instruction (alerts.instructions).
Anyone else whose organisation may see the patient (a serving home-nursing unit, say) can read
it and confirm its instructions. Out of scope is "not found". Every read and change is audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from alerts import access, instructions, lifecycle
from alerts.access import CLINICIANS, Note
from alerts.instructions import InstructionOut
from alerts.nomogram import Suggestion
from alerts.thresholds import dose_suggestion
from telemed import audit
from telemed.access import Actor, require_patient, require_role
from telemed.db import AsyncConn, Queries
from telemed.errors import FieldProblem, Invalid

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
    # The reading the message names (lifecycle.arrival): measured and received, and whether it
    # came late; and what the escalation deadline counts from ("raised" or "upgraded": when the
    # alert reached the team, whenever the reading was measured).
    reading_measured_at: datetime | None = None
    reading_received_at: datetime | None = None
    arrival_delay_minutes: float | None = None
    late: bool = False
    escalation_clock: Literal["raised", "upgraded"] = "raised"
    escalation_counts_from: datetime | None = None


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, **lifecycle.arrival(row)}


class ReadingPoint(msgspec.Struct, kw_only=True):
    measured_at: datetime
    value: float
    unit: str
    comparator: str | None
    source: str


class AlertDetail(AlertOut, kw_only=True):
    readings: list[ReadingPoint]
    instructions: list[InstructionOut]
    dose_suggestion: Suggestion | None = None
    dose_suggestion_note: str | None = None


class AlertAck(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Note | None = None


class AlertResolve(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    note: Annotated[str, Meta(min_length=1, max_length=2000)]


async def list_alerts(
    conn: AsyncConn,
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
    return msgspec.convert([_out(r) for r in rows], list[AlertOut])


async def patient_alerts(
    conn: AsyncConn,
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
    return msgspec.convert([_out(r) for r in rows], list[AlertOut])


async def get_alert(
    conn: AsyncConn,
    actor: Actor,
    alert_id: int,
    *,
    current_weekly_mg: float | None = None,
) -> AlertDetail:
    """One alert with the readings of its metric around it and the instructions answering it."""
    async with conn.transaction():
        row = await access.visible_alert(conn, actor, alert_id)
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
        answered = await instructions.find(conn, alert_id=alert_id)
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
            **_out(row),
            "readings": readings,
            "instructions": answered,
            "dose_suggestion": suggestion,
            "dose_suggestion_note": note,
        },
        AlertDetail,
        from_attributes=True,
    )


async def transition(
    conn: AsyncConn,
    actor: Actor,
    alert_id: int,
    to: Literal["acknowledged", "resolved"],
    note: str | None,
) -> AlertOut:
    """A clinician of an organisation that owns the alert moves it on."""
    async with conn.transaction():
        row = await access.visible_alert(conn, actor, alert_id, act=True)
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
        return msgspec.convert(_out(await access.alert_row(conn, alert_id)), AlertOut)


async def acknowledge(conn: AsyncConn, actor: Actor, alert_id: int, data: AlertAck) -> AlertOut:
    return await transition(conn, actor, alert_id, "acknowledged", data.note)


async def resolve(conn: AsyncConn, actor: Actor, alert_id: int, data: AlertResolve) -> AlertOut:
    note = data.note.strip()
    if not note:
        raise Invalid("a note is required", [FieldProblem("note", "must not be blank")])
    return await transition(conn, actor, alert_id, "resolved", note)
