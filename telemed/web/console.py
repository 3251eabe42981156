"""The specialist console: the triage queue, a patient's plots and thresholds, a wound case."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.response import Template
from psycopg import AsyncConnection

from telemed import patients
from telemed.access import Actor
from telemed.web import queue, session
from telemed.web.render import page
from telemed.web.views import patient_view

SCRIPT_TEXTS = ("queue.", "alert.", "severity.", "state.", "patient.", "metric.", "wound.")


class ConsoleController(Controller):
    path = "/console"
    dependencies = {"me": Provide(session.require("specialist"))}

    @get("/", name="console:home")
    async def home(self, request: Request, conn: AsyncConnection, me: Actor) -> Template:
        items = await queue.triage(conn, me)
        listed = await patients.list_patients(conn, me)
        return page(
            request,
            "console/home.html",
            me=me,
            items=items,
            patients=listed,
            script_texts=SCRIPT_TEXTS,
        )

    @get("/queue", name="console:queue")
    async def queue_fragment(self, request: Request, conn: AsyncConnection, me: Actor) -> Template:
        """The queue alone, for the page to swap in when the event stream says it changed."""
        items = await queue.triage(conn, me)
        return page(request, "console/_queue.html", me=me, items=items)

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
