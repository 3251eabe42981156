"""The home nurse's phone page: her patients, readings she takes, wound cases and their answers."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, Request, get
from litestar.di import Provide
from litestar.response import Template
from psycopg import AsyncConnection

from app.web import session
from app.web.render import page
from app.web.views import nurse_view, wound_choices, wounds_of
from telemed import patients
from telemed.access import Actor
from wounds import views as wounds

SCRIPT_TEXTS = ("nurse.", "wound.", "metric.", "alert.", "dose.")


class NurseController(Controller):
    path = "/nurse"
    dependencies = {"me": Provide(session.require("nurse"))}

    @get("/", name="nurse:home")
    async def home(self, request: Request, conn: AsyncConnection, me: Actor) -> Template:
        listed = await patients.list_patients(conn, me)
        cases = await wounds.list_queue(conn, me, "open")
        return page(
            request,
            "nurse/home.html",
            me=me,
            patients=listed,
            cases=cases,
            script_texts=SCRIPT_TEXTS,
        )

    @get("/cases", name="nurse:cases")
    async def cases_fragment(self, request: Request, conn: AsyncConnection, me: Actor) -> Template:
        """Her open cases alone, swapped in when the event stream says one changed."""
        cases = await wounds.list_queue(conn, me, "open")
        return page(request, "nurse/_cases.html", me=me, cases=cases)

    @get("/patients/{patient_id:uuid}", name="nurse:patient")
    async def patient(
        self, request: Request, conn: AsyncConnection, me: Actor, patient_id: uuid.UUID
    ) -> Template:
        detail = await patients.get_patient(conn, me, patient_id)
        every = await wounds.list_queue(conn, me, "all")
        return page(
            request,
            "nurse/patient.html",
            me=me,
            patient=detail,
            view=msgspec.to_builtins(nurse_view(detail)),
            wounds=wounds_of(every, patient_id),
            cases=[c for c in every if c.patient_id == patient_id and c.state != "closed"],
            choices=wound_choices(),
            script_texts=SCRIPT_TEXTS,
        )

    @get("/cases/{case_id:uuid}", name="nurse:case")
    async def case(
        self, request: Request, conn: AsyncConnection, me: Actor, case_id: uuid.UUID
    ) -> Template:
        found = await wounds.get_case(conn, me, case_id)
        return page(request, "nurse/case.html", me=me, case=found, script_texts=SCRIPT_TEXTS)

    @get("/cases/{case_id:uuid}/answer", name="nurse:case_answer")
    async def case_answer(
        self, request: Request, conn: AsyncConnection, me: Actor, case_id: uuid.UUID
    ) -> Template:
        found = await wounds.get_case(conn, me, case_id)
        return page(request, "nurse/_answer.html", me=me, case=found)
