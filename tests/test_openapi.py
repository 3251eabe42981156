"""The OpenAPI document says what the API does: the error body it documents is the one sent,
times of day are times, who may call is declared, the uploads have their multipart bodies, and
every error status an operation can answer with is listed. (The schemathesis run in
test_api_schemathesis checks the answers against it.)"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from app.api import openapi
from app.api.errors import ErrorBody
from app.api.middleware import SESSION_COOKIE

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def doc(client) -> dict[str, Any]:
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    return r.json()


def _operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op
        for item in doc["paths"].values()
        for method, op in item.items()
        if method in METHODS
    }


def _error_schema(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["components"]["schemas"]["ErrorBody"]


def test_the_served_document_is_the_finished_one(client, app, doc) -> None:
    expected = msgspec.json.decode(
        msgspec.json.encode(openapi.finish(app.openapi_schema.to_schema()))
    )
    assert doc == expected
    assert client.get("/schema").json() == doc
    swagger = client.get("/schema/swagger")
    assert swagger.status_code == 200 and '"securitySchemes"' in swagger.text


def test_every_operation_has_its_errors_listed_and_no_list_is_stale(doc) -> None:
    assert set(_operations(doc)) == set(openapi.ERRORS)


def test_the_documented_error_body_is_the_struct_the_handlers_send(doc) -> None:
    schema = _error_schema(doc)
    assert set(schema["properties"]) == set(ErrorBody.__struct_fields__)
    assert set(schema["required"]) == {"status", "detail"}
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"field", "message", "code", "params", "source"}
    for op_id, op in _operations(doc).items():
        for code, response in op["responses"].items():
            if code[0] in "45" and not (op_id in ("health", "readiness") and code == "503"):
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }, (op_id, code)
                assert "status_code" not in str(response), (op_id, code)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/auth/me", None, 401),
        ("GET", "/api/v1/no-such-thing", None, 404),
        ("POST", "/api/v1/auth/token", {"username": 1}, 400),
        ("POST", "/api/v1/auth/token", {"username": "nobody", "password": "x"}, 401),
    ],
)
def test_errors_as_sent_match_the_documented_body(
    client, doc, method: str, path: str, body: Any, status: int
) -> None:
    r = client.request(method, path, json=body)
    assert r.status_code == status
    sent = r.json()
    schema = _error_schema(doc)
    assert set(sent) <= set(schema["properties"]) and set(schema["required"]) <= set(sent)
    assert sent["status"] == status
    assert sent.get("request_id") == r.headers.get("x-request-id")
    msgspec.convert(sent, ErrorBody)  # the exact shape, types included


def test_times_of_day_are_times_not_durations(doc) -> None:
    schemas = doc["components"]["schemas"]
    for name in ("ServiceLevelSet", "ServiceLevelOut"):
        for field in ("day_start", "day_end"):
            prop = schemas[name]["properties"][field]
            assert prop["type"] == "string" and prop["format"] == "partial-time", prop
            assert re.fullmatch(prop["pattern"], "08:00:00")
            assert re.fullmatch(prop["pattern"], "15:30:00.5")
            assert not re.fullmatch(prop["pattern"], "PT8H")
            assert not re.fullmatch(prop["pattern"], "08:00:00+01:00")
    assert '"duration"' not in msgspec.json.encode(doc).decode()


def test_who_may_call_is_declared(doc) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    assert (schemes["session"]["type"], schemes["session"]["in"]) == ("apiKey", "cookie")
    assert schemes["session"]["name"] == SESSION_COOKIE
    for op_id, op in _operations(doc).items():
        if op_id in openapi.PUBLIC:
            assert "security" not in op, op_id
            assert "401" not in op["responses"] or op_id == "signIn"
        else:
            assert op["security"] == [{"bearer": []}, {"session": []}], op_id
            assert "401" in op["responses"], op_id


def test_the_uploads_have_their_multipart_bodies(doc) -> None:
    ops = _operations(doc)
    for op_id, part in (("submitWoundCase", "case"), ("replyToWoundCase", "reply")):
        body = ops[op_id]["requestBody"]["content"]["multipart/form-data"]
        props = body["schema"]["properties"]
        ref = props[part]["$ref"].rsplit("/", 1)[1]
        assert ref in doc["components"]["schemas"], ref
        assert props["photos"]["type"] == "array" and props["photos"]["maxItems"] == 10
        assert body["encoding"][part]["contentType"] == "application/json"
        assert {"413", "415", "422"} <= set(ops[op_id]["responses"])
    case = doc["components"]["schemas"]["WoundCaseCreate"]
    assert {"patient_id", "observation", "photo_consent"} <= set(case["properties"])


def test_every_status_that_can_occur_is_documented(doc) -> None:
    ops = _operations(doc)
    for op_id, op in ops.items():
        assert {"400", "413", "431", "500"} <= set(op["responses"]), op_id
    sign_in = ops["signIn"]["responses"]
    assert {"401", "429"} <= set(sign_in)
    assert sign_in["429"]["headers"]["Retry-After"]["required"] is True
    assert "403" in ops["createUser"]["responses"] and "409" in ops["createUser"]["responses"]
    assert "404" in ops["getPatient"]["responses"]
    assert "422" in ops["patientTtr"]["responses"]
    assert "503" in ops["health"]["responses"]


def test_downloads_and_the_event_stream_have_their_media_types(doc) -> None:
    ops = _operations(doc)
    assert set(ops["getWoundPhotoThumb"]["responses"]["200"]["content"]) == {"image/jpeg"}
    assert "image/heic" in ops["getWoundPhotoOriginal"]["responses"]["200"]["content"]
    stream = ops["streamEvents"]["responses"]["200"]["content"]
    assert set(stream) == {"text/event-stream"}
