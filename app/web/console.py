"""The specialist console: the triage queue, a patient's plots and thresholds, a wound case."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.response import Template
from psycopg import AsyncConnection

from app.web import session
from app.web.render import page
from app.web.views import patient_view, wound_choices
from telemed import patients
from telemed.access import Actor
from wounds import views as wounds

SCRIPT_TEXTS = (
    "queue.",
    "alert.",
    "severity.",
    "state.",
    "patient.",
    "metric.",
    "wound.",
    "enum.",
    "rule.",
    "instr.",
    "dose.",
)


class ConsoleController(Controller):
    path = "/console"
    dependencies = {"me": Provide(session.require("specialist"))}

    @get("/", name="console:home")
    async def home(self, request: Request, conn: AsyncConnection, me: Actor) -> Template:
        # The queue itself is drawn by the page from the alert and wound-case APIs, so that
        # the core never imports the alerts package.
        listed = await patients.list_patients(conn, me)
        return page(
            request,
            "console/home.html",
            me=me,
            patients=listed,
            script_texts=SCRIPT_TEXTS,
        )

    @get("/patients/{patient_id:uuid}", name="console:patient")
    async def patient(
        self, request: Request, conn: AsyncConnection, me: Actor, patient_id: uuid.UUID
    ) -> Template:
        detail = await patients.get_patient(conn, me, patient_id)
        return page(
            request,
            "console/patient.html",
            me=me,
            patient=detail,
            view=msgspec.to_builtins(patient_view(detail)),
            script_texts=SCRIPT_TEXTS,
        )

    @get("/wounds/{case_id:uuid}", name="console:wound")
    async def wound(
        self, request: Request, conn: AsyncConnection, me: Actor, case_id: uuid.UUID
    ) -> Template:
        found = await wounds.get_case(conn, me, case_id)
        sizes = [
            {"at": p.at.isoformat(), "area": p.area_cm2, "length": p.length_cm, "width": p.width_cm}
            for p in found.size_over_time
        ]
        return page(
            request,
            "console/wound.html",
            me=me,
            case=found,
            sizes=sizes,
            choices=wound_choices(),
            script_texts=SCRIPT_TEXTS,
        )
