"""The OpenAPI document, made to say what the API does.

Litestar writes the document from the handlers' signatures. What it cannot know is added here,
in one place, when the document is first served (`finish`):

- every error answer is an `ErrorBody` (app.api.errors), under each status an operation can
  answer with: ERRORS lists them per operation (a test checks every operation is listed, and
  the schemathesis run checks that no other status comes back);
- who may call: a bearer token from signIn, or the pages' session cookie (which also needs the
  CSRF header on unsafe methods); signIn and health need neither;
- the two uploads' multipart bodies, which their handlers read as a stream;
- the media types of the photo downloads and of the event stream;
- times of day (`datetime.time`) as "HH:MM:SS" strings, not durations (TimeOfDaySchema);
- health's 503 when the database or broker does not answer.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import msgspec
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from app.api.errors import ErrorBody
from app.api.middleware import SESSION_COOKIE
from telemed import inputs
from wounds.cases import WoundCaseCreate
from wounds.images import MIME
from wounds.steps import NurseReply

DESCRIPTION: Final = f"""Telemedicine backend for cross-sector care.

Sign in with signIn and send the token as `Authorization: Bearer <token>`. Every error is an
ErrorBody: `status`, `detail`, and where fields are at fault `problems` naming each one
(`readings[0].unit`, a query parameter's name, or `body`), with the `request_id` that the
`X-Request-ID` response header also carries.

Text in bodies and query parameters is UTF-8 without NUL characters, and JSON bodies
are nested at most {inputs.MAX_DEPTH} levels; anything else is a 400 naming the field.
Dates, in bodies and query parameters, lie between {inputs.SANE_FIRST} and {inputs.SANE_LAST}."""

TIME_PATTERN: Final = r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?$"

# Every error status the API answers with, and what it means.
DESCRIPTIONS: Final = {
    400: "The request is not valid: a parameter or body field (named in `problems`)",
    401: "Not signed in: no token or session, or one that expired or was revoked",
    403: "Signed in, but the role may not do this (or a cookie-authenticated change lacked "
    "its CSRF token)",
    404: "Not found, or outside the caller's scope (the same answer, so that nothing leaks)",
    409: "Conflicts with the current state (already exists, already done, wrong state)",
    413: "The body (or a photo in it) is larger than this route allows",
    415: "A photo's format is not JPEG, PNG, WebP or HEIC, or the body is not multipart",
    422: "Well-formed, but the values break a rule (named in `problems`)",
    429: "Too many sign-in attempts: wait for Retry-After seconds",
    431: "The request's headers are too large or too many",
    500: "An internal error; it has been logged under the request id",
    503: "Too many sign-ins are being checked at once: retry after Retry-After seconds",
}
# Every operation may answer with these: a bad query value (400), a body over the route's
# limit (413), oversized headers (431) and an internal error (500).
ALWAYS: Final = frozenset({400, 413, 431, 500})
# Where no sign-in is needed.
PUBLIC: Final = frozenset({"signIn", "health", "liveness", "readiness"})
_SIGNED_IN = 401
_ROLE = 403  # a role check, or the CSRF check of a cookie-authenticated unsafe method

# The further statuses of each operation (401 comes with every operation not in PUBLIC).
ERRORS: Final[dict[str, frozenset[int]]] = {
    k: frozenset(v)
    for k, v in {
        "health": (),
        "liveness": (),
        "readiness": (),
        "signIn": (401, 429, 503),
        "me": (),
        "signOut": (_ROLE,),
        # admin: organisations, users, patients
        "listOrganisations": (_ROLE,),
        "createOrganisation": (_ROLE, 409, 422),
        "listUsers": (_ROLE,),
        "createUser": (_ROLE, 404, 409, 422),
        "deactivateUser": (_ROLE, 404),
        "createPatient": (_ROLE, 404, 409, 422),
        "enrollPatient": (_ROLE, 404, 409, 422),
        "endEnrollment": (_ROLE, 404, 422),
        "handOver": (_ROLE, 404, 409, 422),
        "addCareRelation": (_ROLE, 404, 409, 422),
        "endCareRelation": (_ROLE, 404),
        "listAlarms": (_ROLE,),
        "listRuleFailures": (_ROLE,),
        "listUnwatchedEnrollments": (_ROLE,),
        "adminGetAnticoagulant": (_ROLE, 404),
        "setAnticoagulant": (_ROLE, 404, 422),
        # patients and readings
        "listPatients": (_ROLE,),
        "getPatient": (_ROLE, 404),
        "listEnrollments": (_ROLE, 404),
        "responsibilityHistory": (_ROLE, 404),
        "listCareRelations": (_ROLE, 404),
        "patientAccessLog": (_ROLE, 404),
        "listReadings": (_ROLE, 404, 422),
        "enterReadings": (_ROLE, 404, 422),
        # alerts, thresholds, instructions, TTR
        "listAlerts": (_ROLE,),
        "getAlert": (_ROLE, 404),
        "acknowledgeAlert": (_ROLE, 404, 409),
        "resolveAlert": (_ROLE, 404, 409, 422),
        "instructOnAlert": (_ROLE, 404, 409, 422),
        "confirmInstruction": (_ROLE, 404, 409),
        "listPatientAlerts": (_ROLE, 404),
        "listPatientInstructions": (_ROLE, 404),
        "getAnticoagulant": (_ROLE, 404),
        "getThresholds": (_ROLE, 404),
        "setThresholds": (_ROLE, 404, 409, 422),
        "thresholdHistory": (_ROLE, 404),
        "patientTtr": (_ROLE, 404, 422),
        # events, webhooks, escalation
        "streamEvents": (_ROLE, 422),
        "listWebhooks": (_ROLE, 404),
        "createWebhook": (_ROLE, 404, 422),
        "updateWebhook": (_ROLE, 404, 422),
        "rotateWebhookSecret": (_ROLE, 404),
        "listWebhookDeliveries": (_ROLE, 404),
        "retryWebhookDelivery": (_ROLE, 404),
        "listAlertDeadlines": (_ROLE,),
        "setAlertDeadline": (_ROLE,),
        "getEscalationTarget": (_ROLE, 404),
        "setEscalationTarget": (_ROLE, 404, 422),
        # devices
        "listPatientDevices": (_ROLE, 404),
        "provisionDevice": (_ROLE, 404, 409, 422, 503),
        "provisionDevices": (_ROLE, 409, 422, 503),
        "revokeDevice": (_ROLE, 404, 409, 503),
        "rotateDevicePassword": (_ROLE, 404, 409, 503),
        "listRejectedMessages": (_ROLE,),
        # wound cases and photos
        "submitWoundCase": (_ROLE, 404, 409, 415, 422),
        "replyToWoundCase": (_ROLE, 404, 409, 415, 422),
        "listWoundCases": (_ROLE,),
        "getWoundCase": (_ROLE, 404),
        "answerWoundCase": (_ROLE, 404, 409, 422),
        "askAboutWoundCase": (_ROLE, 404, 409, 422),
        "confirmWoundInstructionsRead": (_ROLE, 404, 409),
        "listPatientWounds": (_ROLE, 404),
        "getWoundPhotoDisplay": (_ROLE, 404),
        "getWoundPhotoThumb": (_ROLE, 404, 422),
        "getWoundPhotoOriginal": (_ROLE, 404),
        "listWoundRoutingRules": (_ROLE,),
        "createWoundRoutingRule": (_ROLE, 409, 422),
        "deleteWoundRoutingRule": (_ROLE, 404),
        "listWoundServiceLevels": (_ROLE,),
        "setWoundServiceLevel": (_ROLE, 404, 422),
    }.items()
}

# Operations that change the broker's accounts with the registry: their 503 is the broker's.
BROKER_CHANGES: Final = frozenset(
    {"provisionDevice", "provisionDevices", "revokeDevice", "rotateDevicePassword"}
)
_BROKER_503: Final = (
    "The broker did not take the change (it does not run, refused it or did not answer in "
    "time), so nothing was changed: code `broker_unavailable`; retry after Retry-After seconds"
)

SECURITY_SCHEMES: Final = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token from signIn, in `Authorization: Bearer <token>`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The web pages' session, set by signing in on /login. A POST, PUT, "
        "PATCH or DELETE with it also needs the `x-csrftoken` header (the pages read the token "
        "from their csrf-token meta tag); with a bearer token it is ignored.",
    },
}

_PHOTOS: Final = {
    "type": "array",
    "minItems": 1,
    "maxItems": 10,
    "items": {"type": "string", "contentMediaType": "application/octet-stream"},
    "description": "JPEG, PNG, WebP or HEIC, recognised from the bytes (the declared type and "
    "name are not trusted)",
}
# operationId: (JSON part name, its Struct, photos required)
MULTIPART: Final = {
    "submitWoundCase": ("case", WoundCaseCreate, True),
    "replyToWoundCase": ("reply", NurseReply, False),
}
_JPEG: Final = {"image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}}}
SUCCESS_CONTENT: Final = {
    "getWoundPhotoDisplay": _JPEG,
    "getWoundPhotoThumb": _JPEG,
    "getWoundPhotoOriginal": {
        mime: {"schema": {"type": "string", "contentMediaType": mime}} for mime in MIME.values()
    },
    "streamEvents": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "description": "One server-sent event; keep-alives are comments",
                "properties": {
                    "id": {
                        "type": "string",
                        "pattern": "^[0-9]+:[0-9]+$",
                        "description": "`<outbox id>:<horizon>`, to send back as Last-Event-ID",
                    },
                    "event": {"type": "string", "description": "e.g. alert.raised"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "the event's envelope: id, event, created_at, "
                        "patient_id, payload",
                    },
                    "retry": {"type": "integer"},
                },
                "required": ["id", "event", "data"],
            }
        }
    },
}
_METHODS: Final = ("get", "put", "post", "delete", "patch")


class TimeOfDaySchema(OpenAPISchemaPlugin):
    """`datetime.time` as the "HH:MM:SS" string msgspec reads and writes (Litestar would call
    it a duration). A local time of day, without an offset."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        from datetime import time

        return value is time

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(
            type=OpenAPIType.STRING,
            format="partial-time",
            pattern=TIME_PATTERN,
            description="a local time of day, HH:MM:SS (no offset)",
        )


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _components(types: list[type]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")


def _error_response(code: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": _ref("ErrorBody")}},
    }
    if code == 429:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again",
                "required": True,
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


def _multipart(part: str, struct: str, photos_required: bool) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {part: _ref(struct), "photos": _PHOTOS},
                    "required": [part, "photos"] if photos_required else [part],
                },
                "encoding": {
                    part: {"contentType": "application/json"},
                    "photos": {"contentType": ", ".join(MIME.values())},
                },
            }
        },
    }


def _any_of_lists(schema: dict[str, Any]) -> None:
    """Alternatives that are all lists overlap in the empty list, which `oneOf` forbids."""
    options = schema.get("oneOf")
    if options and all(option.get("type") == "array" for option in options):
        schema["anyOf"] = schema.pop("oneOf")


# The health checks' own 503, with their own body.
_UNHEALTHY: Final = {
    "health": ("The database or the broker does not answer", "Health"),
    "readiness": ("Not ready: the database or the broker has not answered in time", "Readiness"),
}


def statuses(operation_id: str) -> frozenset[int]:
    """Every error status the operation may answer with."""
    signed_in = frozenset() if operation_id in PUBLIC else frozenset({_SIGNED_IN})
    return ALWAYS | signed_in | ERRORS[operation_id]


def finish(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of Litestar's document with what this module adds (see the module's text)."""
    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, found = _components([ErrorBody, *(struct for _, struct, _ in MULTIPART.values())])
    for name, schema in found.items():
        schemas.setdefault(name, schema)
    components["securitySchemes"] = SECURITY_SCHEMES
    for item in doc.get("paths", {}).values():
        for method in _METHODS:
            if (op := item.get(method)) is not None:
                _finish_operation(op)
    return doc


def _finish_operation(op: dict[str, Any]) -> None:
    op_id = op["operationId"]
    responses = op.setdefault("responses", {})
    for code in [c for c in responses if c.startswith(("4", "5")) and c != "503"]:
        del responses[code]
    for code in sorted(statuses(op_id)):
        responses[str(code)] = _error_response(code)
    if op_id in BROKER_CHANGES:
        responses["503"]["description"] = _BROKER_503
    for code, response in responses.items():
        if code.startswith("2"):
            if op_id in SUCCESS_CONTENT:
                response["content"] = SUCCESS_CONTENT[op_id]
            for media in (response.get("content") or {}).values():
                _any_of_lists(media.get("schema", {}))
    if op_id in MULTIPART:
        part, struct, photos_required = MULTIPART[op_id]
        op["requestBody"] = _multipart(part, struct.__name__, photos_required)
    if op_id not in PUBLIC:
        op["security"] = [{"bearer": []}, {"session": []}]
    if op_id in _UNHEALTHY:
        description, schema = _UNHEALTHY[op_id]
        responses["503"] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(schema)}},
        }


class _Finished:
    """Renders `finish(document)`, made once per document."""

    _done: tuple[dict[str, Any], dict[str, Any]] | None = None

    def finished(self, document: dict[str, Any]) -> dict[str, Any]:
        if self._done is None or self._done[0] is not document:
            self._done = (document, finish(document))
        return self._done[1]


class DocumentJson(_Finished, JsonRenderPlugin):
    def render(self, request: Any, openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, self.finished(openapi_schema))


class DocumentSwagger(_Finished, SwaggerRenderPlugin):
    def render(self, request: Any, openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self.finished(openapi_schema))


def render_plugins() -> list[JsonRenderPlugin | SwaggerRenderPlugin]:
    """/schema/openapi.json (also at /schema) and /schema/swagger, both of the finished
    document; new for each application."""
    return [DocumentJson(path=["/openapi.json", "/"]), DocumentSwagger()]
