"""Admin API: organisations, users, patients, enrollments, care relations and hand-overs."""

from __future__ import annotations

import uuid

from litestar import Controller, get, patch, post
from litestar.datastructures import State
from psycopg import AsyncConnection

from telemed import directory, patients
from telemed.access import Actor


class AdminController(Controller):
    path = "/api/v1/admin"
    tags = ["admin"]

    @post("/organisations", operation_id="createOrganisation", summary="Create an organisation")
    async def create_organisation(
        self, conn: AsyncConnection, actor: Actor, data: directory.OrganisationCreate
    ) -> directory.OrganisationOut:
        return await directory.create_organisation(conn, actor, data)

    @get("/organisations", operation_id="listOrganisations", summary="List organisations")
    async def list_organisations(
        self, conn: AsyncConnection, actor: Actor
    ) -> list[directory.OrganisationOut]:
        return await directory.list_organisations(conn, actor)

    @post("/users", operation_id="createUser", summary="Create a user")
    async def create_user(
        self, conn: AsyncConnection, actor: Actor, data: directory.UserCreate
    ) -> directory.UserOut:
        return await directory.create_user(conn, actor, data)

    @get("/users", operation_id="listUsers", summary="List users, optionally of one organisation")
    async def list_users(
        self, conn: AsyncConnection, actor: Actor, organisation_id: uuid.UUID | None = None
    ) -> list[directory.UserOut]:
        return await directory.list_users(conn, actor, organisation_id)

    @post(
        "/users/{user_id:uuid}/deactivate",
        operation_id="deactivateUser",
        summary="Deactivate a user and revoke their tokens",
        status_code=200,
    )
    async def deactivate_user(
        self, conn: AsyncConnection, actor: Actor, user_id: uuid.UUID
    ) -> directory.UserOut:
        return await directory.set_user_active(conn, actor, user_id, False)

    @post(
        "/patients",
        operation_id="createPatient",
        summary="Register a patient with the organisation responsible for them",
    )
    async def create_patient(
        self, conn: AsyncConnection, actor: Actor, data: patients.PatientCreate, state: State
    ) -> patients.PatientOut:
        return await patients.create_patient(conn, actor, data, state.settings.cpr_keys)

    @post(
        "/patients/{patient_id:uuid}/enrollments",
        operation_id="enrollPatient",
        summary="Enroll a patient in a program (copd or ak) with a stratum",
    )
    async def enroll(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        data: patients.EnrollmentCreate,
    ) -> patients.EnrollmentOut:
        return await patients.enroll(conn, actor, patient_id, data)

    @patch(
        "/patients/{patient_id:uuid}/enrollments/{enrollment_id:uuid}",
        operation_id="endEnrollment",
        summary="End a running enrollment",
    )
    async def end_enrollment(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        enrollment_id: uuid.UUID,
        data: patients.EnrollmentEnd,
    ) -> patients.EnrollmentOut:
        return await patients.end_enrollment(conn, actor, patient_id, enrollment_id, data)

    @post(
        "/patients/{patient_id:uuid}/handovers",
        operation_id="handOver",
        summary="Hand responsibility for a patient to another organisation",
    )
    async def hand_over(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        data: patients.Handover,
    ) -> patients.ResponsibilityOut:
        return await patients.hand_over(conn, actor, patient_id, data)

    @post(
        "/patients/{patient_id:uuid}/care-relations",
        operation_id="addCareRelation",
        summary="Let an organisation serve or be consulted on a patient",
    )
    async def add_care_relation(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        data: patients.CareRelationCreate,
    ) -> patients.CareRelationOut:
        return await patients.add_care_relation(conn, actor, patient_id, data)

    @post(
        "/patients/{patient_id:uuid}/care-relations/{relation_id:int}/end",
        operation_id="endCareRelation",
        summary="End a care relation",
        status_code=200,
    )
    async def end_care_relation(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID, relation_id: int
    ) -> patients.CareRelationOut:
        return await patients.end_care_relation(conn, actor, patient_id, relation_id)
