"""HTTP controllers for alerts, thresholds, instructions and TTR: parse, call the service,
return its Struct (entry point `telemed.routers: alerts`)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from litestar import Controller, get, post, put
from litestar.params import Parameter, QueryParameter
from psycopg import AsyncConnection

from alerts import doses, escalation, failures, instructions, service, thresholds
from alerts.rule_coverage_api import RuleCoverageController
from telemed.access import Actor

Limit = Annotated[int, Parameter(ge=1, le=1000)]


class AlertController(Controller):
    path = "/api/v1/alerts"
    tags = ["alerts"]

    @get("/", operation_id="listAlerts", summary="The triage queue: red first, then newest")
    async def list_alerts(
        self,
        conn: AsyncConnection,
        actor: Actor,
        states: Annotated[service.StateFilter, QueryParameter(name="state")] = "unresolved",
        severity: Literal["yellow", "red"] | None = None,
        program: Literal["copd", "ak"] | None = None,
        limit: Limit = 200,
    ) -> list[service.AlertOut]:
        return await service.list_alerts(
            conn, actor, state=states, severity=severity, program=program, limit=limit
        )

    @get(
        "/{alert_id:int}",
        operation_id="getAlert",
        summary="One alert with the readings around it, its instructions and a dose suggestion",
    )
    async def get_alert(
        self,
        conn: AsyncConnection,
        actor: Actor,
        alert_id: int,
        current_weekly_mg: Annotated[float | None, Parameter(gt=0, le=200)] = None,
    ) -> service.AlertDetail:
        return await service.get_alert(conn, actor, alert_id, current_weekly_mg=current_weekly_mg)

    @post(
        "/{alert_id:int}/acknowledge",
        operation_id="acknowledgeAlert",
        summary="Say the alert is being looked at",
        status_code=200,
    )
    async def acknowledge(
        self, conn: AsyncConnection, actor: Actor, alert_id: int, data: service.AlertAck
    ) -> service.AlertOut:
        return await service.acknowledge(conn, actor, alert_id, data)

    @post(
        "/{alert_id:int}/resolve",
        operation_id="resolveAlert",
        summary="Close the alert with a note",
        status_code=200,
    )
    async def resolve(
        self, conn: AsyncConnection, actor: Actor, alert_id: int, data: service.AlertResolve
    ) -> service.AlertOut:
        return await service.resolve(conn, actor, alert_id, data)

    @post(
        "/{alert_id:int}/instructions",
        operation_id="instructOnAlert",
        summary="A specialist answers the alert with an instruction",
    )
    async def instruct(
        self,
        conn: AsyncConnection,
        actor: Actor,
        alert_id: int,
        data: instructions.InstructionCreate,
    ) -> instructions.InstructionOut:
        return await instructions.add_instruction(conn, actor, alert_id, data)


class InstructionController(Controller):
    path = "/api/v1/instructions"
    tags = ["instructions"]

    @post(
        "/{instruction_id:uuid}/confirmations",
        operation_id="confirmInstruction",
        summary="Confirm an instruction was read or carried out",
    )
    async def confirm(
        self,
        conn: AsyncConnection,
        actor: Actor,
        instruction_id: uuid.UUID,
        data: instructions.ConfirmationCreate,
    ) -> instructions.InstructionOut:
        return await instructions.confirm_instruction(conn, actor, instruction_id, data)


class PatientAlertController(Controller):
    path = "/api/v1/patients/{patient_id:uuid}"
    tags = ["alerts"]

    @get("/alerts", operation_id="listPatientAlerts", summary="The patient's alerts, newest first")
    async def alerts(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        states: Annotated[service.StateFilter, QueryParameter(name="state")] = "all",
        limit: Limit = 200,
    ) -> list[service.AlertOut]:
        return await service.patient_alerts(conn, actor, patient_id, state=states, limit=limit)

    @get(
        "/instructions",
        operation_id="listPatientInstructions",
        summary="Instructions for the patient, with their confirmations",
    )
    async def instructions(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID, limit: Limit = 200
    ) -> list[instructions.InstructionOut]:
        return await instructions.patient_instructions(conn, actor, patient_id, limit=limit)

    @get(
        "/anticoagulant",
        operation_id="getAnticoagulant",
        summary="The anticoagulant product the patient takes (for the dose in tablets)",
    )
    async def anticoagulant(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> doses.ProductOut:
        return await doses.get_product(conn, actor, patient_id)

    @get(
        "/thresholds",
        operation_id="getThresholds",
        summary="The rules in force and where each value comes from",
    )
    async def get_thresholds(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> thresholds.ThresholdsOut:
        return await thresholds.get_thresholds(conn, actor, patient_id)

    @put(
        "/thresholds",
        operation_id="setThresholds",
        summary="A specialist overrides thresholds for the patient, with a reason",
    )
    async def set_thresholds(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        data: thresholds.ThresholdsUpdate,
    ) -> thresholds.ThresholdsOut:
        return await thresholds.set_thresholds(conn, actor, patient_id, data)

    @get(
        "/thresholds/history",
        operation_id="thresholdHistory",
        summary="Every threshold change for the patient, newest first",
    )
    async def threshold_history(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID, limit: Limit = 500
    ) -> list[thresholds.OverrideRecord]:
        return await thresholds.threshold_history(conn, actor, patient_id, limit=limit)

    @get(
        "/ttr",
        operation_id="patientTtr",
        summary="Time in therapeutic INR range (Rosendaal), or null with the reason",
    )
    async def ttr(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID,
        start: Annotated[date | None, QueryParameter(name="from")] = None,
        end: Annotated[date | None, QueryParameter(name="to")] = None,
    ) -> thresholds.TtrOut:
        return await thresholds.patient_ttr(conn, actor, patient_id, start=start, end=end)


class AnticoagulantController(Controller):
    path = "/api/v1/admin/patients/{patient_id:uuid}/anticoagulant"
    tags = ["admin"]

    @get(
        "/",
        operation_id="adminGetAnticoagulant",
        summary="The anticoagulant product a patient takes, with its history",
    )
    async def get_product(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> doses.ProductOut:
        return await doses.get_product(conn, actor, patient_id, admin=True)

    @put(
        "/",
        operation_id="setAnticoagulant",
        summary="Record the anticoagulant product a patient takes (Marevan, Waran, ...)",
    )
    async def set_product(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID, data: doses.ProductSet
    ) -> doses.ProductOut:
        return await doses.set_product(conn, actor, patient_id, data)


class RuleFailureController(Controller):
    path = "/api/v1/admin/rule-failures"
    tags = ["alerts"]

    @get(
        "/",
        operation_id="listRuleFailures",
        summary="Where a patient's alert rules could not judge a reading, newest first",
    )
    async def list_failures(
        self,
        conn: AsyncConnection,
        actor: Actor,
        patient_id: uuid.UUID | None = None,
        limit: Limit = 100,
    ) -> list[failures.RuleFailureOut]:
        return await failures.recent_failures(conn, actor, patient_id, limit)


class EscalationController(Controller):
    path = "/api/v1/admin"
    tags = ["escalation"]

    @get(
        "/alert-deadlines",
        operation_id="listAlertDeadlines",
        summary="Acknowledgement deadlines and escalation repeats per program and severity",
    )
    async def deadlines(self, conn: AsyncConnection, actor: Actor) -> list[escalation.DeadlineOut]:
        return await escalation.list_deadlines(conn, actor)

    @put(
        "/alert-deadlines/{program:str}/{severity:str}",
        operation_id="setAlertDeadline",
        summary="Set the acknowledgement deadline of a program and severity",
    )
    async def set_deadline(
        self,
        conn: AsyncConnection,
        actor: Actor,
        program: escalation.Program,
        severity: escalation.SeverityName,
        data: escalation.DeadlineUpdate,
    ) -> escalation.DeadlineOut:
        return await escalation.set_deadline(conn, actor, program, severity, data)

    @get(
        "/organisations/{organisation_id:uuid}/escalation",
        operation_id="getEscalationTarget",
        summary="Where an organisation's unacknowledged alerts escalate to",
    )
    async def get_target(
        self, conn: AsyncConnection, actor: Actor, organisation_id: uuid.UUID
    ) -> escalation.EscalationSettingOut:
        return await escalation.get_escalation_setting(conn, actor, organisation_id)

    @put(
        "/organisations/{organisation_id:uuid}/escalation",
        operation_id="setEscalationTarget",
        summary="Set (or clear) where an organisation's unacknowledged alerts escalate to",
    )
    async def set_target(
        self,
        conn: AsyncConnection,
        actor: Actor,
        organisation_id: uuid.UUID,
        data: escalation.EscalationSettingUpdate,
    ) -> escalation.EscalationSettingOut:
        return await escalation.set_escalation_setting(conn, actor, organisation_id, data)


def routers() -> list[type[Controller]]:
    return [
        AlertController,
        InstructionController,
        PatientAlertController,
        AnticoagulantController,
        RuleCoverageController,
        RuleFailureController,
        EscalationController,
    ]
