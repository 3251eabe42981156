"""Patients and their enrollments, and who read or changed a patient's data (telemed.care: who
holds responsibility for them and who takes part in care)."""

from __future__ import annotations

import secrets
import uuid
from datetime import date, datetime
from typing import Annotated

import msgspec
from msgspec import Meta
from psycopg import errors

from telemed import audit
from telemed import cpr as cpr_store
from telemed.access import Actor, patients_in_scope, require_patient, require_role
from telemed.catalogue import programs as catalogue
from telemed.cpr import CprError, birth_date, normalise_cpr
from telemed.db import AsyncConn, Queries, Row, one_row
from telemed.directory import get_organisation
from telemed.errors import Conflict, FieldProblem, Invalid, NotFound

Q = Queries("patients")
AQ = Queries("access")
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Program = catalogue.Program
_PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class EnrollmentCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    program: Program
    stratum: Annotated[str, Meta(min_length=1, max_length=20)]
    start_date: date
    end_date: date | None = None


class PatientCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    date_of_birth: date
    responsible_organisation_id: uuid.UUID
    cpr: Annotated[str, Meta(max_length=11)] | None = None
    region: Annotated[str, Meta(max_length=100)] | None = None
    enrollment: EnrollmentCreate | None = None


class PatientOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    pseudonym: str
    name: str
    date_of_birth: date
    region: str | None
    created_at: datetime
    responsible_organisation_id: uuid.UUID | None = None
    responsible_organisation: str | None = None


class EnrollmentOut(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    patient_id: uuid.UUID
    program: str
    stratum: str
    start_date: date
    end_date: date | None
    created_at: datetime


class EnrollmentEnd(msgspec.Struct, forbid_unknown_fields=True):
    end_date: date


class PatientDetail(PatientOut, kw_only=True):
    enrollments: list[EnrollmentOut] = []
    your_relations: list[str] = []


class AccessLogEntry(msgspec.Struct, kw_only=True):
    at: datetime
    actor_kind: str
    actor_id: str | None
    actor_name: str | None
    actor_role: str | None
    actor_organisation: str | None
    action: str
    object_type: str | None
    object_id: str | None
    client_addr: str | None


def new_pseudonym() -> str:
    return "P-" + "".join(secrets.choice(_PSEUDONYM_ALPHABET) for _ in range(8))


def check_stratum(program: str, stratum: str, field: str = "stratum") -> None:
    """Refuse a stratum the clinical catalogue does not cover (and so no alert rules would
    watch), naming the field and what is allowed."""
    try:
        catalogue.check_stratum(program, stratum)
    except (catalogue.UnknownProgram, catalogue.UnknownStratum) as exc:
        raise Invalid(
            "the clinical catalogue does not cover this stratum", [FieldProblem(field, str(exc))]
        ) from None


def _validate_patient(data: PatientCreate) -> str | None:
    problems: list[FieldProblem] = []
    cpr = None
    if data.date_of_birth > date.today():
        problems.append(FieldProblem("date_of_birth", "is in the future"))
    if data.cpr is not None:
        try:
            cpr = normalise_cpr(data.cpr)
            if birth_date(cpr) != data.date_of_birth:
                problems.append(FieldProblem("cpr", "does not match date_of_birth"))
        except CprError as exc:
            problems.append(FieldProblem("cpr", str(exc)))
    if problems:
        raise Invalid("invalid patient", problems)
    if data.enrollment:
        check_stratum(data.enrollment.program, data.enrollment.stratum, "enrollment.stratum")
    return cpr


async def create_patient(
    conn: AsyncConn, actor: Actor, data: PatientCreate, cpr_keys: cpr_store.CprKeys
) -> PatientOut:
    require_role(actor, ["admin"])
    cpr = _validate_patient(data)
    await get_organisation(conn, data.responsible_organisation_id)
    try:
        async with conn.transaction():
            protected = await cpr_store.protect(conn, cpr_keys, cpr)
            cur = await conn.execute(
                Q.insert_patient,
                {
                    "pseudonym": new_pseudonym(),
                    "name": data.name,
                    "date_of_birth": data.date_of_birth,
                    **protected,
                    "region": data.region,
                    "created_by": actor.user_id,
                },
            )
            patient = one_row(await cur.fetchone(), "the inserted patient")
            await conn.execute(
                Q.insert_responsibility,
                {
                    "patient_id": patient["id"],
                    "organisation_id": data.responsible_organisation_id,
                    "since": None,
                    "reason": "enrolled",
                    "by": actor.user_id,
                },
            )
            if data.enrollment:
                await _insert_enrollment(conn, actor, patient["id"], data.enrollment)
            await audit.record(
                conn,
                actor,
                "create",
                patient_id=patient["id"],
                object_type="patient",
                object_id=patient["id"],
            )
    except errors.UniqueViolation:
        raise Conflict(
            "a patient with this CPR number exists",
            [FieldProblem("cpr", "already registered", "already_registered")],
        ) from None
    return await patient_or_404(conn, patient["id"])


async def patient_or_404(conn: AsyncConn, patient_id: uuid.UUID) -> PatientOut:
    cur = await conn.execute(Q.get_patient, {"id": patient_id})
    row = await cur.fetchone()
    if row is None:
        raise NotFound("patient not found")
    return msgspec.convert(row, PatientOut)


async def list_patients(conn: AsyncConn, actor: Actor) -> list[PatientOut]:
    """Admins see the register; clinicians see the patients in their organisation's scope."""
    if actor.role == "admin":
        cur = await conn.execute(Q.list_patients)
        rows = await cur.fetchall()
    else:
        require_role(actor, ["nurse", "specialist"])
        ids = [r["id"] for r in await patients_in_scope(conn, actor)]
        rows = []
        for pid in ids:
            cur = await conn.execute(Q.get_patient, {"id": pid})
            rows.append(one_row(await cur.fetchone(), f"patient {pid} in scope"))
    async with conn.transaction():
        await audit.record_many(conn, actor, "list", [r["id"] for r in rows], object_type="patient")
    return msgspec.convert(rows, list[PatientOut])


async def get_patient(conn: AsyncConn, actor: Actor, patient_id: uuid.UUID) -> PatientDetail:
    relations = await require_patient(
        conn, actor, patient_id, roles=("nurse", "specialist", "admin")
    )
    async with conn.transaction():
        cur = await conn.execute(Q.get_patient, {"id": patient_id})
        row = one_row(await cur.fetchone(), f"patient {patient_id}, whose access was checked")
        cur = await conn.execute(Q.list_enrollments, {"patient_id": patient_id})
        enrollments = await cur.fetchall()
        await audit.record(
            conn, actor, "read", patient_id=patient_id, object_type="patient", object_id=patient_id
        )
    return msgspec.convert(
        {**row, "enrollments": enrollments, "your_relations": sorted(relations)}, PatientDetail
    )


async def _insert_enrollment(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, data: EnrollmentCreate
) -> Row:
    try:
        async with conn.transaction():
            cur = await conn.execute(
                Q.insert_enrollment,
                {
                    "patient_id": patient_id,
                    **msgspec.structs.asdict(data),
                    "created_by": actor.user_id,
                },
            )
            return one_row(await cur.fetchone(), "the inserted enrollment")
    except errors.UniqueViolation:
        raise Conflict(f"the patient already has a running {data.program} enrollment") from None
    except errors.CheckViolation as exc:
        if exc.diag.constraint_name == "enrollments_stratum_in_catalogue":
            # The database's copy of the catalogue refused what check_stratum let through.
            raise Invalid(
                "the clinical catalogue does not cover this stratum",
                [FieldProblem("stratum", catalogue.allowed_text(data.program))],
            ) from None
        raise Invalid(
            "invalid enrollment", [FieldProblem("end_date", "must not be before start_date")]
        ) from None


async def enroll(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, data: EnrollmentCreate
) -> EnrollmentOut:
    require_role(actor, ["admin"])
    check_stratum(data.program, data.stratum)
    await patient_or_404(conn, patient_id)
    async with conn.transaction():
        row = await _insert_enrollment(conn, actor, patient_id, data)
        await audit.record(
            conn,
            actor,
            "create",
            patient_id=patient_id,
            object_type="enrollment",
            object_id=row["id"],
            detail={"program": data.program, "stratum": data.stratum},
        )
    return msgspec.convert(row, EnrollmentOut)


async def end_enrollment(
    conn: AsyncConn,
    actor: Actor,
    patient_id: uuid.UUID,
    enrollment_id: uuid.UUID,
    data: EnrollmentEnd,
) -> EnrollmentOut:
    require_role(actor, ["admin"])
    try:
        async with conn.transaction():
            cur = await conn.execute(
                Q.end_enrollment,
                {"id": enrollment_id, "patient_id": patient_id, "end_date": data.end_date},
            )
            row = await cur.fetchone()
            if row is None:
                raise NotFound("no running enrollment with this id")
            await audit.record(
                conn,
                actor,
                "end",
                patient_id=patient_id,
                object_type="enrollment",
                object_id=enrollment_id,
            )
    except errors.CheckViolation:
        raise Invalid(
            "invalid end date", [FieldProblem("end_date", "must not be before start_date")]
        ) from None
    return msgspec.convert(row, EnrollmentOut)


async def read_audited(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID, query: str, object_type: str
) -> list[dict]:
    """Rows about one patient that the actor may see, with the audit row for reading them."""
    await require_patient(conn, actor, patient_id, roles=("nurse", "specialist", "admin"))
    async with conn.transaction():
        cur = await conn.execute(query, {"patient_id": patient_id})
        rows = await cur.fetchall()
        await audit.record(conn, actor, "read", patient_id=patient_id, object_type=object_type)
    return rows


async def list_enrollments(
    conn: AsyncConn, actor: Actor, patient_id: uuid.UUID
) -> list[EnrollmentOut]:
    rows = await read_audited(conn, actor, patient_id, Q.list_enrollments, "enrollment")
    return msgspec.convert(rows, list[EnrollmentOut])


async def access_log(
    conn: AsyncConn,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    since: datetime | None = None,
    limit: int = 500,
) -> list[AccessLogEntry]:
    """Who read or changed this patient's data (as patients see it on sundhed.dk)."""
    await require_patient(conn, actor, patient_id, roles=("nurse", "specialist", "admin"))
    async with conn.transaction():
        cur = await conn.execute(
            AQ.access_log, {"patient_id": patient_id, "since": since, "limit": limit}
        )
        rows = await cur.fetchall()
        await audit.record(conn, actor, "read", patient_id=patient_id, object_type="access_log")
    return msgspec.convert(rows, list[AccessLogEntry])
