"""The home nurse's phone page: her patients, readings she takes, wound cases and their answers."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.response import Template
from psycopg import AsyncConnection

from telemed import patients
from telemed.access import Actor
from telemed.web import session
from telemed.web.render import page
from telemed.web.views import nurse_view

SCRIPT_TEXTS = ("nurse.", "wound.", "metric.")


class NurseController(Controller):
    path = "/nurse"
    dependencies = {"me": Provide(session.require("nurse"))}

    @get("/", name="nurse:home")
    async def home(self, request: Request, conn: AsyncConnection, me: Actor) -> Template:
        listed = await patients.list_patients(conn, me)
        return page(request, "nurse/home.html", me=me, patients=listed)

    @get("/patients/{patient_id:uuid}", name="nurse:patient")
    async def patient(
        self, request: Request, conn: AsyncConnection, me: Actor, patient_id: uuid.UUID
    ) -> Template:
        detail = await patients.get_patient(conn, me, patient_id)
        return page(
            request,
            "nurse/patient.html",
            me=me,
            patient=detail,
            view=msgspec.to_builtins(nurse_view(detail)),
            script_texts=SCRIPT_TEXTS,
        )
