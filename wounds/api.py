"""Wound cases over HTTP: the nurse's multipart upload, the team's queue, the specialist's answer,
the photos behind authorised endpoints, and the admin's routing rules and service levels."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from psycopg import AsyncConnection

from telemed.access import Actor, require_role
from telemed.settings import Settings
from wounds import admin, cases, steps, views
from wounds.multipart import MIB, Form, UploadLimits, read_form
from wounds.observations import WoundInstructions
from wounds.storage import MediaStore

# The originals are what the nurse's phone sent, possibly a JPEG that is also an HTML page: they
# are downloads only, and no photo response may be sniffed, framed, run or kept in a cache.
PHOTO_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
}
UPLOAD_DESCRIPTION = (
    "multipart/form-data: one part `case` (JSON, WoundCaseCreate) and 1-10 parts `photos` "
    "(JPEG, PNG, WebP or HEIC, sniffed from the bytes). All or nothing."
)
REPLY_DESCRIPTION = (
    "multipart/form-data: one part `reply` (JSON, NurseReply) and 0-10 parts `photos`."
)
QueueState = Literal[
    "open", "all", "submitted", "awaiting_specialist", "awaiting_nurse", "answered", "closed"
]


def upload_limits(state: State) -> UploadLimits:
    limits = state.get("wound_upload_limits")  # a test may set its own
    if isinstance(limits, UploadLimits):
        return limits
    return UploadLimits.from_settings(state.settings.wounds)


def media_store(state: State) -> MediaStore:
    return MediaStore(state.settings.media_dir)


async def _form(request: Request, limits: UploadLimits, field: str) -> Form:
    try:
        length = int(request.headers.get("content-length", ""))
    except ValueError:
        length = None
    return await read_form(
        request.stream(),
        content_type=request.headers.get("content-type", ""),
        content_length=length,
        limits=limits,
        fields=(field,),
    )


class WoundCaseController(Controller):
    """The queue, and the routes whose bodies carry photos: a new case, the nurse's reply.
    Their Litestar body limit is set from the settings when the app is built (routers); the
    case's other steps are in WoundCaseStepController, under the app's limit."""

    path = "/api/v1/wound-cases"
    tags = ["wound cases"]

    # read_form enforces the limits per photo, per part and for the request as the bytes arrive,
    # with an answer that names the photo. Litestar's limit (a little above ours, so ours
    # answers first) still bounds anything else that reads the body, such as the CSRF
    # middleware looking for a form field. The upload handlers take their database connection
    # only once the body is in: a phone on a slow line must not hold one meanwhile.
    @post(
        "/",
        operation_id="submitWoundCase",
        summary="A nurse submits a wound case: observations and photos",
        description=UPLOAD_DESCRIPTION,
        status_code=201,
    )
    async def submit(self, request: Request, state: State, actor: Actor) -> cases.CaseCreated:
        require_role(actor, ["nurse"])
        limits = upload_limits(state)
        form = await _form(request, limits, "case")
        async with state.pool.connection() as conn:
            return await cases.submit_case(
                conn,
                actor,
                media_store(state),
                case_part=form.fields.get("case"),
                photos=form.photos,
                max_photo_bytes=limits.max_photo_bytes,
                sanitize_threads=state.settings.wounds.sanitize_threads,
            )

    @post(
        "/{case_id:uuid}/replies",
        operation_id="replyToWoundCase",
        summary="The nurse replies (or asks about the instructions), optionally with new photos",
        description=REPLY_DESCRIPTION,
        status_code=201,
    )
    async def reply(
        self, request: Request, state: State, actor: Actor, case_id: uuid.UUID
    ) -> steps.CaseStep:
        require_role(actor, ["nurse"])
        limits = upload_limits(state)
        form = await _form(request, limits, "reply")
        async with state.pool.connection() as conn:
            return await steps.reply(
                conn,
                actor,
                media_store(state),
                case_id,
                reply_part=form.fields.get("reply"),
                photos=form.photos,
                max_photo_bytes=limits.max_photo_bytes,
                sanitize_threads=state.settings.wounds.sanitize_threads,
            )

    @get(
        "/",
        operation_id="listWoundCases",
        summary="The caller's queue: routed to my team (specialist) or my patients' (nurse)",
    )
    async def queue(
        self,
        conn: AsyncConnection,
        actor: Actor,
        case_state: Annotated[QueueState, QueryParameter(name="state")] = "open",
        limit: Annotated[int, Parameter(ge=1, le=500)] = 200,
    ) -> list[views.QueueItem]:
        return await views.list_queue(conn, actor, case_state, limit=limit)


class WoundCaseStepController(Controller):
    path = "/api/v1/wound-cases"
    tags = ["wound cases"]

    @get(
        "/{case_id:uuid}",
        operation_id="getWoundCase",
        summary="A case with photos, instructions, history and the wound's earlier cases",
    )
    async def get_case(
        self, conn: AsyncConnection, actor: Actor, case_id: uuid.UUID
    ) -> views.WoundCaseOut:
        return await views.get_case(conn, actor, case_id)

    @post(
        "/{case_id:uuid}/instructions",
        operation_id="answerWoundCase",
        summary="The routed specialist team answers with instructions",
        status_code=201,
    )
    async def answer(
        self, conn: AsyncConnection, actor: Actor, case_id: uuid.UUID, data: WoundInstructions
    ) -> steps.CaseStep:
        return await steps.answer(conn, actor, case_id, data)

    @post(
        "/{case_id:uuid}/questions",
        operation_id="askAboutWoundCase",
        summary="The routed specialist team asks the nurse a question",
        status_code=201,
    )
    async def ask(
        self,
        conn: AsyncConnection,
        actor: Actor,
        case_id: uuid.UUID,
        data: steps.SpecialistQuestion,
    ) -> steps.CaseStep:
        return await steps.ask(conn, actor, case_id, data)

    @post(
        "/{case_id:uuid}/read",
        operation_id="confirmWoundInstructionsRead",
        summary="The nurse confirms she read the instructions; the case is closed",
        status_code=200,
    )
    async def read(self, conn: AsyncConnection, actor: Actor, case_id: uuid.UUID) -> steps.CaseStep:
        return await steps.confirm_read(conn, actor, case_id)


class PatientWoundController(Controller):
    path = "/api/v1/patients/{patient_id:uuid}/wounds"
    tags = ["wound cases"]

    @get("/", operation_id="listPatientWounds", summary="A patient's wounds and their latest case")
    async def list_wounds(
        self, conn: AsyncConnection, actor: Actor, patient_id: uuid.UUID
    ) -> list[views.WoundSummary]:
        return await views.list_wounds(conn, actor, patient_id)


def _photo_response(photo: views.PhotoFile, *, attachment: bool) -> Response[bytes]:
    disposition = "attachment" if attachment else "inline"
    return Response(
        photo.data,
        media_type=photo.mime,
        headers={
            **PHOTO_HEADERS,
            "Content-Disposition": f'{disposition}; filename="{photo.download_name}"',
        },
    )


class WoundPhotoController(Controller):
    path = "/api/v1/wound-photos/{photo_id:uuid}"
    tags = ["wound cases"]

    @get(
        "/display",
        operation_id="getWoundPhotoDisplay",
        summary="The display copy (JPEG, no metadata)",
    )
    async def display(
        self, state: State, conn: AsyncConnection, actor: Actor, photo_id: uuid.UUID
    ) -> Response[bytes]:
        photo = await views.photo_file(conn, actor, media_store(state), photo_id, "display")
        return _photo_response(photo, attachment=False)

    @get("/thumb", operation_id="getWoundPhotoThumb", summary="A thumbnail (JPEG, no metadata)")
    async def thumb(
        self,
        state: State,
        conn: AsyncConnection,
        actor: Actor,
        photo_id: uuid.UUID,
        size: Annotated[int, Parameter(ge=1, le=4096)] = 240,
    ) -> Response[bytes]:
        photo = await views.photo_file(conn, actor, media_store(state), photo_id, "thumb", size)
        return _photo_response(photo, attachment=False)

    @get(
        "/original",
        operation_id="getWoundPhotoOriginal",
        summary="The bytes as uploaded, as a download only",
    )
    async def original(
        self, state: State, conn: AsyncConnection, actor: Actor, photo_id: uuid.UUID
    ) -> Response[bytes]:
        photo = await views.photo_file(conn, actor, media_store(state), photo_id, "original")
        return _photo_response(photo, attachment=True)


class WoundRoutingController(Controller):
    path = "/api/v1/admin"
    tags = ["admin", "wound cases"]

    @get(
        "/wound-routing-rules",
        operation_id="listWoundRoutingRules",
        summary="Which specialist team receives which wounds",
    )
    async def list_rules(self, conn: AsyncConnection, actor: Actor) -> list[admin.RoutingRuleOut]:
        return await admin.list_rules(conn, actor)

    @post(
        "/wound-routing-rules",
        operation_id="createWoundRoutingRule",
        summary="Route a wound type (and/or region, hospital) to a specialist team",
    )
    async def create_rule(
        self, conn: AsyncConnection, actor: Actor, data: admin.RoutingRuleCreate
    ) -> admin.RoutingRuleOut:
        return await admin.create_rule(conn, actor, data)

    @delete(
        "/wound-routing-rules/{rule_id:int}",
        operation_id="deleteWoundRoutingRule",
        summary="Remove a routing rule",
    )
    async def delete_rule(self, conn: AsyncConnection, actor: Actor, rule_id: int) -> None:
        await admin.delete_rule(conn, actor, rule_id)

    @get(
        "/wound-service-levels",
        operation_id="listWoundServiceLevels",
        summary="How soon specialist teams answer wound cases",
    )
    async def list_levels(self, conn: AsyncConnection, actor: Actor) -> list[admin.ServiceLevelOut]:
        return await admin.list_levels(conn, actor)

    @put(
        "/wound-service-levels",
        operation_id="setWoundServiceLevel",
        summary="Set the default or a team's service level for urgent or normal cases",
    )
    async def set_level(
        self, conn: AsyncConnection, actor: Actor, data: admin.ServiceLevelSet
    ) -> list[admin.ServiceLevelOut]:
        return await admin.set_level(conn, actor, data)


def routers(settings: Settings) -> list[type[Controller]]:
    # A little above the upload limit, so that read_form's answer, naming the photo, comes first.
    body_limit = UploadLimits.from_settings(settings.wounds).max_request_bytes + MIB
    cases = type(
        "WoundCaseController", (WoundCaseController,), {"request_max_body_size": body_limit}
    )
    return [
        cases,
        WoundCaseStepController,
        PatientWoundController,
        WoundPhotoController,
        WoundRoutingController,
    ]
