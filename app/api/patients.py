"""Patients as clinicians see them, and the patient's access log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from psycopg import AsyncConnection

from telemed import patients
from telemed.access import Actor


class PatientController(Controller):
    path = "/api/v1/patients"
    tags = ["patients"]

    @get("/", operation_id="listPatients", summary="Patients in the caller's scope")
    async def list_patients(self, conn: AsyncConnection, actor: Actor) -> list[patients.PatientOut]:
        return await patients.list_patients(conn, actor)

    @get("/{patient_id:uuid}", operation_id="getPatient", summary="One patient")
    async def get_patient(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> patients.PatientDetail:
        return await patients.get_patient(conn, actor, patient_id)

    @get(
        "/{patient_id:uuid}/enrollments",
        operation_id="listEnrollments",
        summary="The patient's program enrollments",
    )
    async def enrollments(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> list[patients.EnrollmentOut]:
        return await patients.list_enrollments(conn, actor, patient_id)

    @get(
        "/{patient_id:uuid}/responsibility",
        operation_id="responsibilityHistory",
        summary="Who held responsibility for the patient, and since when",
    )
    async def responsibility(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> list[patients.ResponsibilityOut]:
        return await patients.responsibility_history(conn, actor, patient_id)

    @get(
        "/{patient_id:uuid}/care-relations",
        operation_id="listCareRelations",
        summary="Organisations serving or consulted on the patient",
    )
    async def care_relations(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> list[patients.CareRelationOut]:
        return await patients.list_care_relations(conn, actor, patient_id)

    @get(
        "/{patient_id:uuid}/access-log",
        operation_id="patientAccessLog",
        summary="Who looked at or changed the patient's data",
    )
    async def access_log(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        since: datetime | None = None,
        limit: Annotated[int, Parameter(ge=1, le=5000)] = 500,
    ) -> list[patients.AccessLogEntry]:
        return await patients.access_log(conn, actor, patient_id, since=since, limit=limit)
